-- Event counts per service per minute, hour and day, for the metrics API and for analysts.
-- Community edition: continuous aggregates. The Apache-only edition gets 003_aggregates.apache.sql
-- instead: plain tables with the SAME names and columns, so analysts' SQL is identical everywhere.
-- Migrations apply exactly one of the two (aurore_migrations records which).
--
--   analytics.events_per_minute (bucket timestamptz, service text, events bigint)
--   analytics.events_per_hour   (bucket timestamptz, service text, events bigint)  built on per-minute
--   analytics.events_per_day    (bucket timestamptz, service text, events bigint)  built on per-hour
--
-- Buckets are UTC. Real-time aggregation is switched on explicitly (off by default since TimescaleDB
-- 2.13): a query sees the materialized buckets plus what came in since the last refresh.
-- WITH NO DATA: nothing is computed here; the service's first "late events" run materializes any
-- history (src/maintain/), and refresh policies keep it current (their windows are set at start-up).
CREATE SCHEMA IF NOT EXISTS analytics;
COMMENT ON SCHEMA analytics IS 'Aurore Events aggregates, readable by the analyst role. Stable names and columns.';

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics.events_per_minute
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', time) AS bucket, service, count(*) AS events
FROM public.events
GROUP BY 1, 2
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics.events_per_hour
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket, service, sum(events)::bigint AS events
FROM analytics.events_per_minute
GROUP BY 1, 2
WITH NO DATA;

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics.events_per_day
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket, service, sum(events)::bigint AS events
FROM analytics.events_per_hour
GROUP BY 1, 2
WITH NO DATA;

COMMENT ON VIEW analytics.events_per_minute IS 'Events per service per UTC minute (kept AGGREGATE_MINUTE_RETENTION_DAYS, 90 by default).';
COMMENT ON VIEW analytics.events_per_hour IS 'Events per service per UTC hour (kept AGGREGATE_HOUR_RETENTION_DAYS, 730 by default).';
COMMENT ON VIEW analytics.events_per_day IS 'Events per service per UTC day (kept AGGREGATE_DAY_RETENTION_DAYS, 730 by default).';

-- Columnstore for closed chunks: rows of one service stored together (a service's history reads a
-- few compressed batches instead of one heap page per row). The policy's age is set at start-up.
ALTER TABLE events SET (timescaledb.compress, timescaledb.compress_segmentby = 'service', timescaledb.compress_orderby = 'time DESC, id');

-- Finding what was written since a job's last run: ingested_at is the commit's timestamp and grows
-- with the physical order of each chunk, so a BRIN index finds recent rows for a few pages of
-- index, at almost no cost per insert.
CREATE INDEX IF NOT EXISTS events_ingested_at_brin ON events USING brin (ingested_at) WITH (pages_per_range = 32);

-- Where each service job stopped: rows with ingested_at before this are already accounted for.
CREATE TABLE IF NOT EXISTS aurore_watermarks (
  job             text PRIMARY KEY,
  ingested_before timestamptz NOT NULL
);

-- Policies follow the configuration (RETENTION_DAYS and friends): called at every start, changes
-- only what differs, so a restart with a new RETENTION_DAYS updates the policy and nothing else.
CREATE OR REPLACE FUNCTION aurore_set_retention(rel regclass, days int) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
  current interval;
BEGIN
  SELECT (j.config->>'drop_after')::interval INTO current
  FROM _timescaledb_config.bgw_job j
  WHERE j.proc_name = 'policy_retention' AND j.hypertable_id = (
    SELECT coalesce(
      (SELECT mat_hypertable_id FROM _timescaledb_catalog.continuous_agg
        WHERE format('%I.%I', user_view_schema, user_view_name)::regclass = rel),
      (SELECT id FROM _timescaledb_catalog.hypertable
        WHERE format('%I.%I', schema_name, table_name)::regclass = rel)));
  IF current IS NOT DISTINCT FROM (CASE WHEN days > 0 THEN make_interval(days => days) END) THEN
    RETURN;
  END IF;
  PERFORM remove_retention_policy(rel, if_exists => true);
  IF days > 0 THEN
    PERFORM add_retention_policy(rel, drop_after => make_interval(days => days), schedule_interval => INTERVAL '1 hour');
  END IF;
END
$fn$;

CREATE OR REPLACE FUNCTION aurore_set_policies(raw_days int, minute_days int, hour_days int, day_days int, compress_days int)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
  compress interval;
BEGIN
  -- Two instances starting together must not both add a policy.
  PERFORM pg_advisory_xact_lock(7262003);
  -- Refresh windows stay far inside every retention window (raw: at least 1 day; per-minute, which the
  -- hourly aggregate reads: at least 7 days): a refresh that reached into dropped data would erase
  -- the aggregates' history for that range. Later arrivals are refreshed by the service's
  -- "late events" job, clamped to the same bound.
  PERFORM add_continuous_aggregate_policy('analytics.events_per_minute',
    start_offset => INTERVAL '3 hours', end_offset => INTERVAL '1 minute', schedule_interval => INTERVAL '1 minute', if_not_exists => true);
  PERFORM add_continuous_aggregate_policy('analytics.events_per_hour',
    start_offset => INTERVAL '3 days', end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '5 minutes', if_not_exists => true);
  PERFORM add_continuous_aggregate_policy('analytics.events_per_day',
    start_offset => INTERVAL '6 days', end_offset => INTERVAL '1 day', schedule_interval => INTERVAL '1 hour', if_not_exists => true);
  PERFORM aurore_set_retention('events', raw_days);
  PERFORM aurore_set_retention('analytics.events_per_minute', minute_days);
  PERFORM aurore_set_retention('analytics.events_per_hour', hour_days);
  PERFORM aurore_set_retention('analytics.events_per_day', day_days);

  SELECT (j.config->>'compress_after')::interval INTO compress
  FROM _timescaledb_config.bgw_job j
  WHERE j.proc_name = 'policy_compression'
    AND j.hypertable_id = (SELECT id FROM _timescaledb_catalog.hypertable WHERE schema_name = 'public' AND table_name = 'events');
  IF compress IS DISTINCT FROM (CASE WHEN compress_days > 0 THEN make_interval(days => compress_days) END) THEN
    PERFORM remove_compression_policy('events', if_exists => true);
    IF compress_days > 0 THEN
      PERFORM add_compression_policy('events', compress_after => make_interval(days => compress_days), schedule_interval => INTERVAL '1 hour');
    END IF;
  END IF;
END
$fn$;

REVOKE ALL ON FUNCTION aurore_set_retention(regclass, int) FROM PUBLIC;
REVOKE ALL ON FUNCTION aurore_set_policies(int, int, int, int, int) FROM PUBLIC;
