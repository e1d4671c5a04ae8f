-- Security-relevant events (OWASP ASVS 16.3): who did what, from where, under which request id.
-- Never a password, token or cookie.
create table audit_events (
  id uuid primary key default gen_random_uuid(),
  event text not null check (length(event) between 1 and 100),
  user_id uuid,
  ip text,
  user_agent text,
  request_id text,
  detail jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);

create index audit_events_created_at_idx on audit_events (created_at desc, id desc);
create index audit_events_user_id_idx on audit_events (user_id, created_at desc);
