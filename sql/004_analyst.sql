-- The analyst role: read-only SQL access to the aggregates in the analytics schema, nothing else
-- (no raw events, no writes). NOLOGIN: people log in with their own role IN ROLE analyst, made by
-- aurore_create_analyst_login below (README: Analysts). Roles are cluster-wide; creating one needs
-- CREATEROLE. Without it the migration still succeeds, says so in a WARNING, and an administrator
-- can run this file later.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'analyst') THEN
    CREATE ROLE analyst NOLOGIN;
  END IF;
  -- PostgreSQL applies role settings to the role that logs in, never to members: these cover a login
  -- granted to analyst itself; aurore_create_analyst_login sets the same on each personal login.
  ALTER ROLE analyst SET default_transaction_read_only = on;
  ALTER ROLE analyst SET statement_timeout = '30s';
EXCEPTION
  WHEN insufficient_privilege THEN
    RAISE WARNING 'analyst role not created (this database user lacks CREATEROLE): run sql/004_analyst.sql as an administrator';
  WHEN duplicate_object OR unique_violation THEN
    NULL; -- another database of this cluster created it at the same moment
END
$$;

DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'analyst') THEN
    GRANT USAGE ON SCHEMA analytics TO analyst;
    GRANT SELECT ON ALL TABLES IN SCHEMA analytics TO analyst;
    -- Aggregates added by later migrations are readable too.
    ALTER DEFAULT PRIVILEGES IN SCHEMA analytics GRANT SELECT ON TABLES TO analyst;
  END IF;
END
$$;

-- A personal login in the analyst role: read-only transactions by default, and no statement runs
-- longer than 30 s (an analyst's runaway query must not slow ingestion). Privileges, not these
-- settings, are what stop writes: the role has no write grant anywhere.
--   SELECT aurore_create_analyst_login('alice', 'a long random password');
CREATE OR REPLACE FUNCTION aurore_create_analyst_login(login name, password text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
  EXECUTE format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE analyst', login, password);
  EXECUTE format('ALTER ROLE %I SET default_transaction_read_only = on', login);
  EXECUTE format('ALTER ROLE %I SET statement_timeout = %L', login, '30s');
END
$fn$;
REVOKE ALL ON FUNCTION aurore_create_analyst_login(name, text) FROM PUBLIC;
