#!/usr/bin/env bash
# Installs PostgreSQL (if missing) and TimescaleDB, for CI and for developers who want a native server.
#   scripts/install-timescaledb.sh [--edition community|apache]
#   community (default; what production runs): TimescaleDB 2.28.3 built from its release source, with
#     the TSL part (continuous aggregates, compression, background policies). The source is the release
#     tarball, found at $TIMESCALEDB_SOURCE or in ../shared/vendor/ beside the repository, and checked
#     against the SHA-256 below. About 10 minutes on 2 cores. The same build also runs as the Apache
#     edition: `scripts/pg-cluster.sh start DIR --edition apache` sets timescaledb.license = 'apache'.
#     2.28.3 is the newest release that supports PostgreSQL 15 (Debian 12's); 2.29 dropped it.
#   apache: Debian's own package, the Apache-only edition (its source has tsl/ removed).
#     Debian 13+: the binary package postgresql-NN-timescaledb.
#     Debian 12:  no binary package, so Debian's source package (from trixie, via a deb-src-only list so
#                 no trixie binary can ever be installed, which would upgrade libc6) is built against
#                 the installed PostgreSQL.
# Idempotent: does nothing when the asked-for build is already installed. Needs root (or sudo).
# Prints what it does; exits non-zero with a reason when it cannot.
set -euo pipefail

log() { printf '[install-timescaledb] %s\n' "$*"; }
EDITION=community
while [ $# -gt 0 ]; do
  case "$1" in
    --edition) EDITION=${2:-}; shift 2 ;;
    --edition=*) EDITION=${1#--edition=}; shift ;;
    *) log "unknown argument '$1' (usage: $0 [--edition community|apache])"; exit 2 ;;
  esac
done
case "$EDITION" in community|apache) ;; *) log "--edition must be community or apache, not '$EDITION'"; exit 2 ;; esac
TS_VERSION=2.28.3
TS_SHA256=c80abd42995a317d9c046da6499a7a6e63c58e188124a2f20580f7c82fa4b801
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { log "run as root or install sudo"; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
APT="$SUDO apt-get -y -q -o Dpkg::Use-Pty=0"

pg_major() {
  # Highest installed PostgreSQL server.
  ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sed -E 's#/usr/lib/postgresql/([0-9]+)/.*#\1#' | sort -n | tail -1
}

apt_updated=""
apt_update() { [ -n "$apt_updated" ] || { log "apt-get update"; $APT update >/dev/null; apt_updated=1; }; }

PG=$(pg_major || true)
if [ -z "$PG" ]; then
  apt_update
  log "installing PostgreSQL server"
  $APT install --no-install-recommends postgresql postgresql-contrib >/dev/null
  PG=$(pg_major)
fi
PG_CONFIG=/usr/lib/postgresql/$PG/bin/pg_config
LIBDIR=$($PG_CONFIG --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/$PG/lib)

if [ "$EDITION" = community ]; then
  if [ -f "$LIBDIR/timescaledb-tsl-$TS_VERSION.so" ]; then
    log "TimescaleDB $TS_VERSION Community already installed for PostgreSQL $PG"; exit 0
  fi
  ROOT=$(cd "$(dirname "$0")/.." && pwd)
  SRC=${TIMESCALEDB_SOURCE:-$ROOT/../shared/vendor/timescaledb-$TS_VERSION.tar.gz}
  [ -f "$SRC" ] || { log "the TimescaleDB $TS_VERSION release source is not at $SRC: set TIMESCALEDB_SOURCE to the release tarball (tag $TS_VERSION), or use --edition apache"; exit 1; }
  echo "$TS_SHA256  $SRC" | sha256sum -c --quiet - || { log "$SRC is not the $TS_VERSION release source (SHA-256 differs)"; exit 1; }
  apt_update
  log "installing the build tools"
  $APT install --no-install-recommends "postgresql-server-dev-$PG" cmake gcc make libssl-dev >/dev/null
  WORK=$(mktemp -d)
  tar -xzf "$SRC" -C "$WORK"
  cd "$WORK"/timescaledb-*/
  log "configuring TimescaleDB $TS_VERSION (Community) against $PG_CONFIG"
  ./bootstrap -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF -DPG_CONFIG="$PG_CONFIG" \
    >"$WORK/bootstrap.log" 2>&1 || { tail -30 "$WORK/bootstrap.log"; exit 1; }
  log "building ($(nproc) jobs, about 10 minutes on 2 cores; progress every 100 files)"
  # pipefail: a failed make fails the pipeline, and the end of its log is shown (not only the exit)
  if ! make -C build -j"$(nproc)" 2>&1 | tee "$WORK/build.log" | awk '/Building C object/ { if (++n % 100 == 0) printf "[install-timescaledb] %d files compiled\n", n; fflush() }'; then
    tail -30 "$WORK/build.log"; exit 1
  fi
  $SUDO make -C build install >"$WORK/install.log" 2>&1 || { tail -30 "$WORK/install.log"; exit 1; }
  cd /; rm -rf "$WORK"
  log "installed: $LIBDIR/timescaledb-tsl-$TS_VERSION.so"
  exit 0
fi

if ls "$LIBDIR"/timescaledb*.so >/dev/null 2>&1; then
  log "TimescaleDB already installed for PostgreSQL $PG ($(ls "$LIBDIR"/timescaledb-*.so 2>/dev/null | head -1))"
  exit 0
fi

apt_update
if apt-cache show "postgresql-$PG-timescaledb" >/dev/null 2>&1; then
  log "installing Debian binary package postgresql-$PG-timescaledb"
  $APT install --no-install-recommends "postgresql-$PG-timescaledb" >/dev/null
  log "done"
  exit 0
fi

log "no binary package for PostgreSQL $PG on Debian $(cat /etc/debian_version); building Debian's source package"
$APT install --no-install-recommends "postgresql-server-dev-$PG" cmake gcc make dpkg-dev libssl-dev >/dev/null
[ -x "$PG_CONFIG" ] || { log "pg_config missing at $PG_CONFIG"; exit 1; }

SRC_LIST=/etc/apt/sources.list.d/aurore-timescaledb-src.sources
cleanup() { $SUDO rm -f "$SRC_LIST"; }
trap cleanup EXIT
$SUDO tee "$SRC_LIST" >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
log "apt-get update (with trixie deb-src)"
$APT update >/dev/null

WORK=$(mktemp -d)
cd "$WORK"
log "apt-get source timescaledb (into $WORK)"
apt-get source -q --download-only timescaledb >/dev/null 2>&1 || apt-get source -q timescaledb >/dev/null
[ -d timescaledb-*/ ] 2>/dev/null || dpkg-source -x ./*.dsc >/dev/null
cd timescaledb-*/
log "configuring (APACHE_ONLY) against $PG_CONFIG"
./bootstrap -DAPACHE_ONLY=1 -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
  -DPG_CONFIG="$PG_CONFIG" >"$WORK/bootstrap.log" 2>&1 || { tail -30 "$WORK/bootstrap.log"; exit 1; }
log "building ($(nproc) jobs)"
make -C build -j"$(nproc)" >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; exit 1; }
$SUDO make -C build install >"$WORK/install.log" 2>&1 || { tail -30 "$WORK/install.log"; exit 1; }
cd /; rm -rf "$WORK"
log "installed: $(ls "$LIBDIR"/timescaledb-*.so | head -1)"
