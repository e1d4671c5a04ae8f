import { Ajv, type ErrorObject, type Options } from 'ajv'
import addFormats from 'ajv-formats'
import type { FieldError } from './errors.js'

/** JSON Schema validation, the same for HTTP (plugins/app/validation.ts) and the CLI, and its error wording. */

const shared: Options = {
  allErrors: true, // every failing field is reported at once; every input schema is bounded
  removeAdditional: false, // an unknown property is an error, never silently dropped
  useDefaults: true,
  verbose: true, // exposes parentSchema, so a schema's `x-message` can word the error for people
  strict: true,
  // OpenAPI annotations that are not JSON Schema validation keywords.
  keywords: ['example', 'x-message'],
}

export function createAjv(coerceTypes: Options['coerceTypes']): Ajv {
  const ajv = new Ajv({ ...shared, coerceTypes })
  addFormats.default(ajv)
  return ajv
}

type AjvError = Pick<
  ErrorObject,
  'instancePath' | 'schemaPath' | 'keyword' | 'message' | 'params' | 'parentSchema'
>

/**
 * Turns Ajv's errors into `{ path, message }` pairs a person can read: `body.username` over HTTP,
 * `username` for the CLI (no context).
 */
export function fieldErrors(validation: AjvError[], context?: string): FieldError[] {
  // A failed union reports each branch and then itself: keep only the union's own (worded) error.
  const unions = validation.filter((e) => e.keyword === 'anyOf').map((e) => `${e.schemaPath}/`)
  const reported = validation.filter((e) => !unions.some((union) => e.schemaPath.startsWith(union)))
  return reported.map((e) => {
    const segments = e.instancePath.split('/').filter(Boolean)
    let message = (e.parentSchema?.['x-message'] as string | undefined) ?? e.message ?? 'is invalid'
    if (e.keyword === 'required') {
      segments.push(String(e.params.missingProperty))
      message = 'is required'
    } else if (e.keyword === 'additionalProperties') {
      segments.push(String(e.params.additionalProperty))
      message = 'is not an allowed property'
    }
    return { path: [context, ...segments].filter(Boolean).join('.') || 'input', message }
  })
}
