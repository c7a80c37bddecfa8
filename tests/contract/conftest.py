"""Fixtures of the contract tests: the demo data, seeded once per module.

The seed runs inside a transaction opened for the module and rolled back at its end, so nothing stays
in the test database for other modules; each test runs in a savepoint inside it (pytest-django `db`).
"""

from __future__ import annotations

import pytest
from django.db import connections, transaction

from tests.contract.helpers import seed_demo


@pytest.fixture(scope="module")
def demo_module(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            from django.utils import timezone

            seeded_at = timezone.now()
            yield {"demo": seed_demo(), "seeded_at": seeded_at}
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            for connection in connections.all():
                connection.close_if_unusable_or_obsolete()


@pytest.fixture
def demo(demo_module, db, frozen_ratelimit_clock):
    """The `seed_demo --json` output; the rate-limit clock is pinned (no window edge inside a test)."""
    return demo_module["demo"]
