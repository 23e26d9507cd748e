#!/usr/bin/env bash
# Soak: mixed load for N minutes against a release build; RSS and throughput sampled every 30 s.
#
#   bash bench/soak.sh                 # 10 minutes
#   SOAK_MINUTES=3 bash bench/soak.sh  # shorter
#
# Load: two wrk runs at once, each SOAK_CONNECTIONS (16) connections, authenticated by one API key
# (`X-API-Key`): GET /auth/me, and POST /usage/consume {messages, 1} on the unlimited `business`
# plan (so every consume is counted and written). Nobody scrapes /metrics: that is the case this
# guards (histogram samples used to pile up until a scrape).
#
# Every SOAK_INTERVAL (30) seconds the server's RSS and the requests answered in that window are
# recorded. The first SOAK_WARMUP (60) seconds are warm-up (caches, pools, allocator arenas); the
# sample at its end is the baseline. Holds when, after warm-up, RSS grows at most 10 % over the
# baseline and throughput never falls more than 20 % below it. The table is appended to SOAK_OUT
# (BENCHMARKS.md); exit 3 when it does not hold.
#
# Knobs: SOAK_MINUTES (10), SOAK_INTERVAL (30), SOAK_WARMUP (60), SOAK_CONNECTIONS (16),
# SOAK_OUT (BENCHMARKS.md), BENCH_SKIP_BUILD=1 (reuse the release binary), CARGO_TARGET_DIR.
set -euo pipefail
OUT=$(realpath -m -- "${SOAK_OUT:-BENCHMARKS.md}")
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
MINUTES=${SOAK_MINUTES:-10}
INTERVAL=${SOAK_INTERVAL:-30}
WARMUP=${SOAK_WARMUP:-60}
CONNECTIONS=${SOAK_CONNECTIONS:-16}
TOTAL=$((MINUTES * 60))

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'soak: error: %s\n' "$*" >&2; exit 1; }

command -v wrk >/dev/null || { log "installing wrk"; apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
command -v sqlite3 >/dev/null || die "sqlite3 is required (to put the tenant on an unlimited plan)"
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
  cargo build --release -p moltflow
fi
BIN=$(realpath -m -- "${CARGO_TARGET_DIR:-target}/release/moltflow")
[[ -x $BIN ]] || die "no binary at $BIN"

TMP=$(mktemp -d -t moltflow-soak.XXXXXX)
SERVER_PID='' ME_PID='' CONSUME_PID=''
cleanup() {
  for pid in $ME_PID $CONSUME_PID $SERVER_PID; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$port
# Limits off (0.0): the soak measures memory and throughput, not the limiter.
(cd "$TMP" && exec env MOLTFLOW_BIND="127.0.0.1:$port" MOLTFLOW_DATABASE_URL="sqlite://$TMP/soak.db" \
  MOLTFLOW_LOG=warn MOLTFLOW_RATE_LIMIT_SCALE=0.0 MOLTFLOW_MAIL_DIR="$TMP/mail" "$BIN" serve) >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do curl -fs -o /dev/null "$BASE/healthz" && break; sleep 0.1; done

pair=$(curl -fs -H 'Content-Type: application/json' "$BASE/auth/register" \
  -d '{"email":"soak@example.com","password":"sunny-tulip-harbor-42","full_name":"Soak"}')
token=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access_token"])' "$pair")
tenant=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["user"]["tenant_id"])' "$pair")
sqlite3 -cmd '.timeout 10000' "$TMP/soak.db" "UPDATE tenants SET plan_id = 'business' WHERE id = '$tenant'"
key=$(curl -fs -H 'Content-Type: application/json' -H "Authorization: Bearer $token" "$BASE/api-keys" \
  -d '{"name":"soak","scopes":["account:read","usage:write"]}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["raw_key"])')

cat >"$TMP/consume.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"metric":"messages","quantity":1}'
wrk.headers["Content-Type"] = "application/json"
LUA
# One pair of wrk runs per window, back to back; throughput is what wrk measured in the window.
# Nothing reads /metrics during the soak: that is the case being guarded.
rps_of() { awk '/^Requests\/sec:/ { printf "%d", $2 }' "$1"; }
rss_mb() { awk '$1 == "VmRSS:" { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status"; }

declare -a ROWS=()
base_rss=''; base_rps=''; max_growth=0; max_decay=0; holds=1
log "soak: ${MINUTES} min, ${CONNECTIONS}+${CONNECTIONS} connections, sample every ${INTERVAL} s, warm-up ${WARMUP} s"
for ((t = INTERVAL; t <= TOTAL; t += INTERVAL)); do
  wrk -t1 -c"$CONNECTIONS" -d"${INTERVAL}s" -H "X-API-Key: $key" "$BASE/api/v2/auth/me" >"$TMP/me.txt" 2>&1 &
  ME_PID=$!
  wrk -t1 -c"$CONNECTIONS" -d"${INTERVAL}s" -H "X-API-Key: $key" -s "$TMP/consume.lua" "$BASE/api/v2/usage/consume" >"$TMP/consume.txt" 2>&1 &
  CONSUME_PID=$!
  wait "$ME_PID" "$CONSUME_PID"; ME_PID=''; CONSUME_PID=''
  me=$(rps_of "$TMP/me.txt"); consume=$(rps_of "$TMP/consume.txt"); rss=$(rss_mb)
  rps=$((me + consume))
  note=''
  if (( t < WARMUP )); then
    note='warm-up'
  elif [[ -z $base_rss ]]; then
    base_rss=$rss; base_rps=$rps; note='baseline'
  else
    growth=$(python3 -c "print(round(($rss / $base_rss - 1) * 100, 1))")
    decay=$(python3 -c "print(round((1 - $rps / $base_rps) * 100, 1))")
    note="RSS $(python3 -c "print(f'{$growth:+.1f}')") %, throughput $(python3 -c "print(f'{-$decay:+.1f}')") %"
    python3 -c "import sys; sys.exit(0 if $growth <= 10 and $decay <= 20 else 1)" || holds=0
    max_growth=$(python3 -c "print(max($max_growth, $growth))"); max_decay=$(python3 -c "print(max($max_decay, $decay))")
  fi
  ROWS+=("| $t | $rss | $me | $consume | $note |")
  log "t=${t}s rss=${rss} MB /auth/me=${me}/s /usage/consume=${consume}/s $note"
done
bad=$(grep -h "Non-2xx" "$TMP/me.txt" "$TMP/consume.txt" || true)
[[ -z $bad ]] || log "non-2xx answers in the last window: $bad"

verdict=$([[ $holds == 1 ]] && echo HOLDS || echo FAILS)
{
  echo
  echo "### Soak $(date -u +%Y-%m-%dT%H:%MZ): ${MINUTES} min, /auth/me + /usage/consume, ${CONNECTIONS}+${CONNECTIONS} connections — $verdict"
  echo
  echo "Machine: $(nproc) CPU ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr); release build, SQLite, nobody scraping /metrics."
  echo "After warm-up: RSS grew at most ${max_growth} % over the baseline (limit 10 %), throughput fell at most ${max_decay} % (limit 20 %)."
  echo
  echo "| t (s) | RSS (MB) | /auth/me req/s | /usage/consume req/s | |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
} | tee -a "$OUT"
[[ $holds == 1 ]] || exit 3
