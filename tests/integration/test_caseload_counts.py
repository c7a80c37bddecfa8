"""The caseload lists' per-client counts (GET /clients `unreadAlerts`, GET /outcomes `crisisAlerts`,
`milestones`, `assessmentTypes`) are grouped queries over the whole caseload (issue 15): each client's
counts follow the level of *this* therapist's link and this therapist's read marks, whatever other
therapists the client is linked to, and clients without consent in force count for nothing."""

from __future__ import annotations

import pytest

from core.time import utc_now
from integration.models import AlertRecipient, Assessment
from tests.integration import partner_world
from tests.integration.factories import link, make_client, make_partner, make_therapist
from tests.integration.partner_world import make_alert

pytestmark = pytest.mark.django_db

now = partner_world.now  # the shared fixture, made visible to this module's tests

BASE = "/api/integration"


@pytest.fixture
def shared():
    """One client linked to a BASIC therapist and a FULL therapist, with a CRISIS (STANDARD data), two
    MILESTONE (BASIC) alerts and two assessment types; the FULL therapist has read one milestone. A
    revoked client of the BASIC therapist has alerts too."""
    basic_therapist, full_therapist = make_therapist("Bea", "Basic"), make_therapist("Fio", "Full")
    partner = make_partner(therapists=[basic_therapist, full_therapist])
    shared_client = make_client("Shared", "Client")
    link(basic_therapist, shared_client, "BASIC")
    link(full_therapist, shared_client, "FULL")
    make_alert(shared_client, "CRISIS")
    read_by_full = make_alert(shared_client, "MILESTONE")
    make_alert(shared_client, "MILESTONE")
    AlertRecipient.objects.create(alert=read_by_full, therapist=full_therapist, read_at=utc_now())
    for kind in ("gottman_ratio", "love_language", "gottman_ratio"):
        Assessment.objects.create(client=shared_client, type=kind, score={"score": 1}, completed_at=utc_now())
    revoked = make_client("Gone", "Client")
    link(basic_therapist, revoked, "FULL", revoked=True)
    make_alert(revoked, "MILESTONE")
    make_alert(revoked, "CRISIS")
    return partner, basic_therapist, full_therapist, shared_client


def _get(client, partner, therapist, path):
    response = client.get(f"{BASE}{path}", **partner.headers(therapist))
    assert response.status_code == 200, response.content
    return response.json()


def test_unread_alerts_follow_this_therapists_level_and_reads(client, now, shared):
    partner, basic_therapist, full_therapist, shared_client = shared
    [basic_item] = _get(client, partner, basic_therapist, "/clients")["clients"]
    [full_item] = _get(client, partner, full_therapist, "/clients")["clients"]
    assert basic_item["id"] == full_item["id"] == str(shared_client.pk)
    # BASIC: both milestones (the FULL therapist's read mark is not this therapist's), never the CRISIS.
    assert basic_item["unreadAlerts"] == 2
    # FULL: the CRISIS and the milestone it has not read.
    assert full_item["unreadAlerts"] == 2
    AlertRecipient.objects.filter(therapist=full_therapist).update(read_at=None)
    [full_item] = _get(client, partner, full_therapist, "/clients")["clients"]
    assert full_item["unreadAlerts"] == 3


def test_outcome_counts_follow_this_therapists_level(client, now, shared):
    partner, basic_therapist, full_therapist, shared_client = shared
    basic = _get(client, partner, basic_therapist, "/outcomes")["outcomes"]
    full = _get(client, partner, full_therapist, "/outcomes")["outcomes"]
    assert basic["clients"] == [
        {
            "clientId": str(shared_client.pk),
            "assessmentTypes": 2,
            "courseWeek": None,
            "courseCompleted": False,
            "crisisAlerts": 0,  # STANDARD data: not counted for a BASIC link
            "milestones": 2,
        }
    ]
    assert full["clients"] == [dict(basic["clients"][0], crisisAlerts=1)]
    # The revoked client's alerts count nowhere.
    assert basic["summary"]["totalClients"] == 1
    assert basic["summary"]["totalMilestones"] == 2 and basic["summary"]["totalCrisisAlerts"] == 0
    assert full["summary"]["totalMilestones"] == 2 and full["summary"]["totalCrisisAlerts"] == 1
