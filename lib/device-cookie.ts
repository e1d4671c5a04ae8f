import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies"): a value that says
 * "this client completed a sign-in to this account", signed, so it can be neither forged nor moved
 * to another account. Format: `<user id>.<device id>.<issued, base36 seconds>.<HMAC-SHA-256>`.
 *
 * The MAC also covers a binding the caller supplies (the account's current password hash), so a
 * password change voids every device cookie issued before it: cookies stockpiled by someone who once
 * knew the password give no extra guesses at the new one. The issue time bounds its age server-side.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const DEVICE_ID = /^[A-Za-z0-9_-]{22}$/
const ISSUED = /^[0-9a-z]{1,11}$/
const MAC = /^[A-Za-z0-9_-]{43}$/

export function createDeviceCookieCodec(secret: string, maxAgeSeconds: number) {
  // A key of its own, derived from the signing secret with a label, so no other MAC can be replayed as one.
  const key = createHmac('sha256', secret).update('bulwark:device-cookie:v1').digest()
  const mac = (userId: string, deviceId: string, issued: string, binding: string) =>
    createHmac('sha256', key).update(`${userId}.${deviceId}.${issued}.${binding}`).digest('base64url')
  return {
    /** A cookie value for the account; `deviceId` keeps a known device's id (and budget) across sign-ins. */
    issue(
      userId: string,
      binding: string,
      deviceId = randomBytes(16).toString('base64url'),
      nowMs = Date.now(),
    ) {
      const issued = Math.floor(nowMs / 1000).toString(36)
      return `${userId}.${deviceId}.${issued}.${mac(userId, deviceId, issued, binding)}`
    },
    /** The device id of the first value that was issued to `userId` under `binding` and is not too old. */
    deviceOf(values: readonly string[], userId: string, binding: string, nowMs = Date.now()): string | null {
      for (const value of values) {
        const [user = '', deviceId = '', issued = '', sent = '', ...rest] = value.split('.')
        if (rest.length > 0 || user !== userId || !UUID.test(user) || !DEVICE_ID.test(deviceId)) continue
        if (!ISSUED.test(issued) || !MAC.test(sent)) continue
        const age = nowMs / 1000 - Number.parseInt(issued, 36)
        if (age < -60 || age > maxAgeSeconds) continue
        const expected = Buffer.from(mac(user, deviceId, issued, binding))
        if (timingSafeEqual(expected, Buffer.from(sent))) return deviceId
      }
      return null
    },
  }
}

export type DeviceCookieCodec = ReturnType<typeof createDeviceCookieCodec>
