#!/usr/bin/env bash
# MoltFlow Admin benchmark harness: release build, one server on loopback, wrk.
#
#   bash bench/run.sh
#
# Knobs (environment):
#   BENCH_SECONDS            duration of each wrk run            (10)
#   BENCH_CONNECTIONS        connections for the cheap GETs      (64)
#   BENCH_THREADS            wrk threads                         (2)
#   BENCH_LOGIN_CONNECTIONS  connections for POST /auth/login    (16; Argon2id is CPU bound)
#   BENCH_FLOOD_CONNECTIONS  connections for /auth/me during the login flood (16)
#   BENCH_HASH_SECONDS       duration of `moltflow hash-bench`   (5)
#   BENCH_DASH_CONNECTIONS   connections for the dashboard pages (4)
#   BENCH_WARMUP             seconds of unrecorded warm-up       (2; 0 skips it)
#   BENCH_ROUNDS             rounds of the compared GETs (/healthz, /auth/me bearer and key, the
#                            bare server), taken in turn; each reports its median round  (3)
#   BENCH_PORT               first port tried on 127.0.0.1       (18099; next free one is used)
#   BENCH_OUT                append the Markdown summary to this file
#   BENCH_SKIP_BUILD=1       reuse the existing release binary
#   BENCH_KEEP_TMP=1         keep the temp dir (server log, raw wrk output)
#   BENCH_STRICT=1           exit 3 when a target FAILs (default: report only)
#   CARGO_TARGET_DIR         honoured for the build and for finding the binary
#
# Any MOLTFLOW_* variable already in the environment (e.g. MOLTFLOW_ARGON2_MEMORY_KIB) reaches the
# server and hash-bench too; the ones below are set by this script.
set -euo pipefail

# Resolve BENCH_OUT before changing directory, so a relative path means the caller's cwd.
OUT=${BENCH_OUT:+$(realpath -m -- "$BENCH_OUT")}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

SECONDS_EACH=${BENCH_SECONDS:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
LOGIN_CONNECTIONS=${BENCH_LOGIN_CONNECTIONS:-16}
FLOOD_CONNECTIONS=${BENCH_FLOOD_CONNECTIONS:-16}
HASH_SECONDS=${BENCH_HASH_SECONDS:-5}
WARMUP=${BENCH_WARMUP:-2}
ROUNDS=${BENCH_ROUNDS:-3}
DASH_CONNECTIONS=${BENCH_DASH_CONNECTIONS:-4}
REQUEST_LUA=$ROOT/bench/request.lua

EMAIL=bench@example.com
PASSWORD=sunny-tulip-harbor-42
LOGIN_BODY="{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}"
REGISTER_BODY="{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\",\"full_name\":\"Bench User\"}"

# Filled in as the run goes.
TMP=$(mktemp -d -t moltflow-bench.XXXXXX)
SERVER_PID='' SERVER_RC='' BG_PID='' BASE='' TOKEN='' API_KEY='' BIN='' LOAD_BEFORE=''
BARE_BIN='' BARE_PID=''
READY_MS='' IDLE_RSS_MB='' LOADED_RSS_MB='' PEAK_RSS_MB='' ARGON_RATE='' ARGON_THREADS=''
declare -a SERVER_ENV=()
declare -a ORDER=()
declare -A DESC=() CONNS_USED=() RPS=() P50=() P99=() ERRS=()

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
now_ms() { date +%s%3N; }

# --- setup ----------------------------------------------------------------------------------------

ensure_tools() {
  command -v curl >/dev/null || die "curl is required"
  command -v python3 >/dev/null || die "python3 is required"
  command -v wrk >/dev/null && return
  log "installing wrk"
  # Only refresh the package index when the plain install fails (stale or empty index).
  apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  command -v wrk >/dev/null || die "wrk could not be installed"
}

build() {
  if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then
    log "cargo build --release -p moltflow (CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target})"
    cargo build --release -p moltflow
    cargo build --release -p moltflow-server --example bare_key_server
  fi
  BIN=$(realpath -m -- "${CARGO_TARGET_DIR:-target}/release/moltflow")
  BARE_BIN=$(realpath -m -- "${CARGO_TARGET_DIR:-target}/release/examples/bare_key_server")
  [[ -x $BIN ]] || die "no binary at $BIN"
  [[ -x $BARE_BIN ]] || die "no binary at $BARE_BIN (cargo build --release -p moltflow-server --example bare_key_server)"
}

# First port from BENCH_PORT up that nothing answers on (a refused connect means free).
pick_port() { pick_port_after $((${BENCH_PORT:-18099} - 1)); }

pick_port_after() { # port -> first free port above it
  local first=$(($1 + 1)) p
  for ((p = first; p < first + 50; p++)); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  die "no free port in $first..$((first + 49))"
}

# --- server lifecycle -----------------------------------------------------------------------------

# Running, i.e. neither gone nor an unreaped zombie (kill -0 succeeds on zombies).
alive() { [[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

vm_mb() { # pid field (VmRSS|VmHWM) -> decimal MB
  awk -v f="$2:" '$1 == f { printf "%.1f", $2 * 1024 / 1e6 }' "/proc/$1/status"
}

start_server() {
  local port
  port=$(pick_port)
  BASE=http://127.0.0.1:$port
  mkdir -p "$TMP/mail"
  SERVER_ENV=(
    "MOLTFLOW_BIND=127.0.0.1:$port"
    "MOLTFLOW_DATABASE_URL=sqlite://$TMP/bench.db"
    MOLTFLOW_LOG=warn
    # Limits off: we measure the service, not the limiter. Written 0.0 rather than 0 because the
    # config loader (as of dc33e32) silently drops integer-looking MOLTFLOW_* values; 0.0 means
    # the same and also works once that is fixed. The login check below fails loudly on a 429.
    MOLTFLOW_RATE_LIMIT_SCALE=0.0
    "MOLTFLOW_MAIL_DIR=$TMP/mail"
  )
  log "starting moltflow serve on $BASE (workdir $TMP)"
  local t0
  t0=$(now_ms)
  # cd into the temp dir so no moltflow.toml from the repo is picked up; exec keeps the pid.
  (cd "$TMP" && exec env "${SERVER_ENV[@]}" "$BIN" serve) >"$TMP/server.log" 2>&1 &
  SERVER_PID=$!
  # Time to ready = spawn → first 200 from /healthz (includes migrating a fresh database).
  until curl -fs -o /dev/null --max-time 1 "$BASE/healthz"; do
    alive "$SERVER_PID" || die "server exited during start-up (its log follows)"
    (($(now_ms) - t0 < 30000)) || die "server not ready after 30 s"
    sleep 0.01
  done
  READY_MS=$(($(now_ms) - t0))
  IDLE_RSS_MB=$(vm_mb "$SERVER_PID" VmRSS)
  log "ready in ${READY_MS} ms, idle RSS ${IDLE_RSS_MB} MB (pid $SERVER_PID)"
}

# SIGTERM, give the drain up to 20 s, then SIGKILL; records the exit code in SERVER_RC.
stop_server() {
  local pid=$SERVER_PID i how="after SIGTERM"
  [[ -n $pid ]] || return 0
  SERVER_PID=''
  if alive "$pid"; then
    LOADED_RSS_MB=$(vm_mb "$pid" VmRSS) PEAK_RSS_MB=$(vm_mb "$pid" VmHWM)
    kill -TERM "$pid" 2>/dev/null || true
  else
    how="(it had already exited)"
  fi
  for ((i = 0; i < 200; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    log "server still running 20 s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    how="after SIGKILL"
  fi
  SERVER_RC=0
  wait "$pid" || SERVER_RC=$?
  log "server exit code $how: $SERVER_RC"
}

# shellcheck disable=SC2317 # only reached through the trap
cleanup() {
  local rc=$?
  if [[ -n $BG_PID ]]; then kill "$BG_PID" 2>/dev/null || true; fi
  if [[ -n $BARE_PID ]]; then kill "$BARE_PID" 2>/dev/null || true; fi
  stop_server || true
  if ((rc != 0)) && [[ -s $TMP/server.log ]]; then
    echo "--- last lines of the server log ($TMP/server.log) ---" >&2
    tail -n 30 "$TMP/server.log" >&2
  fi
  if [[ ${BENCH_KEEP_TMP:-0} == 1 ]] || ((rc != 0)); then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- fixtures -------------------------------------------------------------------------------------

register_user() {
  local code
  code=$(curl -sS -o "$TMP/register.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-raw "$REGISTER_BODY" "$BASE/api/v2/auth/register")
  [[ $code == 201 ]] || die "register answered $code: $(head -c 300 "$TMP/register.json")"
  TOKEN=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["access_token"])' "$TMP/register.json")
  [[ -n $TOKEN ]] || die "register gave no access_token"
  log "registered $EMAIL"
}

# A dashboard session cookie for the bench user, signed in through the sign-in form as a browser
# does (the pre-session CSRF cookie and token, the Origin header).
DASH_COOKIE=''
dashboard_sign_in() {
  local jar=$TMP/dash.jar csrf code
  csrf=$(curl -sS -c "$jar" "$BASE/sign-in" | grep -o 'name="csrf" value="[0-9a-f]*"' | head -1 | sed 's/.*value="//; s/"//')
  [[ -n $csrf ]] || die "the sign-in page has no CSRF token"
  code=$(curl -sS -b "$jar" -c "$jar" -o /dev/null -w '%{http_code}' -H "Origin: $BASE" \
    --data-urlencode "csrf=$csrf" --data-urlencode "email=$EMAIL" --data-urlencode "password=$PASSWORD" "$BASE/sign-in")
  [[ $code == 303 ]] || die "dashboard sign-in answered $code"
  DASH_COOKIE="Cookie: mf_session=$(awk '$6 == "mf_session" { print $7 }' "$jar")"
  log "signed in to the dashboard"
}

# Raw Argon2id verify rate with the same configuration (and so the same hash parameters and
# thread count) as the server; called while the server is idle.
hash_bench() {
  local out
  log "moltflow hash-bench --seconds $HASH_SECONDS"
  out=$(cd "$TMP" && env "${SERVER_ENV[@]}" "$BIN" hash-bench --seconds "$HASH_SECONDS")
  echo "$out" >&2
  read -r ARGON_RATE ARGON_THREADS <<<"$(sed -n 's|^argon2id verify: \([0-9.]*\)/s with \([0-9]*\) thread.*|\1 \2|p' <<<"$out")"
  [[ -n $ARGON_RATE ]] || die "cannot parse hash-bench output: $out"
}

# --- scenarios ------------------------------------------------------------------------------------
#
#   [CONNS=n] [BODY=json] [EXPECT=status] scenario NAME METHOD PATH [HEADER] [LUA]
#
# One curl first checks the request answers EXPECT (default 200), so a broken scenario fails loudly
# instead of benchmarking error responses. A non-GET without LUA uses bench/request.lua with BODY.
# A scenario that needs a different body per request brings its own LUA (then BODY only feeds the
# check, and may be left empty to skip it).

precheck() { # method path header body expect
  local args=(-sS -o "$TMP/precheck.out" -w '%{http_code}' -X "$1") code
  [[ -n $3 ]] && args+=(-H "$3")
  [[ -n $4 ]] && args+=(-H 'Content-Type: application/json' --data-raw "$4")
  code=$(curl "${args[@]}" "$BASE$2")
  [[ $code == "$5" ]] || die "$1 $2 answered $code, expected $5: $(head -c 300 "$TMP/precheck.out")"
}

run_wrk() { # name method path header lua conns seconds body  (raw output to $TMP/wrk-NAME.txt)
  local name=$1 method=$2 path=$3 header=$4 lua=$5 conns=$6 secs=$7 body=$8
  local threads=$((THREADS < conns ? THREADS : conns))
  local args=(-t "$threads" -c "$conns" -d "${secs}s" --latency --timeout 5s)
  [[ -n $header ]] && args+=(-H "$header")
  [[ -n $lua ]] && args+=(-s "$lua")
  WRK_METHOD=$method WRK_BODY=$body wrk "${args[@]}" "$BASE$path" >"$TMP/wrk-$name.txt"
}

# Requests/sec, the 50% and 99% lines of "Latency Distribution" (us/ms/s/m → ms), and errors
# (non-2xx/3xx answers plus socket errors) from wrk's text output.
parse_wrk() { # name [unlisted]
  local name=$1 line rps p50 p99 errs
  line=$(awk '
    function ms(v,  n, u) { n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
      return u == "us" ? n / 1000 : u == "ms" ? n : u == "s" ? n * 1000 : u == "m" ? n * 60000 : -1 }
    /^Requests\/sec:/          { rps = $2 }
    /Latency Distribution/     { dist = 1; next }
    dist && $1 == "50%"        { p50 = ms($2) }
    dist && $1 == "99%"        { p99 = ms($2); dist = 0 }
    /Non-2xx or 3xx responses/ { errs += $NF }
    /Socket errors:/           { for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) errs += $i }
    END { if (rps == "") exit 1; printf "%.1f %.3f %.3f %d\n", rps, p50, p99, errs }
  ' "$TMP/wrk-$name.txt") || die "cannot parse wrk output for $name: $(cat "$TMP/wrk-$name.txt")"
  read -r rps p50 p99 errs <<<"$line"
  RPS[$name]=$rps P50[$name]=$p50 P99[$name]=$p99 ERRS[$name]=$errs
  [[ -n ${2:-} ]] || ORDER+=("$name")
  log "$(printf '%-24s %10s req/s   p50 %8s ms   p99 %8s ms   errors %s' "$name" "$rps" "$p50" "$p99" "$errs")"
}

# Shared by scenario and background_scenario: fills in defaults, checks, records the description.
_prepare() { # name method path header lua
  _conns=${CONNS:-$CONNECTIONS} _body=${BODY:-} _lua=$5
  [[ $2 != GET && -z $_lua ]] && _lua=$REQUEST_LUA
  if [[ $2 == GET || -n $_body ]]; then precheck "$2" "$3" "$4" "$_body" "${EXPECT:-200}"; fi
  DESC[$1]="$2 $3" CONNS_USED[$1]=$_conns
}

scenario() { # NAME METHOD PATH [HEADER] [LUA]
  _prepare "$1" "$2" "$3" "${4:-}" "${5:-}"
  log "scenario $1: $2 $3 (-c$_conns, ${SECONDS_EACH}s)"
  run_wrk "$1" "$2" "$3" "${4:-}" "$_lua" "$_conns" "$SECONDS_EACH" "$_body"
  parse_wrk "$1"
}

# Same, but wrk runs in the background for SECS seconds; collect it with finish_background NAME.
background_scenario() { # SECS NAME METHOD PATH [HEADER] [LUA]
  local secs=$1
  shift
  _prepare "$1" "$2" "$3" "${4:-}" "${5:-}"
  log "background $1: $2 $3 (-c$_conns, ${secs}s)"
  run_wrk "$1" "$2" "$3" "${4:-}" "$_lua" "$_conns" "$secs" "$_body" &
  BG_PID=$!
}

finish_background() { # NAME
  wait "$BG_PID" || die "background wrk for $1 failed"
  BG_PID=''
  parse_wrk "$1"
}

# An API key for the bench user, and 100,000 other keys in the database beside it (the contract:
# that many keys change nothing for a hot key, which is verified from memory).
create_api_key() {
  local code
  code=$(curl -sS -o "$TMP/key.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $TOKEN" --data-raw '{"name":"bench","scopes":["account:read"]}' \
    "$BASE/api/v2/api-keys")
  [[ $code == 201 ]] || die "create api key answered $code: $(head -c 300 "$TMP/key.json")"
  API_KEY=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["raw_key"])' "$TMP/key.json")
  python3 - "$TMP/bench.db" "$TMP/register.json" <<'PY'
import hashlib, json, sqlite3, sys, time, uuid
user = json.load(open(sys.argv[2]))["user"]
db = sqlite3.connect(sys.argv[1], timeout=30)
now = int(time.time() * 1000)
rows = []
for i in range(100_000):
    raw = f"mf_seed{i:040d}"
    rows.append((str(uuid.uuid4()), user["tenant_id"], user["id"], f"seed-{i}", raw[:7],
                 hashlib.sha256(raw.encode()).hexdigest(), "messages:send", now))
db.executemany("INSERT INTO api_keys (id, tenant_id, created_by, name, key_prefix, key_hash, scopes, created_at)"
               " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
db.commit()
print(db.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0])
PY
  log "api key created; $(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT COUNT(*) FROM api_keys").fetchone()[0])' "$TMP/bench.db") keys in the database"
}

# The yardstick of the API-key path: a bare axum server answering the same body for the same key
# (crates/moltflow-server/examples/bare_key_server.rs), beside MoltFlow for the compared rounds.
BARE_BASE=''
start_bare_server() {
  local port
  curl -fsS -H "X-API-Key: $API_KEY" "$BASE/api/v2/auth/me" >"$TMP/me_key.json" || die "/auth/me with the key failed"
  port=$(pick_port_after "${BASE##*:}")
  "$BARE_BIN" "127.0.0.1:$port" "$API_KEY" "$TMP/me_key.json" >"$TMP/bare.log" 2>&1 &
  BARE_PID=$!
  BARE_BASE=http://127.0.0.1:$port
  until curl -fs -o /dev/null -H "X-API-Key: $API_KEY" "$BARE_BASE/api/v2/auth/me"; do
    alive "$BARE_PID" || die "bare_key_server exited: $(cat "$TMP/bare.log")"
    sleep 0.05
  done
}

stop_bare_server() {
  kill "$BARE_PID" 2>/dev/null || true
  wait "$BARE_PID" 2>/dev/null || true
  BARE_PID='' BARE_BASE=''
}

# One round of a compared scenario, recorded as NAME@ROUND (not listed in the table).
compared_round() { # round NAME METHOD PATH [HEADER]
  local round=$1
  shift
  _prepare "$1" "$2" "$3" "${4:-}" ''
  run_wrk "$1@$round" "$2" "$3" "${4:-}" '' "$_conns" "$SECONDS_EACH" ''
  parse_wrk "$1@$round" unlisted
}

# NAME's figures are those of its median round (by req/s); its errors are those of every round.
take_median_round() { # NAME
  local name=$1 round errs=0 median
  for round in $(seq "$ROUNDS"); do errs=$((errs + ${ERRS[$name@$round]})); done
  median=$(for round in $(seq "$ROUNDS"); do echo "${RPS[$name@$round]} $round"; done | sort -n | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2) { print $2 }')
  RPS[$name]=${RPS[$name@$median]} P50[$name]=${P50[$name@$median]} P99[$name]=${P99[$name@$median]} ERRS[$name]=$errs
  ORDER+=("$name")
  log "$(printf '%-24s %10s req/s (median of %s rounds: %s)' "$name" "${RPS[$name]}" "$ROUNDS" \
    "$(for round in $(seq "$ROUNDS"); do printf '%s ' "${RPS[$name@$round]}"; done)")"
}

# The scenarios the ratios compare, taken in turn, round after round: this machine's throughput
# drifts ±10-20 % over a minute, and a ratio of two runs minutes apart measured the drift as much
# as the servers.
compared_scenarios() {
  local bearer="Authorization: Bearer $TOKEN" key="X-API-Key: $API_KEY" round main_base=$BASE
  start_bare_server
  log "compared scenarios: $ROUNDS rounds of healthz, me, me_api_key, bare_key_server (-c$CONNECTIONS, ${SECONDS_EACH}s each)"
  for round in $(seq "$ROUNDS"); do
    compared_round "$round" healthz GET /healthz
    compared_round "$round" me GET /api/v2/auth/me "$bearer"
    compared_round "$round" me_api_key GET /api/v2/auth/me "$key"
    BASE=$BARE_BASE
    compared_round "$round" bare_key_server GET /api/v2/auth/me "$key"
    BASE=$main_base
  done
  stop_bare_server
  for name in healthz me me_api_key bare_key_server; do take_median_round "$name"; done
}

# Unrecorded short runs so the first measured scenario does not pay for cold caches and pools.
warmup() {
  ((WARMUP > 0)) || return 0
  log "warm-up (${WARMUP}s each, not recorded)"
  wrk -t "$THREADS" -c "$CONNECTIONS" -d "${WARMUP}s" "$BASE/healthz" >/dev/null
  wrk -t "$THREADS" -c "$CONNECTIONS" -d "${WARMUP}s" -H "Authorization: Bearer $TOKEN" \
    "$BASE/api/v2/auth/me" >/dev/null
}

run_scenarios() {
  local bearer="Authorization: Bearer $TOKEN"

  compared_scenarios
  # The raw rate is measured right before the login run (server idle, same moment's machine
  # load), so the login ÷ raw ratio compares like with like on a noisy machine.
  hash_bench
  CONNS=$LOGIN_CONNECTIONS BODY=$LOGIN_BODY scenario login POST /api/v2/auth/login

  # /auth/me must stay fast while Argon2id saturates the hashing pool: the flood starts 1 s
  # before and ends 1 s after the measured /auth/me run.
  CONNS=$LOGIN_CONNECTIONS BODY=$LOGIN_BODY \
    background_scenario $((SECONDS_EACH + 2)) login_flood POST /api/v2/auth/login
  sleep 1
  CONNS=$FLOOD_CONNECTIONS scenario me_during_login_flood GET /api/v2/auth/me "$bearer"
  finish_background login_flood

  # Dashboard pages, signed out and in: a page is one session lookup plus a render. Few
  # connections, so that p50 is the time to serve one page rather than time spent queueing.
  dashboard_sign_in
  CONNS=$DASH_CONNECTIONS scenario dash_sign_in GET /sign-in
  CONNS=$DASH_CONNECTIONS scenario dash_overview GET / "$DASH_COOKIE"
  CONNS=$DASH_CONNECTIONS scenario dash_profile GET /profile "$DASH_COOKIE"
  # The tenant pages (each reads a few use cases of the bench user's tenant).
  local page
  for page in keys usage members settings billing audit; do
    CONNS=$DASH_CONNECTIONS scenario "dash_$page" GET "/$page" "$DASH_COOKIE"
  done

  # ---- LATER SCENARIOS ------------------------------------------------------------------------
  # Add them here once the endpoints exist (API.md §5, §7); each is a fixture plus a line or two:
  #
  #   API_KEY=$(create_api_key '["account:read","usage:write"]')   # POST /api/v2/api-keys → mf_…
  #   scenario me_api_key GET /api/v2/auth/me "X-API-Key: $API_KEY"
  #
  #   # batches of events with unique ids need a per-request body: bench/usage_events.lua
  #   # (a request() function building {"events":[…]} with a counter in each id)
  #   CONNS=16 scenario usage_events POST /api/v2/usage/events "X-API-Key: $API_KEY" \
  #     "$ROOT/bench/usage_events.lua"
  #
  #   # EXPECT must match what a fresh free-plan tenant answers; a large quota avoids 429s
  #   BODY='{"metric":"messages","quantity":1}' \
  #     scenario usage_consume POST /api/v2/usage/consume "X-API-Key: $API_KEY"
  #
  # and, if they get targets, a `check` line in summary().
  # ----------------------------------------------------------------------------------------------
}

# --- summary --------------------------------------------------------------------------------------

FAILS=0
check() { # label value op(>=|<|==) target unit
  local verdict
  verdict=$(awk -v v="$2" -v op="$3" -v t="$4" 'BEGIN {
    ok = (op == ">=" && v + 0 >= t + 0) || (op == "<" && v + 0 < t + 0) || (op == "==" && v + 0 == t + 0)
    print (v != "" && ok) ? "PASS" : "FAIL" }')
  [[ $verdict == PASS ]] || FAILS=$((FAILS + 1))
  printf '| %s | %s%s | %s %s%s | **%s** |\n' "$1" "${2:-n/a}" "$5" "$(sed 's/>=/≥/; s/==/=/' <<<"$3")" "$4" "$5" "$verdict"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b }'; }

# shellcheck disable=SC2016 # the backticks are Markdown code spans
summary() {
  local name total_errs=0 commit cpu
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  [[ -z $(git status --porcelain --untracked-files=no 2>/dev/null) ]] || commit+="+dirty"
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  echo
  echo "### MoltFlow benchmark — $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit"
  echo
  echo "$(nproc) cores ($cpu), loopback, release build; ${SECONDS_EACH}s per run, wrk -t$THREADS;" \
    "load average before the run: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  # Other work on the box (a compile, a test run) skews every number, the ratios most of all.
  if awk -v l="${LOAD_BEFORE%% *}" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
    echo "**Warning: the machine was busy (1-min load ${LOAD_BEFORE%% *} on $(nproc) cores); treat these" \
      "numbers as noisy and re-run on a quiet machine before comparing.**"
    echo
  fi
  echo "| scenario | request | conns | req/s | p50 ms | p99 ms | errors |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  for name in "${ORDER[@]}"; do
    printf '| %s | `%s` | %s | %s | %s | %s | %s |\n' "$name" "${DESC[$name]}" "${CONNS_USED[$name]}" \
      "${RPS[$name]}" "${P50[$name]}" "${P99[$name]}" "${ERRS[$name]}"
    total_errs=$((total_errs + ERRS[$name]))
  done
  printf '| argon2id raw verify | `moltflow hash-bench --seconds %s` | %s thread(s) | %s | | | |\n' \
    "$HASH_SECONDS" "$ARGON_THREADS" "$ARGON_RATE"
  echo
  echo "| target | value | target | result |"
  echo "|---|---:|---:|:---:|"
  check '`/auth/me` ÷ `/healthz` throughput' "$(ratio "${RPS[me]}" "${RPS[healthz]}")" '>=' 0.70 ''
  check '`/auth/me` (API key, 100,000 keys stored) ÷ `/healthz`' "$(ratio "${RPS[me_api_key]}" "${RPS[healthz]}")" '>=' 0.70 ''
  check '`/auth/me` (API key) ÷ a bare axum server hashing the key into a map' "$(ratio "${RPS[me_api_key]}" "${RPS[bare_key_server]}")" '>=' 0.70 ''
  check '`/auth/me` (API key) ÷ `/auth/me` (bearer)' "$(ratio "${RPS[me_api_key]}" "${RPS[me]}")" '>=' 1.00 ''
  check '`/auth/me` (API key) p99' "${P99[me_api_key]}" '<' 5 ' ms'
  check 'login ÷ raw Argon2id verify rate' "$(ratio "${RPS[login]}" "$ARGON_RATE")" '>=' 0.80 ''
  check '`/auth/me` p99 during login flood' "${P99[me_during_login_flood]}" '<' 10 ' ms'
  check 'dashboard sign-in page p50' "${P50[dash_sign_in]}" '<' 5 ' ms'
  check 'dashboard overview p50 (signed in)' "${P50[dash_overview]}" '<' 5 ' ms'
  check 'dashboard profile p50 (signed in)' "${P50[dash_profile]}" '<' 5 ' ms'
  local page
  for page in keys usage members settings billing audit; do
    check "dashboard /$page p50 (signed in)" "${P50[dash_$page]}" '<' 5 ' ms'
  done
  check 'idle RSS after ready' "$IDLE_RSS_MB" '<' 50 ' MB'
  check 'time to ready' "$READY_MS" '<' 1000 ' ms'
  check 'non-2xx answers + socket errors' "$total_errs" '==' 0 ''
  check 'exit code after SIGTERM' "$SERVER_RC" '==' 0 ''
  echo
  echo "RSS before shutdown (after all scenarios): ${LOADED_RSS_MB:-n/a} MB; peak (VmHWM): ${PEAK_RSS_MB:-n/a} MB."
}

# --- main -----------------------------------------------------------------------------------------

ensure_tools
build
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
start_server
register_user
create_api_key
warmup
run_scenarios
stop_server

summary >"$TMP/summary.md"
cat "$TMP/summary.md"
if [[ -n $OUT ]]; then
  cat "$TMP/summary.md" >>"$OUT"
  log "summary appended to $OUT"
fi
if ((FAILS > 0)); then
  log "$FAILS target(s) FAILED"
  [[ ${BENCH_STRICT:-0} == 1 ]] && exit 3
fi
exit 0
