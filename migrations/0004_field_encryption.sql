-- Field-level encryption of personal data (lib/field-crypto.ts): emails, client addresses and user
-- agents are stored as AES-256-GCM ciphertext. Emails are found through a blind index (HMAC of the
-- normalized address), which also keeps them unique. Existing plaintext rows are encrypted by the
-- data step that runs right after the SQL migrations (lib/migrator.ts callers, `cli migrate`).
alter table users drop constraint if exists users_email_check;
drop index if exists users_email_key;
drop index if exists users_email_prefix_idx;
alter table users add column email_index bytea;
create unique index users_email_key on users (email_index);
