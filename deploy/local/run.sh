#!/usr/bin/env bash
# Runs the service. Without DATABASE_URL or ConnectionStrings__Events, it first starts a local PostgreSQL from the
# machine's binaries (installed with apt-get when missing), kept in $EVENTPROC_PGDATA between runs.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${DATABASE_URL:-}" ] && [ -z "${ConnectionStrings__Events:-}" ]; then
  pgdata=${EVENTPROC_PGDATA:-${XDG_DATA_HOME:-$HOME/.local/share}/event-processor/pg}
  pgport=${EVENTPROC_PGPORT:-5433}
  if [ "$(id -u)" -eq 0 ]; then mkdir -p "$(dirname "$pgdata")" && chmod 755 "$(dirname "$pgdata")"; fi
  if ! pg_isready -q -h 127.0.0.1 -p "$pgport" 2>/dev/null; then
    deploy/local/pg.sh start "$pgdata" "$pgport"
    echo "run.sh: started PostgreSQL in $pgdata on 127.0.0.1:$pgport (stop it with: deploy/local/pg.sh stop $pgdata)" >&2
  fi
  psql -h 127.0.0.1 -p "$pgport" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'eventproc'" | grep -q 1 \
    || psql -h 127.0.0.1 -p "$pgport" -U postgres -qc "CREATE DATABASE eventproc"
  export DATABASE_URL="postgres://postgres@127.0.0.1:$pgport/eventproc"
fi

export ASPNETCORE_ENVIRONMENT=${ASPNETCORE_ENVIRONMENT:-Development}
exec dotnet run --project src/EventProcessor.Host -c Release -- "$@"
