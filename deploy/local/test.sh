#!/usr/bin/env bash
# Runs the whole test suite against a real PostgreSQL, found in this order:
#   1. EVENTPROC_TEST_PG (an Npgsql connection string to a server the tests may create databases on);
#   2. a Docker engine, through Testcontainers.PostgreSql;
#   3. otherwise a throwaway server started here from local binaries (installed with apt-get when missing).
# and a real SQS-compatible server: EVENTPROC_TEST_SQS (its endpoint URL) or a throwaway fauxqs on 127.0.0.1 started
# here with deploy/local/sqs.sh (Node.js; npm packages installed on first use).
# Extra arguments go to 'dotnet test' (for example --filter "FullyQualifiedName~Webhook").
set -euo pipefail
cd "$(dirname "$0")/../.."

# Whatever this script starts, it stops on exit, the second server included when the first fails to stop.
pgdir=""
sqsdir=""
cleanup() {
  if [ -n "$sqsdir" ]; then deploy/local/sqs.sh stop "$sqsdir" || true; rm -rf "$sqsdir"; fi
  if [ -n "$pgdir" ]; then deploy/local/pg.sh stop "$pgdir" || true; rm -rf "$pgdir"; fi
}
trap cleanup EXIT

if [ -z "${EVENTPROC_TEST_PG:-}" ] && ! docker info >/dev/null 2>&1; then
  pgdir=$(mktemp -d "${TMPDIR:-/tmp}/eventproc-pg.XXXXXX")
  port=$(deploy/local/free-port.sh)
  deploy/local/pg.sh start "$pgdir" "$port"
  export EVENTPROC_TEST_PG="Host=127.0.0.1;Port=$port;Username=postgres;Database=postgres"
  export EVENTPROC_TEST_PGDATA="$pgdir"
  echo "test.sh: PostgreSQL from local binaries on 127.0.0.1:$port" >&2
fi

if [ -z "${EVENTPROC_TEST_SQS:-}" ]; then
  sqsdir=$(mktemp -d "${TMPDIR:-/tmp}/eventproc-sqs.XXXXXX")
  EVENTPROC_TEST_SQS=$(deploy/local/sqs.sh start "$sqsdir")
  export EVENTPROC_TEST_SQS
  echo "test.sh: SQS (fauxqs) on $EVENTPROC_TEST_SQS" >&2
fi

rm -rf TestResults
dotnet test EventProcessor.sln -c Release --logger "trx;LogFileName=results.trx" --results-directory TestResults "$@"
