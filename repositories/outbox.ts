import type { Sql, TransactionSql } from 'postgres'
import type { FieldCipher } from '../lib/field-crypto.js'

/** SQL for the mail outbox. Recipient and payload are encrypted, bound to their row. */

type Db = Sql | TransactionSql

export interface QueuedMail {
  id: string
  template: string
  userId: string | null
  recipient: string
  payload: Record<string, unknown>
}

export interface ClaimedMail extends QueuedMail {
  attempts: number
  claimId: string
  /** Why the address or payload could not be read (a key gone, a value moved, not JSON): settled as a failed send. */
  unreadable?: unknown
}

const at = (id: string, column: 'recipient' | 'payload') => ({ table: 'outbox', column, rowId: id })

/** Writes a mail in the caller's transaction: it exists exactly when the change that causes it commits. */
export async function insertMail(tx: Db, cipher: FieldCipher, mail: QueuedMail): Promise<void> {
  await tx`
    insert into outbox (id, template, user_id, recipient, payload)
    values (
      ${mail.id}, ${mail.template}, ${mail.userId},
      ${cipher.encrypt(mail.recipient, at(mail.id, 'recipient'))},
      ${cipher.encrypt(JSON.stringify(mail.payload), at(mail.id, 'payload'))}
    )
  `
}

/**
 * Claims due mails for `leaseSeconds`: rows another worker holds (locked now, or leased and not yet
 * expired) are skipped, so two replicas never take the same row. Each claim gets a new claim id; only
 * its holder may settle the row. An expired lease (a worker that died mid-send) is claimable again.
 */
export async function claimDue(
  db: Db,
  cipher: FieldCipher,
  claim: { claimId: string; limit: number; leaseSeconds: number },
): Promise<ClaimedMail[]> {
  const rows = await db<(Omit<ClaimedMail, 'payload'> & { payload: string })[]>`
    update outbox o set claim_id = ${claim.claimId},
      claimed_until = now() + make_interval(secs => ${claim.leaseSeconds}),
      attempts = o.attempts + 1
    where o.id in (
      select id from outbox
      where sent_at is null and failed_at is null and next_attempt_at <= now()
        and (claimed_until is null or claimed_until < now())
      order by next_attempt_at
      limit ${claim.limit}
      for update skip locked
    )
    returning o.id, o.template, o.user_id, o.recipient, o.payload, o.attempts, o.claim_id
  `
  // Row by row: one unreadable row must not fail the claim of the others (they stay leased otherwise).
  return rows.map((row) => {
    try {
      return {
        ...row,
        recipient: cipher.decrypt(row.recipient, at(row.id, 'recipient')),
        payload: JSON.parse(cipher.decrypt(row.payload, at(row.id, 'payload'))) as Record<string, unknown>,
      }
    } catch (unreadable) {
      return { ...row, recipient: '', payload: {}, unreadable }
    }
  })
}

/**
 * Renews the lease of one claimed row just before its send: false when the claim is no longer this
 * worker's (its lease ran out while it sent the rows before, and another worker took the row).
 */
export async function renewClaim(
  db: Db,
  mail: Pick<ClaimedMail, 'id' | 'claimId'>,
  leaseSeconds: number,
): Promise<boolean> {
  const rows = await db`
    update outbox set claimed_until = now() + make_interval(secs => ${leaseSeconds})
    where id = ${mail.id} and claim_id = ${mail.claimId} and sent_at is null and failed_at is null
    returning id
  `
  return rows.length === 1
}

/** Sent: the address and the payload (which may hold a token) are no longer kept. */
export async function markSent(db: Db, mail: Pick<ClaimedMail, 'id' | 'claimId'>): Promise<boolean> {
  const rows = await db`
    update outbox set sent_at = now(), recipient = null, payload = null, claimed_until = null, last_error = null
    where id = ${mail.id} and claim_id = ${mail.claimId} and sent_at is null
    returning id
  `
  return rows.length === 1
}

/** Another attempt after `delayMs`; the lease ends now. */
export async function markRetry(
  db: Db,
  mail: Pick<ClaimedMail, 'id' | 'claimId'>,
  delayMs: number,
  error: string,
): Promise<void> {
  await db`
    update outbox set next_attempt_at = now() + make_interval(secs => ${delayMs / 1000}),
      claimed_until = null, last_error = ${error}
    where id = ${mail.id} and claim_id = ${mail.claimId} and sent_at is null
  `
}

/** Given up: kept for the operator (template, attempts, error), without the address or the payload. */
export async function markFailed(
  db: Db,
  mail: Pick<ClaimedMail, 'id' | 'claimId'>,
  error: string,
): Promise<void> {
  await db`
    update outbox set failed_at = now(), recipient = null, payload = null, claimed_until = null,
      last_error = ${error}
    where id = ${mail.id} and claim_id = ${mail.claimId} and sent_at is null
  `
}

/** Gives back the rows of a claim that were not tried (a worker stopping): due again at once. */
export async function releaseClaim(db: Db, claimId: string): Promise<number> {
  const rows = await db`
    update outbox set claimed_until = null, attempts = attempts - 1
    where claim_id = ${claimId} and claimed_until is not null and sent_at is null and failed_at is null
    returning id
  `
  return rows.length
}

/** Settled rows older than the retention go. */
export async function pruneSettled(db: Db, retentionDays: number): Promise<number> {
  const rows = await db`
    delete from outbox
    where (sent_at is not null or failed_at is not null)
      and created_at < now() - make_interval(days => ${retentionDays})
    returning id
  `
  return rows.length
}

/** Mails waiting to be sent (due or not), for the readiness of an operator's eye and the tests. */
export async function countPending(db: Db): Promise<number> {
  const [row] = await db<{ n: number }[]>`
    select count(*)::int as n from outbox where sent_at is null and failed_at is null
  `
  return row?.n ?? 0
}
