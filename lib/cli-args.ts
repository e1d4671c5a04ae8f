import { parseArgs } from 'node:util'

/** The operator CLI's arguments: parsed by node:util, each option described once for parsing and --help. */

export interface OptionSpec {
  /** The value as help shows it: `<name>`, `user|admin`. */
  value: string
  help: string
  optional?: boolean
}

export type OptionSpecs = Record<string, OptionSpec>

/** Wrong arguments: the message is printed with the command's usage, and nothing else runs. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/**
 * `--name value` or `--name=value`. Unknown, repeated or valueless options and stray arguments are
 * errors, never ignored or silently overridden. `--help` (`-h`) is reported for the caller to answer.
 */
export function parseOptions(
  args: string[],
  specs: OptionSpecs,
): { help: boolean; values: Record<string, string> } {
  const options = Object.fromEntries(Object.keys(specs).map((name) => [name, { type: 'string' as const }]))
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({
      args,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
      tokens: true,
    })
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/\s*\n\s*/g, ' '))
  }
  const seen = new Set<string>()
  for (const token of parsed.tokens ?? []) {
    if (token.kind !== 'option') continue
    if (seen.has(token.name)) throw new UsageError(`Option '--${token.name}' is given more than once`)
    seen.add(token.name)
  }
  const { help, ...values } = parsed.values
  return { help: help === true, values: values as Record<string, string> }
}

/** The options as a usage line shows them: `--name <name> [--role user|admin]`. */
export function synopsis(specs: OptionSpecs): string[] {
  return Object.entries(specs).map(([name, spec]) => {
    const option = `--${name} ${spec.value}`
    return spec.optional ? `[${option}]` : option
  })
}

/** One line per option, aligned: `  --role user|admin   what it does`. */
export function optionLines(specs: OptionSpecs): string[] {
  const left = Object.entries(specs).map(([name, spec]) => `--${name} ${spec.value}`)
  const width = Math.max(0, ...left.map((l) => l.length)) + 3
  return Object.values(specs).map((spec, i) => `  ${(left[i] ?? '').padEnd(width)}${spec.help}`)
}

/** Query parameters shown as written: they say how to connect, never hold a secret. */
const SHOWN_PARAMETERS = new Set([
  'sslmode',
  'sslrootcert',
  'sslcert',
  'sslkey',
  'sslnegotiation',
  'ssl',
  'target_session_attrs',
  'application_name',
  'connect_timeout',
])

/**
 * A database URL fit to print: the password replaced, and every query parameter but those known to
 * hold no secret (sslpassword, options=-c password=…, any letter case); no fragment.
 */
export function redactUrl(url: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return '(an unparsable URL)'
  }
  // An unencoded / ? or # in a password ends the authority early and puts the rest of it, with the
  // @, in the path, query or fragment: no part of such a URL is safe to show.
  if (`${parsed.pathname}${parsed.search}${parsed.hash}`.includes('@')) {
    return '(a URL that cannot be shown: is a character of its password not percent-encoded?)'
  }
  if (parsed.password) parsed.password = '***'
  for (const name of new Set(parsed.searchParams.keys())) {
    if (!SHOWN_PARAMETERS.has(name.toLowerCase())) parsed.searchParams.set(name, '***')
  }
  parsed.hash = ''
  return parsed.href
}
