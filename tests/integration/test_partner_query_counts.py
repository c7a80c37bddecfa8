"""GET clients, alerts and outcomes run the same number of queries for 1 and for 200 consented clients
(no per-client lookups), with every kind of data the responses read present for each client."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from core.time import utc_now
from integration.models import (
    ActivityEntry,
    Alert,
    AlertRecipient,
    Assessment,
    CheckIn,
    Client,
    Couple,
    CourseProgress,
    TherapistClientLink,
)
from tests.integration.factories import make_partner, make_therapist

pytestmark = pytest.mark.django_db

BASE = "/api/integration"
LEVELS = ("BASIC", "STANDARD", "FULL")


def build_caseload(n: int, tag: str):
    """A therapist with `n` consented clients (levels cycling), each with check-ins, activities, two
    assessment types, a course, alerts of every type (one read), and couples between neighbours; plus a
    revoked client, so filtering has something to exclude."""
    therapist = make_therapist()
    partner = make_partner(therapists=[therapist])
    now = utc_now()
    today = now.date()
    users = User.objects.bulk_create([User(username=f"{tag}-{i}") for i in range(n + 1)])
    clients = Client.objects.bulk_create(
        [
            Client(user=u, first_name=f"F{i}", last_name=f"L{i}", email=f"{tag}{i}@example.com")
            for i, u in enumerate(users)
        ]
    )
    revoked = clients.pop()
    TherapistClientLink.objects.bulk_create(
        [
            TherapistClientLink(therapist=therapist, client=c, permission_level=LEVELS[i % 3], consent_granted_at=now)
            for i, c in enumerate(clients)
        ]
        + [
            TherapistClientLink(
                therapist=therapist,
                client=revoked,
                permission_level="FULL",
                consent_granted_at=now,
                consent_revoked_at=now,
            )
        ]
    )
    CheckIn.objects.bulk_create(
        [CheckIn(client=c, date=today - timedelta(days=d), mood=5 + d, closeness=5) for c in clients for d in range(2)]
    )
    ActivityEntry.objects.bulk_create(
        [ActivityEntry(client=c, date=today - timedelta(days=d), activity="a") for c in clients for d in range(2)]
    )
    Assessment.objects.bulk_create(
        [
            Assessment(client=c, type=t, score={"score": 50}, completed_at=now)
            for c in clients
            for t in ("gottman_ratio", "love_language", "gottman_ratio")
        ]
    )
    CourseProgress.objects.bulk_create(
        [CourseProgress(client=c, current_week=1 + i % 12, is_active=i % 2 == 0) for i, c in enumerate(clients)]
    )
    alerts = Alert.objects.bulk_create(
        [
            Alert(
                client=c,
                alert_type=t,
                severity="LOW",
                rule=f"r_{t}",
                episode_key="1",
                required_level="STANDARD" if t in ("CRISIS", "RISK") else "BASIC",
                message="m",
                created_at=now - timedelta(minutes=k),
            )
            for c in clients + [revoked]
            for k, t in enumerate(("CRISIS", "RISK", "MILESTONE", "STAGNATION"))
        ]
    )
    AlertRecipient.objects.bulk_create(
        [AlertRecipient(alert=a, therapist=therapist, read_at=now) for a in alerts if a.alert_type == "RISK"]
    )
    Couple.objects.bulk_create([Couple(partner1=clients[i], partner2=clients[i + 1]) for i in range(0, n - 1, 2)])
    Couple.objects.create(partner1=clients[0], partner2=revoked)
    return therapist, partner


def _count(client, path, headers, params=None) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, params or {}, **headers)
    assert response.status_code == 200, response.content
    return len(queries.captured_queries), response.json()


@pytest.mark.parametrize(
    "path,params",
    [
        ("/clients", None),
        ("/alerts", None),
        ("/alerts", {"type": "CRISIS", "unreadOnly": "true", "limit": "500"}),
        ("/outcomes", None),
    ],
)
def test_query_count_is_the_same_for_1_and_200_clients(client, settings, path, params):
    settings.BODY_CACHE_SECONDS = (
        0  # the bodies computed each time (a served /clients or /outcomes: test_caseload_cache)
    )
    small_therapist, small_partner = build_caseload(1, "small")
    large_therapist, large_partner = build_caseload(200, "large")
    # Warm-up (content types, first-use lookups) so both measured requests are alike.
    client.get(BASE + path, params or {}, **small_partner.headers(small_therapist))
    small, small_body = _count(client, BASE + path, small_partner.headers(small_therapist), params)
    large, large_body = _count(client, BASE + path, large_partner.headers(large_therapist), params)
    assert small == large, (small, large)
    assert small <= 8  # auth (2) + the endpoint's own queries + the access-log row
    # The large caseload really was served in full.
    if path == "/clients":
        assert large_body["total"] == 200 and len(large_body["clients"]) == 200
        assert sum(1 for c in large_body["clients"] if c["couple"] is not None) == 200
    elif path == "/outcomes":
        assert large_body["outcomes"]["summary"]["totalClients"] == 200
        assert all(row["assessmentTypes"] == 2 for row in large_body["outcomes"]["clients"])
    elif params is None:
        # 4 types for STANDARD/FULL clients, 2 for BASIC; limit 100 by default.
        assert len(large_body["alerts"]) == 100
        assert large_body["total"] == 67 * 2 + 133 * 4
        assert large_body["unreadCount"] == large_body["total"] - 133
    else:
        assert large_body["total"] == 133 and large_body["unreadCount"] == 133
