import type { FastifyInstance, FastifySchema, FastifySchemaValidationError } from 'fastify'
import fp from 'fastify-plugin'
import { createAjv } from '../../lib/validation.js'
import { SHARED_SCHEMAS } from '../../schemas/shared.js'

/** Request validation: strict JSON bodies, coerced (and finite) query strings and params. */

/**
 * JSON bodies are validated as sent (no coercion: `"5"` is not 5); query strings, params and
 * headers are strings on the wire, so those parts are coerced.
 */
async function validationPlugin(app: FastifyInstance) {
  const strictAjv = createAjv(false)
  const coercingAjv = createAjv('array')
  // Our own Ajvs do not see app.addSchema: a request schema's $ref (CommentInput) resolves here.
  for (const ajv of [strictAjv, coercingAjv]) ajv.addSchema(SHARED_SCHEMAS)
  app.setValidatorCompiler<FastifySchema>(({ schema, httpPart }) =>
    httpPart === 'body'
      ? strictAjv.compile(schema as object)
      : finiteOnly(coercingAjv.compile(schema as object)),
  )
}

type Validate = ((data: unknown) => boolean) & { errors?: FastifySchemaValidationError[] | null }

/**
 * Ajv coerces "Infinity" and "1e999" to Infinity, which passes `type: integer` and skips
 * minimum/maximum (they only test finite numbers). Coerced parts are flat, so check their values.
 */
function finiteOnly(validate: Validate): Validate {
  const wrapped: Validate = (data) => {
    const ok = validate(data)
    const infinite = Object.entries((data ?? {}) as Record<string, unknown>).filter(
      ([, v]) => typeof v === 'number' && !Number.isFinite(v),
    )
    wrapped.errors = [
      ...((validate.errors ?? []) as FastifySchemaValidationError[]),
      ...infinite.map(([key]) => ({
        instancePath: `/${key}`,
        schemaPath: '#/type',
        keyword: 'type',
        params: {},
        message: 'must be a finite number',
      })),
    ]
    return ok && infinite.length === 0
  }
  return wrapped
}

export default fp(validationPlugin, { name: 'validation' })
