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
import time
import uuid

from probe import post as post_to
from probe import report, sign_up, start_timing_probe

N = int(os.environ.get("N", "30"))
PORT = int(os.environ.get("PORT", "18091"))
BASE = f"http://127.0.0.1:{PORT}"


def post(path, body):
    return post_to(BASE, path, body)


def main():
    passwordless = {"AUTHD__AUTH__PASSWORDLESS__ENABLED": "true"}
    authd, backend = start_timing_probe(PORT, "authd-code-timing.", passwordless)
    try:
        run = uuid.uuid4().hex[:8]
        known = [f"timing-{run}-{i}@example.com" for i in range(N)]
        unknown = [f"nobody-{run}-{i}@example.com" for i in range(N)]
        sign_up(BASE, known)
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
        report("account with a pending mail", known_times, unknown_times, statuses)
    finally:
        authd.terminate()
        authd.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
