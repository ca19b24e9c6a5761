-- Event counts per service per minute, hour and day: the Apache-only edition's version (Debian's
-- TimescaleDB, Azure), where continuous aggregates and policies are refused. The SAME relation names
-- and columns as 003_aggregates.community.sql, as plain tables (hypertables, so retention drops whole
-- chunks), which the service refreshes incrementally (aurore_refresh_rollups, every
-- AGGREGATE_REFRESH_SECONDS) and trims on schedule (aurore_apply_retention). Analysts' SQL is
-- identical on every edition.
--
--   analytics.events_per_minute (bucket timestamptz, service text, events bigint)
--   analytics.events_per_hour   (bucket timestamptz, service text, events bigint)
--   analytics.events_per_day    (bucket timestamptz, service text, events bigint)
CREATE SCHEMA IF NOT EXISTS analytics;
COMMENT ON SCHEMA analytics IS 'Aurore Events aggregates, readable by the analyst role. Stable names and columns.';

CREATE TABLE IF NOT EXISTS analytics.events_per_minute (
  bucket  timestamptz NOT NULL,
  service text        NOT NULL,
  events  bigint      NOT NULL,
  PRIMARY KEY (service, bucket)
);
CREATE TABLE IF NOT EXISTS analytics.events_per_hour (LIKE analytics.events_per_minute INCLUDING ALL);
CREATE TABLE IF NOT EXISTS analytics.events_per_day (LIKE analytics.events_per_minute INCLUDING ALL);
SELECT create_hypertable('analytics.events_per_minute', by_range('bucket', INTERVAL '7 days'), if_not_exists => TRUE);
SELECT create_hypertable('analytics.events_per_hour', by_range('bucket', INTERVAL '90 days'), if_not_exists => TRUE);
SELECT create_hypertable('analytics.events_per_day', by_range('bucket', INTERVAL '365 days'), if_not_exists => TRUE);
CREATE INDEX IF NOT EXISTS events_per_minute_bucket_idx ON analytics.events_per_minute (bucket);
CREATE INDEX IF NOT EXISTS events_per_hour_bucket_idx ON analytics.events_per_hour (bucket);
CREATE INDEX IF NOT EXISTS events_per_day_bucket_idx ON analytics.events_per_day (bucket);

COMMENT ON TABLE analytics.events_per_minute IS 'Events per service per UTC minute (kept AGGREGATE_MINUTE_RETENTION_DAYS, 90 by default).';
COMMENT ON TABLE analytics.events_per_hour IS 'Events per service per UTC hour (kept AGGREGATE_HOUR_RETENTION_DAYS, 730 by default).';
COMMENT ON TABLE analytics.events_per_day IS 'Events per service per UTC day (kept AGGREGATE_DAY_RETENTION_DAYS, 730 by default).';

-- Finding what was written since the last refresh: ingested_at is the commit's timestamp and grows
-- with the physical order of each chunk, so a BRIN index finds recent rows (late ones included) for
-- a few pages of index, at almost no cost per insert.
CREATE INDEX IF NOT EXISTS events_ingested_at_brin ON events USING brin (ingested_at) WITH (pages_per_range = 32);

-- Where each service job stopped: rows with ingested_at before this are already counted.
CREATE TABLE IF NOT EXISTS aurore_watermarks (
  job             text PRIMARY KEY,
  ingested_before timestamptz NOT NULL
);

-- One incremental refresh, in one transaction:
-- 1. the rows committed since the watermark name the (minute, service) buckets that changed
--    (late events included: nothing depends on the event's own time being recent);
-- 2. each changed bucket is recounted from the raw events, then its hour from the minutes and its
--    day from the hours (recounts, not increments: running twice changes nothing);
-- 3. the watermark moves to aurore_settled_before(): a batch that commits after this run is never
--    skipped.
-- Buckets before `horizon` are never recounted: raw events there may already be dropped by retention,
-- and a recount would erase the history the aggregates keep (the pitfall TimescaleDB documents for
-- continuous aggregates). Returns the number of minute buckets recounted.
CREATE OR REPLACE FUNCTION aurore_refresh_rollups(raw_days int) RETURNS int
LANGUAGE plpgsql AS $fn$
DECLARE
  lo timestamptz;
  hi timestamptz;
  horizon timestamptz := time_bucket(INTERVAL '1 day', now() - make_interval(days => raw_days));
  n int;
BEGIN
  -- Two instances on one database: one refresh at a time; the other skips this round.
  IF NOT pg_try_advisory_xact_lock(7262002) THEN
    RETURN -1;
  END IF;
  -- First read of pg_stat_activity in this transaction (it is a per-transaction snapshot).
  -- aurore_settled_before() is in 005_maintenance.sql (resolved when this runs, not when created).
  hi := aurore_settled_before();
  SELECT coalesce((SELECT ingested_before FROM aurore_watermarks WHERE job = 'rollup'), '-infinity') INTO lo;

  CREATE TEMP TABLE aurore_dirty ON COMMIT DROP AS
    SELECT DISTINCT time_bucket(INTERVAL '1 minute', time) AS bucket, service
    FROM events WHERE ingested_at >= lo AND ingested_at < hi AND time >= horizon;
  GET DIAGNOSTICS n = ROW_COUNT;

  IF n > 0 THEN
    -- Statistics, so the planner picks per-bucket index lookups for the usual minute's worth of
    -- buckets and one hash join for a backfill of millions (both join conditions below are there
    -- for that choice: the range for the index, the bucket equality for the hash).
    ANALYZE aurore_dirty;
    INSERT INTO analytics.events_per_minute (bucket, service, events)
    SELECT d.bucket, d.service, count(*)
    FROM aurore_dirty d
    JOIN events e ON e.service = d.service
                 AND e.time >= d.bucket AND e.time < d.bucket + INTERVAL '1 minute'
                 AND time_bucket(INTERVAL '1 minute', e.time) = d.bucket
    GROUP BY d.bucket, d.service
    ON CONFLICT (service, bucket) DO UPDATE SET events = excluded.events;

    INSERT INTO analytics.events_per_hour (bucket, service, events)
    SELECT h.bucket, h.service, (SELECT sum(m.events) FROM analytics.events_per_minute m
                                 WHERE m.service = h.service AND m.bucket >= h.bucket AND m.bucket < h.bucket + INTERVAL '1 hour')
    FROM (SELECT DISTINCT time_bucket(INTERVAL '1 hour', bucket) AS bucket, service FROM aurore_dirty) h
    ON CONFLICT (service, bucket) DO UPDATE SET events = excluded.events;

    INSERT INTO analytics.events_per_day (bucket, service, events)
    SELECT dd.bucket, dd.service, (SELECT sum(h.events) FROM analytics.events_per_hour h
                                   WHERE h.service = dd.service AND h.bucket >= dd.bucket AND h.bucket < dd.bucket + INTERVAL '1 day')
    FROM (SELECT DISTINCT time_bucket(INTERVAL '1 day', bucket) AS bucket, service FROM aurore_dirty) dd
    ON CONFLICT (service, bucket) DO UPDATE SET events = excluded.events;

    -- After a backfill the planner would otherwise plan the metrics queries without statistics
    -- until autovacuum gets there (measured: 5 ms queries at 25-60 ms meanwhile).
    IF n > 100000 THEN
      ANALYZE analytics.events_per_minute;
      ANALYZE analytics.events_per_hour;
      ANALYZE analytics.events_per_day;
    END IF;
  END IF;

  INSERT INTO aurore_watermarks (job, ingested_before) VALUES ('rollup', hi)
  ON CONFLICT (job) DO UPDATE SET ingested_before = excluded.ingested_before;
  RETURN n;
END
$fn$;

-- Retention without policies: drop whole chunks past each relation's age (0 = keep forever).
CREATE OR REPLACE FUNCTION aurore_apply_retention(raw_days int, minute_days int, hour_days int, day_days int) RETURNS int
LANGUAGE plpgsql AS $fn$
DECLARE
  dropped int := 0;
  r record;
BEGIN
  FOR r IN SELECT * FROM (VALUES ('public.events'::regclass, raw_days),
                                 ('analytics.events_per_minute'::regclass, minute_days),
                                 ('analytics.events_per_hour'::regclass, hour_days),
                                 ('analytics.events_per_day'::regclass, day_days)) AS t(rel, days)
  LOOP
    IF r.days > 0 THEN
      dropped := dropped + (SELECT count(*) FROM drop_chunks(r.rel, older_than => now() - make_interval(days => r.days)));
    END IF;
  END LOOP;
  RETURN dropped;
END
$fn$;

REVOKE ALL ON FUNCTION aurore_refresh_rollups(int) FROM PUBLIC;
REVOKE ALL ON FUNCTION aurore_apply_retention(int, int, int, int) FROM PUBLIC;
