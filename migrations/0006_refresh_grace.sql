-- A consumed refresh token gets the grace answer (a new access token for a racing tab) once: a
-- second replay is reuse (RFC 9700 §4.14.2).
alter table refresh_tokens add column grace_used_at timestamptz;
