#!/usr/bin/env bash
# A throwaway SQS-compatible server (fauxqs, in memory) on 127.0.0.1, for the tests and local runs.
#   sqs.sh start DIR [PORT]   start deploy/local/sqs/server.mjs on 127.0.0.1:PORT (default: a free port), installing its
#                             npm packages first when missing; writes DIR/sqs.pid and DIR/sqs.url, logs to DIR/sqs.log,
#                             and prints the URL once the server accepts requests
#   sqs.sh stop DIR           stop the server started in DIR (that PID only)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
app="$here/sqs"

# True while PID runs (a zombie, exited but not yet reaped by its new parent, does not count).
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

start() {
  local dir=$1 port=${2:-0} pid url="" waited=0
  if ! command -v node >/dev/null 2>&1; then
    echo "sqs.sh: node not found: the SQS server needs Node.js 20 or newer (apt-get install -y nodejs npm), or set EVENTPROC_TEST_SQS to a running SQS-compatible endpoint." >&2
    return 1
  fi
  if [ ! -d "$app/node_modules" ]; then
    if ! command -v npm >/dev/null 2>&1; then
      echo "sqs.sh: npm not found: it installs the SQS server's packages (apt-get install -y npm)." >&2
      return 1
    fi
    echo "sqs.sh: installing the SQS server's npm packages in $app..." >&2
    (cd "$app" && npm ci --no-audit --no-fund --loglevel=error) >&2
  fi
  mkdir -p "$dir"
  if [ -f "$dir/sqs.pid" ] && alive "$(cat "$dir/sqs.pid")"; then
    echo "sqs.sh: a server started in $dir is still running (pid $(cat "$dir/sqs.pid")): stop it first." >&2
    return 1
  fi
  rm -f "$dir/sqs.url"
  # The log exists before the server starts: the background shell creates it only when it gets to run, and the wait
  # below reads it at once.
  : >"$dir/sqs.log"
  # Its own log, stdin closed: the server outlives this script and must hold none of its caller's pipes.
  node "$app/server.mjs" "$port" </dev/null >"$dir/sqs.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/sqs.pid"
  # server.mjs prints its URL once it accepts requests.
  while [ -z "$url" ]; do
    url=$(sed -n 's/^fauxqs listening on //p' "$dir/sqs.log")
    if [ -n "$url" ]; then break; fi
    if ! alive "$pid"; then
      echo "sqs.sh: the SQS server exited before it was ready; its log ($dir/sqs.log):" >&2
      cat "$dir/sqs.log" >&2
      rm -f "$dir/sqs.pid"
      return 1
    fi
    if [ "$waited" -ge 600 ]; then
      echo "sqs.sh: the SQS server was not ready after 60 s; stopping it. Its log ($dir/sqs.log):" >&2
      cat "$dir/sqs.log" >&2
      stop "$dir"
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "$url" >"$dir/sqs.url"
  echo "$url"
}

stop() {
  local dir=$1 pid waited=0
  [ -f "$dir/sqs.pid" ] || return 0
  pid=$(cat "$dir/sqs.pid")
  # Only the process this script started: a PID reused by anything else is left alone.
  if alive "$pid" && grep -qa "sqs/server.mjs" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid" && [ "$waited" -lt 100 ]; do
      sleep 0.1
      waited=$((waited + 1))
    done
    if alive "$pid"; then
      echo "sqs.sh: the SQS server (pid $pid) ignored SIGTERM for 10 s; killing it." >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$dir/sqs.pid" "$dir/sqs.url"
}

case "${1:-}" in
  start) start "$2" "${3:-0}" ;;
  stop) stop "$2" ;;
  *) echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 64 ;;
esac
