-- Nothing to change on the Apache edition: it has no TimescaleDB policies (010's Community file
-- rewrites the policy setters to read timescaledb_information.jobs). Kept so that every version is
-- recorded once on every edition.
SELECT 1;
