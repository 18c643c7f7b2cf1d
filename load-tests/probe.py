"""What the probe scripts of load-tests/ share: the debug build of authd started on loopback."""

import os
import subprocess
import time
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
