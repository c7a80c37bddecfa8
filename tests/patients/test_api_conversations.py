"""Mark conversations API through HTTP (spec: mark-assistant-api.md, "Conversations"): list, get, delete and
export; organization scoping and roles, filters and their 400s, flat query counts; and the delete and
export services directly (outbox withdrawal, media files, audit events)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from pypdf import PdfReader
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as accounts_services
from accounts.models import User
from audit.models import AuditEvent
from core.domain import NotFound
from core.time import utc_now
from messaging.models import OutboundMessage
from patients import media, selectors, services
from patients.models import Appointment, Conversation, Message, Patient, Reminder
from patients.services import conversations as conversation_services
from tests.patients.conftest import ACTOR

pytestmark = pytest.mark.django_db

SPEC_ITEM_KEYS = {
    "id", "patient_id", "patient_name", "start_time", "end_time", "language", "message_count", "summary",
}  # fmt: skip
SPEC_DETAIL_KEYS = {"id", "patient_id", "patient_name", "start_time", "end_time", "language", "messages", "metadata"}
SPEC_MESSAGE_KEYS = {"id", "timestamp", "sender", "content", "content_type"}
CATALAN = "Bon dia, voldria canviar la cita de dimarts"
ARABIC = "مرحبا، أريد حجز موعد"
HOUR = timedelta(hours=1)


def _member(username: str, role: str, *organizations) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username + "-123!")
    for organization in organizations:
        accounts_services.membership_set(user=user, organization=organization, role=role, actor=ACTOR)
    return user


def _auth(user: User) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}


def _patient(clinic, name="Ana", **kwargs) -> Patient:
    return services.patient_create(organization=clinic, name=name, actor=ACTOR, **kwargs)


def _conversation(patient, *texts, at=None, language=None) -> Conversation:
    """A closed-or-open conversation of `patient` with `texts` (patient and assistant in turn) from `at`."""
    at = at or utc_now() - timedelta(days=2)
    message = None
    for index, text in enumerate(texts or ("Hola",)):
        sender = "patient" if index % 2 == 0 else "assistant"
        message = services.message_record(
            patient=patient, sender=sender, content=text, now=at + timedelta(minutes=index)
        )
    conversation = message.conversation
    if language:
        Conversation.objects.filter(pk=conversation.pk).update(language=language)
    conversation.refresh_from_db()
    return conversation


def _close(conversation, end):
    conversation.status, conversation.end_time = Conversation.Status.CLOSED, end
    conversation.save(update_fields=["status", "end_time"])


@pytest.fixture
def http(frozen_ratelimit_clock):
    return Client(raise_request_exception=False)


@pytest.fixture
def owner(clinic):
    return _member("owner", "owner", clinic)


@pytest.fixture
def media_root(settings, tmp_path):
    root = tmp_path / "mark-media"
    settings.STORAGES = {
        **settings.STORAGES,
        "mark_media": {**settings.STORAGES["mark_media"], "OPTIONS": {"location": str(root), "base_url": None}},
    }
    return root


def _voice(patient, *, at, transcription=None, duration=3.5) -> Message:
    message = services.message_record(patient=patient, sender="patient", content="", content_type="voice", now=at)
    message.media = media.audio_store(
        organization=patient.organization, fileobj=io.BytesIO(b"OggS" + b"\0" * 60), format="ogg"
    )
    message.media_format, message.media_duration, message.transcription = "ogg", duration, transcription
    message.save(update_fields=["media", "media_format", "media_duration", "transcription"])
    return message


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    return body["error"]


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


# --- List ------------------------------------------------------------------------------------------------


def test_list_answers_the_spec_page_newest_first(http, clinic, owner):
    ana, bea = _patient(clinic, "Ana Puig"), _patient(clinic, "Bea")
    older = _conversation(ana, "Hola", "Hola!", "Vull una cita", at=utc_now() - timedelta(days=3))
    _close(older, older.start_time + 2 * HOUR)
    Conversation.objects.filter(pk=older.pk).update(summary="Appointment scheduling", metadata={"intent": "x"})
    newer = _conversation(bea, "Hi", at=utc_now() - timedelta(days=1))
    response = http.get("/api/v1/conversations", **_auth(owner))
    assert response.status_code == 200, response.content
    body = response.json()
    assert list(body) == ["total", "page", "limit", "data"]
    assert (body["total"], body["page"], body["limit"]) == (2, 1, 20)
    first, second = body["data"]
    assert set(first) == SPEC_ITEM_KEYS and set(second) == SPEC_ITEM_KEYS
    assert [first["id"], second["id"]] == [newer.public_id, older.public_id]
    assert (first["patient_id"], first["patient_name"]) == (bea.public_id, "Bea")
    assert first["end_time"] is None and first["summary"] is None and first["message_count"] == 1
    assert second["end_time"].endswith("Z") and second["summary"] == "Appointment scheduling"
    assert second["message_count"] == 3 and second["language"] == "en"
    assert response["Cache-Control"] == "no-store"


def test_list_message_count_is_the_kept_column_not_a_count(http, clinic, owner):
    conversation = _conversation(_patient(clinic), "one", "two")
    Conversation.objects.filter(pk=conversation.pk).update(message_count=42)
    assert http.get("/api/v1/conversations", **_auth(owner)).json()["data"][0]["message_count"] == 42


def test_list_filters(http, clinic, owner):
    ana, bea = _patient(clinic, "Ana"), _patient(clinic, "Bea")
    base = utc_now().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=10)
    ca = _conversation(ana, CATALAN, at=base, language="ca")
    ar = _conversation(bea, ARABIC, at=base + timedelta(days=2), language="ar")
    es = _conversation(ana, "Hola", at=base + timedelta(days=4), language="es")

    def ids(query: str) -> list[str]:
        response = http.get(f"/api/v1/conversations?{query}", **_auth(owner))
        assert response.status_code == 200, response.content
        return [item["id"] for item in response.json()["data"]]

    assert ids(f"patient_id={ana.public_id}") == [es.public_id, ca.public_id]
    assert ids(f"patient_id={bea.public_id}&language=ar") == [ar.public_id]
    assert ids("language=ca") == [ca.public_id]
    assert ids("patient_id=pat_unknown123") == []
    day = lambda d: (base + timedelta(days=d)).date().isoformat()  # noqa: E731
    assert ids(f"start_date={day(1)}") == [es.public_id, ar.public_id]
    # A date alone as end_date includes that whole day.
    assert ids(f"end_date={day(2)}") == [ar.public_id, ca.public_id]
    assert ids(f"start_date={day(2)}&end_date={day(2)}") == [ar.public_id]
    instant = (base + timedelta(days=2, hours=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"start_date={instant}") == [es.public_id]
    assert ids(f"end_date={instant}") == [ar.public_id, ca.public_id]
    page = http.get("/api/v1/conversations?limit=2&page=2", **_auth(owner)).json()
    assert (page["total"], page["page"], page["limit"], [i["id"] for i in page["data"]]) == (3, 2, 2, [ca.public_id])
    assert http.get("/api/v1/conversations?page=9", **_auth(owner)).json()["data"] == []


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("page=0", "page"),
        ("page=x", "page"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("start_date=yesterday", "start_date"),
        ("end_date=2026-13-01", "end_date"),
        ("start_date=%00", "start_date"),
        ("start_date=2026-03-05&end_date=2026-03-01", "end_date"),
        ("language=" + "x" * 11, "language"),
        ("language=e%00s", "language"),
        ("patient_id=" + "p" * 41, "patient_id"),
        ("patient_id=pat_%00", "patient_id"),
    ],
)
def test_list_bad_parameters_are_400_naming_them(http, clinic, owner, query, parameter):
    error = _error(http.get(f"/api/v1/conversations?{query}", **_auth(owner)), 400)
    assert error["message"].startswith(parameter) or error["details"] == {"parameter": parameter}, error


def _list_queries(http, owner) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = http.get("/api/v1/conversations?limit=100", **_auth(owner))
    assert response.status_code == 200
    return len(queries)


def test_list_query_count_is_flat(http, clinic, owner):
    patients = [_patient(clinic, f"Patient {i}") for i in range(20)]
    for patient in patients[:2]:
        _conversation(patient, "Hola", "Hola!")
    few = _list_queries(http, owner)
    for patient in patients[2:]:
        _conversation(patient, "Hola", "Hola!", "Adeu")
    assert Conversation.objects.filter(organization=clinic).count() == 20
    assert _list_queries(http, owner) == few


# --- Get -------------------------------------------------------------------------------------------------


def test_get_answers_the_spec_shape_with_messages_in_order(http, clinic, owner):
    patient = _patient(clinic, "Núria Puig", preferred_language="ca")
    conversation = _conversation(patient, CATALAN, "Bon dia! Quin dia li aniria bé?", ARABIC)
    response = http.get(f"/api/v1/conversations/{conversation.public_id}", **_auth(owner))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == SPEC_DETAIL_KEYS
    assert (body["id"], body["patient_id"], body["patient_name"]) == (
        conversation.public_id,
        patient.public_id,
        "Núria Puig",
    )
    assert body["language"] == "ca" and body["end_time"] is None and body["metadata"] is None
    assert all(set(message) == SPEC_MESSAGE_KEYS for message in body["messages"])
    assert [m["content"] for m in body["messages"]] == [CATALAN, "Bon dia! Quin dia li aniria bé?", ARABIC]
    assert [m["sender"] for m in body["messages"]] == ["patient", "assistant", "patient"]
    assert {m["content_type"] for m in body["messages"]} == {"text"}
    assert [m["id"] for m in body["messages"]] == list(
        conversation.messages.order_by("created_at", "id").values_list("public_id", flat=True)
    )
    assert body["messages"][0]["timestamp"] < body["messages"][1]["timestamp"]


def test_get_shows_metadata_when_the_conversation_has_it(http, clinic, owner):
    conversation = _conversation(_patient(clinic), "Hola")
    metadata = {"intent": "appointment_scheduling", "sentiment": "positive", "escalated": False}
    Conversation.objects.filter(pk=conversation.pk).update(metadata=metadata)
    assert http.get(f"/api/v1/conversations/{conversation.public_id}", **_auth(owner)).json()["metadata"] == metadata


def test_get_voice_message_content_is_a_signed_url_that_serves_the_audio(http, clinic, owner, media_root):
    patient = _patient(clinic)
    at = utc_now() - HOUR
    _conversation(patient, "Hola", at=at)
    voice = _voice(patient, at=at + timedelta(minutes=5))
    body = http.get(f"/api/v1/conversations/{voice.conversation.public_id}", **_auth(owner)).json()
    message = body["messages"][-1]
    assert (message["id"], message["content_type"]) == (voice.public_id, "voice")
    url = message["content"]
    assert f"/api/v1/messages/{voice.public_id}/audio?" in url and "signature=" in url and "expires=" in url
    audio = http.get(url.removeprefix("http://testserver"))  # no token: the signature is the credential
    assert audio.status_code == 200, audio.content[:200]
    assert b"".join(audio.streaming_content).startswith(b"OggS")


def _get_queries(http, owner, conversation) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = http.get(f"/api/v1/conversations/{conversation.public_id}", **_auth(owner))
    assert response.status_code == 200
    return len(queries)


def test_the_selector_reads_a_conversation_and_its_messages_in_two_queries(clinic, django_assert_num_queries):
    conversation = _conversation(_patient(clinic), *[f"message {i}" for i in range(12)])
    with django_assert_num_queries(2):
        got = selectors.conversation_get(organization=clinic, public_id=conversation.public_id)
        assert (got.patient.name, got.organization.pk) == ("Ana", clinic.pk)
        assert [m.content for m in got.messages.all()] == [f"message {i}" for i in range(12)]


def test_get_query_count_is_flat_in_the_number_of_messages(http, clinic, owner, media_root):
    at = utc_now() - timedelta(days=1)
    small = _conversation(_patient(clinic, "Ana"), "a", "b", at=at)
    big_patient = _patient(clinic, "Bea")
    big = _conversation(big_patient, *[f"message {i}" for i in range(30)], at=at)
    _voice(big_patient, at=at + timedelta(minutes=31))
    assert big.messages.count() == 31
    assert _get_queries(http, owner, big) == _get_queries(http, owner, small)


# --- Scoping, roles, authentication ------------------------------------------------------------------------


def test_another_clinics_conversation_is_404_like_an_unknown_one(http, clinic, other_clinic, owner):
    theirs = _conversation(_patient(other_clinic, "Theirs"), "secret")
    unknown = "conv_" + "x" * 24
    for suffix, method in [("", "get"), ("", "delete"), ("/export?format=pdf", "get"), ("/export?format=json", "get")]:
        foreign = _error(
            getattr(http, method)(f"/api/v1/conversations/{theirs.public_id}{suffix}", **_auth(owner)), 404
        )
        missing = _error(getattr(http, method)(f"/api/v1/conversations/{unknown}{suffix}", **_auth(owner)), 404)
        assert foreign == missing
    assert Conversation.objects.filter(pk=theirs.pk).exists()
    assert _events("conversation.exported") == [] and _events("conversation.deleted") == []
    listed = http.get("/api/v1/conversations", **_auth(owner)).json()
    assert listed["total"] == 0
    assert http.get(f"/api/v1/conversations?patient_id={theirs.patient.public_id}", **_auth(owner)).json()["data"] == []


def test_viewer_reads_and_exports_but_cannot_delete(http, clinic):
    viewer = _member("viewer", "viewer", clinic)
    conversation = _conversation(_patient(clinic), "Hola")
    path = f"/api/v1/conversations/{conversation.public_id}"
    assert http.get("/api/v1/conversations", **_auth(viewer)).status_code == 200
    assert http.get(path, **_auth(viewer)).status_code == 200
    assert http.get(f"{path}/export?format=csv", **_auth(viewer)).status_code == 200
    _error(http.delete(path, **_auth(viewer)), 403)
    assert Conversation.objects.filter(pk=conversation.pk).exists() and _events("conversation.deleted") == []


@pytest.mark.parametrize("role", ["therapist", "supervisor"])
def test_roles_outside_mark_get_403(http, clinic, role):
    user = _member(role, role, clinic)
    conversation = _conversation(_patient(clinic), "Hola")
    for path in ["/api/v1/conversations", f"/api/v1/conversations/{conversation.public_id}"]:
        _error(http.get(path, **_auth(user)), 403)
    _error(http.get(f"/api/v1/conversations/{conversation.public_id}/export?format=pdf", **_auth(user)), 403)


def test_anonymous_and_bad_tokens_are_401(http, clinic):
    conversation = _conversation(_patient(clinic), "Hola")
    path = f"/api/v1/conversations/{conversation.public_id}"
    for method, url in [
        ("get", "/api/v1/conversations"),
        ("get", path),
        ("delete", path),
        ("get", f"{path}/export?format=pdf"),
    ]:
        _error(getattr(http, method)(url), 401)
        _error(getattr(http, method)(url, HTTP_AUTHORIZATION="Bearer not-a-token"), 401)
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_a_member_of_two_clinics_names_one(http, clinic, other_clinic):
    user = _member("both", "staff", clinic, other_clinic)
    ours = _conversation(_patient(clinic), "Hola")
    error = _error(http.get("/api/v1/conversations", **_auth(user)), 400)
    assert "X-Organization-ID" in json.dumps(error)
    body = http.get("/api/v1/conversations", HTTP_X_ORGANIZATION_ID=clinic.public_id, **_auth(user)).json()
    assert [item["id"] for item in body["data"]] == [ours.public_id]
    other = http.get("/api/v1/conversations", HTTP_X_ORGANIZATION_ID=other_clinic.public_id, **_auth(user)).json()
    assert other["data"] == []


# --- Delete ----------------------------------------------------------------------------------------------


def test_delete_erases_the_conversation_and_keeps_the_patient(http, clinic, owner):
    patient = _patient(clinic, "Ana")
    old = _conversation(patient, "first", at=utc_now() - timedelta(days=5))
    _close(old, old.start_time + HOUR)
    doomed = _conversation(patient, CATALAN, "Bon dia!", at=utc_now() - timedelta(days=1))
    appointment = services.appointment_create(
        patient=patient, start_time=utc_now() + timedelta(days=7), duration=30, actor=ACTOR
    )
    message_ids = list(doomed.messages.values_list("pk", flat=True))
    path = f"/api/v1/conversations/{doomed.public_id}"
    response = http.delete(path, **_auth(owner))
    assert response.status_code == 200, response.content
    assert response.json() == {"success": True, "message": "Conversation deleted successfully"}
    assert not Conversation.objects.filter(pk=doomed.pk).exists()
    assert not Message.objects.filter(pk__in=message_ids).exists()
    _error(http.get(path, **_auth(owner)), 404)
    _error(http.delete(path, **_auth(owner)), 404)
    _error(http.get(f"{path}/export?format=json", **_auth(owner)), 404)
    # The patient and the rest of their data stay.
    assert Patient.objects.filter(pk=patient.pk).exists() and Conversation.objects.filter(pk=old.pk).exists()
    assert Appointment.objects.filter(pk=appointment.pk).exists()
    assert Reminder.objects.filter(appointment=appointment, status=Reminder.Status.PENDING).count() == 2
    [event] = _events("conversation.deleted")
    assert (event.subject_type, event.subject_id, event.organization_id) == (
        "conversation",
        doomed.public_id,
        clinic.public_id,
    )
    assert (event.actor_type, event.actor_id) == ("user", str(owner.pk))
    assert event.metadata == {
        "patient_id": patient.public_id,
        "messages": 2,
        "media_files": 0,
        "outbox_withdrawn": 0,
        "reminders_skipped": 0,
    }
    assert CATALAN not in json.dumps(event.metadata)


def test_deleting_a_conversation_already_gone_is_not_found_and_audited_once(clinic):
    """Two DELETEs of one conversation at once: the second holds a conversation loaded before the first
    committed; after the patient lock it finds it gone."""
    conversation = _conversation(_patient(clinic), "Hola")
    stale = Conversation.objects.select_related("patient", "organization").get(pk=conversation.pk)
    conversation_services.conversation_delete(conversation=conversation, actor=ACTOR)
    with pytest.raises(NotFound):
        conversation_services.conversation_delete(conversation=stale, actor=ACTOR)
    assert len(_events("conversation.deleted")) == 1


def test_after_delete_the_next_message_starts_a_new_conversation(clinic):
    patient = _patient(clinic)
    at = utc_now() - HOUR
    open_conversation = _conversation(patient, "Hola", at=at)
    conversation_services.conversation_delete(conversation=open_conversation, actor=ACTOR)
    message = services.message_record(patient=patient, sender="patient", content="again", now=at + timedelta(minutes=2))
    assert message.conversation.pk != open_conversation.pk
    assert message.conversation.message_count == 1


def test_delete_removes_the_audio_files_after_commit(
    http, clinic, owner, media_root, django_capture_on_commit_callbacks
):
    patient = _patient(clinic)
    at = utc_now() - HOUR
    _conversation(patient, "Hola", at=at)
    voice = _voice(patient, at=at + timedelta(minutes=1))
    file = media_root / voice.media.name
    assert file.is_file()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = http.delete(f"/api/v1/conversations/{voice.conversation.public_id}", **_auth(owner))
    assert response.status_code == 200
    assert file.is_file()  # not before the commit
    for callback in callbacks:
        callback()
    assert not file.exists()
    assert _events("conversation.deleted")[0].metadata["media_files"] == 1


def test_delete_withdraws_queued_outbox_messages_but_not_sent_or_claimed_ones(clinic):
    patient = _patient(clinic, phone_number="+34612345678")
    # The patient wrote an hour ago: free text may be sent (WhatsApp's 24-hour window).
    Patient.objects.filter(pk=patient.pk).update(last_inbound_at=utc_now() - HOUR)
    patient.refresh_from_db()
    queued = services.message_send_text(organization=clinic, patient=patient, text="queued", actor=ACTOR)
    claimed = services.message_send_text(organization=clinic, patient=patient, text="being sent", actor=ACTOR)
    sent = services.message_send_text(organization=clinic, patient=patient, text="sent", actor=ACTOR)
    assert queued.conversation_id == claimed.conversation_id == sent.conversation_id
    OutboundMessage.objects.filter(pk=claimed.outbound_message_id).update(
        claimed_until=utc_now() + timedelta(minutes=5)
    )
    OutboundMessage.objects.filter(pk=sent.outbound_message_id).update(status="sent", sent_at=utc_now())
    # A reminder whose message is the queued one (as reminder_send links them).
    appointment = services.appointment_create(
        patient=patient, start_time=utc_now() + timedelta(days=3), duration=30, actor=ACTOR
    )
    reminder = appointment.reminders.get(kind=Reminder.Kind.H24)
    Reminder.objects.filter(pk=reminder.pk).update(
        status=Reminder.Status.SENT, outbound_message=queued.outbound_message
    )
    other_reminder = appointment.reminders.get(kind=Reminder.Kind.MIN30)

    counts = conversation_services.conversation_delete(conversation=queued.conversation, actor=ACTOR)

    assert counts == {"messages": 3, "media_files": 0, "outbox_withdrawn": 1, "reminders_skipped": 1}
    rows = {row.pk: row for row in OutboundMessage.objects.all()}
    assert (rows[queued.outbound_message_id].status, rows[queued.outbound_message_id].last_error) == (
        "failed",
        conversation_services.WITHDRAWN,
    )
    assert rows[queued.outbound_message_id].next_attempt_at is None
    assert rows[claimed.outbound_message_id].status == "queued"  # a worker holds it: it may be with Twilio
    assert rows[sent.outbound_message_id].status == "sent"
    reminder.refresh_from_db()
    other_reminder.refresh_from_db()
    assert reminder.status == Reminder.Status.SKIPPED and other_reminder.status == Reminder.Status.PENDING
    # A worker that now tries the withdrawn row finds nothing to send.
    from messaging.services.sending import message_claim

    assert message_claim(message_id=queued.outbound_message_id) is None


# --- Export ----------------------------------------------------------------------------------------------


@pytest.fixture
def multilingual(clinic):
    patient = _patient(clinic, "Núria Puig", preferred_language="ca")
    conversation = _conversation(patient, CATALAN, "Bon dia! Quin dia?", ARABIC, '=HYPERLINK("x")', language="ca")
    return conversation


def _export(http, user, conversation, fmt, **extra):
    return http.get(f"/api/v1/conversations/{conversation.public_id}/export?format={fmt}", **_auth(user), **extra)


def test_export_pdf_is_an_attachment_with_catalan_and_arabic_text(http, owner, multilingual):
    response = _export(http, owner, multilingual, "pdf")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{multilingual.public_id}.pdf"'
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    assert CATALAN in text and ARABIC in text and "Núria Puig" in text


def test_export_csv_is_formula_safe(http, owner, multilingual):
    response = _export(http, owner, multilingual, "csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="{multilingual.public_id}.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    assert [row["content"] for row in rows] == [CATALAN, "Bon dia! Quin dia?", ARABIC, '\'=HYPERLINK("x")']
    assert {row["conversation_id"] for row in rows} == {multilingual.public_id}


def test_export_json_parses(http, owner, multilingual, media_root):
    voice = _voice(
        multilingual.patient, at=multilingual.start_time + timedelta(minutes=10), transcription="Vull una cita"
    )
    response = _export(http, owner, multilingual, "json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == f'attachment; filename="{multilingual.public_id}.json"'
    body = json.loads(response.content)
    assert body["id"] == multilingual.public_id and body["patient_name"] == "Núria Puig"
    assert body["message_count"] == 5 and len(body["messages"]) == 5
    assert body["messages"][2]["content"] == ARABIC
    last = body["messages"][-1]
    assert (last["id"], last["content_type"], last["content"], last["duration"]) == (
        voice.public_id,
        "voice",
        "Vull una cita",
        3.5,
    )
    assert "signature=" not in response.content.decode()  # no signed audio URL in a file kept elsewhere


@pytest.mark.parametrize("fmt", ["pdf", "csv", "json"])
def test_each_export_is_an_audit_event(http, owner, clinic, multilingual, fmt):
    assert _export(http, owner, multilingual, fmt).status_code == 200
    [event] = _events("conversation.exported")
    assert (event.subject_type, event.subject_id, event.organization_id) == (
        "conversation",
        multilingual.public_id,
        clinic.public_id,
    )
    assert event.metadata == {"patient_id": multilingual.patient.public_id, "format": fmt, "messages": 4}


@pytest.mark.parametrize("query", ["", "?format=", "?format=xlsx", "?format=PDF", "?format=pdf%00"])
def test_export_without_a_known_format_is_400_naming_format(http, owner, multilingual, query):
    response = http.get(f"/api/v1/conversations/{multilingual.public_id}/export{query}", **_auth(owner))
    error = _error(response, 400)
    assert error["details"] == {"parameter": "format"} and error["message"].startswith("format")
    assert _events("conversation.exported") == []


def test_export_ignores_the_accept_header(http, owner, multilingual):
    response = _export(http, owner, multilingual, "pdf", HTTP_ACCEPT="application/pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    response = _export(http, owner, multilingual, "csv", HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    error = _error(_export(http, owner, multilingual, "doc", HTTP_ACCEPT="application/pdf"), 400)
    assert error["details"] == {"parameter": "format"}


def test_export_query_count_is_flat_in_the_number_of_messages(http, clinic, owner):
    at = utc_now() - timedelta(days=1)
    small = _conversation(_patient(clinic, "Ana"), "a", at=at)
    big = _conversation(_patient(clinic, "Bea"), *[f"message {i}" for i in range(25)], at=at)

    def queries(conversation) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert _export(http, owner, conversation, "json").status_code == 200
        return len(captured)

    assert queries(big) == queries(small)


# --- Concurrency (PostgreSQL) ----------------------------------------------------------------------------


def _waiting_on_a_lock_or_done(thread, timeout: float = 30.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            return True
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.02)
    return False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_message_arriving_during_a_delete_starts_a_new_conversation(require_postgres):
    """conversation_delete locks the patient row first, as message_record does: a message recorded while
    the delete is in flight waits, then starts a new conversation (instead of joining the one being
    deleted and failing on its foreign key, or vanishing with it)."""
    import threading

    from django.db import connections, transaction

    from accounts import services as accounts_services

    clinic = accounts_services.organization_create(name="Clinic", actor=ACTOR)
    patient = _patient(clinic)
    conversation = _conversation(patient, "Hola", at=utc_now() - timedelta(minutes=5))
    deleted, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def delete() -> None:
        try:
            with transaction.atomic():
                conversation_services.conversation_delete(conversation=conversation, actor=ACTOR)
                deleted.set()  # deleted, patient lock held, not committed
                release.wait(30)
        finally:
            connections.close_all()

    def record() -> None:
        try:
            message = services.message_record(patient=patient, sender="patient", content="are you there?")
            outcome["conversation"] = message.conversation.public_id
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcome["error"] = type(exc).__name__
        finally:
            connections.close_all()

    one = threading.Thread(target=delete)
    one.start()
    assert deleted.wait(30)
    two = threading.Thread(target=record)
    two.start()
    assert _waiting_on_a_lock_or_done(two)
    release.set()
    one.join(30)
    two.join(30)
    assert "error" not in outcome, outcome
    assert outcome["conversation"] != conversation.public_id
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    [survivor] = Conversation.objects.filter(patient=patient)
    assert survivor.public_id == outcome["conversation"] and survivor.message_count == 1
