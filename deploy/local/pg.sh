#!/usr/bin/env bash
# A throwaway or local PostgreSQL from the machine's own binaries, for machines without Docker.
#   pg.sh start DIR PORT   initialise DIR if empty, start a server on 127.0.0.1:PORT (user postgres, trust auth)
#   pg.sh stop DIR         stop the server started in DIR
#   pg.sh bindir           print the directory holding initdb/pg_ctl, installing PostgreSQL with apt if missing
set -euo pipefail

bindir() {
  local dir
  for dir in "$(pg_config --bindir 2>/dev/null || true)" /usr/lib/postgresql/*/bin; do
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
      echo "$dir"
      return 0
    fi
  done
  if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL server binaries not found: run 'sudo apt-get install -y postgresql' (or set EVENTPROC_TEST_PG / DATABASE_URL)." >&2
    return 1
  fi
  echo "PostgreSQL server binaries not found: installing with apt-get..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2
  ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1
}

# The server refuses to run as root: as root, run it as the postgres OS user.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

start() {
  local dir=$1 port=$2 bin
  bin=$(bindir)
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    chown postgres "$dir"
    chmod 700 "$dir"
  fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  # fsync and friends off: this server holds test or development data only.
  as_owner "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start -o \
    "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB" >/dev/null
}

stop() {
  local dir=$1 bin
  bin=$(bindir)
  if [ -f "$dir/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
  fi
}

case "${1:-}" in
  start) start "$2" "$3" ;;
  stop) stop "$2" ;;
  bindir) bindir ;;
  *) echo "usage: $0 start DIR PORT | stop DIR | bindir" >&2; exit 64 ;;
esac
