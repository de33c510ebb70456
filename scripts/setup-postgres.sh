#!/usr/bin/env bash
# A local PostgreSQL for the job store's tests, and only what is missing (fast when it runs):
#   1. Debian's `postgresql` package, when no server binaries are installed (root only);
#   2. a private cluster in $OFFLOAD_PG_DIR (default /var/tmp/offload-pg-UID), listening on a
#      unix socket in that 0700 folder and on no TCP port, so only its owner (and root) reach
#      it; trust authentication inside. fsync is off: a test server, rebuilt if ever damaged;
#   3. the server started with pg_ctl directly (CI has no systemd), as `postgres` when run as
#      root (PostgreSQL refuses to run as root), as the caller otherwise;
#   4. the role and database `offload_test` (the role may create the per-session databases).
# Writes .cache/postgres-setup.env: OFFLOAD_PG_URL, or OFFLOAD_PG_UNAVAILABLE with the reason
# the tests then skip with (not root and no server binaries). As root any failure is an error.
# Usage: bash scripts/setup-postgres.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=.cache
STATUS=$CACHE/postgres-setup.env
BASE=${OFFLOAD_PG_DIR:-/var/tmp/offload-pg-$(id -u)}
PGDATA=$BASE/data
PORT=5432   # names the socket file only; there is no TCP listener
ROLE=offload_test

mkdir -p "$CACHE"
[ -f "$CACHE/.gitignore" ] || echo '*' > "$CACHE/.gitignore"

fail() { echo "setup-postgres: $1" >&2; [ -z "${2:-}" ] || tail -5 "$2" >&2; exit 1; }
server_bin() {   # the newest installed server's bin/, or nothing
  { find /usr/lib/postgresql -path '*/bin/initdb' 2>/dev/null || true; } | sort -V | tail -1 |
    xargs -r dirname
}
as_server() { if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }
sql() { "$BIN/psql" -h "$BASE" -p "$PORT" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }
ready() { sql -U "$ROLE" -d "$ROLE" -c 'SELECT 1' >/dev/null 2>&1; }
report() {
  printf 'OFFLOAD_PG_URL=%q\n' "postgresql+psycopg://$ROLE@/$ROLE?host=$BASE&port=$PORT" > "$STATUS"
  version=$("$BIN/postgres" -V | awk '{print $3}')
  echo "setup-postgres: PostgreSQL $version ready on $BASE (unix socket only)" >&2
  exit 0
}

BIN=$(server_bin)
if [ -n "$BIN" ] && ready; then report; fi

if [ -z "$BIN" ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    why="no PostgreSQL server installed; run scripts/setup-postgres.sh as root on Debian 12"
    printf 'OFFLOAD_PG_UNAVAILABLE=%q\n' "$why" > "$STATUS"
    echo "setup-postgres: $why (PostgreSQL tests will skip)" >&2
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  log=$CACHE/postgres-apt.log
  apt_install() { apt-get install -y -qq --no-install-recommends postgresql >"$log" 2>&1; }
  apt_install || { apt-get update -qq && apt_install; } ||
    fail "apt-get install postgresql failed:" "$log"
  BIN=$(server_bin)
  [ -n "$BIN" ] || fail "postgresql is installed, but there is no initdb under /usr/lib/postgresql"
fi

owner=$(id -un)
[ "$(id -u)" -ne 0 ] || owner=postgres
mkdir -p "$BASE"
chown "$owner" "$BASE"
chmod 0700 "$BASE"
if [ ! -f "$PGDATA/PG_VERSION" ]; then
  # Made aside and renamed, so that an interrupted initdb never leaves a half cluster behind.
  rm -rf "$PGDATA.new"
  as_server "$BIN/initdb" -D "$PGDATA.new" -U postgres -A trust -E UTF8 --no-locale --no-sync \
    >/dev/null
  cat >> "$PGDATA.new/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$BASE'
port = $PORT
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
  mv "$PGDATA.new" "$PGDATA"
fi
if ! as_server "$BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
  as_server "$BIN/pg_ctl" -D "$PGDATA" -l "$BASE/server.log" -w -t 60 -s start ||
    fail "the server did not start; from $BASE/server.log:" "$BASE/server.log"
fi

[ "$(sql -U postgres -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" = 1 ] ||
  sql -U postgres -d postgres -c "CREATE ROLE $ROLE LOGIN CREATEDB"
[ "$(sql -U postgres -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$ROLE'")" = 1 ] ||
  sql -U postgres -d postgres -c "CREATE DATABASE $ROLE OWNER $ROLE"
ready || fail "$ROLE cannot connect to $BASE"
report
