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
import uuid

from probe import post, report, sign_up, sorted_right, start_timing_probe

N = int(os.environ.get("N", "30"))
R = int(os.environ.get("R", "5"))
PORT = int(os.environ.get("PORT", "18092"))
BASE = f"http://127.0.0.1:{PORT}"


def main():
    authd, backend = start_timing_probe(PORT, "authd-passkey-timing.")
    try:
        run = uuid.uuid4().hex[:8]
        known = [f"passkey-{run}-{i}@example.com" for i in range(N)]
        unknown = [f"nobody-{run}-{i}@example.com" for i in range(N)]
        sign_up(BASE, known)
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
        report("account (no passkey)", every_known, every_unknown, statuses)
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
