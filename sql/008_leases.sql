-- Leases: one instance at a time runs the maintenance jobs when several share this database
-- (a load balancer's instances, HTTP_PROCESSES). A lease is held until `until`, renewed by its holder
-- while it lives; another instance takes it over once it has lapsed (the holder stopped or died).
CREATE TABLE IF NOT EXISTS aurore_leases (
  name   text PRIMARY KEY,
  holder text        NOT NULL,
  until  timestamptz NOT NULL
);

-- Takes or renews `lease` for `me` when it is free, lapsed or already mine; returns the holder
-- after the call (me, or whoever holds it).
CREATE OR REPLACE FUNCTION aurore_take_lease(lease text, me text, ttl interval) RETURNS text
LANGUAGE sql AS $fn$
  WITH taken AS (
    INSERT INTO aurore_leases AS l (name, holder, until) VALUES (lease, me, clock_timestamp() + ttl)
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
      WHERE l.until < clock_timestamp() OR l.holder = excluded.holder
    RETURNING holder
  )
  SELECT coalesce((SELECT holder FROM taken), (SELECT holder FROM aurore_leases WHERE name = lease))
$fn$;
