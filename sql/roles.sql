-- Bulwark's two database roles (README, "Database security"): a migration role that owns the schema
-- and runs migrations, and a runtime role the service uses for requests, with no DDL, no TRUNCATE,
-- no ownership and no superuser (OWASP ASVS 5.0 13.2.2, least privilege).
--
-- Run it as an administrator (a superuser, or a role with CREATEROLE that owns the database):
--   psql "$ADMIN_URL" -v migration_role=bulwark_owner -v migration_password='...' \
--        -v runtime_role=bulwark_app -v runtime_password='...' -v database=bulwark -f sql/roles.sql
-- or let `npm run cli -- create-roles` run it, with the names and passwords of DATABASE_MIGRATION_URL
-- and DATABASE_URL. Idempotent: missing roles are created, attributes and passwords reset. A role is
-- not altered by itself (PostgreSQL forbids it), so a run through the migration connection updates
-- the runtime role only. Table privileges are granted after each migration (sql/grant-runtime.sql).

select format('create role %I', :'migration_role')
  where not exists (select from pg_roles where rolname = :'migration_role') \gexec
select format('alter role %I with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password %L',
              :'migration_role', :'migration_password')
  where :'migration_role' <> current_user \gexec
select format('create role %I', :'runtime_role')
  where not exists (select from pg_roles where rolname = :'runtime_role') \gexec
select format('alter role %I with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls password %L',
              :'runtime_role', :'runtime_password')
  where :'runtime_role' <> current_user \gexec

-- Both may connect; only the migration role may create objects in the schema.
grant connect, temporary on database :"database" to :"migration_role";
grant connect on database :"database" to :"runtime_role";
revoke create on schema public from public;
grant usage, create on schema public to :"migration_role";
grant usage on schema public to :"runtime_role";

-- Tables made before the split (by an administrator) pass to the migration role.
select format('alter table public.%I owner to %I', tablename, :'migration_role')
  from pg_tables
  where schemaname = 'public'
    and tablename in ('schema_migrations', 'audit_events', 'users', 'sessions', 'refresh_tokens', 'comments')
    and tableowner <> :'migration_role' \gexec
