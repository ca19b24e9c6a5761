-- Totals from the aggregates (GET /events, count=auto past 10,000 matches): whether the continuous
-- aggregates count EVERY committed event of the time range [a, b) right now. Community edition.
--
-- TimescaleDB records what its materialized buckets have not seen yet, in its catalog:
-- - a write below a hypertable's invalidation threshold goes to the hypertable invalidation log;
--   one above it is NOT logged (real-time aggregation is meant to cover it);
-- - ranges a refresh has not yet processed stay in each aggregate's materialization invalidation log
--   (all of it, before the first refresh).
-- Buckets after an aggregate's watermark are computed at query time from the level below; buckets
-- before it are materialized. Hours are built on minutes and days on hours, so a level's
-- materialized part [a, e) is final only when
--   1. no level at or below it has a pending invalidation there, and
--   2. every hypertable below it logs writes there (e is under each one's invalidation threshold):
--      otherwise a late write lands in a range that was materialized from real-time results and
--      nothing records that the level above is now stale.
-- Conservative: a logged range marks [a, b) stale whatever its services. Values in the catalog are
-- Unix microseconds. Reads catalog tables only: no scan of events.
CREATE OR REPLACE FUNCTION aurore_aggregates_exact(services text[], a timestamptz, b timestamptz) RETURNS boolean
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  lvl record;
  hts int[] := '{}';  -- the hypertables at and below the level (raw events first)
  mats int[] := '{}'; -- the aggregates at and below the level
  e timestamptz;
  a_us bigint;
  e_us bigint;
  stale boolean;
BEGIN
  FOR pass IN 1..2 LOOP
    IF a IS NULL OR a >= b THEN
      RETURN true;
    END IF;
    stale := false;
    hts := '{}';
    mats := '{}';
    FOR lvl IN
      SELECT mat_hypertable_id, raw_hypertable_id FROM _timescaledb_catalog.continuous_agg
      WHERE user_view_schema = 'analytics' AND user_view_name IN ('events_per_minute', 'events_per_hour', 'events_per_day')
      ORDER BY array_position(ARRAY['events_per_minute', 'events_per_hour', 'events_per_day'], user_view_name::text)
    LOOP
      hts := hts || lvl.raw_hypertable_id;
      mats := mats || lvl.mat_hypertable_id;
      e := least(b, _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(lvl.mat_hypertable_id)));
      CONTINUE WHEN a >= e;
      a_us := (extract(epoch FROM a) * 1000000)::bigint;
      e_us := (extract(epoch FROM e) * 1000000)::bigint;
      stale := e_us > coalesce((SELECT min(watermark) FROM _timescaledb_catalog.continuous_aggs_invalidation_threshold t
                                WHERE t.hypertable_id = ANY (hts) HAVING count(*) = cardinality(hts)), -9223372036854775807)
            OR EXISTS (SELECT 1 FROM _timescaledb_catalog.continuous_aggs_materialization_invalidation_log
                       WHERE materialization_id = ANY (mats) AND lowest_modified_value < e_us AND greatest_modified_value >= a_us)
            OR EXISTS (SELECT 1 FROM _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log
                       WHERE hypertable_id = ANY (hts) AND lowest_modified_value < e_us AND greatest_modified_value >= a_us);
      EXIT WHEN stale;
    END LOOP;
    IF NOT stale THEN
      RETURN true;
    END IF;
    -- The range before the first refresh's window stays pending forever although it may hold no
    -- event: look again from the oldest event.
    a := greatest(a, (SELECT time FROM events ORDER BY time LIMIT 1));
  END LOOP;
  RETURN false;
END
$fn$;
