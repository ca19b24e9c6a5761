#!/usr/bin/env bash
# docker compose --profile scale: run once by the TimescaleDB image when it creates the primary, so
# the replica container (pg_basebackup over the compose network) may stream from it.
set -euo pipefail
echo "host replication all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
