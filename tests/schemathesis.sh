#!/usr/bin/env bash
# Runs schemathesis (pinned, in a venv under target/) against a real authd built at
# target/debug/authd: the embedded default (SQLite + in-process state) in a temporary directory, on
# a free loopback port. Two bounded runs with every check: anonymous, then as an admin (signed in
# by schemathesis itself, again after any 401). Fails when either run finds a failure, or when
# authd dies or panics.
#
#   tests/schemathesis.sh                 # from anywhere; builds target/debug/authd if missing
#   ST_MAX_EXAMPLES=100 ST_SEED=7 tests/schemathesis.sh
#
# Knobs: ST_MAX_EXAMPLES (30 per operation and phase), ST_SEED (1; `random` for a new one each
# run), ST_TIME_LIMIT (300 s per run, then it is killed and fails).
set -euo pipefail

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-30}
SEED=${ST_SEED:-1}
TIME_LIMIT=${ST_TIME_LIMIT:-300}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
AUTHD=$TARGET/debug/authd
VENV=$TARGET/schemathesis-venv
CONFIG=$ROOT/tests/schemathesis.toml

if [[ ! -x $AUTHD ]]; then
    echo "building authd"
    cargo build --quiet --bin authd
fi

if [[ "$("$VENV/bin/schemathesis" --version 2>/dev/null || true)" != *"$SCHEMATHESIS_VERSION"* ]]; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION in $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

WORK=$(mktemp -d -t authd-schemathesis.XXXXXX)
AUTHD_PID=
cleanup() {
    if [[ -n $AUTHD_PID ]]; then
        kill "$AUTHD_PID" 2>/dev/null || true
        wait "$AUTHD_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
ADMIN_EMAIL=admin@example.com
ADMIN_PASSWORD="schemathesis $(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')"

# Development environment, embedded default; limits that would only slow the run are off, and
# argon2 is light (the contract does not depend on its cost).
export AUTHD_ENV=development
export AUTHD__SERVER__HOST=127.0.0.1
export PORT
export AUTHD__DATABASE__SQLITE_PATH=$WORK/authd.db
export AUTHD__MAIL__FILE_DIR=$WORK/mail
export AUTHD__RATE_LIMIT__ENABLED=false
export AUTHD__AUTH__LOCKOUT__ENABLED=false
export AUTHD__HASHER__ARGON2_MEMORY_KIB=8192
export AUTHD__HASHER__ARGON2_ITERATIONS=1
export AUTHD__HASHER__ARGON2_PARALLELISM=1
export RUST_LOG=${RUST_LOG:-warn}

printf '%s\n' "$ADMIN_PASSWORD" | "$AUTHD" user create --admin --email "$ADMIN_EMAIL" >"$WORK/admin.log" 2>&1 \
    || { cat "$WORK/admin.log"; exit 1; }
"$AUTHD" >"$WORK/authd.log" 2>&1 &
AUTHD_PID=$!
for _ in $(seq 100); do
    curl -sf "$BASE/health/ready" >/dev/null 2>&1 && break
    kill -0 "$AUTHD_PID" 2>/dev/null || { cat "$WORK/authd.log"; echo "authd did not start"; exit 1; }
    sleep 0.2
done
curl -sf "$BASE/health/ready" >/dev/null || { cat "$WORK/authd.log"; echo "authd is not ready"; exit 1; }

# The admin run: the shared settings plus a login that schemathesis repeats on every 401 (logout,
# logout-all and password changes revoke the token it holds).
cp "$CONFIG" "$WORK/admin.toml"
cat >>"$WORK/admin.toml" <<EOF

[auth.dynamic.openapi.bearer]
path = "/auth/login"
payload = { email = "$ADMIN_EMAIL", password = "$ADMIN_PASSWORD" }
extract_selector = "/accessToken"
EOF

status=0
run() {
    local name=$1 config=$2
    echo "== schemathesis: $name (max $MAX_EXAMPLES examples, seed $SEED, at most ${TIME_LIMIT}s)"
    local seed_args=(--seed "$SEED")
    [[ $SEED == random ]] && seed_args=()
    # Its working files (.hypothesis) go to the temporary directory, not the repository. One
    # worker: with more, hypothesis parses lambdas from several threads and CPython 3.11 can fail
    # with "AST constructor recursion depth mismatch" (a runtime error in the tool, not authd).
    if ! (cd "$WORK" && timeout --kill-after=10 "$TIME_LIMIT" "$VENV/bin/schemathesis" --no-color \
        --config-file "$config" run "$BASE/openapi.json" \
        --checks all --max-examples "$MAX_EXAMPLES" "${seed_args[@]}" \
        --workers 1 --request-timeout 10 --suppress-health-check all); then
        echo "== schemathesis: $name FAILED"
        status=1
    fi
    if ! kill -0 "$AUTHD_PID" 2>/dev/null; then
        echo "== authd died during the $name run:"
        tail -50 "$WORK/authd.log"
        AUTHD_PID=
        exit 1
    fi
}

started=$(date +%s)
run anonymous "$CONFIG"
run admin "$WORK/admin.toml"

if grep -q "panicked" "$WORK/authd.log"; then
    echo "== authd panicked:"
    grep -A5 "panicked" "$WORK/authd.log"
    status=1
fi
echo "== schemathesis: done in $(($(date +%s) - started))s, $([[ $status == 0 ]] && echo passed || echo FAILED)"
exit $status
