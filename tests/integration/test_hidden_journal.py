"""Journal entries marked therapist-hidden are never returned, at any level, by any endpoint: the marker
text of a hidden entry never appears in any raw response body, while a visible entry's text does appear
where FULL allows it (so the check can fail)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integration.models import JournalEntry, TherapistClientLink
from integration.selectors.progress import client_progress
from tests.integration import partner_world
from tests.integration.factories import make_client, make_couple
from tests.integration.partner_world import HIDDEN_MARKER, VISIBLE_MARKER, build_world

pytestmark = pytest.mark.django_db

now = partner_world.now  # the shared fixture, made visible to this module's tests

BASE = "/api/integration"


@pytest.fixture
def world(now, settings):
    settings.WEBHOOK_REQUIRE_HTTPS = False
    world = build_world(now.date())
    # A hidden entry flagged as a crisis too, and one with the marker in a longer text.
    for case in ("FULL", "STANDARD", "BASIC"):
        JournalEntry.objects.create(
            client=world.clients[case],
            text=f"prefix {HIDDEN_MARKER} suffix",
            therapist_hidden=True,
            crisis=True,
            created_at=now,
        )
    return world


def _bodies(client, world, case: str) -> list[tuple[str, bytes, int]]:
    target = world.clients[case]
    headers = world.headers(case)
    couple = make_couple(target, make_client("Other", "Half"))
    responses = [
        ("clients", client.get(f"{BASE}/clients", **headers)),
        ("progress", client.get(f"{BASE}/clients/{target.pk}/progress", **headers)),
        ("session-prep", client.get(f"{BASE}/clients/{target.pk}/session-prep", **headers)),
        ("dynamics", client.get(f"{BASE}/couples/{couple.pk}/dynamics", **headers)),
        ("alerts", client.get(f"{BASE}/alerts", {"limit": "500"}, **headers)),
        ("outcomes", client.get(f"{BASE}/outcomes", **headers)),
        (
            "assign",
            client.post(
                f"{BASE}/clients/{target.pk}/assign",
                {"taskDescription": "Write in your journal"},
                content_type="application/json",
                **headers,
            ),
        ),
        (
            "webhook",
            client.post(
                f"{BASE}/webhook/register",
                {"webhookUrl": "http://127.0.0.1:9/h", "events": ["alert.created"]},
                content_type="application/json",
                **headers,
            ),
        ),
    ]
    for alert in target.alerts.all():
        responses.append(("alert-read", client.post(f"{BASE}/alerts/{alert.pk}/read", **headers)))
    return [(name, response.content, response.status_code) for name, response in responses]


@pytest.mark.parametrize("case", ["FULL", "STANDARD", "BASIC", "revoked", "other_partner"])
def test_hidden_journal_text_is_in_no_response_body(client, world, case):
    bodies = _bodies(client, world, case)
    for name, content, _status in bodies:
        assert HIDDEN_MARKER.encode() not in content, name
    statuses = dict((name, status) for name, _content, status in bodies)
    if case == "FULL":
        # The endpoints really answered with data, and the visible entry is there.
        assert statuses["progress"] == 200 and statuses["dynamics"] == 200 and statuses["clients"] == 200
        progress = next(content for name, content, _ in bodies if name == "progress")
        assert VISIBLE_MARKER.encode() in progress


def test_full_progress_counts_no_hidden_entry(client, world):
    full = world.clients["FULL"]
    body = client.get(f"{BASE}/clients/{full.pk}/progress", **world.headers("FULL")).json()
    assert [entry["text"] for entry in body["journalEntries"]] == [VISIBLE_MARKER]
    hidden_ids = {str(pk) for pk in JournalEntry.objects.filter(therapist_hidden=True).values_list("pk", flat=True)}
    assert not hidden_ids & {entry["id"] for entry in body["journalEntries"]}


def test_hidden_entries_are_filtered_in_the_database_query(world):
    """The hidden entries are never loaded (and so never decrypted): the query itself excludes them."""
    link = TherapistClientLink.objects.get(therapist=world.therapist, client=world.clients["FULL"])
    with CaptureQueriesContext(connection) as queries:
        progress = client_progress(therapist=world.therapist, link=link)
    journal_sql = [q["sql"] for q in queries.captured_queries if "journalentry" in q["sql"].lower()]
    assert len(journal_sql) == 1 and "therapist_hidden" in journal_sql[0]
    assert len(progress.journal_entries) == 1


def test_hidden_entries_stay_hidden_when_the_flag_is_the_only_difference(client, world):
    """Flipping the flag on the visible entry removes it on the next request."""
    full = world.clients["FULL"]
    JournalEntry.objects.filter(client=full, text__isnull=False, therapist_hidden=False).update(therapist_hidden=True)
    response = client.get(f"{BASE}/clients/{full.pk}/progress", **world.headers("FULL"))
    assert response.json()["journalEntries"] == []
    assert VISIBLE_MARKER.encode() not in response.content
