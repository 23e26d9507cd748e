#!/usr/bin/env bash
# The hot-path cost of shared limits: `GET /api/v2/auth/me` with an API key and with an access
# token, with limits off, counted per node (in memory), and shared in Redis. Rate limits are on in
# the last two but scaled out of the way (no request is refused), so each request runs the limiter.
#
#   bash bench/shared_limits.sh      (after `cargo build --release -p moltflow`)
#
# Knobs: BENCH_SECONDS (10), BENCH_CONNECTIONS (64), BENCH_THREADS (2), BENCH_WARMUP (2),
# BENCH_REDIS_URL (redis://127.0.0.1:6379), BENCH_BINARY (default: the release build under
# CARGO_TARGET_DIR or target/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${BENCH_BINARY:-${CARGO_TARGET_DIR:-target}/release/moltflow}
[ -x "$BIN" ] || { echo "no release binary at $BIN: cargo build --release -p moltflow" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }
SECS=${BENCH_SECONDS:-10} CONNS=${BENCH_CONNECTIONS:-64} THREADS=${BENCH_THREADS:-2} WARMUP=${BENCH_WARMUP:-2}
REDIS=${BENCH_REDIS_URL:-redis://127.0.0.1:6379}
TMP=$(mktemp -d -t moltflow-shared-bench.XXXXXX)
PID=''
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; rm -rf "$TMP"; true; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# wrk on one URL with one header: "req/s p50 p99".
measure() {
  local url=$1 header=$2
  [ "$WARMUP" -gt 0 ] && wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -H "$header" "$url" >/dev/null
  wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" --latency -H "$header" "$url" > "$TMP/wrk.txt"
  if grep -q "Non-2xx" "$TMP/wrk.txt"; then echo "non-2xx answers:" >&2; cat "$TMP/wrk.txt" >&2; exit 1; fi
  awk '/Requests\/sec/ {rps=$2} $1=="50%" {p50=$2} $1=="99%" {p99=$2} END {printf "%.0f %s %s", rps, p50, p99}' "$TMP/wrk.txt"
}

# One server per mode, fresh SQLite database; prints one Markdown row per credential.
mode() {
  local name=$1; shift
  local port dir; port=$(free_port); dir="$TMP/$name"; mkdir -p "$dir"
  env "$@" MOLTFLOW_BIND="127.0.0.1:$port" MOLTFLOW_DATABASE_URL="sqlite://$dir/m.db" MOLTFLOW_LOG=warn \
    MOLTFLOW_MAIL_DIR="$dir/mail" "$BIN" serve > "$dir/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  local api="http://127.0.0.1:$port/api/v2" access key
  access=$(curl -sf "$api/auth/register" -H 'Content-Type: application/json' \
    -d '{"email":"bench@example.com","password":"sunny-tulip-harbor-42","full_name":"Bench"}' | json access_token)
  key=$(curl -sf "$api/api-keys" -H "Authorization: Bearer $access" -H 'Content-Type: application/json' \
    -d '{"name":"bench","scopes":["account:read"]}' | json raw_key)
  local k j
  k=$(measure "$api/auth/me" "X-API-Key: $key")
  j=$(measure "$api/auth/me" "Authorization: Bearer $access")
  local up fallbacks
  up=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '$1=="moltflow_redis_up" {print $2}')
  fallbacks=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '$1=="moltflow_redis_fallbacks_total" {print $2}')
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=''
  read -r krps kp50 kp99 <<< "$k"; read -r jrps jp50 jp99 <<< "$j"
  echo "| $name | API key | $krps | $kp50 | $kp99 | ${up:--} / ${fallbacks:--} |"
  echo "| $name | access token | $jrps | $jp50 | $jp99 | ${up:--} / ${fallbacks:--} |"
}

echo "$(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD), ${SECS}s x ${CONNS} connections, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| limits | credential | req/s | p50 | p99 | redis_up / fallbacks |"
echo "|---|---|---|---|---|---|"
mode off MOLTFLOW_RATE_LIMIT_SCALE=0
mode per-node MOLTFLOW_RATE_LIMIT_SCALE=100000
mode redis MOLTFLOW_RATE_LIMIT_SCALE=100000 MOLTFLOW_REDIS_URL="$REDIS" MOLTFLOW_REDIS_KEY_PREFIX="moltflow-bench:$$:"
