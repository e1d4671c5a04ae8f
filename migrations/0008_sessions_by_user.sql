-- Has this account signed in before? The new-device notice (services/notices.ts) asks on every
-- sign-in without a device cookie, revoked sessions included, which the partial index of 0002
-- (live sessions only) cannot answer without reading the whole table.
create index sessions_user_id_all_idx on sessions (user_id);
