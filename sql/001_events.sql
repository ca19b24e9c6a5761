-- The events hypertable: one row per accepted event.
-- Chunks of one day: the retention policy drops whole days, and a day of events at tens of thousands
-- per second still fits comfortably in memory for its indexes.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE IF NOT EXISTS events (
  time        timestamptz NOT NULL,           -- the event's own timestamp (now() when the client sent none)
  id          uuid        NOT NULL,           -- the event id (UUIDv7 from the service, or the client's)
  service     text        NOT NULL,
  message     text        NOT NULL,
  metadata    jsonb       NOT NULL DEFAULT '{}'::jsonb,
  ingested_at timestamptz NOT NULL DEFAULT now(),  -- when the batch holding it was committed
  -- Unique per (id, time): a batch written again after a crash or retry inserts nothing twice.
  -- TimescaleDB requires the partitioning column in every unique index.
  PRIMARY KEY (id, time)
);

SELECT create_hypertable('events', by_range('time', INTERVAL '1 day'), if_not_exists => TRUE);

-- "Events of one service in a time range, newest first": the query API's main access path.
CREATE INDEX IF NOT EXISTS events_service_time_idx ON events (service, time DESC);
