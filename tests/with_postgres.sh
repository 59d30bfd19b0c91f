#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server for the store tests, when the machine
# has PostgreSQL's server binaries (Debian's `postgresql` package; .ci/run installs it).
# BOT_TEST_POSTGRES_URL already set: that server is used. No binaries: the command runs
# without one and the PostgreSQL tests are skipped (in CI they fail instead).
set -euo pipefail

if [ -n "${BOT_TEST_POSTGRES_URL:-}" ]; then exec "$@"; fi
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  echo "tests: no PostgreSQL server binaries found; PostgreSQL store tests will be skipped" >&2
  exec "$@"
fi

pg_data=$(mktemp -d "${TMPDIR:-/tmp}/bot-test-postgres.XXXXXX")
pg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_owner=()
if [ "$(id -u)" = 0 ]; then  # initdb refuses to run as root
  chown postgres:postgres "$pg_data"
  as_owner=(runuser -u postgres --)
fi
"${as_owner[@]}" "$pg_bin/initdb" -D "$pg_data" -A trust -U postgres >/dev/null
"${as_owner[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -l "$pg_data/server.log" -w \
  -o "-p $pg_port -k $pg_data -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
cleanup() {
  "${as_owner[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$pg_data"
}
trap cleanup EXIT
export BOT_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$pg_port/postgres"
export PATH="$pg_bin:$PATH"  # pg_dump of the same version, for the at-rest scan
"$@"
