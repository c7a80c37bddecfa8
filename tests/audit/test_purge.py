"""Retention: the purge deletes exactly the rows older than AUDIT_RETENTION_YEARS (never less than six),
records that it ran, and is what the Celery beat task calls."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import ProgrammingError

from audit.models import AccessLog, AuditEvent
from audit.services import audit_purge_expired, retention_cutoff
from audit.tasks import purge_expired_audit_rows
from core.time import utc_now

BASE_DIR = Path(settings.BASE_DIR)
AGES = {
    "now": relativedelta(),
    "5y": relativedelta(years=5),
    "6y-1d": relativedelta(years=6, days=-1),  # a day short of six years: kept
    "6y+1d": relativedelta(years=6, days=1),  # a day past six years: purged
    "10y": relativedelta(years=10),
}


def _seed(now: datetime) -> dict[str, tuple[int, int]]:
    """One AccessLog and one AuditEvent per age; returns label -> (access log id, audit event id)."""
    ids = {}
    for label, age in AGES.items():
        created_at = now - age
        log = AccessLog.objects.create(
            created_at=created_at, api="mark", method="GET", path=f"/api/v1/{label}", status_code=200
        )
        event = AuditEvent.objects.create(created_at=created_at, action=f"test.{label}", actor_type="system")
        ids[label] = (log.pk, event.pk)
    return ids


def _surviving(ids: dict[str, tuple[int, int]]) -> tuple[set[str], set[str]]:
    logs = set(AccessLog.objects.values_list("pk", flat=True))
    events = set(AuditEvent.objects.values_list("pk", flat=True))
    return (
        {label for label, (log_id, _) in ids.items() if log_id in logs},
        {label for label, (_, event_id) in ids.items() if event_id in events},
    )


@pytest.mark.django_db
def test_purge_removes_exactly_rows_older_than_six_years():
    now = utc_now()
    ids = _seed(now)

    deleted = audit_purge_expired(now=now)

    assert deleted == {"accesslog": 2, "auditevent": 2}
    kept = {"now", "5y", "6y-1d"}
    assert _surviving(ids) == (kept, kept)


@pytest.mark.django_db
def test_longer_retention_purges_less(settings):
    settings.AUDIT_RETENTION_YEARS = 8
    now = utc_now()
    ids = _seed(now)

    deleted = audit_purge_expired(now=now)

    assert deleted == {"accesslog": 1, "auditevent": 1}
    kept = {"now", "5y", "6y-1d", "6y+1d"}
    assert _surviving(ids) == (kept, kept)


@pytest.mark.django_db
def test_purge_in_batches_deletes_everything_expired(monkeypatch):
    monkeypatch.setattr("audit.services.PURGE_BATCH", 2)
    now = utc_now()
    old = now - relativedelta(years=7)
    AccessLog.objects.bulk_create(
        AccessLog(created_at=old, api="mark", method="GET", path="/api/v1/x", status_code=200) for _ in range(5)
    )
    assert audit_purge_expired(now=now) == {"accesslog": 5, "auditevent": 0}
    assert AccessLog.objects.count() == 0


def test_retention_cutoff_follows_setting(settings):
    now = utc_now()
    assert retention_cutoff(now) == now - relativedelta(years=6)
    settings.AUDIT_RETENTION_YEARS = 9
    assert retention_cutoff(now) == now - relativedelta(years=9)


@pytest.mark.django_db
def test_purge_records_a_retention_purge_event():
    now = utc_now()
    _seed(now)

    audit_purge_expired(now=now)

    event = AuditEvent.objects.get(action="audit.retention_purge")
    assert event.actor_type == "system"
    assert event.metadata == {"cutoff": (now - relativedelta(years=6)).isoformat(), "accesslog": 2, "auditevent": 2}
    assert event.created_at >= now


@pytest.mark.django_db
def test_celery_task_runs_the_purge():
    now = utc_now()
    ids = _seed(now)

    result = purge_expired_audit_rows.apply()

    assert result.successful()
    assert result.get() == {"accesslog": 2, "auditevent": 2}
    kept = {"now", "5y", "6y-1d"}
    assert _surviving(ids) == (kept, kept)
    assert AuditEvent.objects.filter(action="audit.retention_purge").count() == 1


def test_database_refuses_a_purge_below_the_six_year_floor(require_postgres, settings):
    """Whatever the application computes (here a retention of 4 years, which settings would refuse), the
    PostgreSQL trigger refuses to delete a row younger than six years."""
    settings.AUDIT_RETENTION_YEARS = 4
    now = utc_now()
    ids = _seed(now)

    with pytest.raises(ProgrammingError, match="pgtrigger: Cannot delete rows"):
        audit_purge_expired(now=now)

    # The refused batch rolled back whole: not even the rows past six years in it went.
    assert _surviving(ids) == (set(AGES), set(AGES))


def _django_setup(retention: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AUDIT_RETENTION_YEARS": retention, "DJANGO_SETTINGS_MODULE": "config.settings"}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('settings loaded')"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_settings_refuse_retention_below_six_years():
    refused = _django_setup("5")
    assert refused.returncode != 0
    assert "ImproperlyConfigured" in refused.stderr
    assert "AUDIT_RETENTION_YEARS may not be below 6" in refused.stderr

    accepted = _django_setup("6")  # the control: the same command loads with the floor itself
    assert accepted.returncode == 0, accepted.stderr
    assert "settings loaded" in accepted.stdout
