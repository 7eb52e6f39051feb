"""pytest wiring for the process-level tests (test/e2e/test_*.py).

    python3 -m pytest -q test/e2e/test_cli.py --binary build/uvhttpd [-k NAME]

- --binary: the uvhttpd under test (default build/uvhttpd), as uvhlib.BINARY
  (uvhlib.Server starts it) and the `binary` fixture.
- After each test, every uvhlib.Server it started and did not check yet is
  stopped and checked: exit status and no sanitizer report (a problem is a
  teardown error). When the test failed, the servers are only stopped and
  their stderr is shown with the failure.
- A skip (uvhlib.Skip is pytest.skip's exception) is reported as skipped;
  with UVH_REQUIRE_ALL=1 (`make test`) it is a failure instead: on a CI
  machine every test must run.
- Exit status for CTest: 77 (SKIP_RETURN_CODE) when something was skipped
  and nothing failed; pytest's own 5 when no test ran (a -k or UVH_CASE
  filter matching nothing), which CTest counts as a failure.
- UVH_CASE=TEXT (test_conformance.py): only the tests that carry a `cases`
  table with a case whose title contains TEXT; the others are deselected.
- `record_store` (parametrised "file" and "postgresql"): a record-store test
  written once runs against both stores; the PostgreSQL cluster
  (test/e2e/pg.py) starts once per session, only when a test asks for it."""

import os

import pytest

import uvhlib

SKIPPED_EXIT = 77  # CTest's SKIP_RETURN_CODE for the e2e tests (test/CMakeLists.txt)


def pytest_addoption(parser):
    parser.addoption("--binary", default="build/uvhttpd", help="the uvhttpd binary under test")


def pytest_configure(config):
    uvhlib.BINARY = os.path.abspath(config.getoption("--binary"))
    config.uvh_skipped = 0
    config.uvh_require_all = os.environ.get("UVH_REQUIRE_ALL") == "1"


@pytest.fixture
def binary():
    return uvhlib.BINARY


@pytest.fixture(scope="session")
def pg_cluster():
    from pg import PgCluster
    with PgCluster() as cluster:
        yield cluster


class RecordStoreMode:
    """How a test starts servers on a record store and reads it back:
    "file" (database.txt in the root, the default) or "postgresql"
    (--records on the session's cluster, emptied for each test)."""

    def __init__(self, name, cluster=None):
        self.name, self.cluster = name, cluster
        if cluster is not None:
            cluster.reset()

    def flags(self):
        return () if self.cluster is None else ("--records", self.cluster.url, "--records-required")

    def server(self, root, *flags, **kw):
        """A uvhttpd on this store, returned once the store is usable."""
        s = uvhlib.Server(root, *self.flags(), *flags, **kw)
        if self.cluster is not None:
            uvhlib.wait_until(lambda: uvhlib.request(s.port, "GET", "/readyz").status == 200, 30,
                              "the record store to connect to PostgreSQL", interval=0.05)
        return s

    def lines(self, root):
        """The stored lines, "ID fields" each, in the store's order."""
        if self.cluster is not None:
            return self.cluster.lines()
        path = os.path.join(root, "database.txt")
        if not os.path.exists(path):
            return []
        with open(path, "rb") as f:
            data = f.read()
        assert data == b"" or data.endswith(b"\n"), "torn last line"
        return data.decode().split("\n")[:-1]

    def count(self, root):
        """How many records are stored (cheap enough to poll)."""
        if self.cluster is not None:
            return int(self.cluster.sql("SELECT count(*) FROM uvhttpd_records").strip() or 0)
        path = os.path.join(root, "database.txt")
        try:
            with open(path, "rb") as f:
                return f.read().count(b"\n")
        except FileNotFoundError:
            return 0


@pytest.fixture(params=["file", "postgresql"])
def record_store(request):
    if request.param == "file":
        return RecordStoreMode("file")
    return RecordStoreMode("postgresql", request.getfixturevalue("pg_cluster"))


def pytest_collection_modifyitems(config, items):
    only = os.environ.get("UVH_CASE")
    if only is None:
        return
    keep, drop = [], []
    for item in items:
        cases = getattr(getattr(item, "function", None), "cases", None)
        if cases is not None and any(only in c.title for c in cases):
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _check_servers(request):
    """Checks the servers a test left running (see the module doc)."""
    uvhlib.Server.started = []
    yield
    rep = getattr(request.node, "uvh_call_report", None)
    shown = uvhlib.finish_servers(test_failed=rep is not None and rep.failed)
    if shown:
        print(shown)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    if call.when == "call" and call.excinfo is not None and \
            not call.excinfo.errisinstance(pytest.skip.Exception):
        # Stop the servers now, so their stderr goes with the failure.
        try:
            shown = uvhlib.finish_servers(test_failed=True)
        except AssertionError as e:
            shown = str(e)
        if shown:
            item.add_report_section("call", "server", shown)
    outcome = yield
    rep = outcome.get_result()
    if call.when == "call":
        item.uvh_call_report = rep
    if rep.skipped and not hasattr(rep, "wasxfail"):
        if item.config.uvh_require_all:
            reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
            rep.outcome = "failed"
            rep.longrepr = f"{reason}\nand UVH_REQUIRE_ALL=1 says every test must run here"
        else:
            item.config.uvh_skipped += 1


def pytest_sessionfinish(session, exitstatus):
    if exitstatus == 0 and session.testsfailed == 0 and session.config.uvh_skipped > 0:
        session.exitstatus = SKIPPED_EXIT
