-- Accounts. Usernames are unique without regard to case, emails are stored lower-case; the
-- unique indexes (not a prior select) decide between concurrent registrations.
create table users (
  id uuid primary key default gen_random_uuid(),
  username text not null check (username ~ '^[A-Za-z0-9_.-]{3,32}$'),
  email text not null check (length(email) <= 254 and email = lower(email)),
  password_hash text not null,
  role text not null default 'user' check (role in ('user', 'admin')),
  disabled boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index users_username_key on users (lower(username));
create unique index users_email_key on users (email);

-- A session is one refresh-token family (RFC 9700 §4.14): revoking it ends every token in it.
create table sessions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references users (id) on delete cascade,
  created_at timestamptz not null default now(),
  last_used_at timestamptz not null default now(),
  idle_expires_at timestamptz not null,
  expires_at timestamptz not null,
  revoked_at timestamptz,
  revoked_reason text,
  user_agent text,
  ip text
);
create index sessions_user_id_idx on sessions (user_id) where revoked_at is null;

-- Refresh tokens are stored only as SHA-256 hashes of a 256-bit random value.
create table refresh_tokens (
  id uuid primary key default gen_random_uuid(),
  session_id uuid not null references sessions (id) on delete cascade,
  parent_id uuid references refresh_tokens (id) on delete cascade,
  user_id uuid not null references users (id) on delete cascade,
  token_hash bytea not null unique,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  used_at timestamptz,
  revoked_at timestamptz,
  user_agent text,
  ip text
);
create index refresh_tokens_session_id_idx on refresh_tokens (session_id);
create index refresh_tokens_parent_id_idx on refresh_tokens (parent_id);
