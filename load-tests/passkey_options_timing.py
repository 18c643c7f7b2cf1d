#!/usr/bin/env python3
"""Does the time of `POST /auth/passkey/options` with an address tell whether it has an account?

Starts the debug build of authd on loopback (the embedded default in a throwaway directory, or
PostgreSQL when DATABASE_URL is set: give it a database of its own), limits off. Signs up N
accounts (no passkeys: the stand-in options answer for them and for unknown addresses alike),
then asks options for each account and for N unknown addresses, alternating, R rounds, and times
each answer. Prints the medians and ranges, and how well the best single threshold sorts one
request, and the mean of R requests per address, into "has an account" or not (50% is a coin
toss).

Usage: load-tests/passkey_options_timing.py        (N=30, R=5, PORT=18092)
       DATABASE_URL=postgres://postgres@127.0.0.1/timing load-tests/passkey_options_timing.py
Needs: cargo, python3 (standard library only). Bounded: N signups and 2NR requests, then authd
is stopped.
"""

import os
import statistics
import sys
import tempfile
import uuid

from probe import post, sorted_right, start_authd, summary

N = int(os.environ.get("N", "30"))
R = int(os.environ.get("R", "5"))
PORT = int(os.environ.get("PORT", "18092"))
BASE = f"http://127.0.0.1:{PORT}"


def main():
    work = tempfile.mkdtemp(prefix="authd-passkey-timing.")
    env = dict(os.environ)
    env.update(
        {
            "AUTHD__RATE_LIMIT__ENABLED": "false",
            "AUTHD__AUTH__LOCKOUT__ENABLED": "false",
            "AUTHD__HASHER__ARGON2_MEMORY_KIB": "8192",
            "AUTHD__HASHER__ARGON2_ITERATIONS": "1",
            "AUTHD__MAIL__FILE_DIR": os.path.join(work, "outbox"),
            "AUTHD__LOG__LEVEL": "warn",
        }
    )
    if not env.get("DATABASE_URL"):
        env["AUTHD__DATABASE__URL"] = f"sqlite://{work}/authd.db"
    backend = "PostgreSQL" if env.get("DATABASE_URL") else "SQLite (embedded default)"
    authd = start_authd(PORT, env, os.path.join(work, "log"))
    try:
        run = uuid.uuid4().hex[:8]
        known = [f"passkey-{run}-{i}@example.com" for i in range(N)]
        unknown = [f"nobody-{run}-{i}@example.com" for i in range(N)]
        for email in known:
            status, _ = post(
                BASE, "/auth/signup", {"email": email, "password": "velvet tractor sings at noon"}
            )
            assert status == 201, f"signup answered {status}"
        known_times = {email: [] for email in known}
        unknown_times = {email: [] for email in unknown}
        statuses = set()
        for _ in range(R):
            for a, b in zip(known, unknown):
                for email, times in ((a, known_times), (b, unknown_times)):
                    status, took = post(BASE, "/auth/passkey/options", {"email": email})
                    statuses.add(status)
                    times[email].append(took)
        every_known = [t for times in known_times.values() for t in times]
        every_unknown = [t for times in unknown_times.values() for t in times]
        print(f"POST /auth/passkey/options with an address, {N} addresses each, {R} rounds, on {backend}:")
        summary("account (no passkey)", every_known)
        summary("unknown address", every_unknown)
        print(f"  answers: {sorted(statuses)}")
        right = sorted_right(every_known, every_unknown)
        print(f"  one request sorted by the midpoint threshold: {right:.0f}% right")
        means = sorted_right(
            [statistics.mean(t) for t in known_times.values()],
            [statistics.mean(t) for t in unknown_times.values()],
        )
        print(f"  the mean of {R} requests per address sorted: {means:.0f}% right")
    finally:
        authd.terminate()
        authd.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
