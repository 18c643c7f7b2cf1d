#!/usr/bin/env python3
"""How slow is authd while Redis stops answering?

Starts the debug build of authd on loopback (embedded SQLite in a throwaway directory) with its
Redis reached through a TCP proxy this script runs and can stall (it keeps every connection open
and holds the bytes, as a hung Redis or network would). Signs one account up, then times N
`GET /me` (each request asks Redis for its per-IP rate limit) with the proxy passing, and N more
with it stalled. Prints the medians and maxima. Redis database 11 of 127.0.0.1:6379 is used and
flushed at the end.

Usage: load-tests/redis_stall.py            (N=20, PORT=18092)
Needs: cargo, python3 (standard library only), redis-cli. Bounded: 2N+2 requests.
"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from probe import start_authd

N = int(os.environ.get("N", "20"))
PORT = int(os.environ.get("PORT", "18092"))
BASE = f"http://127.0.0.1:{PORT}"
stalled = threading.Event()


def pipe(source, sink):
    try:
        while True:
            data = source.recv(16384)
            if not data:
                break
            while stalled.is_set():
                time.sleep(0.02)
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.close()
            except OSError:
                pass


def proxy(listener):
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        server = socket.create_connection(("127.0.0.1", 6379))
        threading.Thread(target=pipe, args=(client, server), daemon=True).start()
        threading.Thread(target=pipe, args=(server, client), daemon=True).start()


def request(method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    call = urllib.request.Request(BASE + path, data=data, headers=headers, method=method)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(call, timeout=30) as answer:
            status, payload = answer.status, answer.read()
    except urllib.error.HTTPError as refused:
        status, payload = refused.code, refused.read()
    return status, payload, (time.perf_counter() - started) * 1000


def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    proxy_port = listener.getsockname()[1]
    threading.Thread(target=proxy, args=(listener,), daemon=True).start()
    work = tempfile.mkdtemp(prefix="authd-redis-stall.")
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.update(
        {
            "AUTHD__DATABASE__URL": f"sqlite://{work}/authd.db",
            "REDIS_URL": f"redis://127.0.0.1:{proxy_port}/11",
            "AUTHD__HASHER__ARGON2_MEMORY_KIB": "8192",
            "AUTHD__HASHER__ARGON2_ITERATIONS": "1",
            "AUTHD__MAIL__FILE_DIR": os.path.join(work, "outbox"),
            "AUTHD__LOG__LEVEL": "error",
        }
    )
    authd = start_authd(PORT, env, os.path.join(work, "log"))
    try:
        body = {"email": f"stall-{os.getpid()}@example.com", "password": "velvet tractor sings at noon"}
        status, payload, _ = request("POST", "/auth/signup", body)
        assert status == 201, f"signup answered {status}"
        token = json.loads(payload)["accessToken"]
        for name, stall in (("Redis answering", False), ("Redis stalled", True)):
            if stall:
                stalled.set()
            times, statuses = [], set()
            for _ in range(N):
                status, _, took = request("GET", "/me", token=token)
                statuses.add(status)
                times.append(took)
            print(
                f"GET /me x{N}, {name:<16}: median {statistics.median(times):7.1f} ms,"
                f" max {max(times):7.1f} ms, answers {sorted(statuses)}"
            )
        stalled.clear()
    finally:
        authd.terminate()
        authd.wait(timeout=10)
        subprocess.run(["redis-cli", "-n", "11", "FLUSHDB"], stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    sys.exit(main())
