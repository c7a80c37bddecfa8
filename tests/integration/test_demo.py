"""seed_demo's "loverescue" key: idempotent, working credentials, realistic data with a RISK episode."""

from __future__ import annotations

import io
import json

import pytest
from django.apps import apps
from django.core.management import call_command

from audit.models import AuditEvent
from integration import demo
from integration.models import Alert, JournalEntry, TherapistClientLink
from tests.fixtures.seeding import shared_first_run

pytestmark = pytest.mark.django_db


def seed() -> dict:
    out, err = io.StringIO(), io.StringIO()
    call_command("seed_demo", "--json", stdout=out, stderr=err)
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def first_run(django_db_setup, django_db_blocker) -> dict:
    """The output of one first `seed_demo --json`, shared by this module's tests (tests/fixtures/seeding.py)."""
    yield from shared_first_run(django_db_blocker, seed)


def counts() -> dict[str, int]:
    models = list(apps.get_app_config("integration").get_models())
    result = {model.__name__: model.objects.count() for model in models}
    result["AuditEvent"] = AuditEvent.objects.count()
    return result


def test_second_run_creates_nothing_and_prints_the_same(first_run):
    first = first_run
    before = counts()
    second = seed()
    assert second == first
    assert counts() == before

    value = first["loverescue"]
    assert set(value) == {"apiKey", "apiSecret", "therapistId", "clients", "coupleId", "clientLogin"}
    assert set(value["clients"]) == {"basic", "standard", "full", "revoked"}
    assert set(value["clientLogin"]) == {"username", "password"}
    assert value["apiKey"] == demo.DEMO_API_KEY and value["apiSecret"] == demo.DEMO_API_SECRET
    # About 90 days of data for each client.
    assert before["CheckIn"] > 4 * 60 and before["ActivityEntry"] > 4 * 50 and before["Assessment"] >= 15


def test_demo_data_through_the_apis(first_run, client):
    value = first_run["loverescue"]
    ids = value["clients"]
    levels = {
        str(link.client_id): (link.permission_level, link.has_consent)
        for link in TherapistClientLink.objects.filter(therapist_id=value["therapistId"])
    }
    assert levels == {
        ids["basic"]: ("BASIC", True),
        ids["standard"]: ("STANDARD", True),
        ids["full"]: ("FULL", True),
        ids["revoked"]: ("STANDARD", False),
    }

    # The active RISK episode of the standard client, arisen from its check-ins.
    risk = Alert.objects.get(client_id=ids["standard"], alert_type="RISK", resolved_at__isnull=True)
    assert risk.metadata["daysBelow"] >= 5 and risk.metadata["currentMood"] <= 3
    hidden = JournalEntry.objects.get(client_id=ids["full"], therapist_hidden=True)

    # The printed partner credentials work.
    auth = client.post(
        "/api/integration/auth",
        {"apiKey": value["apiKey"], "apiSecret": value["apiSecret"], "therapistId": value["therapistId"]},
        content_type="application/json",
    )
    assert auth.status_code == 200, auth.content
    headers = {"HTTP_AUTHORIZATION": f"Bearer {auth.json()['token']}"}
    listing = client.get("/api/integration/clients", **headers)
    assert listing.status_code == 200
    assert {c["id"] for c in listing.json()["clients"]} == {ids["basic"], ids["standard"], ids["full"]}
    alerts = client.get("/api/integration/alerts", {"type": "RISK"}, **headers).json()["alerts"]
    assert [a["clientId"] for a in alerts] == [ids["standard"]]
    revoked = client.get(f"/api/integration/clients/{ids['revoked']}/progress", **headers)
    assert revoked.status_code == 403 and revoked.json()["code"] == "NO_CONSENT"
    progress = client.get(f"/api/integration/clients/{ids['full']}/progress", **headers)
    assert progress.status_code == 200
    assert hidden.text not in progress.content.decode()
    dynamics = client.get(f"/api/integration/couples/{value['coupleId']}/dynamics", **headers)
    assert dynamics.status_code == 200

    # The client login works on the app API.
    token = client.post("/api/v1/auth/token", value["clientLogin"], content_type="application/json")
    assert token.status_code == 200
    links = client.get("/api/app/therapist-links", HTTP_AUTHORIZATION=f"Bearer {token.json()['access_token']}")
    assert links.status_code == 200
    assert [link["therapist"]["id"] for link in links.json()["links"]] == [value["therapistId"]]
