-- Hardening from the outside review (issue 12).

-- A consumed refresh token gets the grace answer (a new access token for a racing tab) once: a
-- second replay is reuse (RFC 9700 §4.14.2).
alter table refresh_tokens add column grace_used_at timestamptz;

-- Usernames are ASCII and compared in ASCII: lower() under the database's collation may fold other
-- letters (a Turkish dotted İ, a dotless ı), so the unique index and every lookup use the "C" rules.
drop index users_username_key;
create unique index users_username_key on users (lower(username collate "C"));
