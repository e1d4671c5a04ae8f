-- User comments, stored already sanitized (no tags). Keyset pagination walks (created_at, id).
create table comments (
  id uuid primary key default gen_random_uuid(),
  author_id uuid not null references users (id) on delete cascade,
  body text not null check (length(body) between 1 and 10000),
  created_at timestamptz not null default clock_timestamp(),
  updated_at timestamptz not null default clock_timestamp()
);
create index comments_created_idx on comments (created_at desc, id desc);
create index comments_author_created_idx on comments (author_id, created_at desc, id desc);

-- Admin listing filters: prefix search on username and email.
create index users_username_prefix_idx on users (lower(username) text_pattern_ops);
create index users_email_prefix_idx on users (email text_pattern_ops);
create index users_created_idx on users (created_at desc, id desc);
