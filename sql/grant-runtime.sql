-- What the runtime role may do, granted by the migration role after every migration run (and by
-- `npm run cli -- migrate`). The audit log is append-only for the service (OWASP ASVS 5.0 16.4.2):
-- INSERT and SELECT only, never UPDATE, DELETE or TRUNCATE.
grant usage on schema public to :"runtime_role";
grant select, insert, update, delete on users, sessions, refresh_tokens, comments,
  mfa_totp, mfa_recovery_codes, mfa_challenges, email_tokens, outbox to :"runtime_role";
revoke truncate, references, trigger on users, sessions, refresh_tokens, comments,
  mfa_totp, mfa_recovery_codes, mfa_challenges, email_tokens, outbox from :"runtime_role";
-- created_at is never written by the service: the database stamps it, so no row is back-dated.
revoke insert, update, delete, truncate, references, trigger on audit_events from :"runtime_role";
grant select on audit_events to :"runtime_role";
grant insert (id, event, user_id, ip, user_agent, request_id, detail) on audit_events to :"runtime_role";
grant select on schema_migrations to :"runtime_role";
revoke insert, update, delete, truncate, references, trigger on schema_migrations from :"runtime_role";
-- Passkeys (migration 0009).
grant select, insert, update, delete on webauthn_credentials, webauthn_challenges to :"runtime_role";
revoke truncate, references, trigger on webauthn_credentials, webauthn_challenges from :"runtime_role";
-- API keys (migration 0010).
grant select, insert, update on api_keys, api_key_addresses to :"runtime_role";
revoke delete, truncate, references, trigger on api_keys, api_key_addresses from :"runtime_role";
