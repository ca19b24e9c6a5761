-- Totals from the aggregates (GET /events, count=auto past 10,000 matches): whether the continuous
-- aggregates count EVERY committed event of the time range [a, b) right now. Community edition.
--
-- TimescaleDB records what its materialized buckets have not seen yet: inserts into a range it had
-- already materialized go to the hypertable invalidation log, and ranges a refresh has not yet
-- processed stay in each aggregate's materialization invalidation log (all of it, before the first
-- refresh). Buckets after an aggregate's watermark are computed at query time (real-time
-- aggregation), so only the materialized part can be stale. Hours are computed from minutes and days
-- from hours: the range is final when no level has a pending invalidation in its materialized part.
-- Conservative: a logged range marks [a, b) stale whatever its services. Values in both logs are
-- Unix microseconds. Reads catalog tables only: no scan of events.
CREATE OR REPLACE FUNCTION aurore_aggregates_exact(services text[], a timestamptz, b timestamptz) RETURNS boolean
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  cagg record;
  e timestamptz;
  stale boolean;
BEGIN
  FOR pass IN 1..2 LOOP
    IF a IS NULL OR a >= b THEN
      RETURN true;
    END IF;
    stale := false;
    FOR cagg IN
      SELECT mat_hypertable_id, raw_hypertable_id FROM _timescaledb_catalog.continuous_agg
      WHERE user_view_schema = 'analytics' AND user_view_name IN ('events_per_minute', 'events_per_hour', 'events_per_day')
    LOOP
      e := least(b, _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(cagg.mat_hypertable_id)));
      CONTINUE WHEN a >= e;
      stale := EXISTS (SELECT 1 FROM _timescaledb_catalog.continuous_aggs_materialization_invalidation_log
                       WHERE materialization_id = cagg.mat_hypertable_id
                         AND lowest_modified_value < (extract(epoch FROM e) * 1000000)::bigint AND greatest_modified_value >= (extract(epoch FROM a) * 1000000)::bigint)
            OR EXISTS (SELECT 1 FROM _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log
                       WHERE hypertable_id = cagg.raw_hypertable_id
                         AND lowest_modified_value < (extract(epoch FROM e) * 1000000)::bigint AND greatest_modified_value >= (extract(epoch FROM a) * 1000000)::bigint);
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
