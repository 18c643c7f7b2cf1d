#!/usr/bin/env python3
"""Does the time of a refused sign-in code tell whether the address has an account?

Starts the debug build of authd on loopback (the embedded default in a throwaway directory, or
PostgreSQL when DATABASE_URL is set: give it a database of its own), with sign-in mail on and the
limits off. Signs up N accounts, asks a sign-in mail for each of them and for N unknown addresses,
then submits one wrong code for each address, alternating known and unknown, and times each
answer. Prints the medians and ranges, and how well the best single threshold between the two
medians sorts one request into "has an account" or not (50% is a coin toss).

Usage: load-tests/email_code_timing.py            (N=30, PORT=18091)
       DATABASE_URL=postgres://postgres@127.0.0.1/timing load-tests/email_code_timing.py
Needs: cargo, python3 (standard library only). Bounded: 4N+N requests, then authd is stopped.
"""

import os
import sys
import tempfile
import time
import uuid

from probe import post as post_to
from probe import sorted_right, start_authd, summary

N = int(os.environ.get("N", "30"))
PORT = int(os.environ.get("PORT", "18091"))
BASE = f"http://127.0.0.1:{PORT}"


def post(path, body):
    return post_to(BASE, path, body)


def main():
    work = tempfile.mkdtemp(prefix="authd-code-timing.")
    env = dict(os.environ)
    env.update(
        {
            "AUTHD__AUTH__PASSWORDLESS__ENABLED": "true",
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
        known = [f"timing-{run}-{i}@example.com" for i in range(N)]
        unknown = [f"nobody-{run}-{i}@example.com" for i in range(N)]
        for email in known:
            status, _ = post(
                "/auth/signup", {"email": email, "password": "velvet tractor sings at noon"}
            )
            assert status == 201, f"signup answered {status}"
        for email in known + unknown:
            post("/auth/email/login", {"email": email})
        time.sleep(1.5)  # the mails are written
        known_times, unknown_times, statuses = [], [], set()
        for a, b in zip(known, unknown):
            for email, times in ((a, known_times), (b, unknown_times)):
                status, took = post("/auth/email/login/verify", {"email": email, "code": "000000"})
                statuses.add(status)
                times.append(took)
        print(f"POST /auth/email/login/verify, a wrong code, {N} addresses each, on {backend}:")
        summary("account with a pending mail", known_times)
        summary("unknown address", unknown_times)
        print(f"  answers: {sorted(statuses)}")
        right = sorted_right(known_times, unknown_times)
        print(f"  one request sorted by the midpoint threshold: {right:.0f}% right")
    finally:
        authd.terminate()
        authd.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
