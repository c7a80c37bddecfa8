"""Shared fixtures. Service-bound tests skip with a reason on a bare machine and fail under CI."""

from __future__ import annotations

import os
import shutil
import uuid

import pytest
from django.db import connection

IN_CI = os.environ.get("CI", "").lower() == "true"

# Shared fixtures and factories live in plugin modules, never in test modules that others import.
pytest_plugins = ["tests.fixtures.messaging", "tests.fixtures.integration", "tests.fixtures.leads"]


def skip_or_fail(reason: str) -> None:
    """A missing service skips the test locally; under CI (CI=true) nothing may skip: it fails."""
    if IN_CI:
        pytest.fail(f"CI requires this service: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def require_postgres(db):
    if connection.vendor != "postgresql":
        skip_or_fail("needs PostgreSQL: set DATABASE_URL=postgres://...")


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        skip_or_fail("needs Redis: set REDIS_URL=redis://127.0.0.1:6379/0")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        skip_or_fail(f"Redis at REDIS_URL does not answer: {exc}")
    return url


@pytest.fixture
def chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        skip_or_fail("needs Debian chromium and chromium-driver (apt-get install chromium chromium-driver)")
    return browser, driver


@pytest.fixture(scope="session", autouse=True)
def _flush_past_audit_truncate_trigger():
    """Transactional tests end with Django's flush, a TRUNCATE of every table, which the audit tables'
    statement trigger refuses (as it must in production). The test database's superuser flushes with
    triggers off for that one transaction; nothing outside tests flushes a database."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = original(self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade)
        return ["SET LOCAL session_replication_role = replica", *statements] if statements else statements

    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = original


@pytest.fixture(autouse=True)
def _isolated_cache(settings):
    """A fresh cache namespace per test: rate-limit counters never leak between tests (or xdist
    workers sharing one Redis), without flushing anything."""
    caches = {}
    for alias, config in settings.CACHES.items():
        caches[alias] = {**config, "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}
    settings.CACHES = caches
    yield


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def frozen_ratelimit_clock(monkeypatch):
    """Pin the clock the rate limiter reads, so a test never straddles a window edge."""
    import time as real_time

    import django_ratelimit.core

    import core.ratelimit

    class _Clock:
        now = float(int(real_time.time()))

        def time(self):
            return self.now

    clock = _Clock()
    monkeypatch.setattr(django_ratelimit.core, "time", clock)
    monkeypatch.setattr(core.ratelimit, "time", clock)
    return clock


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # `make test` runs on two xdist workers (--dist loadgroup). Tests that start Celery worker processes
    # or private brokers share one group, so they run one at a time on one xdist worker: two of them never
    # consume the same broker queue at once, and the machine is not oversubscribed by their processes.
    # tryfirst: xdist reads the group markers in its own (plain) hook, which pluggy calls before this
    # conftest's when the conftest was loaded first (the usual case): the marker came too late and no test
    # was ever grouped.
    for item in items:
        if item.get_closest_marker("worker"):
            item.add_marker(pytest.mark.xdist_group("processes"))


def pytest_collection_finish(session):
    # xdist groups by a suffix it adds to each grouped item's node id; a pytest whose items ignore it (9.2 with
    # xdist 3.8) would run the group on both workers without a word. Refuse to run instead.
    if not getattr(session.config, "workerinput", None) or not session.config.getvalue("loadgroup"):
        return
    ungrouped = [item.nodeid for item in session.items if item.get_closest_marker("worker")]
    ungrouped = [nodeid for nodeid in ungrouped if not nodeid.endswith("@processes")]
    if ungrouped:
        raise pytest.UsageError(f"--dist loadgroup did not group {ungrouped[0]} (pytest/pytest-xdist mismatch)")


# --- Gate time budgets ---------------------------------------------------------------------------------
# The CI gates (docs/security.md, "Gates in CI") each have a budget so the whole run stays well under
# 20 minutes on a 2-core machine. Seconds of setup + call + teardown, summed per gate; over budget under
# CI fails the run (locally it is only reported).
GATE_BUDGETS = {
    "schemathesis": ("tests/gates/", 300),
    "identity matrix": ("tests/security/test_identity_matrix.py", 150),
    "route walk": ("tests/security/test_url_walk.py", 60),
    "faults": ("tests/faults/", 300),
}
_gate_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report):
    for gate, (prefix, _budget) in GATE_BUDGETS.items():
        if report.nodeid.startswith(prefix):
            _gate_seconds[gate] = _gate_seconds.get(gate, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    over = []
    for gate, (_prefix, budget) in GATE_BUDGETS.items():
        if gate not in _gate_seconds:
            continue
        seconds = _gate_seconds[gate]
        terminalreporter.write_line(f"GATE {gate}: {seconds:.0f} s of a {budget} s budget")
        if seconds > budget:
            over.append(gate)
    if over:
        terminalreporter.write_line(f"GATE over budget: {', '.join(over)}" + (" (fails under CI)" if IN_CI else ""))


def pytest_sessionfinish(session, exitstatus):
    # Runs before the terminal summary, and is what sets the exit status.
    over = [g for g, (_p, budget) in GATE_BUDGETS.items() if _gate_seconds.get(g, 0.0) > budget]
    if over and IN_CI and session.exitstatus == 0:
        session.exitstatus = 1
