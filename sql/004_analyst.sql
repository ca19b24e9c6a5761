-- The analyst role: read-only SQL access to the aggregates in the analytics schema, nothing else
-- (no raw events, no writes). NOLOGIN: people log in with their own role IN ROLE analyst (README:
-- Analysts). Roles are cluster-wide; creating one needs CREATEROLE. Without it the migration still
-- succeeds, says so in a WARNING, and an administrator can run this file later.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'analyst') THEN
    CREATE ROLE analyst NOLOGIN;
  END IF;
  -- Login roles inherit these settings: read-only transactions, and no query runs for more than 30 s.
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
