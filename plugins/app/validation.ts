import { Ajv, type Options } from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifyInstance, FastifySchema } from 'fastify'
import fp from 'fastify-plugin'

const shared: Options = {
  allErrors: true, // every failing field is reported at once; every input schema is bounded
  removeAdditional: false, // an unknown property is an error, never silently dropped
  useDefaults: true,
  verbose: true, // exposes parentSchema, so a schema's `x-message` can word the error for people
  strict: true,
  // OpenAPI annotations that are not JSON Schema validation keywords.
  keywords: ['example', 'x-message'],
}

function makeAjv(coerceTypes: Options['coerceTypes']): Ajv {
  const ajv = new Ajv({ ...shared, coerceTypes })
  addFormats.default(ajv)
  return ajv
}

/**
 * JSON bodies are validated as sent (no coercion: `"5"` is not 5); query strings, params and
 * headers are strings on the wire, so those parts are coerced.
 */
async function validationPlugin(app: FastifyInstance) {
  const strictAjv = makeAjv(false)
  const coercingAjv = makeAjv('array')
  app.setValidatorCompiler<FastifySchema>(({ schema, httpPart }) =>
    (httpPart === 'body' ? strictAjv : coercingAjv).compile(schema as object),
  )
}

export default fp(validationPlugin, { name: 'validation' })
