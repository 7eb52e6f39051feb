"""What the Chromium tests share: the check that Debian's chromium, node
and the npm packages of test/e2e/browser are there (a browser test that
silently passes proves nothing, so a missing one is a failure, not a skip),
and running one node script of test/e2e/browser in its own process group
with a bound, so that a timeout takes Chromium down with node."""

import os
import shutil
import signal
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
BROWSER_DIR = os.path.join(HERE, "browser")
CHROMIUM = os.environ.get("UVH_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.environ.get("UVH_ARTIFACTS") or os.path.join(HERE, "artifacts")


def require_browser():
    missing = []
    if not shutil.which("node"):
        missing.append("node (Debian's nodejs)")
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (Debian's chromium package)")
    if not os.path.isfile(os.path.join(BROWSER_DIR, "node_modules", "playwright-core", "package.json")):
        missing.append("test/e2e/browser/node_modules (npm ci in test/e2e/browser)")
    if missing:
        raise AssertionError("the browser test cannot run: missing " + ", ".join(missing)
                             + ". Run `make test`, which installs them.")


def run_node(script, args, timeout):
    """Runs `node script args...` in test/e2e/browser; prints its output and
    fails the test if it exits non-zero or outlives `timeout` seconds."""
    os.makedirs(ARTIFACTS, exist_ok=True)
    p = subprocess.Popen(["node", os.path.join(BROWSER_DIR, script), *args], cwd=BROWSER_DIR,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        raise AssertionError(f"{script} did not finish within {timeout}s:\n{out}")
    print(out, end="", flush=True)
    if p.returncode != 0:
        raise AssertionError(f"{script} exited {p.returncode} (its output is above)")
