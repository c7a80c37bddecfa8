"""The LoveRescue reads stay lean without changing a byte: timestamps rendered by the database match
core.time.iso_utc exactly, only rendered encrypted columns are decrypted, the couple lookup picks the
same couple (active first, then newest) with non-consented members withheld, and the outputs' compiled
(and hand-written caseload) renderers give exactly DRF's field-by-field rendering of their declared
fields (core.serializers.field_by_field_rendering), for every partner and app response."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from core import encryption
from core.actors import Actor
from core.serializers import field_by_field_rendering
from core.time import iso_utc, utc_now
from integration.api import app_serializers as app_outputs
from integration.api import partner_outputs
from integration.api.partner_outputs import ClientListResponseSerializer
from integration.models import Couple, CourseProgress, TherapistClientLink
from integration.selectors import app as app_selectors
from integration.selectors.clients import client_list
from integration.services import client_data
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
    # Cleo: the newest active couple; the outsider (no consent here) is neither named nor identified.
    assert rows["Cleo"]["couple"] == {
        "id": str(newest_active.pk),
        "status": "active",
        "partner1": {"id": None, "withheld": True},
        "partner2": {"id": str(cleo.pk), "firstName": "Cleo", "lastName": "C"},
    }


# --- The compiled renderers give exactly DRF's rendering of the declared fields -------------------


@pytest.mark.parametrize("case", ["BASIC", "STANDARD", "FULL"])
def test_every_partner_body_is_the_declared_fields_rendering(client, now, case):
    world = build_world(now.date())
    target = world.clients[case]
    couple = make_couple(target, world.clients["FULL" if case != "FULL" else "STANDARD"])
    # Caseload rows the world lacks: no course at all (nulls, false), and a finished course.
    link(world.therapist, make_client("No", "Course"), case)
    finished = make_client("Done", "Course")
    link(world.therapist, finished, case)
    CourseProgress.objects.create(client=finished, current_week=12, is_active=False, completed_at=now)
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
    with field_by_field_rendering():
        for path in paths:
            assert compiled[path].status_code == 200, compiled[path].content
            assert compiled[path].content == client.get(path, **world.headers(case)).content, path
        assert read.content == client.post(f"/api/integration/alerts/{alert.pk}/read", **world.headers(case)).content


def test_report_and_task_bodies_are_the_declared_fields_rendering(now):
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
    with field_by_field_rendering():
        reference = (
            partner_outputs.SessionPrepResponseSerializer(report).data,
            partner_outputs.AssignResponseSerializer({"message": "Activity assigned", "task": task}).data,
        )
    assert compiled == reference
    assert list(compiled[0]["report"])[:5] == ["id", "therapistId", "clientId", "reportDate", "lastSessionDate"]


def test_every_app_body_is_the_declared_fields_rendering(now):
    """/api/app/...: each output rendered from what its service or selector returns, both ways."""
    world = build_world(now.date())
    jane = world.clients["STANDARD"]
    actor = Actor.client(jane.pk)
    day = now.date()
    checkin, _ = client_data.checkin_record(client=jane, date=day, mood=7, closeness=6, crisis=False, actor=actor)
    ratios = [
        client_data.ratio_record(client=jane, date=day, positive=25, negative=4, actor=actor)[0],
        client_data.ratio_record(client=jane, date=day - timedelta(days=1), positive=3, negative=0, actor=actor)[0],
    ]
    CourseProgress.objects.update_or_create(client=jane, defaults={"current_week": 1})
    in_course = client_data.activity_record(client=jane, date=day, activity="w1", week_number=1, actor=actor)
    plain = client_data.activity_record(client=jane, date=day, activity="quiz", week_number=None, actor=actor)
    assessment = client_data.assessment_record(
        client=jane,
        type="attachment",
        score={"style": "secure", "anxiety": 2.5, "avoidance": 2},
        responses=None,
        actor=actor,
    )
    journal = client_data.journal_record(client=jane, text="private", therapist_hidden=True, crisis=False, actor=actor)
    for due in (day, None):
        task_assign(
            therapist=world.therapist,
            client=jane,
            partner=world.partner.partner,
            description="Love map",
            due_date=due,
            actor=Actor.system("tests"),
        )
    first_task = app_selectors.client_tasks(client=jane).last()
    done = client_data.task_complete(client=jane, task_id=first_task.pk, actor=actor)
    links = list(app_selectors.client_links(client=jane))
    tasks = list(app_selectors.client_tasks(client=jane))
    assert {task.due_date for task in tasks} >= {day, None} and any(task.completed_at for task in tasks)

    def bodies() -> list:
        return [
            app_outputs.CheckInOutput(checkin).data,
            *(app_outputs.RatioOutput(entry).data for entry in ratios),
            app_outputs.ActivityOutput(in_course).data,
            app_outputs.ActivityOutput(plain).data,
            app_outputs.AssessmentOutput(assessment).data,
            app_outputs.JournalOutput(journal).data,
            app_outputs.LinkListOutput({"links": links}).data,
            app_outputs.LinkUpdateOutput({"link": links[0]}).data,
            app_outputs.TaskListOutput({"tasks": tasks}).data,
            app_outputs.TaskCompleteOutput({"task": done}).data,
        ]

    compiled = bodies()
    with field_by_field_rendering():
        reference = bodies()
    assert compiled == reference
    # Types too (1 == 1.0 == True in Python): the JSON is the same text.
    assert json.dumps(compiled) == json.dumps(reference)
    assert compiled[1]["ratio"] == 6.3 and compiled[2]["ratio"] is None
    assert compiled[3]["weeklyStrategy"] is not None and compiled[4]["weeklyStrategy"] is None
