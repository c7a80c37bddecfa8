"""Fixtures and reporting of the CI gates (tests/gates/).

The Schemathesis gate (test_schemathesis.py) runs on the demo data (`seed_demo`), seeded once for the
module inside a transaction that is rolled back at its end, so nothing stays for other modules; each
operation's test runs in a savepoint inside it (pytest-django `db`) and its writes are rolled back too.

The gate's figures are kept in `config.stash` and printed in the terminal summary (also under
`pytest -q`, no `-s` needed): `SCHEMATHESIS cases=<n> ops=<m> failures=<f> seconds=<s> collect_seconds=<c>`
(cases sent, operations called, operations that failed, seconds from the first case to the last, and
seconds spent collecting the gate: loading the schema and building the coverage phase's cases), then
the cases per phase/mode, the statuses answered and the slowest operations.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from django.core.management import call_command
from django.db import connections, transaction


@dataclass
class GateStats:
    """What the Schemathesis gate sent and got: every case it called, by operation, phase, mode and status."""

    cases: int = 0
    per_operation: Counter = field(default_factory=Counter)
    per_operation_seconds: Counter = field(default_factory=Counter)
    per_phase_mode: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    failed_operations: set = field(default_factory=set)
    operations_in_schema: set = field(default_factory=set)
    started: float | None = None
    finished: float | None = None
    # Collecting the gate loads the schema through the app and builds the coverage phase's cases.
    collect_seconds: float = 0.0

    def record(self, case, status: int, seconds: float) -> None:
        now = time.monotonic()
        if self.started is None:
            self.started = now - seconds
        self.finished = now
        self.cases += 1
        self.per_operation[case.operation.label] += 1
        self.per_operation_seconds[case.operation.label] += seconds
        meta = case.meta
        if meta is not None:
            self.per_phase_mode[f"{meta.phase.name.value}/{meta.generation.mode.value}"] += 1
        self.statuses[status] += 1

    @property
    def seconds(self) -> float:
        if self.started is None or self.finished is None:
            return 0.0
        return self.finished - self.started

    def summary(self) -> str:
        return (
            f"SCHEMATHESIS cases={self.cases} ops={len(self.per_operation)} "
            f"failures={len(self.failed_operations)} seconds={self.seconds:.0f} "
            f"collect_seconds={self.collect_seconds:.0f}"
        )

    def details(self) -> str:
        phases = " ".join(f"{key}={count}" for key, count in sorted(self.per_phase_mode.items()))
        statuses = " ".join(f"{status}={count}" for status, count in sorted(self.statuses.items()))
        slowest = " ".join(
            f"{label!r}={self.per_operation[label]}/{seconds:.1f}s"
            for label, seconds in self.per_operation_seconds.most_common(5)
        )
        return (
            f"SCHEMATHESIS phases: {phases}\nSCHEMATHESIS statuses: {statuses}\n"
            f"SCHEMATHESIS slowest operations (cases/seconds): {slowest}"
        )


_STATS = pytest.StashKey[GateStats]()


def _stats(config) -> GateStats:
    if _STATS not in config.stash:
        config.stash[_STATS] = GateStats()
    return config.stash[_STATS]


@pytest.fixture(scope="session")
def gate_stats(pytestconfig) -> GateStats:
    return _stats(pytestconfig)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    if not collector.nodeid.split("::")[0].endswith("gates/test_schemathesis.py"):
        return (yield)
    started = time.monotonic()
    try:
        return (yield)
    finally:
        _stats(collector.config).collect_seconds += time.monotonic() - started


def pytest_terminal_summary(terminalreporter, config):
    stats = config.stash.get(_STATS, None)
    if stats is None or not stats.cases:
        return
    terminalreporter.write_sep("-", "schemathesis gate")
    terminalreporter.write_line(stats.summary())
    terminalreporter.write_line(stats.details())


@pytest.fixture(scope="module")
def gate_demo(django_db_setup, django_db_blocker):
    """`seed_demo --json`, seeded once for the module and rolled back at its end."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            out = io.StringIO()
            call_command("seed_demo", "--json", stdout=out, stderr=io.StringIO())
            yield json.loads(out.getvalue())
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            for connection in connections.all():
                connection.close_if_unusable_or_obsolete()
