-- The number of events of some services (or all) in a time range [lo, hi], without reading them all:
-- whole days from analytics.events_per_day, the ragged hours at each end from events_per_hour, the
-- ragged minutes from events_per_minute, and the partial minutes at the very ends from the raw
-- events. A month of one service costs about 30 + 46 + 118 aggregate rows and two minutes of raw
-- rows, whatever the volume. `exact` says whether the aggregates are final for the range
-- (aurore_aggregates_exact, per edition in 006_totals.*.sql); when false, `total` is what they held
-- (short by what arrived since their last refresh).
-- The range is clamped to the chunks that exist: the aggregates keep counting days whose raw events
-- retention has dropped, and those are not events GET /events can return.
CREATE OR REPLACE FUNCTION aurore_count_events(services text[], lo timestamptz, hi timestamptz, OUT total bigint, OUT exact boolean)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  first_t timestamptz;
  end_t timestamptz;
  hi_x timestamptz; -- exclusive end: [lo, hi] is [lo, hi + 1 microsecond)
  m1 timestamptz; m2 timestamptz; h1 timestamptz; h2 timestamptz; d1 timestamptz; d2 timestamptz;
BEGIN
  total := 0;
  exact := true;
  SELECT _timescaledb_functions.to_timestamp(min(ds.range_start)), _timescaledb_functions.to_timestamp(max(ds.range_end))
    INTO first_t, end_t
  FROM _timescaledb_catalog.hypertable h
  JOIN _timescaledb_catalog.chunk c ON c.hypertable_id = h.id AND NOT c.dropped
  JOIN _timescaledb_catalog.chunk_constraint cc ON cc.chunk_id = c.id
  JOIN _timescaledb_catalog.dimension_slice ds ON ds.id = cc.dimension_slice_id
  WHERE h.schema_name = 'public' AND h.table_name = 'events';
  IF first_t IS NULL THEN
    RETURN;
  END IF;
  lo := greatest(coalesce(lo, first_t), first_t);
  hi_x := least(coalesce(hi + INTERVAL '1 microsecond', end_t), end_t);
  IF lo >= hi_x THEN
    RETURN;
  END IF;
  -- Whole buckets inside [lo, hi_x) at each level; a level with none collapses onto the finer one.
  m1 := aurore_bucket_ceil(INTERVAL '1 minute', lo);
  m2 := time_bucket(INTERVAL '1 minute', hi_x);
  IF m1 >= m2 THEN m1 := lo; m2 := lo; END IF;
  h1 := aurore_bucket_ceil(INTERVAL '1 hour', lo);
  h2 := time_bucket(INTERVAL '1 hour', hi_x);
  IF h1 >= h2 OR m1 = m2 THEN h1 := m1; h2 := m1; END IF;
  d1 := aurore_bucket_ceil(INTERVAL '1 day', lo);
  d2 := time_bucket(INTERVAL '1 day', hi_x);
  IF d1 >= d2 OR h1 = h2 THEN d1 := h1; d2 := h1; END IF;

  total := aurore_events_in('day', services, d1, d2)
         + aurore_events_in('hour', services, h1, d1) + aurore_events_in('hour', services, d2, h2)
         + aurore_events_in('minute', services, m1, h1) + aurore_events_in('minute', services, h2, m2)
         + aurore_raw_events_in(services, lo, m1) + aurore_raw_events_in(services, m2, hi_x);
  exact := aurore_aggregates_exact(services, m1, m2);
END
$fn$;

-- Events in [a, b) at one level of the aggregates: the sum of its counts. One plain range per
-- statement (an OR of two ranges would not use the bucket index), planned with its bounds: a generic
-- plan cannot tell two minutes from two months and scanned the whole per-minute table (68 ms at a
-- million events, against 1).
CREATE OR REPLACE FUNCTION aurore_events_in(level text, services text[], a timestamptz, b timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_custom_plan AS $fn$
BEGIN
  IF a >= b THEN
    RETURN 0;
  END IF;
  IF services IS NULL THEN
    CASE level
      WHEN 'day' THEN RETURN (SELECT coalesce(sum(events), 0) FROM analytics.events_per_day WHERE bucket >= a AND bucket < b);
      WHEN 'hour' THEN RETURN (SELECT coalesce(sum(events), 0) FROM analytics.events_per_hour WHERE bucket >= a AND bucket < b);
      ELSE RETURN (SELECT coalesce(sum(events), 0) FROM analytics.events_per_minute WHERE bucket >= a AND bucket < b);
    END CASE;
  END IF;
  CASE level
    WHEN 'day' THEN RETURN (SELECT coalesce(sum(events), 0) FROM analytics.events_per_day WHERE bucket >= a AND bucket < b AND service = ANY (services));
    WHEN 'hour' THEN RETURN (SELECT coalesce(sum(events), 0) FROM analytics.events_per_hour WHERE bucket >= a AND bucket < b AND service = ANY (services));
    ELSE RETURN (SELECT coalesce(sum(events), 0) FROM analytics.events_per_minute WHERE bucket >= a AND bucket < b AND service = ANY (services));
  END CASE;
END
$fn$;

-- Raw events in [a, b), a partial minute at most: a generic plan, which excludes chunks as it runs
-- (planning the statement for every daily chunk each call cost more than running it).
CREATE OR REPLACE FUNCTION aurore_raw_events_in(services text[], a timestamptz, b timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $fn$
BEGIN
  IF a >= b THEN
    RETURN 0;
  END IF;
  IF services IS NULL THEN
    RETURN (SELECT count(*) FROM events WHERE time >= a AND time < b);
  END IF;
  RETURN (SELECT count(*) FROM events WHERE time >= a AND time < b AND service = ANY (services));
END
$fn$;

-- The first bucket starting at or after t.
CREATE OR REPLACE FUNCTION aurore_bucket_ceil(width interval, t timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $fn$
  SELECT CASE WHEN time_bucket(width, t) = t THEN t ELSE time_bucket(width, t) + width END
$fn$;
