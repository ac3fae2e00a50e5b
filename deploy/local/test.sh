#!/usr/bin/env bash
# Runs the whole test suite against a real PostgreSQL, found in this order:
#   1. EVENTPROC_TEST_PG (an Npgsql connection string to a server the tests may create databases on);
#   2. a Docker engine, through Testcontainers.PostgreSql;
#   3. otherwise a throwaway server started here from local binaries (installed with apt-get when missing).
# Extra arguments go to 'dotnet test' (for example --filter "FullyQualifiedName~Webhook").
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${EVENTPROC_TEST_PG:-}" ] && ! docker info >/dev/null 2>&1; then
  pgdir=$(mktemp -d "${TMPDIR:-/tmp}/eventproc-pg.XXXXXX")
  port=$(deploy/local/free-port.sh)
  cleanup() { deploy/local/pg.sh stop "$pgdir" || true; rm -rf "$pgdir"; }
  trap cleanup EXIT
  deploy/local/pg.sh start "$pgdir" "$port"
  export EVENTPROC_TEST_PG="Host=127.0.0.1;Port=$port;Username=postgres;Database=postgres"
  export EVENTPROC_TEST_PGDATA="$pgdir"
  echo "test.sh: PostgreSQL from local binaries on 127.0.0.1:$port" >&2
fi

rm -rf TestResults
dotnet test EventProcessor.sln -c Release --logger "trx;LogFileName=results.trx" --results-directory TestResults "$@"
