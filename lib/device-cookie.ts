import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies"): a value that says
 * "this client signed in to this account before", bound to the account and signed, so it can be
 * neither forged nor moved to another account. Format: `<user id>.<device id>.<HMAC-SHA-256>`.
 */

export interface DeviceClaim {
  userId: string
  /** 128 random bits, base64url: the key of this device's own failure budget. */
  deviceId: string
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const DEVICE_ID = /^[A-Za-z0-9_-]{22}$/
const MAC = /^[A-Za-z0-9_-]{43}$/

export function createDeviceCookieCodec(secret: string) {
  // A key of its own, derived from the signing secret with a label, so no other MAC can be replayed as one.
  const key = createHmac('sha256', secret).update('bulwark:device-cookie:v1').digest()
  const mac = (userId: string, deviceId: string) =>
    createHmac('sha256', key).update(`${userId}.${deviceId}`).digest('base64url')
  return {
    issue(userId: string): string {
      const deviceId = randomBytes(16).toString('base64url')
      return `${userId}.${deviceId}.${mac(userId, deviceId)}`
    },
    /** The claim of a well-formed cookie with a good signature, else null. */
    read(value: string | undefined): DeviceClaim | null {
      const [userId = '', deviceId = '', sent = '', ...rest] = (value ?? '').split('.')
      if (rest.length > 0 || !UUID.test(userId) || !DEVICE_ID.test(deviceId) || !MAC.test(sent)) return null
      const expected = Buffer.from(mac(userId, deviceId))
      return timingSafeEqual(expected, Buffer.from(sent)) ? { userId, deviceId } : null
    },
  }
}

export type DeviceCookieCodec = ReturnType<typeof createDeviceCookieCodec>
