"""The partner API test world, shared by the partner API test modules: a therapist, their partner, one
client per consent case with about two weeks of data each, and the pinned clock (`now` fixture).

Every date in the data is relative to `now`, so no test depends on when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest

from core.time import utc_now
from integration.models import (
    ActivityEntry,
    Alert,
    Assessment,
    CheckIn,
    CourseProgress,
    JournalEntry,
    RatioEntry,
    TherapistTask,
    WeeklyStrategy,
)
from integration.selectors import common
from tests.integration.factories import link, make_client, make_partner, make_therapist

BASE = "/api/integration"
CLIENTS = f"{BASE}/clients"
ALERTS = f"{BASE}/alerts"
OUTCOMES = f"{BASE}/outcomes"
WEBHOOK = f"{BASE}/webhook/register"
HIDDEN_MARKER = "HIDDEN-JOURNAL-7f3a9c-never-shown"
VISIBLE_MARKER = "visible journal entry 41b2"


@pytest.fixture
def now(monkeypatch) -> datetime:
    """Pin the partner API's clock (integration.selectors.common.utc_now) to one instant for the test."""
    pinned = utc_now().replace(hour=12, minute=0, second=0, microsecond=0)
    monkeypatch.setattr(common, "utc_now", lambda: pinned)
    return pinned


_alert_seq = iter(range(1, 10**9))


def make_alert(client, alert_type="MILESTONE", *, severity=None, created_at=None, metadata=None) -> Alert:
    required = "STANDARD" if alert_type in ("CRISIS", "RISK") else "BASIC"
    default_severity = {"CRISIS": "CRITICAL", "RISK": "HIGH", "STAGNATION": "MEDIUM", "MILESTONE": "LOW"}
    return Alert.objects.create(
        client=client,
        alert_type=alert_type,
        severity=severity or default_severity[alert_type],
        rule=f"test_{alert_type.lower()}",
        episode_key=str(next(_alert_seq)),
        required_level=required,
        message=f"{alert_type.title()} alert",
        metadata=metadata or {"n": 1},
        created_at=created_at or utc_now(),
    )


def populate(client, today: date, *, therapist=None) -> None:
    """About two weeks of app data for `client`, including a therapist-hidden journal entry."""
    noon = datetime(today.year, today.month, today.day, 12, tzinfo=UTC)
    for back in range(10):
        day = today - timedelta(days=back)
        CheckIn.objects.create(client=client, date=day, mood=6 + back % 3, closeness=5)
        RatioEntry.objects.create(client=client, date=day, positive=5, negative=back % 2)
        ActivityEntry.objects.create(client=client, date=day, activity="love_map_quiz")
    Assessment.objects.create(
        client=client,
        type="attachment",
        score={"style": "anxious", "anxiety": 4.2, "avoidance": 2.1},
        responses={"q1": 4, "q2": 2},
        completed_at=noon - timedelta(days=20),
    )
    Assessment.objects.create(
        client=client, type="gottman_ratio", score={"score": 60.0}, completed_at=noon - timedelta(days=5)
    )
    JournalEntry.objects.create(client=client, text=VISIBLE_MARKER, created_at=noon - timedelta(days=2))
    JournalEntry.objects.create(
        client=client, text=HIDDEN_MARKER, therapist_hidden=True, created_at=noon - timedelta(days=1)
    )
    CourseProgress.objects.create(client=client, current_week=3, is_active=True)
    WeeklyStrategy.objects.create(
        client=client, week_number=1, theme="Week one", completed_days=7, completed_at=noon - timedelta(days=14)
    )
    WeeklyStrategy.objects.create(
        client=client, week_number=2, theme="Week two", completed_days=7, completed_at=noon - timedelta(days=7)
    )
    WeeklyStrategy.objects.create(client=client, week_number=3, theme="Week three", completed_days=2)
    for alert_type in ("CRISIS", "RISK", "MILESTONE", "STAGNATION"):
        make_alert(client, alert_type, created_at=noon - timedelta(hours=1))
    if therapist is not None:
        TherapistTask.objects.create(therapist=therapist, client=client, description="Read chapter 1")


CASES = ("BASIC", "STANDARD", "FULL", "revoked", "unconsented", "unlinked", "other_therapist", "other_partner")


@dataclass
class World:
    therapist: object
    partner: object
    other_therapist: object
    other_partner: object
    clients: dict = field(default_factory=dict)

    def headers(self, case: str) -> dict:
        if case == "other_partner":
            return self.other_partner.headers(self.other_therapist)
        return self.partner.headers(self.therapist)


def build_world(today: date) -> World:
    """A therapist T (partner P) and one client per case:
    BASIC/STANDARD/FULL consented to T; revoked (STANDARD, revoked); unconsented (link, never consented);
    unlinked; other_therapist (FULL, consented to T2 only); other_partner (FULL, consented to T; the
    request comes from partner P2 acting for T2)."""
    therapist = make_therapist()
    other_therapist = make_therapist("Olga", "Other", email="olga@example.com")
    world = World(
        therapist=therapist,
        partner=make_partner(therapists=[therapist]),
        other_therapist=other_therapist,
        other_partner=make_partner(therapists=[other_therapist]),
    )
    for case in CASES:
        client = make_client(case.title(), "Client")
        world.clients[case] = client
        if case in ("BASIC", "STANDARD", "FULL"):
            link(therapist, client, case)
        elif case == "revoked":
            link(therapist, client, "STANDARD", revoked=True)
        elif case == "unconsented":
            link(therapist, client, "FULL", consent=False)
        elif case == "other_therapist":
            link(other_therapist, client, "FULL")
        elif case == "other_partner":
            link(therapist, client, "FULL")
        populate(client, today, therapist=therapist)
    return world


@pytest.fixture
def world(now) -> World:
    return build_world(now.date())


def assert_error(response, status: int, code: str, message: str | None = None):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    if message is not None:
        assert body["error"] == message


NO_CONSENT = "Client has not granted consent to this therapist"
TOO_LOW = "Client's permission level too low for this data"
