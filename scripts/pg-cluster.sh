#!/usr/bin/env bash
# Starts or stops a private, throwaway PostgreSQL + TimescaleDB cluster for tests and local development.
#   scripts/pg-cluster.sh start [DIR] [--edition community|apache]
#                                       -> prints DATABASE_URL=... (also written to DIR/url, mode 600)
#                                          apache: timescaledb.license = 'apache', so the Community
#                                          build runs as the Apache edition (no TSL code loaded)
#   scripts/pg-cluster.sh stop  [DIR]   -> stops it and deletes DIR
#   scripts/pg-cluster.sh url   [DIR]   -> prints the URL of a running cluster
#   scripts/pg-cluster.sh pause [DIR]   -> stops the server abruptly (-m immediate), keeping its data
#   scripts/pg-cluster.sh resume [DIR]  -> starts it again on the same port (outage tests)
#   scripts/pg-cluster.sh replica PRIMARY_DIR DIR -> a streaming replica of that running cluster
#                                          (pg_basebackup -R, its own port): prints DATABASE_READ_URL=...
#                                          stop/pause/resume/url take its DIR like a primary's
# Listens on 127.0.0.1 only, on a free port, with a random password (scram-sha-256). PostgreSQL refuses
# to run as root, so as root the cluster runs as the system user 'aurore-pg' (created when missing).
# Install the server first: scripts/install-timescaledb.sh
set -euo pipefail

cmd=${1:-}
EDITION=community
args=()
shift || true
while [ $# -gt 0 ]; do
  case "$1" in
    --edition) EDITION=${2:-}; shift 2 ;;
    --edition=*) EDITION=${1#--edition=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
case "$EDITION" in community|apache) ;; *) echo "[pg-cluster] --edition must be community or apache, not '$EDITION'" >&2; exit 2 ;; esac
set -- "$cmd" "${args[@]}"
DIR=${2:-${AURORE_PG_DIR:-${TMPDIR:-/tmp}/aurore-pg}}
log() { printf '[pg-cluster] %s\n' "$*" >&2; }

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$BIN" ] && [ -x "$BIN/postgres" ] || { log "no PostgreSQL server found: run scripts/install-timescaledb.sh"; exit 1; }

# Only ever delete a directory this script made (it holds the marker) or an empty one.
safe_rm() {
  if [ -d "$1" ] && [ ! -f "$1/.aurore-pg-cluster" ] && [ -n "$(ls -A "$1")" ]; then
    log "refusing to delete $1: not a cluster directory made by this script"; exit 1
  fi
  rm -rf "$1"
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u aurore-pg -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    if [ -f "$DIR/url" ] && as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
      log "already running"; echo "DATABASE_URL=$(cat "$DIR/url")"; exit 0
    fi
    ls "$("$BIN/pg_config" --pkglibdir)"/timescaledb*.so >/dev/null 2>&1 \
      || { log "TimescaleDB is not installed for $BIN: run scripts/install-timescaledb.sh"; exit 1; }
    if [ "$(id -u)" = 0 ] && ! id aurore-pg >/dev/null 2>&1; then
      useradd --system --no-create-home --shell /usr/sbin/nologin aurore-pg
    fi
    safe_rm "$DIR"; mkdir -p "$DIR"; chmod 700 "$DIR"; touch "$DIR/.aurore-pg-cluster"; cd "$DIR"
    [ "$(id -u)" = 0 ] && chown aurore-pg "$DIR"
    PASS=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
    umask 077
    printf '%s\n' "$PASS" > "$DIR/pw"; [ "$(id -u)" = 0 ] && chown aurore-pg "$DIR/pw"
    log "initdb in $DIR/data"
    as_owner "$BIN/initdb" -D "$DIR/data" -U aurore --pwfile="$DIR/pw" --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
      || { cat "$DIR/initdb.log" >&2; exit 1; }
    rm -f "$DIR/pw"
    cat >> "$DIR/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_connections = 100
shared_buffers = 256MB
fsync = on
CONF
    [ "$EDITION" = apache ] && echo "timescaledb.license = 'apache'" >> "$DIR/data/postgresql.conf"
    log "starting on 127.0.0.1:$PORT ($EDITION edition)"
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start >/dev/null \
      || { tail -20 "$DIR/server.log" >&2; exit 1; }
    PGPASSWORD=$PASS "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U aurore -d postgres -qAtc 'CREATE DATABASE aurore' >/dev/null
    URL="postgres://aurore:$PASS@127.0.0.1:$PORT/aurore"
    printf '%s\n' "$URL" > "$DIR/url"
    echo "DATABASE_URL=$URL"
    ;;
  stop)
    if [ -d "$DIR/data" ]; then
      as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    safe_rm "$DIR"
    log "stopped"
    ;;
  pause)
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -m immediate -w stop >/dev/null
    ;;
  resume)
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start >/dev/null
    ;;
  replica)
    PRIMARY=${2:?usage: $0 replica PRIMARY_DIR DIR}
    DIR=${3:?usage: $0 replica PRIMARY_DIR DIR}
    [ -f "$PRIMARY/url" ] || { log "no running cluster in $PRIMARY"; exit 1; }
    PURL=$(cat "$PRIMARY/url")
    PASS=$(printf '%s' "$PURL" | sed -E 's#^postgres://[^:]+:([^@]+)@.*#\1#')
    PPORT=$(printf '%s' "$PURL" | sed -E 's#.*:([0-9]+)/.*#\1#')
    safe_rm "$DIR"; mkdir -p "$DIR"; chmod 700 "$DIR"; touch "$DIR/.aurore-pg-cluster"
    [ "$(id -u)" = 0 ] && chown aurore-pg "$DIR"
    PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
    log "pg_basebackup from 127.0.0.1:$PPORT into $DIR/data"
    as_owner env PGPASSWORD="$PASS" "$BIN/pg_basebackup" -h 127.0.0.1 -p "$PPORT" -U aurore -D "$DIR/data" -R -X stream -c fast >"$DIR/basebackup.log" 2>&1 \
      || { cat "$DIR/basebackup.log" >&2; exit 1; }
    cat >> "$DIR/data/postgresql.conf" <<CONF
port = $PORT
unix_socket_directories = '$DIR'
hot_standby = on
CONF
    log "starting the replica on 127.0.0.1:$PORT"
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 start >/dev/null \
      || { tail -20 "$DIR/server.log" >&2; exit 1; }
    URL="postgres://aurore:$PASS@127.0.0.1:$PORT/aurore"
    (umask 077; printf '%s\n' "$URL" > "$DIR/url")
    echo "DATABASE_READ_URL=$URL"
    ;;
  url)
    [ -f "$DIR/url" ] || { log "no cluster in $DIR"; exit 1; }
    cat "$DIR/url"
    ;;
  *)
    echo "usage: $0 start|stop|pause|resume|url [DIR] | replica PRIMARY_DIR DIR" >&2; exit 2;;
esac
