import fc from 'fast-check'

/** Values for the fuzzer: valid ones derived from a JSON Schema, and the odd ones that break parsers. */

/** The subset of JSON Schema (as @fastify/swagger prints TypeBox) the fuzzer reads. */
export interface Schema {
  type?: string
  properties?: Record<string, Schema>
  required?: string[]
  minProperties?: number
  minLength?: number
  maxLength?: number
  pattern?: string
  format?: string
  enum?: unknown[]
  const?: unknown
  anyOf?: Schema[]
  oneOf?: Schema[]
  minimum?: number
  maximum?: number
  items?: Schema
}

/**
 * Characters that have broken parsers, databases and normalizers elsewhere: NUL and controls, lone
 * surrogates, bidi overrides, combining marks, BOM, line separators, case-folding traps.
 */
// biome-ignore format: a table reads better unwrapped
const ODD_CHARS = [
  '\u0000', '\u0001', '\u001f', '\u007f', '\u0085', '\u00a0', '\ud800', '\udbff', '\udfff', '\u200b',
  '\u200e', '\u200f', '\u202e', '\u2066', '\u2028', '\u2029', '\ufeff', '\ufffd', '\uffff', '\u0301',
  '\u0351', '\u036b', 'İ', 'ı', 'ß', 'ﬃ', 'K', '𝕒', '👩‍👩‍👧', '\r', '\n', '\t', '"', "'", '\\', '%',
  '/', '<', '>', '&', ';', '?', '#', '+', ' ',
]

/** Whole strings an attacker tries first: injections, encodings, numbers and words JS treats specially. */
// biome-ignore format: a table reads better unwrapped
const ODD_STRINGS = [
  '', ' ', "' or 1=1 --", '"; drop table users; --', '<script>alert(1)</script>', '%00', '%', '%zz',
  '%ED%A0%80', '../../etc/passwd', '..%2f..%2f', '{}', '[]', 'null', 'true', 'undefined', '__proto__',
  'constructor', 'prototype', 'hasOwnProperty', 'NaN', 'Infinity', '-0', '1e999', '0x10', '00000001',
  '\u202eevil', 'e\u0301\u0301\u0301\u0301', 'Z\u0351\u036b\u0343\u036a\u0302', 'ADMIN', 'Admin',
  'admin\u0000', 'a\u0000b', '\ud800\ud800', '\udc00\ud800', '{{7*7}}', '#{7*7}', 'javascript:alert(1)',
  '00000000-0000-0000-0000-000000000000', 'urn:uuid:00000000-0000-0000-0000-000000000000',
  '{00000000-0000-0000-0000-000000000000}', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF',
  '0000-01-01T00:00:00Z', '9999-12-31T23:59:59.999999Z', '2024-02-30T00:00:00Z', '2024-01-01T24:00:00+24:00',
  '1970-01-01T00:00:00-23:59', '+275760-09-13T00:00:00Z', 'user', 'admin', 'true ', '1 ',
]

const oddChar = fc.oneof(
  fc.constantFrom(...ODD_CHARS),
  fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
  fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
)

/** `base` with odd characters put in at random places (so a pattern-valid string turns odd). */
const withOddChars = (base: fc.Arbitrary<string>) =>
  fc.tuple(base, fc.array(fc.tuple(fc.nat(), oddChar), { minLength: 1, maxLength: 3 })).map(([s, ins]) => {
    let out = s
    for (const [at, c] of ins) {
      const i = at % (out.length + 1)
      out = out.slice(0, i) + c + out.slice(i)
    }
    return out
  })

export const oddString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...ODD_STRINGS),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  withOddChars(fc.string({ maxLength: 20 })),
)

/** Numbers at the edges: signed zero, limits of int32, int64 and doubles, fractions. */
export const oddNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(0, -0, -1, 1.5, 2 ** 31, -(2 ** 31) - 1, 2 ** 53 + 2, 2 ** 63, 1e308, -1e308, 5e-324),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
)

/** Any JSON value, odd strings and numbers included: the wrong type for most fields. */
export const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  { maxDepth: 2 },
  oddString,
  oddNumber,
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.oneof(fc.string(), fc.integer(), fc.constant(null)), { maxLength: 3 }),
  fc.dictionary(fc.oneof(fc.string(), fc.constantFrom('__proto__', 'constructor')), fc.string(), {
    maxKeys: 3,
  }),
)

/** Pads (repeating its last character) or cuts a string to `n` UTF-16 units. */
const toLength = (s: string, n: number) => (s || 'a').padEnd(n, (s || 'a').slice(-1)).slice(0, n)

function validString(s: Schema): fc.Arbitrary<string> {
  const min = s.minLength ?? 0
  const max = s.maxLength ?? 64
  let base: fc.Arbitrary<string>
  if (s.format === 'email') base = fc.emailAddress().filter((e) => e.length <= max)
  else if (s.format === 'uuid') base = fc.uuid()
  else if (s.format === 'date-time')
    base = fc
      .date({ min: new Date(0), max: new Date('2100-01-01'), noInvalidDate: true })
      .map((d) => d.toISOString())
  else if (s.pattern) base = fc.stringMatching(new RegExp(s.pattern))
  else return fc.string({ unit: 'grapheme', minLength: min, maxLength: Math.min(max, min + 40) })
  // Pattern classes here repeat (`[...]+`), so padding with the last character keeps a match.
  return base.map((v) => (v.length < min ? toLength(v, min) : v.length > max ? toLength(v, max) : v))
}

/** Values the schema accepts. */
export function valid(schema: Schema): fc.Arbitrary<unknown> {
  if ('const' in schema) return fc.constant(schema.const)
  if (schema.enum) return fc.constantFrom(...schema.enum)
  const alternatives = schema.anyOf ?? schema.oneOf
  if (alternatives) return fc.oneof(...alternatives.map(valid))
  switch (schema.type) {
    case 'object': {
      const props = schema.properties ?? {}
      const record = fc.record(
        Object.fromEntries(Object.entries(props).map(([k, v]) => [k, valid(v)])) as Record<
          string,
          fc.Arbitrary<unknown>
        >,
        { requiredKeys: schema.required ?? [] },
      )
      return record.filter((v) => Object.keys(v).length >= (schema.minProperties ?? 0))
    }
    case 'string':
      return validString(schema)
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -1e9, max: schema.maximum ?? 1e9 })
    case 'number':
      return fc.double({ min: schema.minimum ?? -1e9, max: schema.maximum ?? 1e9, noNaN: true })
    case 'boolean':
      return fc.boolean()
    case 'array':
      return fc.array(valid(schema.items ?? {}), { maxLength: 4 })
    case 'null':
      return fc.constant(null)
    default:
      return anyJson
  }
}

/** Lengths around the schema's bounds, and one far past any body limit. */
function boundaryString(s: Schema): fc.Arbitrary<string> {
  const min = s.minLength ?? 0
  const max = s.maxLength ?? 256
  const lengths = [min - 1, min, min + 1, max - 1, max, max + 1, 4 * max, 70_000].filter((n) => n >= 0)
  return fc.tuple(validString(s), fc.constantFrom(...lengths)).map(([v, n]) => toLength(v, n))
}

/** A value the schema should refuse, or that sits on its edges. */
export function odd(schema: Schema): fc.Arbitrary<unknown> {
  const type = schema.type ?? (schema.anyOf ?? schema.oneOf)?.[0]?.type
  if (type === 'string')
    return fc.oneof(oddString, boundaryString(schema), withOddChars(validString(schema)), anyJson)
  if (type === 'integer' || type === 'number') {
    const edges = [schema.minimum, schema.maximum].filter((n) => n !== undefined) as number[]
    const near = edges.flatMap((n) => [n - 1, n, n + 1, n + 0.5])
    return fc.oneof(oddNumber, fc.constantFrom(0, ...near), oddNumber.map(String), anyJson)
  }
  if (type === 'boolean') return fc.oneof(fc.constantFrom('true', 'false', 1, 0, 'yes', ''), anyJson)
  return anyJson
}

/** A valid value with one thing wrong: a field missing, added, mistyped, odd or at a length bound. */
export function mutated(schema: Schema): fc.Arbitrary<unknown> {
  const props = schema.properties ?? {}
  const keys = Object.keys(props)
  if (schema.type !== 'object' || keys.length === 0) return odd(schema)
  const base = valid(schema) as fc.Arbitrary<Record<string, unknown>>
  const key = fc.constantFrom(...keys)
  const extraKey = fc.oneof(
    fc.constantFrom('__proto__', 'constructor', 'role', 'id', 'userId', 'isAdmin', 'password_hash', ''),
    fc.string(),
  )
  return fc.oneof(
    fc.tuple(base, key).map(([v, k]) => Object.fromEntries(Object.entries(v).filter(([n]) => n !== k))),
    fc.tuple(base, extraKey, anyJson).map(([v, k, x]) => ({ ...v, [k]: x })),
    fc.tuple(base, key).chain(([v, k]) => odd(props[k] ?? {}).map((x) => ({ ...v, [k]: x }))),
    anyJson,
  )
}
