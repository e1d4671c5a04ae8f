import { timingSafeEqual } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { clientKey } from '../../lib/client-key.js'
import { type AppError, apiKeyNotAllowed, insufficientScope, unauthenticated } from '../../lib/errors.js'
import type { ApiKeyScope } from '../../schemas/api-keys.js'
import { createKeyUsage, type KeyUsage } from '../../services/api-key-usage.js'
import {
  API_KEY_PREFIX,
  checkApiKey,
  type ParsedKey,
  parseApiKey,
  type RefusalReason,
} from '../../services/api-keys.js'
import { auditRefusal } from './security-audit.js'

/** API keys on requests: the gate that admits a key only where a route declares its scope. */

declare module 'fastify' {
  interface FastifyInstance {
    apiKeyUsage: KeyUsage
    /** The id of the request's API key if this process has verified its secret before; else null (rate limits). */
    peekApiKeyId: (request: FastifyRequest) => string | null
  }
  interface FastifyContextConfig {
    /** The scope an API key needs on this route; a route without one refuses every key (deny by default). */
    apiKeyScope?: ApiKeyScope
  }
}

/**
 * An Authorization header that carries an API key (the scheme is case-insensitive, RFC 9110 §11.1),
 * whatever whitespace follows the scheme: only `Bearer <key>` with one space parses, the rest is refused.
 */
const KEY_HEADER = new RegExp(`^Bearer\\s+${API_KEY_PREFIX}`, 'i')
/** Verified keys this process remembers for rate-limit bucketing (the oldest is forgotten beyond). */
const VERIFIED_MAX = 10_000

type SentKey = { token: string; key: ParsedKey | null }
/** Parsed (and hashed) once per request: the rate limit's key generator and the gate both ask. */
const sentKeys = new WeakMap<FastifyRequest, SentKey>()

function keyOf(request: FastifyRequest): SentKey | null {
  const header = request.headers.authorization
  // Most requests carry no key: answered by one test, with nothing cached for them.
  if (header === undefined || !KEY_HEADER.test(header)) return null
  let sent = sentKeys.get(request)
  if (!sent) {
    const token = header.slice('Bearer '.length)
    sent = { token, key: header[6] === ' ' ? parseApiKey(token) : null }
    sentKeys.set(request, sent)
  }
  return sent
}

async function apiKeysPlugin(app: FastifyInstance) {
  const usage = createKeyUsage()
  app.decorate('apiKeyUsage', usage)

  // The global limiter runs before authentication and must not read the database: it counts a key's
  // own budget only once this process has verified that key's secret, so a forged `bwk_<id>_…` with
  // someone's public id spends its sender's address budget, never the key's (kept: id → secret hash).
  const verified = new Map<string, Buffer>()
  app.decorate('peekApiKeyId', function peekApiKeyId(request: FastifyRequest): string | null {
    const key = keyOf(request)?.key
    const known = key ? verified.get(key.id) : undefined
    return known && key && timingSafeEqual(known, key.hash) ? key.id : null
  })
  function rememberVerified(key: ParsedKey) {
    verified.delete(key.id)
    verified.set(key.id, key.hash)
    if (verified.size > VERIFIED_MAX) verified.delete(verified.keys().next().value as string)
  }

  async function refuse(
    request: FastifyRequest,
    error: AppError,
    reason: RefusalReason,
    keyId: string | null,
    userId: string | null = null,
  ): Promise<never> {
    // No write amplification: at most AUDIT_REFUSALS_MAX rows a minute per account (a verified key's
    // owner) or address (anything unverified), then the log line alone; the global limit bounds the rest.
    const detail = { reason, keyId, route: request.routeOptions.url ?? null, method: request.method }
    await auditRefusal(app, request, 'auth.api_key.refused', userId, detail)
    throw error
  }

  /**
   * A root onRequest hook after the global limit: a request with `Bearer bwk_…` gets a key principal
   * only on a route that declares the scope the key holds; anywhere else it is refused, public routes
   * included (a key sent must be good). The session hooks then see the principal (authentication.ts).
   */
  app.addHook('onRequest', async function apiKeyGate(request: FastifyRequest) {
    const sent = keyOf(request)
    // No route: the not-found answer, or admin-guard's, which reads the key as a (bad) JWT: 401.
    if (!sent || request.routeOptions.url === undefined) return
    const { key } = sent
    if (!key) return refuse(request, unauthenticated(true), 'malformed', null)
    const scope = request.routeOptions.config.apiKeyScope
    if (!scope) return refuse(request, apiKeyNotAllowed(), 'route_not_allowed', key.id)
    const check = await checkApiKey(app.sql, key)
    if (!check.ok) {
      // A dead key keeps no budget of its own (ASVS 5.0 2.4.1): its sender's address pays from now on.
      if (check.reason !== 'wrong_secret') verified.delete(key.id)
      return refuse(request, unauthenticated(true), check.reason, key.id, check.userId)
    }
    const { principal } = check
    rememberVerified(key)
    if (!principal.scopes.includes(scope)) {
      return refuse(request, insufficientScope(scope), 'insufficient_scope', key.id, principal.userId)
    }
    request.principal = principal
    usage.used(key.id)
    // An IPv6 client by its /64, as the rate limits count it: rotating inside it is no new address (RFC 6177).
    const address = app.cipher.blindIndex(`api-key-address\0${clientKey(request.ip)}`)
    if (await usage.firstFromAddress(app.sql, key.id, address)) {
      await app.serviceContext(request).audit('auth.api_key.new_address', principal.userId, { keyId: key.id })
    }
  })

  async function flush() {
    try {
      const rows = await usage.flush(app.sql)
      if (rows > 0) app.log.debug({ event: 'api_key.last_used_flushed', rows }, 'API key last use written')
    } catch (err) {
      app.log.warn({ err, event: 'api_key.last_used_flush_failed' }, 'API key last use not written')
    }
  }
  const timer = setInterval(flush, app.config.API_KEY_LAST_USED_FLUSH_MS)
  timer.unref()
  // onClose runs in reverse order of registration: this one, registered after the pool, runs first.
  app.addHook('onClose', async function flushKeyUsage() {
    clearInterval(timer)
    await flush()
  })
}

export default fp(apiKeysPlugin, {
  name: 'api-keys',
  dependencies: ['config', 'db', 'authentication', 'global-rate-limit', 'service-context', 'security-audit'],
})
