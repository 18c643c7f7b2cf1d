#!/usr/bin/env bash
# Quick figures for login and /me on this machine: builds release, starts authd on a loopback port,
# creates one user, runs bounded wrk loads, stops authd.
# Usage: load-tests/quick.sh                     embedded default (SQLite file + in-process state)
#        BACKEND=postgres load-tests/quick.sh    local PostgreSQL + Redis
#        (needs wrk: apt-get install wrk)
# Env:   PORT (default 18080), DURATION (default 15s), any AUTHD__... setting to try a variant,
#        e.g. AUTHD__HASHER__ARGON2_MEMORY_KIB=19456 AUTHD__HASHER__ARGON2_ITERATIONS=2 \
#             AUTHD__HASHER__ARGON2_PARALLELISM=1 load-tests/quick.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-18080}
DURATION=${DURATION:-15s}
BASE="http://127.0.0.1:$PORT"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet
export AUTHD_ENV=development AUTHD__SERVER__PORT=$PORT
WORK=$(mktemp -d)
if [ "${BACKEND:-embedded}" = postgres ]; then
  export AUTHD__DATABASE__URL=${AUTHD__DATABASE__URL:-postgres://postgres@127.0.0.1:5432/authd_bench}
  export AUTHD__CACHE__URL=${AUTHD__CACHE__URL:-redis://127.0.0.1:6379/0}
  export AUTHD__CACHE__KEY_PREFIX="authd:bench:$$:"
else
  export AUTHD__DATABASE__URL="sqlite://$WORK/authd.db"
fi
export AUTHD__RATE_LIMIT__ENABLED=false   # measuring the service, not the limiter
export RUST_LOG=${RUST_LOG:-warn,authd::app=info}   # per-request logs would measure the logger
./target/release/authd serve > /tmp/authd-quick.log 2>&1 &
PID=$!
cleanup() {
  kill $PID 2>/dev/null; wait $PID 2>/dev/null || true
  rm -rf "$WORK"
  if [ -n "${AUTHD__CACHE__KEY_PREFIX:-}" ]; then
    redis-cli --scan --pattern "${AUTHD__CACHE__KEY_PREFIX}*" | xargs -r redis-cli del >/dev/null
  fi
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fs "$BASE/health/live" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fs "$BASE/health/live" >/dev/null || { echo "authd did not start:" >&2; cat /tmp/authd-quick.log >&2; exit 1; }

export BENCH_EMAIL="bench-$$-$RANDOM@example.com" BENCH_PASSWORD="correct horse battery staple"
curl -fs -H 'Content-Type: application/json' \
  -d "{\"email\":\"$BENCH_EMAIL\",\"password\":\"$BENCH_PASSWORD\"}" "$BASE/auth/signup" >/dev/null
login_once() {
  curl -s -o /dev/null -w '%{time_total}\n' -H 'Content-Type: application/json' \
    -d "{\"email\":\"$BENCH_EMAIL\",\"password\":\"$BENCH_PASSWORD\"}" "$BASE/auth/login"
}
echo "== config"; grep -E "store:" /tmp/authd-quick.log | sed 's/.*store:/store:/'
./target/release/authd config check | grep -E '^(argon2|workers|queue_capacity)' | tr '\n' ' '; echo
echo "cores: $(nproc)"
echo "== one login at a time (20 sequential, seconds)"
for _ in $(seq 1 20); do login_once; done | sort -n | awk '{a[NR]=$1} END {printf "min %.3f  p50 %.3f  max %.3f\n", a[1], a[int(NR/2)+1], a[NR]}'
echo "== logins, 8 connections (within the pool's bound), $DURATION"
wrk -t2 -c8 -d"$DURATION" --latency -s load-tests/login.lua "$BASE/auth/login" | grep -E 'Requests/sec|^ +50%|^ +99%|statuses|Non-2xx'
echo "== logins, 64 connections (past the bound: expect fast 503s), $DURATION"
wrk -t2 -c64 -d"$DURATION" --latency -s load-tests/login.lua "$BASE/auth/login" | grep -E 'Requests/sec|^ +50%|^ +99%|statuses|Non-2xx'
# The flood's queued jobs drain within a second or two; retry until the pool admits us.
for _ in $(seq 1 50); do
  BODY=$(curl -fs -H 'Content-Type: application/json' \
    -d "{\"email\":\"$BENCH_EMAIL\",\"password\":\"$BENCH_PASSWORD\"}" "$BASE/auth/login") && break
  sleep 0.2
done
BENCH_ACCESS=$(printf '%s' "$BODY" | python3 -c 'import sys, json; print(json.load(sys.stdin)["accessToken"])')
export BENCH_ACCESS
echo "== GET /me, 32 connections, $DURATION"
wrk -t2 -c32 -d"$DURATION" --latency -s load-tests/me.lua "$BASE/me" | grep -E 'Requests/sec|^ +50%|^ +99%|Non-2xx'
echo "== GET /health/live, 32 connections, $DURATION"
wrk -t2 -c32 -d"$DURATION" --latency "$BASE/health/live" | grep -E 'Requests/sec|^ +50%|^ +99%|Non-2xx'
