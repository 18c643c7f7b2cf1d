#!/usr/bin/env bash
# Mailbox hops of one request kind, measured on a running authd: starts the debug build on the
# embedded default (a throwaway data directory, loopback only), signs one account up, then makes
# N logins and N /me calls, and divides the change of `authd_actor_messages_total` per actor by N.
#
# Usage: load-tests/hops.sh            (N=20, PORT=18090)
# Needs: cargo, curl. Bounded: N requests of each kind, then authd is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20}
PORT=${PORT:-18090}
BASE="http://127.0.0.1:$PORT"
cargo build --quiet --bin authd
WORK=$(mktemp -d "${TMPDIR:-/tmp}/authd-hops.XXXXXX")
cleanup() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$WORK"; }
AUTHD__SERVER__PORT=$PORT AUTHD__DATABASE__URL="sqlite://$WORK/authd.db" \
  AUTHD__RATE_LIMIT__ENABLED=false AUTHD__AUTH__LOCKOUT__ENABLED=false \
  AUTHD__HASHER__ARGON2_MEMORY_KIB=8192 AUTHD__HASHER__ARGON2_ITERATIONS=1 \
  AUTHD__LOG__LEVEL=warn target/debug/authd serve >"$WORK/log" 2>&1 &
PID=$!
trap cleanup EXIT
for _ in $(seq 1 100); do curl -fs "$BASE/health/live" >/dev/null 2>&1 && break; sleep 0.1; done
messages() { curl -fs "$BASE/metrics" | awk '/^authd_actor_messages_total/ { print }'; }
per_request() { # before after
  join -a1 -a2 -e 0 -o 0,1.2,2.2 <(sed -E 's/.*actor="([a-z_]+)".* ([0-9.]+)$/\1 \2/' <<<"$1" | sort) \
    <(sed -E 's/.*actor="([a-z_]+)".* ([0-9.]+)$/\1 \2/' <<<"$2" | sort) |
    awk -v n="$N" '{ d = ($3 - $2) / n; total += d; printf "  %-14s %.2f\n", $1, d } END { printf "  %-14s %.2f\n", "total", total }'
}
BODY='{"email":"hops@example.com","password":"velvet tractor sings at noon"}'
curl -fs -o /dev/null -H 'content-type: application/json' -d "$BODY" "$BASE/auth/signup"
before=$(messages)
for _ in $(seq 1 "$N"); do
  ACCESS=$(curl -fs -H 'content-type: application/json' -d "$BODY" "$BASE/auth/login" | sed -E 's/.*"accessToken":"([^"]+)".*/\1/')
done
after=$(messages)
echo "mailbox messages per login (POST /auth/login), over $N:"
per_request "$before" "$after"
before=$(messages)
for _ in $(seq 1 "$N"); do curl -fs -o /dev/null -H "authorization: Bearer $ACCESS" "$BASE/me"; done
after=$(messages)
echo "mailbox messages per GET /me, over $N:"
per_request "$before" "$after"
