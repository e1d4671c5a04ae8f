import { createHash } from 'node:crypto'

/**
 * A Pwned Passwords–compatible range API (GET /range/<5 hex> → lines `SUFFIX:COUNT`), asked with
 * k-anonymity: only the first 5 hex characters of the password's SHA-1 leave the process, and the
 * answer is compared here (NIST SP 800-63B-4 §3.1.1.2, OWASP ASVS 5.0 6.2.12).
 */

/** The service could not answer in time or in form; the caller decides whether that blocks. */
export class BreachCheckUnavailable extends Error {
  override name = 'BreachCheckUnavailable'
}

/** A real answer is ≈ 1,000 lines of ≈ 40 bytes (up to ≈ 2,000 padded); more is refused unread. */
const MAX_ANSWER_BYTES = 1_048_576

/** The SHA-1 of the password's UTF-8 bytes, upper-case hex, split at k = 5. */
export function rangeParts(password: string): { prefix: string; suffix: string } {
  const hex = createHash('sha1').update(password, 'utf8').digest('hex').toUpperCase()
  return { prefix: hex.slice(0, 5), suffix: hex.slice(5) }
}

async function readBounded(body: ReadableStream<Uint8Array>): Promise<string> {
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.byteLength
    if (size > MAX_ANSWER_BYTES) throw new BreachCheckUnavailable('the answer is too large')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * How often the service has seen the password in breaches (0: never). `Add-Padding` asks for decoy
 * entries (count 0) so the answer's size does not tell an observer which range was asked. Throws
 * BreachCheckUnavailable on a timeout, a network error, a non-200 status or a malformed answer.
 */
export async function breachCount(baseUrl: string, password: string, timeoutMs: number): Promise<number> {
  const { prefix, suffix } = rangeParts(password)
  const url = `${baseUrl.replace(/\/+$/, '')}/range/${prefix}`
  let text: string
  try {
    const res = await fetch(url, {
      headers: { 'add-padding': 'true', 'user-agent': 'bulwark-password-check' },
      redirect: 'error',
      // One bound for the connection, the headers and the body together.
      signal: AbortSignal.timeout(timeoutMs),
    })
    if (res.status !== 200 || !res.body) {
      await res.body?.cancel()
      throw new BreachCheckUnavailable(`status ${res.status}`)
    }
    text = await readBounded(res.body)
  } catch (error) {
    if (error instanceof BreachCheckUnavailable) throw error
    const name = (error as Error).name
    throw new BreachCheckUnavailable(name === 'TimeoutError' ? 'timeout' : 'unreachable')
  }
  for (const line of text.split('\n')) {
    const match = /^([0-9A-Fa-f]{35}):(\d+)\s*$/.exec(line)
    if (!match) {
      if (line.trim() === '') continue
      throw new BreachCheckUnavailable('malformed answer')
    }
    if (match[1]?.toUpperCase() === suffix) return Number(match[2])
  }
  return 0
}
