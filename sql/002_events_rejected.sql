-- Quarantine: events the service accepted but the database refused (a constraint an operator added,
-- a value out of a type's range). They are kept here with the reason instead of being retried
-- forever or dropped. `record` is the event exactly as queued (JSON text), so it can be fixed and
-- replayed: INSERT INTO events SELECT ... FROM json_populate_record(NULL::events, record::json).
CREATE TABLE IF NOT EXISTS events_rejected (
  rejected_at   timestamptz NOT NULL DEFAULT now(),
  error_code    text        NOT NULL,  -- SQLSTATE
  error_message text        NOT NULL,
  record        text        NOT NULL
);

CREATE INDEX IF NOT EXISTS events_rejected_time_idx ON events_rejected (rejected_at DESC);
