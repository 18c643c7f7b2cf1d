"""What the probe scripts of load-tests/ share: the debug build of authd started on loopback."""

import json
import os
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_authd(port, env, log_path):
    """Builds the debug authd, starts it with `env` on 127.0.0.1:`port` and waits until it is live."""
    subprocess.run(["cargo", "build", "--quiet", "--bin", "authd"], cwd=ROOT, check=True)
    env = dict(env, AUTHD__SERVER__PORT=str(port))
    with open(log_path, "w") as log:
        authd = subprocess.Popen(
            [os.path.join(ROOT, "target/debug/authd"), "serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=log,
        )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1).read()
            return authd
        except OSError:
            time.sleep(0.1)
    authd.terminate()
    raise RuntimeError(f"authd did not start; see {log_path}")


def start_timing_probe(port, prefix, extra_env=None):
    """Starts authd for a timing probe, limits off and hashing cheap, on the embedded default in a
    throwaway directory (or PostgreSQL when DATABASE_URL is set): the process, and the backend's
    name for the report."""
    work = tempfile.mkdtemp(prefix=prefix)
    env = dict(os.environ)
    env.update(
        {
            "AUTHD__RATE_LIMIT__ENABLED": "false",
            "AUTHD__AUTH__LOCKOUT__ENABLED": "false",
            "AUTHD__HASHER__ARGON2_MEMORY_KIB": "8192",
            "AUTHD__HASHER__ARGON2_ITERATIONS": "1",
            "AUTHD__MAIL__FILE_DIR": os.path.join(work, "outbox"),
            "AUTHD__LOG__LEVEL": "warn",
            **(extra_env or {}),
        }
    )
    if not env.get("DATABASE_URL"):
        env["AUTHD__DATABASE__URL"] = f"sqlite://{work}/authd.db"
    backend = "PostgreSQL" if env.get("DATABASE_URL") else "SQLite (embedded default)"
    return start_authd(port, env, os.path.join(work, "log")), backend


def sign_up(base, emails):
    """Signs each address up (a known password); fails loudly on any other answer than 201."""
    for email in emails:
        status, _ = post(base, "/auth/signup", {"email": email, "password": "velvet tractor sings at noon"})
        assert status == 201, f"signup answered {status}"


def post(base, path, body):
    """POSTs `body` as JSON: the status and how long the answer took (ms)."""
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status = response.status
            response.read()
    except urllib.error.HTTPError as refused:
        status = refused.code
        refused.read()
    return status, (time.perf_counter() - started) * 1000


def summary(name, times):
    """One line: the median and range of `times` (ms)."""
    print(
        f"  {name:<28} median {statistics.median(times):7.2f} ms"
        f"  min {min(times):7.2f}  max {max(times):7.2f}"
    )


def sorted_right(known_times, unknown_times):
    """How often (%) one threshold, midway between the two medians, sorts one request into "has
    an account" or not: 50% is a coin toss (a simple cut, not the best one possible)."""
    threshold = (statistics.median(known_times) + statistics.median(unknown_times)) / 2
    slower = statistics.median(known_times) > statistics.median(unknown_times)
    right = sum((t > threshold) == slower for t in known_times) + sum(
        (t > threshold) != slower for t in unknown_times
    )
    return 100 * right / (len(known_times) + len(unknown_times))


def report(known_name, known_times, unknown_times, statuses):
    """The medians and ranges of both kinds of address, the answers seen, and how well one
    request's time sorts them."""
    summary(known_name, known_times)
    summary("unknown address", unknown_times)
    print(f"  answers: {sorted(statuses)}")
    right = sorted_right(known_times, unknown_times)
    print(f"  one request sorted by the midpoint threshold: {right:.0f}% right")
