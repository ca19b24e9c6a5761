-- The policy setters of 003 with the current settings read from TimescaleDB's public view
-- timescaledb_information.jobs (hypertable_name is the continuous aggregate's view for a refresh or
-- retention policy on one) instead of _timescaledb_config.bgw_job, which 2.28 moved to
-- _timescaledb_catalog (a compatibility view remains, for now). Behaviour unchanged.
CREATE OR REPLACE FUNCTION aurore_policy_config(proc text, rel regclass) RETURNS jsonb
LANGUAGE sql STABLE AS $fn$
  SELECT j.config FROM timescaledb_information.jobs j
  WHERE j.proc_name = proc
    AND format('%I.%I', j.hypertable_schema, j.hypertable_name)::regclass = rel
  ORDER BY j.job_id LIMIT 1
$fn$;

CREATE OR REPLACE FUNCTION aurore_set_retention(rel regclass, days int) RETURNS void
LANGUAGE plpgsql AS $fn$
DECLARE
  current interval;
BEGIN
  current := (aurore_policy_config('policy_retention', rel)->>'drop_after')::interval;
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

  compress := (aurore_policy_config('policy_compression', 'events')->>'compress_after')::interval;
  IF compress IS DISTINCT FROM (CASE WHEN compress_days > 0 THEN make_interval(days => compress_days) END) THEN
    PERFORM remove_compression_policy('events', if_exists => true);
    IF compress_days > 0 THEN
      PERFORM add_compression_policy('events', compress_after => make_interval(days => compress_days), schedule_interval => INTERVAL '1 hour');
    END IF;
  END IF;
END
$fn$;

REVOKE ALL ON FUNCTION aurore_policy_config(text, regclass) FROM PUBLIC;
REVOKE ALL ON FUNCTION aurore_set_retention(regclass, int) FROM PUBLIC;
REVOKE ALL ON FUNCTION aurore_set_policies(int, int, int, int, int) FROM PUBLIC;
