#!/usr/bin/env bash
# The load tests end to end: builds release, measures one argon2id hash on this machine, and for
# each backend starts authd on a loopback port with a fresh store, seeds accounts through
# `authd users import`, runs the goose phases, stops authd and cleans up; then prints one table.
#
# Usage: load-tests/run.sh                      embedded default, the embedded default with the hasher
#                                               threads at nice 0 (not lowered), then PostgreSQL + Redis
#        BACKENDS=embedded load-tests/run.sh    one backend only
# Env:   PORT (18080), SECONDS_PER_PHASE (6; login phases 1.5 x), PHASES (all), PG_PHASES (the
#        phases run on PostgreSQL + Redis), SEEDED (accounts, 400), OUT_DIR (where the JSON and the
#        table are kept; default $CARGO_TARGET_DIR/load-results/<time>), NO_BUILD=1 (use the
#        binaries already built), KEEP_DEBUG=1 (build with the repository's release profile),
#        LOAD_ARGS (more options for `authd-load run`, e.g. "--flood-factor 4"), and
#        any AUTHD__... setting to try a variant, e.g.
#        AUTHD__HASHER__ARGON2_MEMORY_KIB=19456 AUTHD__HASHER__ARGON2_ITERATIONS=2 \
#        AUTHD__HASHER__ARGON2_PARALLELISM=1 load-tests/run.sh
# Needs: a Rust toolchain, curl; for the second backend PostgreSQL on 127.0.0.1:5432 (user
# postgres, trust auth; createdb/dropdb) and Redis on 127.0.0.1:6379 (redis-cli), else it is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PORT=${PORT:-18080}
BACKENDS=${BACKENDS:-embedded embedded-nice postgres}
PHASES=${PHASES:-all}
NICE=${NICE:-0}
USER_NICE=${AUTHD__HASHER__THREAD_NICE:-}
NICE_PHASES=${NICE_PHASES:-me_probe,login_flood+me_probe,me,flood16+me,flood10x}
PG_PHASES=${PG_PHASES:-me_probe,login_flood,me,flood16+me,flood10x,refresh_storm}
SECONDS_PER_PHASE=${SECONDS_PER_PHASE:-6}
SEEDED=${SEEDED:-400}
REDIS_DB=${REDIS_DB:-9}
BASE="http://127.0.0.1:$PORT"
STARTED_AT=$(date -u '+%Y-%m-%d %H:%M UTC')
T0=$(date +%s)
command -v curl >/dev/null || { echo "run.sh: curl is missing" >&2; exit 1; }

if [ -z "${NO_BUILD:-}" ]; then
  echo "== build (release)" >&2
  # One invocation for both, so the dependencies they share are built once (their features are
  # unified: tokio's multi-thread runtime and the like, nothing authd's code paths use), and
  # without debug line tables (the same machine code; a shorter build and link). KEEP_DEBUG=1
  # keeps the repository's profile.
  if [ -z "${KEEP_DEBUG:-}" ]; then export CARGO_PROFILE_RELEASE_DEBUG=false; fi
  cargo build --release --quiet -p authd -p authd-load
fi
BUILD_SECONDS=$(( $(date +%s) - T0 ))
AUTHD=$TARGET/release/authd
LOAD=$TARGET/release/authd-load

WORK=$(mktemp -d "${TMPDIR:-/tmp}/authd-load.XXXXXX")
OUT=${OUT_DIR:-$TARGET/load-results/$(date -u +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
PID=""
DB=""
PREFIX=""
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  if [ -n "$DB" ]; then dropdb --if-exists -h 127.0.0.1 -U postgres "$DB" 2>/dev/null || true; fi
  if [ -n "$PREFIX" ]; then
    redis-cli -h 127.0.0.1 -n "$REDIS_DB" --scan --pattern "${PREFIX}*" 2>/dev/null \
      | xargs -r redis-cli -h 127.0.0.1 -n "$REDIS_DB" del >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
# Production settings, on loopback, with the limiter and the lockout off (we measure the service,
# not the limiter), mail into the temp dir, warnings only (per-request logs would measure the logger)
# except the start-up lines that name the backends and the pool.
export AUTHD_ENV=production
export AUTHD__SERVER__HOST=127.0.0.1 AUTHD__SERVER__PORT=$PORT
export JWT_SECRET; JWT_SECRET=$(secret)
export AUTHD__TOKENS__REFRESH_SECRET; AUTHD__TOKENS__REFRESH_SECRET=$(secret)
export AUTHD__TOKENS__KEY_ENCRYPTION_KEY; AUTHD__TOKENS__KEY_ENCRYPTION_KEY=$(secret)
export AUTHD__RATE_LIMIT__ENABLED=false AUTHD__AUTH__LOCKOUT__ENABLED=false
export AUTHD__MAIL__FILE_DIR=$WORK/outbox
export RUST_LOG=${RUST_LOG:-warn,authd::app=info}
unset DATABASE_URL REDIS_URL AUTHD__DATABASE__URL AUTHD__CACHE__URL

# The effective settings, as authd reads them.
CONFIG=$("$AUTHD" config check)
setting() { printf '%s\n' "$CONFIG" | awk -v s="[$1]" -v k="$2" '$0==s{f=1;next} /^\[/{f=0} f && $1==k {print $3; exit}'; }
M_KIB=$(setting hasher argon2_memory_kib)
T_COST=$(setting hasher argon2_iterations)
P_COST=$(setting hasher argon2_parallelism)
WORKERS=$(setting hasher workers)
[ "$WORKERS" = 0 ] && WORKERS=$(nproc)
HTTP_WORKERS=$(setting server workers)
[ "$HTTP_WORKERS" = 0 ] && HTTP_WORKERS=$(nproc)

echo "== hash cost: argon2id m=$M_KIB KiB t=$T_COST p=$P_COST, alone and $WORKERS at once" >&2
"$LOAD" hash-cost --m-kib "$M_KIB" --t "$T_COST" --p "$P_COST" --threads "$WORKERS" > "$OUT/hash.json"
"$LOAD" seed-file --count "$SEEDED" --m-kib "$M_KIB" --t "$T_COST" --p "$P_COST" > "$WORK/users.jsonl"

run_backend() {
  local backend=$1 label phases
  if [ -n "$USER_NICE" ]; then export AUTHD__HASHER__THREAD_NICE=$USER_NICE; else unset AUTHD__HASHER__THREAD_NICE; fi
  case $backend in
    embedded)
      label=embedded
      phases=$PHASES
      export AUTHD__DATABASE__SQLITE_PATH=$WORK/authd.db
      unset DATABASE_URL REDIS_URL AUTHD__CACHE__KEY_PREFIX
      ;;
    embedded-nice)
      label="embedded, hasher nice $NICE"
      phases=$NICE_PHASES
      export AUTHD__DATABASE__SQLITE_PATH=$WORK/authd-nice.db
      export AUTHD__HASHER__THREAD_NICE=$NICE
      unset DATABASE_URL REDIS_URL AUTHD__CACHE__KEY_PREFIX
      ;;
    postgres)
      label=postgres+redis
      phases=$PG_PHASES
      if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null || ! command -v createdb >/dev/null \
         || ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        echo "== $label: skipped (needs PostgreSQL on 127.0.0.1:5432 with createdb, Redis on 127.0.0.1:6379)" >&2
        return 0
      fi
      DB=authd_load_$$
      createdb -h 127.0.0.1 -U postgres "$DB"
      PREFIX="authd:load:$$:"
      export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
      export REDIS_URL=redis://127.0.0.1:6379/$REDIS_DB
      export AUTHD__CACHE__KEY_PREFIX=$PREFIX
      ;;
    *) echo "run.sh: unknown backend $backend (embedded, embedded-nice, postgres)" >&2; exit 2 ;;
  esac
  echo "== $label: seed $SEEDED accounts (authd users import)" >&2
  "$AUTHD" users import "$WORK/users.jsonl" >&2
  "$AUTHD" serve > "$WORK/authd-$backend.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do curl -fs "$BASE/health/live" >/dev/null 2>&1 && break; sleep 0.1; done
  if ! curl -fs "$BASE/health/live" >/dev/null; then
    echo "run.sh: authd did not start:" >&2; cat "$WORK/authd-$backend.log" >&2; exit 1
  fi
  local pool workers queue
  pool=$(grep -o 'hasher: [0-9]* workers, queue [0-9]*' "$WORK/authd-$backend.log" | head -n1 || true)
  workers=$(printf '%s' "$pool" | awk '{print $2}')
  queue=$(printf '%s' "$pool" | awk '{print $5}')
  if [ -z "$queue" ]; then
    echo "run.sh: authd's log does not give the hasher pool:" >&2; cat "$WORK/authd-$backend.log" >&2; exit 1
  fi
  echo "== $label: $pool; phases $phases" >&2
  "$LOAD" run --host "$BASE" --pid "$PID" --backend "$label" --phases "$phases" \
    --hasher-workers "$workers" --hasher-queue "$queue" \
    --seeded "$SEEDED" --seconds "$SECONDS_PER_PHASE" --out "$OUT/$backend.json" ${LOAD_ARGS:-}
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
  if grep -qiE '"level":"(ERROR)"|panicked' "$WORK/authd-$backend.log"; then
    echo "== $label: authd logged errors:" >&2
    grep -iE '"level":"(ERROR)"|panicked' "$WORK/authd-$backend.log" | head -n 5 >&2
  fi
  if [ "$backend" = postgres ]; then
    dropdb --if-exists -h 127.0.0.1 -U postgres "$DB"; DB=""
    redis-cli -h 127.0.0.1 -n "$REDIS_DB" --scan --pattern "${PREFIX}*" \
      | xargs -r redis-cli -h 127.0.0.1 -n "$REDIS_DB" del >/dev/null
    PREFIX=""
    unset DATABASE_URL REDIS_URL AUTHD__CACHE__KEY_PREFIX
  fi
}

# Other processes (another build, a test run) would take the cores from authd: say how busy the
# machine was just before the load (the table also shows other processes' CPU in every window).
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS=()
for backend in $BACKENDS; do
  run_backend "$backend"
  [ -f "$OUT/$backend.json" ] && RESULTS+=("$OUT/$backend.json")
done
[ ${#RESULTS[@]} -gt 0 ] || { echo "run.sh: no backend ran" >&2; exit 1; }

echo "== hash cost again, after the load" >&2
"$LOAD" hash-cost --m-kib "$M_KIB" --t "$T_COST" --p "$P_COST" --threads "$WORKERS" > "$OUT/hash-after.json"
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo >&2
"$LOAD" table "$OUT/hash.json" "${RESULTS[@]}" --hash-again "$OUT/hash-after.json" \
  --note "authd load figures, $STARTED_AT, commit $COMMIT, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))" \
  --note "load average (1/5/15 min) before the load: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg); build ${BUILD_SECONDS} s, whole run $(( $(date +%s) - T0 )) s" \
  --note "config: AUTHD_ENV=production, argon2id m=$M_KIB KiB t=$T_COST p=$P_COST, hasher $WORKERS workers (queue per authd's log), $HTTP_WORKERS HTTP workers, rate limit and lockout off, log warn; goose on the same machine" \
  --note "" | tee "$OUT/table.md"
echo "(JSON and this table are kept in $OUT)" >&2
