-- Scoped API keys for machine clients (issue 16): `bwk_<id>_<secret>`. Only a SHA-256 hash of the
-- 256-bit secret is stored (NIST SP 800-63B-4 §3.1.2.1: a high-entropy secret needs no slow hash).
create table api_keys (
  id text primary key check (id ~ '^[0-9a-f]{16}$'),
  user_id uuid not null references users (id) on delete cascade,
  name text not null check (char_length(name) between 1 and 64),
  secret_hash bytea not null check (octet_length(secret_hash) = 32),
  scopes text[] not null check (cardinality(scopes) > 0),
  -- How the creating session was authenticated: an admin key meets MFA_REQUIRED_ROLES only if it did.
  amr text[] not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  -- Written in batches (services/api-key-usage.ts), up to API_KEY_LAST_USED_FLUSH_MS behind.
  last_used_at timestamptz,
  revoked_at timestamptz,
  revoked_reason text
);
create index api_keys_user_id_idx on api_keys (user_id);

-- The addresses a key was used from, as HMACs (no address in clear): the first use from a new one is audited.
create table api_key_addresses (
  key_id text not null references api_keys (id) on delete cascade,
  address_hash bytea not null,
  first_seen_at timestamptz not null default now(),
  primary key (key_id, address_hash)
);
