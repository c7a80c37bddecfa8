"""The partner list reads stay lean without changing a byte: timestamps rendered by the database match
core.time.iso_utc exactly, only rendered encrypted columns are decrypted, the couple lookup picks the
same couple (active first, then newest) with non-consented members withheld, and the outputs' compiled
(and hand-written caseload) renderers give exactly DRF's rendering of their declared fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from core import encryption
from core.actors import Actor
from core.time import iso_utc, utc_now
from integration.api import partner_outputs
from integration.api.partner_outputs import ClientListResponseSerializer
from integration.models import Couple, TherapistClientLink
from integration.selectors.clients import client_list
from integration.services.assignments import task_assign
from integration.services.reports import session_prep_report_generate
from tests.integration import partner_world
from tests.integration.factories import link, make_client, make_couple, make_therapist
from tests.integration.partner_world import build_world

pytestmark = pytest.mark.django_db

now = partner_world.now  # the shared fixture, made visible to this module's tests


def rendered_clients(therapist) -> list[dict]:
    """GET /clients' items as the API renders them (selector + output serializer)."""
    rows = client_list(therapist=therapist)
    return ClientListResponseSerializer({"clients": rows, "total": len(rows)}).data["clients"]


@pytest.mark.parametrize(
    "granted",
    [
        datetime(2026, 2, 12, 15, 30, 0, tzinfo=UTC),  # no fraction
        datetime(2026, 2, 12, 15, 30, 59, 999999, tzinfo=UTC),  # truncated, never rounded up
        datetime(2026, 2, 12, 15, 30, 0, 999500, tzinfo=UTC),
        datetime(2026, 2, 12, 15, 30, 0, 1000, tzinfo=UTC),
        datetime(2025, 12, 31, 23, 59, 59, 123456, tzinfo=UTC),
    ],
)
def test_consent_granted_at_renders_exactly_as_iso_utc(granted):
    therapist = make_therapist()
    client = make_client()
    link_ = link(therapist, client, "BASIC")
    TherapistClientLink.objects.filter(pk=link_.pk).update(consent_granted_at=granted)
    [row] = rendered_clients(therapist)
    assert row["consentGrantedAt"] == iso_utc(granted)
    assert row["consentGrantedAt"].endswith("Z") and len(row["consentGrantedAt"]) == 24


def test_only_the_listed_clients_emails_are_decrypted():
    """Couple partners (consented or not) are shown by name or id only: their emails stay encrypted."""
    therapist = make_therapist()
    listed = [make_client(f"F{i}", f"L{i}") for i in range(4)]
    for client in listed:
        link(therapist, client, "STANDARD")
    outsiders = [make_client("Out", f"Sider{i}") for i in range(2)]
    make_couple(listed[0], listed[1])
    make_couple(listed[2], outsiders[0])
    make_couple(outsiders[1], listed[3])
    with mock.patch.object(encryption, "decrypt_str", wraps=encryption.decrypt_str) as decrypt:
        rows = rendered_clients(therapist)
    assert decrypt.call_count == len(listed)
    assert sorted(row["email"] for row in rows) == sorted(c.email for c in listed)


def test_couple_choice_and_withheld_member():
    therapist = make_therapist()
    anna, ben, cleo = make_client("Anna", "A"), make_client("Ben", "B"), make_client("Cleo", "C")
    outsider = make_client("Out", "Sider")
    for client in (anna, ben, cleo):
        link(therapist, client, "BASIC")
    now = utc_now()
    old_active = make_couple(anna, ben)
    newer_inactive = make_couple(anna, cleo)
    newest_active = make_couple(outsider, cleo)
    Couple.objects.filter(pk=old_active.pk).update(created_at=now - timedelta(days=3))
    Couple.objects.filter(pk=newer_inactive.pk).update(created_at=now - timedelta(days=2), status="inactive")
    Couple.objects.filter(pk=newest_active.pk).update(created_at=now - timedelta(days=1))
    rows = {row["firstName"]: row for row in rendered_clients(therapist)}
    # Anna: the older active couple beats the newer inactive one.
    assert rows["Anna"]["couple"] == {
        "id": str(old_active.pk),
        "status": "active",
        "partner1": {"id": str(anna.pk), "firstName": "Anna", "lastName": "A"},
        "partner2": {"id": str(ben.pk), "firstName": "Ben", "lastName": "B"},
    }
    assert rows["Ben"]["couple"]["id"] == str(old_active.pk)
    # Cleo: the newest active couple; the outsider (no consent here) is an id only, never named.
    assert rows["Cleo"]["couple"] == {
        "id": str(newest_active.pk),
        "status": "active",
        "partner1": {"id": str(outsider.pk), "withheld": True},
        "partner2": {"id": str(cleo.pk), "firstName": "Cleo", "lastName": "C"},
    }


# --- The compiled renderers give exactly DRF's rendering of the declared fields -------------------


def _reference_rendering(monkeypatch) -> None:
    """Render every partner output field by field, as DRF does (the schema's own declaration)."""
    monkeypatch.setattr(partner_outputs.PartnerOutput, "to_representation", partner_outputs.PartnerOutput.render_fields)


@pytest.mark.parametrize("case", ["BASIC", "STANDARD", "FULL"])
def test_every_partner_body_is_the_declared_fields_rendering(client, now, monkeypatch, case):
    world = build_world(now.date())
    target = world.clients[case]
    couple = make_couple(target, world.clients["FULL" if case != "FULL" else "STANDARD"])
    alert = target.alerts.order_by("created_at", "id").first()
    client.post(f"/api/integration/alerts/{alert.pk}/read", **world.headers(case))
    paths = [
        "/api/integration/clients",
        f"/api/integration/clients/{target.pk}/progress",
        f"/api/integration/couples/{couple.pk}/dynamics",
        "/api/integration/alerts?limit=500",
        "/api/integration/outcomes",
    ]
    compiled = {path: client.get(path, **world.headers(case)) for path in paths}
    read = client.post(f"/api/integration/alerts/{alert.pk}/read", **world.headers(case))
    _reference_rendering(monkeypatch)
    for path in paths:
        assert compiled[path].status_code == 200, compiled[path].content
        assert compiled[path].content == client.get(path, **world.headers(case)).content, path
    assert read.content == client.post(f"/api/integration/alerts/{alert.pk}/read", **world.headers(case)).content


def test_report_and_task_bodies_are_the_declared_fields_rendering(now, monkeypatch):
    world = build_world(now.date())
    standard = world.clients["STANDARD"]
    report = session_prep_report_generate(
        therapist=world.therapist, client=standard, last_session_date=None, now=now, actor=Actor.system("tests")
    )
    task = task_assign(
        therapist=world.therapist,
        client=standard,
        partner=world.partner.partner,
        description="Love map",
        due_date=now.date(),
        actor=Actor.system("tests"),
    )
    compiled = (
        partner_outputs.SessionPrepResponseSerializer(report).data,
        partner_outputs.AssignResponseSerializer({"message": "Activity assigned", "task": task}).data,
    )
    _reference_rendering(monkeypatch)
    assert compiled == (
        partner_outputs.SessionPrepResponseSerializer(report).data,
        partner_outputs.AssignResponseSerializer({"message": "Activity assigned", "task": task}).data,
    )
    assert list(compiled[0]["report"])[:5] == ["id", "therapistId", "clientId", "reportDate", "lastSessionDate"]
