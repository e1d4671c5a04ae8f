-- Passkeys (WebAuthn Level 3): the credentials a user registered, and the ceremonies' challenges.
create table webauthn_credentials (
  id uuid primary key,
  user_id uuid not null references users (id) on delete cascade,
  -- The authenticator's credential id (at most 1023 bytes, WebAuthn L3 §5.1) and its COSE public key.
  credential_id bytea not null unique check (length(credential_id) between 16 and 1023),
  public_key bytea not null,
  -- The signature counter (0: the authenticator keeps none); never goes backwards (§6.1.1).
  counter bigint not null default 0 check (counter >= 0),
  transports text[] not null default '{}',
  -- BE is fixed for a credential's lifetime (§6.1.3); BS (backed up) may change.
  backup_eligible boolean not null,
  backed_up boolean not null,
  aaguid uuid,
  name text not null check (length(name) between 1 and 64),
  created_at timestamptz not null default now(),
  last_used_at timestamptz
);
create index webauthn_credentials_user_id_idx on webauthn_credentials (user_id);

-- One row per ceremony started: SHA-256 of the challenge only, consumed by a delete ... returning.
create table webauthn_challenges (
  challenge_hash bytea primary key,
  purpose text not null check (purpose in ('register', 'login')),
  user_id uuid references users (id) on delete cascade,
  -- A sign-in that named an account: only that account's passkey may answer (none, if it has no account).
  named boolean not null default false,
  expires_at timestamptz not null,
  created_at timestamptz not null default now()
);
create index webauthn_challenges_expires_at_idx on webauthn_challenges (expires_at);
create index webauthn_challenges_user_id_idx on webauthn_challenges (user_id);
