-- Totals from the aggregates (GET /events, count=auto past 10,000 matches): whether the rollup tables
-- count EVERY committed event of the time range [a, b) right now. Apache edition.
--
-- aurore_refresh_rollups recounts every minute that received rows committed before its watermark
-- (aurore_watermarks 'rollup'), then their hours and days, in one transaction: the rollups are final
-- for a range unless a row of it was committed since. Those rows are few (at most
-- AGGREGATE_REFRESH_SECONDS of ingest) and the BRIN index on ingested_at finds them, when the
-- statement is planned with the watermark's value (a generic plan, not knowing how recent it is,
-- walked the time index of a whole month: 76 ms against 5).
CREATE OR REPLACE FUNCTION aurore_aggregates_exact(services text[], a timestamptz, b timestamptz) RETURNS boolean
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  w timestamptz;
  newer boolean;
BEGIN
  IF a >= b THEN
    RETURN true;
  END IF;
  SELECT ingested_before INTO w FROM aurore_watermarks WHERE job = 'rollup';
  IF w IS NULL THEN
    RETURN false; -- never refreshed yet
  END IF;
  EXECUTE format('SELECT EXISTS (SELECT 1 FROM events WHERE ingested_at >= %L AND time >= %L AND time < %L%s)', w, a, b,
                 CASE WHEN services IS NULL THEN '' ELSE ' AND service = ANY ($1)' END)
    INTO newer USING services;
  RETURN NOT newer;
END
$fn$;
