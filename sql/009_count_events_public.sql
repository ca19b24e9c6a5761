-- aurore_count_events (007) with the range of the raw chunks read from TimescaleDB's public view
-- timescaledb_information.chunks instead of its catalog tables: 2.28 removed the column
-- _timescaledb_catalog.chunk.dropped that 007 read, so every call failed there and every total past
-- 10,000 fell back to the planner's estimate. The view lists the chunks that exist (dropped ones are
-- not in it) on every version this service supports (docs/internals.md). Unchanged otherwise.
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
  SELECT min(ch.range_start), max(ch.range_end) INTO first_t, end_t
  FROM timescaledb_information.chunks ch
  WHERE ch.hypertable_schema = 'public' AND ch.hypertable_name = 'events';
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
