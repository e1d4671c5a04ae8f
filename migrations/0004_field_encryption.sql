-- Field-level encryption of personal data (lib/field-crypto.ts): emails, client addresses and user
-- agents are stored as AES-256-GCM ciphertext. Emails are found through a blind index (HMAC of the
-- normalized address), which also keeps them unique. Existing plaintext rows are encrypted by the
-- data step that runs right after the SQL migrations (lib/migrator.ts callers, `cli migrate`).
alter table users drop constraint if exists users_email_check;
drop index if exists users_email_key;
drop index if exists users_email_prefix_idx;
alter table users add column email_index bytea;
create unique index users_email_key on users (email_index);

-- Values stored before this migration are plaintext: mark them, so the step that encrypts them can
-- never mistake a plaintext value that merely looks like ciphertext (a user agent is chosen by the
-- client) for an encrypted one, nor the other way round.
update users set email = 'plain:' || email;
update sessions set ip = 'plain:' || ip where ip is not null;
update sessions set user_agent = 'plain:' || user_agent where user_agent is not null;
update refresh_tokens set ip = 'plain:' || ip where ip is not null;
update refresh_tokens set user_agent = 'plain:' || user_agent where user_agent is not null;
update audit_events set ip = 'plain:' || ip where ip is not null;
update audit_events set user_agent = 'plain:' || user_agent where user_agent is not null;
