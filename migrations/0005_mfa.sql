-- Two-factor authentication (TOTP, RFC 6238) with recovery codes, the sign-in's second step, and
-- how each session was authenticated (auth_time and amr, OpenID Connect Core §2 and RFC 8176).
alter table sessions add column auth_time timestamptz, add column amr text[] not null default '{pwd}';
-- A session from before this migration was last authenticated when it began, not now.
update sessions set auth_time = created_at;
alter table sessions alter column auth_time set not null, alter column auth_time set default now();

-- One authenticator per user; pending (unconfirmed) until a code from it is entered. The secret is
-- encrypted and bound to this row's id (lib/field-crypto.ts).
create table mfa_totp (
  id uuid primary key,
  user_id uuid not null unique references users (id) on delete cascade,
  -- The session that started the enrolment: only it may confirm it.
  session_id uuid not null,
  secret text not null,
  confirmed_at timestamptz,
  -- The last time step accepted: a code is good once (RFC 6238 §5.2).
  last_step bigint,
  created_at timestamptz not null default now()
);

-- Single-use recovery codes, stored only as SHA-256 of 120 random bits (OWASP ASVS 5.0 6.5.2).
create table mfa_recovery_codes (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references users (id) on delete cascade,
  code_hash bytea not null,
  used_at timestamptz,
  created_at timestamptz not null default now(),
  unique (user_id, code_hash)
);

-- The second step of a sign-in: a token (stored as its SHA-256) for a password already verified.
create table mfa_challenges (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references users (id) on delete cascade,
  token_hash bytea not null unique,
  failures integer not null default 0,
  expires_at timestamptz not null,
  used_at timestamptz,
  created_at timestamptz not null default now()
);
create index mfa_challenges_user_id_idx on mfa_challenges (user_id);
