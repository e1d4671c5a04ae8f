-- Mail (issue 15): verified addresses, single-use tokens sent by mail, and the transactional outbox.

-- When the current address was last proved to be the user's (a link followed); null: never.
alter table users add column email_verified_at timestamptz;

-- Tokens sent by mail: only the SHA-256 of 256 random bits is stored (OWASP ASVS 5.0 6.4.1), each is
-- good once and dies at expires_at. `email` is the address the token proves (the current one, or the
-- new one of an email change), encrypted and bound to this row (lib/field-crypto.ts).
create table email_tokens (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references users (id) on delete cascade,
  purpose text not null check (purpose in ('verify_email', 'password_reset', 'email_change')),
  token_hash bytea not null unique,
  email text,
  -- Wrong second-factor codes sent with a reset token: the token dies after a few.
  failures integer not null default 0,
  expires_at timestamptz not null,
  used_at timestamptz,
  created_at timestamptz not null default now()
);
create index email_tokens_user_id_idx on email_tokens (user_id, purpose);

-- The transactional outbox: a mail is written in the transaction of the change that causes it, and
-- sent later by a worker (services/outbox.ts) that claims due rows with FOR UPDATE SKIP LOCKED and a
-- lease, so two replicas never send one row. Recipient and payload (which may hold a link's token) are
-- encrypted, and cleared once the mail is sent or given up.
create table outbox (
  id uuid primary key default gen_random_uuid(),
  template text not null,
  user_id uuid references users (id) on delete set null,
  recipient text,
  payload text,
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  claim_id uuid,
  claimed_until timestamptz,
  last_error text,
  sent_at timestamptz,
  failed_at timestamptz,
  created_at timestamptz not null default now()
);
create index outbox_due_idx on outbox (next_attempt_at) where sent_at is null and failed_at is null;
create index outbox_done_idx on outbox (created_at) where sent_at is not null or failed_at is not null;
