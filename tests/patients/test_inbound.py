"""POST /api/messaging/twilio/inbound through HTTP as Twilio calls it: X-Twilio-Signature (good, bad,
missing, over another URL), routing by `To` to each clinic, unknown senders becoming patients, a
retried MessageSid stored once, STOP/START, voice notes fetched from a Twilio-like server on 127.0.0.1
after commit, and nothing of the patient in any log record."""

from __future__ import annotations

import io
import logging
import wave
from urllib.parse import urlencode

import pytest
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as accounts_services
from accounts.models import User
from audit.models import AuditEvent
from core.domain import Conflict
from messaging.clients import compute_signature
from messaging.models import OutboundMessage
from patients import services, tasks
from patients.models import Conversation, Message, Patient, Source
from patients.services import inbound
from patients.services.clinic_settings import clinic_settings_update
from tests.patients.conftest import ACTOR
from tests.servers import LocalServer, Recorded, Reply

pytestmark = pytest.mark.django_db

TOKEN = "inbound-test-auth-token-4c3b2a"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
BASE = "https://platform.example.com"
URL = BASE + "/api/messaging/twilio/inbound"
CLINIC_NUMBER = "+34911234567"
OTHER_NUMBER = "+34931234567"
PATIENT_PHONE = "+34612345678"
PROFILE = "Montserrat Zebrafinch"
TEXT = "Hola, quisiera cambiar mi cita del martes"
JSON = "application/json"


def sid(n: int) -> str:
    return "SM" + f"{n:032x}"


@pytest.fixture(autouse=True)
def twilio_settings(settings):
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.MESSAGING_STATUS_CALLBACK_BASE_URL = BASE
    settings.MESSAGING_BACKEND = "locmem"
    return settings


@pytest.fixture
def delayed(monkeypatch):
    """The tasks enqueued after commit (no broker): [(task name, args)]."""
    calls: list[tuple[str, tuple]] = []
    for task in (tasks.fetch_inbound_media, tasks.assistant_reply, tasks.summarize_conversation):
        monkeypatch.setattr(task, "delay", lambda *args, _name=task.name: calls.append((_name, args)))
    return calls


@pytest.fixture
def clinics(clinic, other_clinic):
    clinic_settings_update(organization=clinic, actor=ACTOR, whatsapp_number=CLINIC_NUMBER)
    clinic_settings_update(organization=other_clinic, actor=ACTOR, whatsapp_number=OTHER_NUMBER)
    return clinic, other_clinic


@pytest.fixture
def http(frozen_ratelimit_clock):
    return Client(raise_request_exception=False)


def form(n: int = 1, *, to: str = CLINIC_NUMBER, from_: str = PATIENT_PHONE, body: str = TEXT, **extra) -> dict:
    params = {
        "MessageSid": sid(n),
        "SmsMessageSid": sid(n),
        "AccountSid": ACCOUNT_SID,
        "From": f"whatsapp:{from_}",
        "To": f"whatsapp:{to}",
        "Body": body,
        "NumMedia": "0",
        "ProfileName": PROFILE,
        "WaId": from_.lstrip("+"),
    }
    params.update(extra)
    return params


def post(http, params: dict, *, signature: str | None = "good", url: str = URL):
    """POST as Twilio does (the test client's Host is "testserver": the signature is over the configured
    URL, whatever the Host)."""
    headers = {}
    if signature == "good":
        headers["HTTP_X_TWILIO_SIGNATURE"] = compute_signature(TOKEN, url, params)
    elif signature is not None:
        headers["HTTP_X_TWILIO_SIGNATURE"] = signature
    return http.post(
        "/api/messaging/twilio/inbound",
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        **headers,
    )


def nothing_stored() -> bool:
    return not (Patient.objects.exists() or Message.objects.exists() or Conversation.objects.exists())


# --- Signature -------------------------------------------------------------------------------------------


def test_a_signed_message_from_an_unknown_number_creates_the_patient_and_stores_it(http, clinics, delayed):
    clinic, _ = clinics
    response = post(http, form())
    assert response.status_code == 204, response.content
    assert response.content == b""

    patient = Patient.objects.get()
    assert patient.organization == clinic
    assert (patient.source, patient.name, patient.phone, patient.language) == (
        Source.WHATSAPP,
        PROFILE,
        PATIENT_PHONE,
        "es",
    )
    assert patient.last_inbound_at is not None
    message = Message.objects.select_related("conversation").get()
    assert (message.sender, message.content, message.content_type, message.external_id) == (
        "patient",
        TEXT,
        "text",
        sid(1),
    )
    assert message.conversation.patient == patient and message.conversation.status == "open"
    assert message.status == "received"
    event = AuditEvent.objects.get(action="message.received")
    assert event.subject_id == message.public_id
    assert TEXT not in str(event.metadata) and PATIENT_PHONE not in str(event.metadata)
    assert delayed == []  # no responder, no media: nothing to do after commit


@pytest.mark.parametrize("signature", [None, "", "bad", "other-url"], ids=["missing", "empty", "bad", "other-url"])
def test_a_missing_or_bad_signature_is_403_and_changes_nothing(http, clinics, signature):
    params = form()
    if signature == "other-url":
        # Signed over the URL a proxy or attacker chose (the Host header): never what is verified.
        signature = compute_signature(TOKEN, "https://evil.example.com/api/messaging/twilio/inbound", params)
    response = post(http, params, signature=signature)
    assert response.status_code == 403
    assert response.json() == {"error": "Invalid Twilio signature", "code": "invalid_signature"}
    assert nothing_stored()


def test_a_signature_over_other_parameters_is_403(http, clinics):
    params = form()
    signature = compute_signature(TOKEN, URL, params)
    params["Body"] = "STOP"  # tampered after signing
    assert post(http, params, signature=signature).status_code == 403
    assert nothing_stored()


def test_without_a_base_url_or_token_every_request_is_refused(http, clinics, settings):
    settings.MESSAGING_STATUS_CALLBACK_BASE_URL = ""
    assert post(http, form(), url="/api/messaging/twilio/inbound").status_code == 403
    settings.MESSAGING_STATUS_CALLBACK_BASE_URL = BASE
    settings.TWILIO_AUTH_TOKEN = ""
    assert post(http, form(), signature=compute_signature(TOKEN, URL, form())).status_code == 403
    assert nothing_stored()


def test_a_signed_request_missing_fields_is_400_naming_them(http, clinics):
    params = form()
    del params["MessageSid"]
    response = post(http, params)
    assert response.status_code == 400
    assert "MessageSid" in response.content.decode()
    assert nothing_stored()


def test_json_is_415(http, clinics):
    response = http.post("/api/messaging/twilio/inbound", form(), content_type=JSON, HTTP_X_TWILIO_SIGNATURE="x")
    assert response.status_code == 415
    assert nothing_stored()


# --- Routing ---------------------------------------------------------------------------------------------


def test_messages_are_routed_to_the_clinic_whose_number_they_were_sent_to(http, clinics, delayed):
    clinic, other = clinics
    assert post(http, form(1, to=CLINIC_NUMBER)).status_code == 204
    assert post(http, form(2, to=OTHER_NUMBER)).status_code == 204
    mine, theirs = Patient.objects.get(organization=clinic), Patient.objects.get(organization=other)
    assert mine.phone == theirs.phone == PATIENT_PHONE  # one person, a patient of each clinic
    assert Message.objects.get(external_id=sid(1)).conversation.patient == mine
    assert Message.objects.get(external_id=sid(2)).conversation.patient == theirs
    assert Message.objects.get(external_id=sid(1)).organization == clinic


def test_a_number_no_clinic_has_is_answered_and_ignored(http, clinics):
    assert post(http, form(to="+34955123456")).status_code == 204
    assert nothing_stored()


def test_a_known_sender_is_the_existing_patient(http, clinics, delayed):
    clinic, _ = clinics
    patient = services.patient_create(
        organization=clinic, name="Núria Puig", phone_number="612 34 56 78", preferred_language="ca", actor=ACTOR
    )
    assert post(http, form()).status_code == 204
    assert Patient.objects.count() == 1
    patient.refresh_from_db()
    assert (patient.name, patient.language, patient.source) == ("Núria Puig", "ca", "api")  # untouched
    assert patient.last_inbound_at is not None
    assert Message.objects.get().conversation.patient == patient


def test_an_unknown_sender_without_a_profile_name_gets_the_masked_number(http, clinics, delayed):
    post(http, form(ProfileName="", from_="+212612345678"))
    patient = Patient.objects.get()
    assert patient.name.startswith("WhatsApp +212") and "5678" in patient.name and "612345" not in patient.name
    assert patient.language == "ar"  # guessed from Morocco


def test_messages_of_one_sender_join_one_conversation(http, clinics, delayed):
    post(http, form(1))
    post(http, form(2, body="¿Me oye?"))
    assert Conversation.objects.count() == 1
    assert Conversation.objects.get().message_count == 2


# --- Idempotency -----------------------------------------------------------------------------------------


def test_a_retried_message_sid_is_stored_once(http, clinics, delayed):
    assert post(http, form(7)).status_code == 204
    assert post(http, form(7)).status_code == 204
    assert Message.objects.count() == 1 and Patient.objects.count() == 1
    assert Conversation.objects.get().message_count == 1
    assert AuditEvent.objects.filter(action="message.received").count() == 1


def test_the_service_reports_a_duplicate(clinics, delayed):
    message = inbound.Inbound(to=f"whatsapp:{CLINIC_NUMBER}", from_=PATIENT_PHONE, body=TEXT, message_sid=sid(3))
    first = inbound.inbound_whatsapp_record(inbound=message)
    second = inbound.inbound_whatsapp_record(inbound=message)
    assert (first.outcome, second.outcome) == ("stored", "duplicate")
    assert second.message.pk == first.message.pk


# --- STOP / START ----------------------------------------------------------------------------------------


def _member(clinic) -> dict:
    user = User.objects.create_user(username="owner", password="pw-owner-123!")
    accounts_services.membership_set(user=user, organization=clinic, role="owner", actor=ACTOR)
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}


@pytest.mark.parametrize("word", ["STOP", "stop", " Baja. ", "UNSUBSCRIBE", "baixa", "إلغاء"])
def test_a_stop_word_opts_the_patient_out_and_nothing_more_is_sent(http, clinics, delayed, word):
    clinic, _ = clinics
    post(http, form(1))
    assert post(http, form(2, body=word)).status_code == 204
    patient = Patient.objects.get()
    assert (patient.whatsapp_consent, patient.whatsapp_opt_out_reason) == (False, "stop_keyword")
    assert Message.objects.filter(external_id=sid(2), sender="patient").exists()  # stored like any other
    assert AuditEvent.objects.filter(action="patient.whatsapp_opted_out", subject_id=patient.public_id).exists()

    with pytest.raises(Conflict) as refused:
        services.message_send_text(organization=clinic, patient=patient, text="Hola", actor=ACTOR)
    assert refused.value.code == "WHATSAPP_OPTED_OUT"
    assert not OutboundMessage.objects.exists()


def test_after_stop_the_api_refuses_messages_409_and_shows_why(http, clinics, delayed):
    clinic, _ = clinics
    post(http, form(1, body="STOP"))
    patient = Patient.objects.get()
    auth = _member(clinic)
    response = http.post(
        "/api/v1/messages",
        {"patient_id": patient.public_id, "content": "Hola", "content_type": "text"},
        content_type=JSON,
        **auth,
    )
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "WHATSAPP_OPTED_OUT" and error["details"]["reason"] == "stop_keyword"
    shown = http.get(f"/api/v1/patients/{patient.public_id}", **auth).json()
    assert shown["whatsapp_consent"] is False and shown["whatsapp_opt_out_reason"] == "stop_keyword"
    assert not OutboundMessage.objects.exists()


def test_stop_inside_a_sentence_is_a_message(http, clinics, delayed):
    post(http, form(1, body="Please don't stop the reminders"))
    assert Patient.objects.get().whatsapp_consent is True


def test_start_resubscribes_after_stop_only(http, clinics, delayed):
    clinic, _ = clinics
    post(http, form(1, body="STOP"))
    post(http, form(2, body="Start"))
    patient = Patient.objects.get()
    assert (patient.whatsapp_consent, patient.whatsapp_opt_out_reason) == (True, "")
    assert AuditEvent.objects.filter(action="patient.whatsapp_resubscribed").count() == 1
    # An opt-out the clinic decided is not lifted by START.
    services.patient_update(patient=patient, whatsapp_consent=False, actor=ACTOR)
    post(http, form(3, body="START"))
    patient.refresh_from_db()
    assert (patient.whatsapp_consent, patient.whatsapp_opt_out_reason) == (False, "clinic")


# --- Voice notes -----------------------------------------------------------------------------------------


def wav_bytes(seconds: float = 1.5, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\x00\x01" * int(rate * seconds))
    return buffer.getvalue()


class FakeTwilioMedia:
    """Twilio's media URLs on 127.0.0.1: basic auth checked, the file answered."""

    def __init__(self, content: bytes, content_type: str = "audio/ogg"):
        self.content, self.content_type = content, content_type
        self.server = LocalServer(self._handle)
        self.problems: list[str] = []

    def _handle(self, request: Recorded) -> Reply:
        import base64

        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected:
            self.problems.append("bad auth")
            return Reply(401, {"Content-Type": "application/json"}, b'{"code": 20003}')
        return Reply(200, {"Content-Type": self.content_type}, self.content)

    def url(self) -> str:
        return self.server.url(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM{'a' * 32}/Media/ME{'b' * 32}")


@pytest.fixture
def media_server(settings):
    fake = FakeTwilioMedia(wav_bytes())
    fake.server.start()
    settings.TWILIO_API_BASE_URL = fake.server.base_url
    settings.MARK_MEDIA_ROOT = settings.MARK_MEDIA_ROOT  # the private media storage (tests' own root)
    yield fake
    fake.server.stop()


def voice_form(n: int, media_url: str) -> dict:
    return form(n, body="", NumMedia="1", MediaUrl0=media_url, MediaContentType0="audio/ogg")


def test_a_voice_note_is_stored_at_once_and_its_audio_fetched_after_commit(
    http, clinics, media_server, django_capture_on_commit_callbacks, delayed
):
    with django_capture_on_commit_callbacks(execute=True):
        assert post(http, voice_form(1, media_server.url())).status_code == 204
    message = Message.objects.get()
    assert (message.content_type, message.content, message.media.name) == ("voice", "", "")
    assert delayed == [("patients.tasks.fetch_inbound_media", (message.pk, media_server.url()))]

    assert tasks.fetch_inbound_media.run(message.pk, media_server.url()) == "stored"
    message.refresh_from_db()
    assert message.media.name and (message.media_format, round(message.media_duration, 1)) == ("wav", 1.5)
    assert media_server.problems == [] and len(media_server.server.requests) == 1
    # Idempotent: a second run fetches nothing.
    assert tasks.fetch_inbound_media.run(message.pk, media_server.url()) == "done"
    assert len(media_server.server.requests) == 1


def test_media_that_is_not_audio_is_refused_and_the_message_stays(http, clinics, media_server, delayed):
    media_server.content = b"%PDF-1.4 not audio at all" * 10
    post(http, voice_form(1, media_server.url()))
    message = Message.objects.get()
    assert inbound.inbound_media_fetch(message_id=message.pk, media_url=media_server.url()) == "refused"
    message.refresh_from_db()
    assert message.media.name == "" and message.content_type == "voice"


def test_media_from_a_host_other_than_twilios_is_never_fetched(http, clinics, media_server, delayed):
    post(http, voice_form(1, "https://attacker.example.com/steal"))
    message = Message.objects.get()
    result = inbound.inbound_media_fetch(message_id=message.pk, media_url="https://attacker.example.com/steal")
    assert result == "refused" and media_server.server.requests == []


def test_a_server_error_fetching_media_is_retried(http, clinics, media_server, delayed, monkeypatch):
    post(http, voice_form(1, media_server.url()))
    message = Message.objects.get()
    media_server.server.handler = lambda request: Reply(503, {}, b"")
    with pytest.raises(inbound.MediaFetchError) as failed:
        inbound.inbound_media_fetch(message_id=message.pk, media_url=media_server.url())
    assert failed.value.transient


def test_an_image_keeps_its_caption_and_is_not_stored(http, clinics, delayed):
    post(
        http,
        form(1, body="Mi receta", NumMedia="1", MediaUrl0="https://api.twilio.com/x", MediaContentType0="image/jpeg"),
    )
    message = Message.objects.get()
    assert (message.content_type, message.content, message.media.name) == ("text", "Mi receta", "")
    assert delayed == []


# --- Logs ------------------------------------------------------------------------------------------------


def test_inbound_logs_no_number_name_or_text(http, clinics, caplog, delayed):
    caplog.set_level(logging.DEBUG)
    post(http, form(1))
    post(http, form(1))  # duplicate
    post(http, form(2, body="STOP"))
    post(http, form(3), signature="bad")
    post(http, form(4, to="+34955123456"))
    assert caplog.records, "the capture saw nothing"
    text = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (PATIENT_PHONE, PATIENT_PHONE.lstrip("+"), PATIENT_PHONE[3:], PROFILE, "Zebrafinch", TEXT, "cambiar"):
        assert secret not in text


# --- PostgreSQL: concurrent deliveries -------------------------------------------------------------------


def _concurrently(count: int, make_inbound) -> list[str]:
    """Run inbound_whatsapp_record from `count` threads released together; their outcomes."""
    import threading

    from django.db import connection

    barrier, outcomes, errors = threading.Barrier(count), [], []

    def deliver(index: int) -> None:
        try:
            barrier.wait(10)
            outcomes.append(inbound.inbound_whatsapp_record(inbound=make_inbound(index)).outcome)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    return outcomes


@pytest.mark.postgres
def test_concurrent_retries_of_one_message_store_it_once(clinics, require_postgres, transactional_db, delayed):
    outcomes = _concurrently(
        6, lambda _i: inbound.Inbound(to=CLINIC_NUMBER, from_=PATIENT_PHONE, body=TEXT, message_sid=sid(9))
    )
    assert sorted(outcomes) == ["duplicate"] * 5 + ["stored"]
    assert Message.objects.count() == 1 and Patient.objects.count() == 1


@pytest.mark.postgres
def test_concurrent_first_messages_of_a_new_number_make_one_patient(
    clinics, require_postgres, transactional_db, delayed
):
    outcomes = _concurrently(
        6, lambda i: inbound.Inbound(to=CLINIC_NUMBER, from_=PATIENT_PHONE, body=f"{TEXT} {i}", message_sid=sid(i))
    )
    assert outcomes == ["stored"] * 6
    assert Patient.objects.count() == 1
    assert Message.objects.count() == 6 and Conversation.objects.count() == 1
    assert Conversation.objects.get().message_count == 6
