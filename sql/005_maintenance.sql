-- Maintenance functions every edition uses (src/maintain/).

-- The commit time up to which the events table can be read as final: rows with ingested_at before it
-- are all committed and visible. ingested_at is the inserting transaction's start, so a batch still
-- being written will carry ingested_at >= its transaction's start: wait for the oldest of those (the
-- service's own sessions on this database). Jobs read "what was written since my watermark" up to
-- this and move their watermark to it, so a slow commit is never skipped.
CREATE OR REPLACE FUNCTION aurore_settled_before() RETURNS timestamptz
LANGUAGE sql STABLE AS $fn$
  SELECT least(now(), min(xact_start)) FROM pg_stat_activity
  WHERE datname = current_database() AND usename = current_user AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
$fn$;
REVOKE ALL ON FUNCTION aurore_settled_before() FROM PUBLIC;

-- Locality for closed raw chunks, on every edition: rewrites ONE closed, uncompressed chunk in
-- (service, time) order (CLUSTER), so that a service's events of a day sit on a few pages instead of
-- one page per event (services interleave in arrival order). Search and metadata filters read every
-- candidate row of a service's time range: this makes that about 20 times fewer pages. On the
-- Community edition the columnstore does the same for chunks older than COMPRESS_AFTER_DAYS; this
-- covers the days before that, and the Apache edition, which has no columnstore.
-- CLUSTER marks the index, which is how a chunk is known to be done; rows that arrive later are
-- appended, unordered, and that is fine. It locks the chunk while it runs (seconds for a day of
-- hundreds of thousands of events), so one chunk per call, each in its own transaction.
-- Returns the chunk, or NULL when none is left.
CREATE OR REPLACE FUNCTION aurore_reorder_chunk(closed_for interval) RETURNS text
LANGUAGE plpgsql AS $fn$
DECLARE
  target record;
BEGIN
  SELECT format('%I.%I', ch.chunk_schema, ch.chunk_name) AS chunk, ci.relname AS idx INTO target
  FROM timescaledb_information.chunks ch
  JOIN pg_namespace cn ON cn.nspname = ch.chunk_schema
  JOIN pg_class c ON c.relnamespace = cn.oid AND c.relname = ch.chunk_name
  JOIN pg_index i ON i.indrelid = c.oid
  JOIN pg_class ci ON ci.oid = i.indexrelid
  WHERE ch.hypertable_schema = 'public' AND ch.hypertable_name = 'events'
    AND ch.range_end < now() - closed_for
    AND NOT ch.is_compressed
    AND ci.relname LIKE '%events_service_time_idx'
    AND NOT EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.oid AND x.indisclustered)
  ORDER BY ch.range_end DESC
  LIMIT 1;
  IF target IS NULL THEN
    RETURN NULL;
  END IF;
  EXECUTE format('CLUSTER %s USING %I', target.chunk, target.idx);
  EXECUTE format('ANALYZE %s', target.chunk);
  RETURN target.chunk;
END
$fn$;
REVOKE ALL ON FUNCTION aurore_reorder_chunk(interval) FROM PUBLIC;
