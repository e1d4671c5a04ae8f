import type { InjectOptions } from 'fastify'
import postgres from 'postgres'
import type { Test } from 'tap'
import { type App, login, type SignedInUser, signUp, testDatabaseUrl, tokenClaims } from '../helper.js'
import type { Known, Plan } from './requests.js'

/**
 * The fuzz app's world: its actors (signed in again whenever a request may have ended their
 * session), the ids and names the database knows, and a checksum of the user-visible tables.
 */

/**
 * Every table a client's request may change; audit_events is left out, as it records rejections.
 * The outbox is in: the world stops the app's outbox worker (the only other writer), so a mail
 * queued by a rejected request shows here.
 */
const TABLES = [
  'users',
  'sessions',
  'refresh_tokens',
  'comments',
  'mfa_totp',
  'mfa_recovery_codes',
  'mfa_challenges',
  'email_tokens',
  'outbox',
  'webauthn_credentials',
]

/** Per table, its row count and the sum of its rows' hashes: one cheap query, order-independent. */
const CHECKSUM = `select ${TABLES.map(
  (t) => `(select count(*) || ':' || coalesce(sum(hashtext(r::text)::bigint), 0) from ${t} r) as ${t}`,
).join(', ')}`

export type ActorName = 'anonymous' | 'user' | 'admin'
type Sums = Record<string, string>

export class World {
  private sums: Sums | undefined
  private readonly stale = new Set<ActorName>()

  private constructor(
    readonly app: App,
    private readonly db: postgres.Sql,
    private readonly actors: Record<'user' | 'admin' | 'bystander', SignedInUser>,
    readonly known: Known,
  ) {}

  /** Signs up the actors and a bystander, and gives each a comment, so ids and cursors are real. */
  static async create(t: Test, app: App): Promise<World> {
    const db = postgres(await testDatabaseUrl(), { max: 1, onnotice: () => {} })
    t.teardown(() => db.end())
    // Sending would change outbox rows between two checksums; queued mail stays put instead.
    await app.mail.worker?.stop()
    const user = await signUp(app, 'fz')
    const admin = await signUp(app, 'fza', { role: 'admin' })
    const bystander = await signUp(app, 'fzb')
    const comments: string[] = []
    for (const who of [user, bystander, bystander]) {
      const res = await who.inject({ method: 'POST', url: '/api/comments', payload: { body: 'a comment' } })
      comments.push(res.json<{ id: string }>().id)
    }
    const page = await app.inject('/api/comments?limit=1')
    const cursor = page.json<{ nextCursor: string | null }>().nextCursor
    const ids = [user.id, admin.id, bystander.id, ...comments, String(tokenClaims(user.accessToken).sid)]
    const names = [user.username, admin.username, bystander.username, 'me']
    const known: Known = { id: ids, userId: ids, username: names, author: names, q: names }
    if (cursor) known.cursor = [cursor]
    return new World(app, db, { user, admin, bystander }, known)
  }

  /** The actor's current credentials, after signing in again (and restoring role and flag) if needed. */
  async credentials(name: ActorName): Promise<SignedInUser | undefined> {
    if (name === 'anonymous') return undefined
    const actor = this.actors[name]
    if (this.stale.delete(name)) {
      await this.db`update users set role = ${actor.role}, disabled = false where id = ${actor.id}`
      const session = await login(this.app, actor.username)
      Object.assign(actor, { accessToken: session.accessToken, refreshToken: session.refreshToken })
      this.sums = undefined
    }
    return actor
  }

  /** A request that succeeded and changed something may have ended any actor's session or role. */
  somethingChanged(): void {
    for (const name of ['user', 'admin'] as const) this.stale.add(name)
  }

  /** Reads the tables afresh on the next checksum (after writes no request was checked against). */
  forgetChecksum(): void {
    this.sums = undefined
    this.somethingChanged()
  }

  async checksum(): Promise<Sums> {
    this.sums ??= { ...(await this.db.unsafe<Sums[]>(CHECKSUM, [], { prepare: true }))[0] }
    return this.sums
  }

  /** The tables whose rows differ from `before`, read afresh. */
  async changedSince(before: Sums): Promise<string[]> {
    this.sums = undefined
    const after = await this.checksum()
    return TABLES.filter((t) => before[t] !== after[t])
  }

  /** The plan as app.inject options, with the actor's tokens (or a broken copy) filled in. */
  toInject(plan: Plan, method: string, actor: SignedInUser | undefined): InjectOptions {
    const names = this.app.authCookies
    const headers: Record<string, string> = { ...plan.headers }
    const cookies: [string, string][] = []
    const token = actor?.accessToken ?? this.actors.bystander.accessToken
    if (plan.auth === 'bearer') headers.authorization = `Bearer ${token}`
    if (plan.auth === 'tampered') headers.authorization = `Bearer ${tamper(token)}`
    if (plan.auth === 'garbage-bearer') headers.authorization = `Bearer ${plan.garbage}`
    if (plan.auth === 'cookies')
      cookies.push([names.access, token], [names.refresh, actor?.refreshToken ?? ''])
    if (plan.auth === 'garbage-cookie')
      cookies.push([names.access, plan.garbage], [names.refresh, plan.garbage])
    if (cookies.length) headers.cookie = cookies.map(([k, v]) => `${k}=${v}`).join('; ')
    const body = plan.body
    const payload =
      body.kind === 'text'
        ? body.text
        : body.kind === 'bytes'
          ? Buffer.concat([
              Buffer.from(body.text.slice(0, body.at)),
              Buffer.from(body.bytes),
              Buffer.from(body.text.slice(body.at)),
            ])
          : undefined
    if (plan.contentType !== undefined) headers['content-type'] = plan.contentType
    return {
      method: method as InjectOptions['method'],
      url: plan.query ? `${plan.path}?${plan.query}` : plan.path,
      headers,
      ...(payload === undefined ? {} : { payload }),
      remoteAddress: plan.remoteAddress,
    }
  }
}

/** A real token with one character of its signature changed. */
function tamper(token: string): string {
  const i = token.length - 8
  return token.slice(0, i) + (token[i] === 'A' ? 'B' : 'A') + token.slice(i + 1)
}
