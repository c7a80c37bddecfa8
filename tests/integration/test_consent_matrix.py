"""Every partner endpoint x every consent situation: the status, the error code and the exact set of
top-level keys (and, for list endpoints, whether the client appears at all).

Cases (see tests/integration/partner_world.build_world): a client consented at BASIC, STANDARD or FULL; a revoked link;
a link never consented; no link; another therapist's client; and a request from another partner (acting
for another therapist) about our therapist's FULL client.
"""

from __future__ import annotations

import pytest

from tests.integration import partner_world
from tests.integration.factories import make_client, make_couple
from tests.integration.partner_world import CASES, build_world

pytestmark = pytest.mark.django_db

now = partner_world.now  # the shared fixture, made visible to this module's tests

BASE = "/api/integration"
CONSENTED = ("BASIC", "STANDARD", "FULL")
REFUSED = tuple(c for c in CASES if c not in CONSENTED)

PROGRESS_KEYS = {
    "BASIC": {"clientId", "assessmentScores", "activityCompletion", "courseProgress"},
    "STANDARD": {"clientId", "assessmentScores", "activityCompletion", "courseProgress", "moodTrends", "ratioTrends"},
    "FULL": {
        "clientId",
        "assessmentScores",
        "activityCompletion",
        "courseProgress",
        "moodTrends",
        "ratioTrends",
        "individualResponses",
        "journalEntries",
    },
}
SIDE_KEYS = {
    "BASIC": {"user", "assessmentScores", "activityDays"},
    "STANDARD": {"user", "assessmentScores", "activityDays", "moodAvg"},
    "FULL": {"user", "assessmentScores", "activityDays", "moodAvg"},
}
ALERT_TYPES_SEEN = {
    "BASIC": {"MILESTONE", "STAGNATION"},
    "STANDARD": {"CRISIS", "RISK", "MILESTONE", "STAGNATION"},
    "FULL": {"CRISIS", "RISK", "MILESTONE", "STAGNATION"},
}
NO_CONSENT = (403, "NO_CONSENT")


def _expect_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "code"} and body["code"] == code


@pytest.fixture
def world(now):
    return build_world(now.date())


def _call(client, world, case, endpoint):
    target = world.clients[case]
    headers = world.headers(case)
    if endpoint == "clients":
        return client.get(f"{BASE}/clients", **headers)
    if endpoint == "progress":
        return client.get(f"{BASE}/clients/{target.pk}/progress", **headers)
    if endpoint == "session-prep":
        return client.get(f"{BASE}/clients/{target.pk}/session-prep", **headers)
    if endpoint == "assign":
        return client.post(
            f"{BASE}/clients/{target.pk}/assign",
            {"taskDescription": "Love map exercise"},
            content_type="application/json",
            **headers,
        )
    if endpoint == "dynamics":
        # The case client with a partner who has no link to anyone.
        couple = make_couple(target, make_client("Unlinked", "Partner"))
        return client.get(f"{BASE}/couples/{couple.pk}/dynamics", **headers)
    if endpoint == "alerts":
        return client.get(f"{BASE}/alerts", {"limit": "500"}, **headers)
    if endpoint in ("alert-read-milestone", "alert-read-crisis"):
        alert_type = "MILESTONE" if endpoint.endswith("milestone") else "CRISIS"
        alert = target.alerts.get(alert_type=alert_type)
        return client.post(f"{BASE}/alerts/{alert.pk}/read", **headers)
    if endpoint == "outcomes":
        return client.get(f"{BASE}/outcomes", **headers)
    raise AssertionError(endpoint)


ENDPOINTS = (
    "clients",
    "progress",
    "session-prep",
    "assign",
    "dynamics",
    "alerts",
    "alert-read-milestone",
    "alert-read-crisis",
    "outcomes",
)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_matrix(client, world, endpoint, case):
    target_id = str(world.clients[case].pk)
    consented = case in CONSENTED
    response = _call(client, world, case, endpoint)

    if endpoint == "clients":
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"clients", "total"}
        assert (target_id in {c["id"] for c in body["clients"]}) is consented
        return

    if endpoint == "outcomes":
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"outcomes"} and set(body["outcomes"]) == {"summary", "clients"}
        assert (target_id in {c["clientId"] for c in body["outcomes"]["clients"]}) is consented
        return

    if endpoint == "alerts":
        assert response.status_code == 200, response.content
        body = response.json()
        assert set(body) == {"alerts", "unreadCount", "total"}
        seen = {a["alertType"] for a in body["alerts"] if a["clientId"] == target_id}
        assert seen == (ALERT_TYPES_SEEN[case] if consented else set())
        return

    if endpoint == "alert-read-milestone":
        if consented:
            assert response.status_code == 200, response.content
            assert set(response.json()) == {"alert"}
        else:
            _expect_error(response, 404, "NOT_FOUND")
        return

    if endpoint == "alert-read-crisis":
        if case in ("STANDARD", "FULL"):
            assert response.status_code == 200, response.content
            assert set(response.json()) == {"alert"}
        else:  # BASIC cannot see CRISIS alerts: not found, like any invisible alert
            _expect_error(response, 404, "NOT_FOUND")
        return

    if not consented:
        _expect_error(response, *NO_CONSENT)
        assert response.json()["error"] == "Client has not granted consent to this therapist"
        return

    body = response.json()
    if endpoint == "progress":
        assert response.status_code == 200, response.content
        assert set(body) == PROGRESS_KEYS[case]
    elif endpoint == "session-prep":
        if case == "BASIC":
            _expect_error(response, 403, "INSUFFICIENT_PERMISSION")
            assert body["error"] == "Client's permission level too low for this data"
        else:
            assert response.status_code == 200, response.content
            assert set(body) == {"report"}
            assert {"id", "therapistId", "clientId", "reportDate", "lastSessionDate"} <= set(body["report"])
    elif endpoint == "assign":
        assert response.status_code == 201, response.content
        assert set(body) == {"message", "task"}
    elif endpoint == "dynamics":
        assert response.status_code == 200, response.content
        assert set(body) == {"couple", "consent", "partner1", "partner2", "matchups", "coupleProfile"}
        assert body["consent"] == {"partner1": True, "partner2": False}
        assert set(body["partner1"]) == SIDE_KEYS[case]
        assert set(body["partner2"]) == {"withheld", "reason"}
        assert body["matchups"] == [] and body["coupleProfile"] is None
    else:
        raise AssertionError(endpoint)


@pytest.mark.parametrize("case", CASES)
def test_matrix_webhook_register_is_per_partner_not_per_client(client, world, settings, case):
    """Registration concerns the partner only: every partner with a valid token may register."""
    settings.WEBHOOK_REQUIRE_HTTPS = False
    response = client.post(
        f"{BASE}/webhook/register",
        {"webhookUrl": "http://127.0.0.1:9/hook", "events": ["alert.created"]},
        content_type="application/json",
        **world.headers(case),
    )
    assert response.status_code == 200, response.content
    assert set(response.json()) == {"message", "webhookUrl", "webhookSecret", "events"}
