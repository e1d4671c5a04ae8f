import fc from 'fast-check'
import type { Operation, Parameter } from './openapi.js'
import { anyJson, mutated, odd, oddString, type Schema, valid } from './values.js'

/**
 * Request plans: what to send, with no secrets in it, so a shrunk counterexample reads plainly and
 * replays against whatever session the actor holds by then (harness.ts fills the tokens in).
 */

/** How the request authenticates: the actor's own token (header or cookies), a broken one, or none. */
export type AuthKind = 'bearer' | 'cookies' | 'tampered' | 'none' | 'garbage-bearer' | 'garbage-cookie'

export type Body =
  | { kind: 'none' }
  | { kind: 'text'; text: string }
  /** Bytes that are not UTF-8 spliced into JSON text. */
  | { kind: 'bytes'; text: string; at: number; bytes: number[] }

export interface Plan {
  auth: AuthKind
  garbage: string
  path: string
  query: string
  body: Body
  contentType: string | undefined
  headers: Record<string, string>
  remoteAddress: string
}

/** Values a parameter of this name can take that the database knows (ids, names, cursors). */
export type Known = Record<string, string[]>

/** Percent-encodes a value (a lone surrogate, which encodeURIComponent refuses, goes as U+FFFD). */
export function pct(s: string): string {
  try {
    return encodeURIComponent(s)
  } catch {
    return encodeURIComponent(Buffer.from(s).toString())
  }
}

/** A generated value as URL text: an object goes as its JSON. */
const asUrlText = (v: unknown) => pct(typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v))

/** Segments the router itself must cope with: bad or overlong percent-encoding, dots, slashes, NUL. */
const RAW_SEGMENTS = [
  '%',
  '%zz',
  '%00',
  '%ED%A0%80',
  '%C0%AF',
  '%FF',
  '%2F',
  '%2e%2e',
  '..',
  '.',
  '',
  'a/b',
  ';x',
  'x'.repeat(101),
  '%E2%80%AE',
]

function paramValue(p: Parameter, known: Known): fc.Arbitrary<unknown> {
  // Mostly valid, so a request with several parameters often gets past validation as a whole.
  const arbs = [
    { weight: 3, arbitrary: valid(p.schema) },
    { weight: 1, arbitrary: odd(p.schema) },
  ]
  const ids = known[p.name]
  if (ids?.length) arbs.push({ weight: 3, arbitrary: fc.constantFrom(...ids) })
  return fc.oneof(...arbs)
}

function pathArb(op: Operation, known: Known): fc.Arbitrary<string> {
  const params = op.parameters.filter((p) => p.in === 'path')
  const segments = params.map((p) =>
    fc.oneof(
      { weight: 4, arbitrary: paramValue(p, known).map(asUrlText) },
      { weight: 1, arbitrary: fc.constantFrom(...RAW_SEGMENTS) },
    ),
  )
  const filled = fc.tuple(...segments).map((values) => {
    let i = 0
    return op.path.replace(/\{[^}]+\}/g, () => values[i++] ?? '')
  })
  // Rarely, the path itself goes wrong: a trailing or doubled slash, another case, a dot segment.
  const twist = fc.constantFrom<(p: string) => string>(
    (p) => `${p}/`,
    (p) => `/${p}`,
    (p) => p.toUpperCase(),
    (p) => `${p}/..`,
    (p) => p.replace(/\/([^/]*)$/, '/%2e%2e/$1'),
  )
  return fc.oneof(
    { weight: 12, arbitrary: filled },
    { weight: 1, arbitrary: fc.tuple(filled, twist).map(([p, f]) => f(p)) },
  )
}

/** A query pair; an array repeats its key, an object goes as its JSON. */
const pair = (k: string, v: unknown): string =>
  Array.isArray(v) ? v.map((x) => pair(k, x)).join('&') : `${pct(k)}=${asUrlText(v)}`

/** Query strings `a[b]`-style parsers, coercion and our finiteness check meet. */
const RAW_QUERY = [
  '',
  '&&&',
  '=',
  'limit',
  'limit=',
  'limit=1e999',
  'limit=Infinity',
  'limit=-0',
  'limit=0x10',
  'limit=+5',
  'limit=%20',
  'limit=1&limit=2',
  'limit[]=1',
  '__proto__=1',
  'constructor[prototype][x]=1',
  'disabled=yes',
  'role=user&role=admin',
  '%',
  '%zz',
  'q=%00',
  'cursor=%FF',
  `q=${'x'.repeat(5000)}`,
]

function queryArb(op: Operation, known: Known): fc.Arbitrary<string> {
  const params = op.parameters.filter((p) => p.in === 'query')
  const raw = fc.constantFrom(...RAW_QUERY)
  if (params.length === 0) return fc.oneof({ weight: 8, arbitrary: fc.constant('') }, raw)
  const values = fc.record(Object.fromEntries(params.map((p) => [p.name, paramValue(p, known)])), {
    requiredKeys: [],
  })
  const extra = fc.tuple(oddString, oddString).map(([k, v]) => pair(k, v))
  return fc
    .tuple(values, fc.subarray([0, 1]), extra, raw)
    .map(([v, extras, e, r]) =>
      [
        ...Object.entries(v).map(([k, x]) => pair(k, x)),
        ...(extras.includes(0) ? [e] : []),
        ...(extras.includes(1) ? [r] : []),
      ].join('&'),
    )
}

/** Raw JSON an encoder never writes: duplicate keys, truncation, literals JSON lacks, deep nesting. */
function rawBody(value: unknown): fc.Arbitrary<Body> {
  const text = JSON.stringify(value) ?? 'null'
  const isObject = text.startsWith('{') && text !== '{}'
  const firstKey = isObject ? (Object.keys(value as object)[0] ?? 'x') : 'x'
  const rest = isObject ? `,${text.slice(1)}` : '}'
  const asText = (t: string): Body => ({ kind: 'text', text: t })
  return fc.oneof(
    anyJson.map((x) => asText(`{${JSON.stringify(firstKey)}:${JSON.stringify(x) ?? 'null'}${rest}`)),
    fc.nat({ max: text.length }).map((n) => asText(text.slice(0, n))),
    fc.constantFrom('}', ',', ' x', '\u0000', '\ufeff', '/*', '\n]').map((g) => asText(text + g)),
    fc.constantFrom('\ufeff', ' \t\r\n', '[', '"').map((g) => asText(g + text)),
    fc
      .constantFrom(
        '1e400',
        '-1e400',
        'NaN',
        'Infinity',
        '-',
        '123456789012345678901234567890',
        '-0',
        '0x10',
        'undefined',
        "'x'",
      )
      .map((lit) => asText(`{${JSON.stringify(firstKey)}:${lit}${rest}`)),
    fc
      .constantFrom('{"__proto__":{"role":"admin"}', '{"constructor":{"prototype":{"x":1}}')
      .map((p) => asText(p + rest)),
    fc.integer({ min: 1, max: 20_000 }).map((n) => asText('['.repeat(n) + ']'.repeat(n))),
    fc.constantFrom('', ' ', 'null', '""', '[]', '0', 'true').map(asText),
    fc
      .tuple(
        fc.nat({ max: text.length }),
        fc.constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80]),
      )
      .map(([at, bytes]): Body => ({ kind: 'bytes', text, at, bytes: [...bytes] })),
  )
}

function bodyArb(op: Operation): fc.Arbitrary<Body> {
  const text = (v: unknown): Body => ({ kind: 'text', text: JSON.stringify(v) ?? 'null' })
  const none = fc.constant<Body>({ kind: 'none' })
  if (op.body) {
    const schema: Schema = op.body
    return fc.oneof(
      { weight: 3, arbitrary: valid(schema).map(text) },
      { weight: 5, arbitrary: mutated(schema).map(text) },
      { weight: 3, arbitrary: fc.oneof(valid(schema), mutated(schema)).chain(rawBody) },
      { weight: 1, arbitrary: none },
    )
  }
  return fc.oneof({ weight: 8, arbitrary: none }, anyJson.map(text), anyJson.chain(rawBody))
}

const JSON_TYPES = ['application/json', 'application/json; charset=utf-8']
const ODD_TYPES = [
  'Application/JSON',
  'application/json; charset=latin1',
  'application/json;charset=utf-16',
  'application/json; charset="utf-8"',
  'application/json; foo',
  'application/jsonx',
  'application/json, text/plain',
  ' application/json',
  'application/vnd.api+json',
  'application/problem+json',
  'text/plain',
  'text/json',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  '*/*',
  '',
]

/** Keeps what a header may carry on the wire (visible ASCII, tab, obs-text), as Node's parser would. */
const headerSafe = (s: string) => s.replace(/[^\t\x20-\x7e\x80-\xff]/g, '?')

/** Every request to `op` an actor might send: valid, mutated and malformed in each part. */
export function planArb(op: Operation, known: Known, signedIn: boolean): fc.Arbitrary<Plan> {
  const auth: fc.Arbitrary<AuthKind> = signedIn
    ? fc.oneof(
        { weight: 6, arbitrary: fc.constant('bearer' as const) },
        { weight: 3, arbitrary: fc.constant('cookies' as const) },
        { weight: 1, arbitrary: fc.constant('tampered' as const) },
      )
    : fc.constantFrom<AuthKind>('none', 'none', 'none', 'garbage-bearer', 'garbage-cookie', 'tampered')
  const contentType = fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(...JSON_TYPES) },
    { weight: 2, arbitrary: fc.constantFrom(...ODD_TYPES) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  )
  const headers = fc.record(
    {
      origin: fc.constantFrom('https://evil.example', 'null', 'http://localhost:80', 'http://localhost'),
      'sec-fetch-site': fc.constantFrom('cross-site', 'same-origin', 'none'),
      accept: fc.constantFrom('application/xml', '*/*', 'text/html;q=0', ''),
      'user-agent': oddString.map(headerSafe),
    },
    { requiredKeys: [] },
  )
  return fc.record({
    auth,
    garbage: oddString.map(headerSafe),
    path: pathArb(op, known),
    query: queryArb(op, known),
    body: bodyArb(op),
    contentType,
    headers,
    remoteAddress: fc.oneof(fc.ipV4(), fc.ipV6()),
  })
}
