#!/usr/bin/env bash
# Installs PostgreSQL (if missing) and TimescaleDB from Debian's own packages, for CI and for developers
# who want a native server. Idempotent: does nothing when timescaledb.so is already installed.
#   Debian 13+: the binary package postgresql-NN-timescaledb.
#   Debian 12:  no binary package, so Debian's source package (from trixie, via a deb-src-only list so
#               no trixie binary can ever be installed, which would upgrade libc6) is built against the
#               installed PostgreSQL. That build is the Apache-only edition, like the binary package.
# Needs root (or sudo). Prints what it does; exits non-zero with a reason when it cannot.
set -euo pipefail

log() { printf '[install-timescaledb] %s\n' "$*"; }
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
