"""The assistant responder against an Anthropic-like Messages API server on 127.0.0.1 (it checks the
request's path, headers and JSON shape and answers in the API's response shape): a reply to an inbound
WhatsApp text, stored as sender "assistant" and queued through whatsapp_queue; one reply per message;
errors give no reply and log only a class and code. Conversation end: the idle sweeper closes
conversations (end_time = the last message) and the summary prompt's JSON is validated into `summary` and
`metadata`. And one run of inbound + reply + reminder at DEBUG that logs no number and no text."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest

from core.time import utc_now
from messaging.models import OutboundMessage
from patients import services, tasks
from patients.models import Conversation, Message, Patient, Reminder
from patients.services import assistant, inbound
from patients.services.clinic_settings import clinic_settings_update
from tests.patients.conftest import ACTOR
from tests.servers import LocalServer, Recorded, Reply

pytestmark = pytest.mark.django_db

API_KEY = "sk-ant-test-5f4e3d2c1b0a"
MODEL = "claude-test-model"
CLINIC_NUMBER = "+34911234567"
PHONE = "+34612345678"
PROFILE = "Montserrat Zebrafinch"
TEXT = "Hola, ¿a qué hora abren el sábado?"
REPLY = "¡Hola! El sábado abrimos de 9:00 a 14:00."
MINUTE = timedelta(minutes=1)


class FakeAnthropic:
    """POST /v1/messages like Anthropic's API. Request problems are collected in `problems` (and answered
    400); `answers` are the texts to give in order (then REPLY); `status` forces an error status."""

    def __init__(self):
        self.server = LocalServer(self._handle)
        self.problems: list[str] = []
        self.bodies: list[dict] = []
        self.answers: list[str] = []
        self.status = 200

    def _handle(self, request: Recorded) -> Reply:
        problems = []
        if (request.method, request.path) != ("POST", "/v1/messages"):
            problems.append(f"{request.method} {request.path}")
        if request.headers.get("x-api-key") != API_KEY:
            problems.append("x-api-key")
        if request.headers.get("anthropic-version") != "2023-06-01":
            problems.append("anthropic-version")
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            problems.append("content-type")
        try:
            body = json.loads(request.body)
        except ValueError:
            body = {}
            problems.append("not json")
        messages = body.get("messages") or []
        if body.get("model") != MODEL or not isinstance(body.get("max_tokens"), int):
            problems.append("model/max_tokens")
        if not isinstance(body.get("system"), str) or not body["system"]:
            problems.append("system")
        roles = [message.get("role") for message in messages]
        if not messages or roles[0] != "user" or roles[-1] != "user":
            problems.append("first and last turns must be user")
        if any(a == b for a, b in zip(roles, roles[1:], strict=False)):
            problems.append("roles must alternate")
        if any(not isinstance(message.get("content"), str) or not message["content"] for message in messages):
            problems.append("content")
        self.bodies.append(body)
        if problems:
            self.problems += problems
            return _json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}})
        if self.status != 200:
            return _json(self.status, {"type": "error", "error": {"type": "api_error", "message": TEXT}})
        text = self.answers.pop(0) if self.answers else REPLY
        return _json(
            200,
            {
                "id": f"msg_{uuid.uuid4().hex}",
                "type": "message",
                "role": "assistant",
                "model": MODEL,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 10},
            },
        )


def _json(status: int, body: dict) -> Reply:
    return Reply(status, {"Content-Type": "application/json"}, json.dumps(body))


@pytest.fixture
def anthropic(settings):
    fake = FakeAnthropic()
    fake.server.start()
    settings.MARK_RESPONDER_BASE_URL = fake.server.base_url
    settings.MESSAGING_BACKEND = "locmem"
    yield fake
    fake.server.stop()
    assert not fake.server.errors, fake.server.errors


@pytest.fixture
def delayed(monkeypatch):
    calls: list[tuple[str, tuple]] = []
    for task in (tasks.fetch_inbound_media, tasks.assistant_reply, tasks.summarize_conversation):
        monkeypatch.setattr(task, "delay", lambda *args, _name=task.name: calls.append((_name, args)))
    return calls


@pytest.fixture
def responder_clinic(clinic):
    clinic_settings_update(
        organization=clinic,
        actor=ACTOR,
        whatsapp_number=CLINIC_NUMBER,
        responder="anthropic",
        responder_api_key=API_KEY,
        responder_model=MODEL,
    )
    return clinic


def receive(n: int, body: str = TEXT, *, now=None) -> inbound.InboundResult:
    return inbound.inbound_whatsapp_record(
        inbound=inbound.Inbound(
            to=f"whatsapp:{CLINIC_NUMBER}",
            from_=f"whatsapp:{PHONE}",
            body=body,
            message_sid="SM" + f"{n:032x}",
            profile_name=PROFILE,
        ),
        now=now,
    )


# --- Replies ---------------------------------------------------------------------------------------------


def test_an_inbound_text_is_answered_and_the_answer_stored_and_sent(
    responder_clinic, anthropic, delayed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        result = receive(1)
    assert delayed == [("patients.tasks.assistant_reply", (result.message.pk,))]

    assert tasks.assistant_reply.run(result.message.pk) == "sent"
    assert anthropic.problems == []
    request = anthropic.bodies[0]
    assert request["messages"] == [{"role": "user", "content": TEXT}]
    assert "español" in request["system"] and responder_clinic.name in request["system"]  # the patient's language

    reply = Message.objects.get(sender="assistant")
    assert reply.content == REPLY and reply.conversation == result.message.conversation
    outbound = reply.outbound_message
    assert (outbound.body, outbound.recipient, outbound.sender, outbound.content_sid) == (
        REPLY,
        PHONE,
        CLINIC_NUMBER,
        "",
    )
    assert outbound.purpose == "mark.assistant"
    # Run again (a duplicate task): the message is answered, nothing more is asked or sent.
    assert tasks.assistant_reply.run(result.message.pk) == "answered"
    assert len(anthropic.bodies) == 1 and OutboundMessage.objects.count() == 1


def test_the_conversation_so_far_is_sent_with_alternating_roles(responder_clinic, anthropic, delayed):
    first = receive(1, "Hola")
    assistant.assistant_reply(message_id=first.message.pk)
    second = receive(2, "Quiero cambiar la cita")
    third = receive(3, "del martes")
    assert assistant.assistant_reply(message_id=second.message.pk) == "answered"  # the patient wrote again
    assert assistant.assistant_reply(message_id=third.message.pk) == "sent"
    assert anthropic.problems == []
    assert anthropic.bodies[-1]["messages"] == [
        {"role": "user", "content": "Hola"},
        {"role": "assistant", "content": REPLY},
        {"role": "user", "content": "Quiero cambiar la cita\ndel martes"},
    ]


def test_the_clinics_earlier_messages_go_into_the_system_prompt(responder_clinic, anthropic, delayed):
    patient = services.patient_create(organization=responder_clinic, name="Ana", phone_number=PHONE, actor=ACTOR)
    Patient.objects.filter(pk=patient.pk).update(last_inbound_at=utc_now())
    services.message_send_text(
        organization=responder_clinic, patient=Patient.objects.get(pk=patient.pk), text="Recuerde su cita", actor=ACTOR
    )
    result = receive(1, "¿A qué hora?")
    assert assistant.assistant_reply(message_id=result.message.pk) == "sent"
    body = anthropic.bodies[-1]
    assert body["messages"] == [{"role": "user", "content": "¿A qué hora?"}]
    assert "Recuerde su cita" in body["system"]


def test_a_message_the_clinic_already_answered_gets_no_reply(responder_clinic, anthropic, delayed):
    result = receive(1)
    services.message_send_text(
        organization=responder_clinic, patient=result.patient, text="Ya le llamamos", actor=ACTOR
    )
    assert assistant.assistant_reply(message_id=result.message.pk) == "answered"
    assert anthropic.bodies == []


@pytest.mark.parametrize("status", [500, 429, 401])
def test_a_responder_error_means_no_reply_and_a_log_line_without_content(
    responder_clinic, anthropic, delayed, status, caplog
):
    anthropic.status = status
    result = receive(1)
    caplog.set_level("DEBUG")
    assert assistant.assistant_reply(message_id=result.message.pk) == "failed"
    assert not Message.objects.filter(sender="assistant").exists()
    assert not OutboundMessage.objects.exists()
    lines = [record.getMessage() for record in caplog.records if record.name == "patients"]
    assert lines == [
        f"assistant reply to message {result.message.public_id} failed: ResponderError anthropic_http_{status}"
    ]


def test_an_unreachable_responder_means_no_reply(responder_clinic, settings, delayed):
    settings.MARK_RESPONDER_BASE_URL = "http://127.0.0.1:9"  # nothing listens
    result = receive(1)
    assert assistant.assistant_reply(message_id=result.message.pk) == "failed"
    assert not Message.objects.filter(sender="assistant").exists()


@pytest.mark.parametrize("answer", ["", "   "])
def test_an_empty_answer_means_no_reply(responder_clinic, anthropic, delayed, answer):
    anthropic.answers = [answer]
    result = receive(1)
    assert assistant.assistant_reply(message_id=result.message.pk) == "failed"
    assert not OutboundMessage.objects.exists()


def test_without_a_responder_nothing_is_asked(clinic, anthropic, delayed, django_capture_on_commit_callbacks):
    clinic_settings_update(organization=clinic, actor=ACTOR, whatsapp_number=CLINIC_NUMBER)
    with django_capture_on_commit_callbacks(execute=True):
        result = receive(1)
    assert delayed == []  # the default responder is none: the clinic answers through the API
    assert assistant.assistant_reply(message_id=result.message.pk) == "no_responder"
    assert anthropic.bodies == []


def test_stop_is_not_answered(responder_clinic, anthropic, delayed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = receive(1, "STOP")
    assert delayed == []
    assert assistant.assistant_reply(message_id=result.message.pk) == "refused"  # opted out now
    assert anthropic.bodies == []


def test_a_late_task_outside_the_window_sends_nothing(responder_clinic, anthropic, delayed):
    result = receive(1, now=utc_now() - timedelta(days=2))
    assert assistant.assistant_reply(message_id=result.message.pk) == "refused"
    assert not OutboundMessage.objects.exists() and not Message.objects.filter(sender="assistant").exists()


# --- Conversation end ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def idle_30(settings):
    settings.MARK_CONVERSATION_IDLE_MINUTES = 30


def test_the_sweeper_closes_idle_conversations_at_their_last_message(clinic, delayed, monkeypatch):
    published = []
    from patients import events

    monkeypatch.setattr(events, "conversation_updated", lambda conversation: published.append(conversation.pk))
    clinic_settings_update(organization=clinic, actor=ACTOR, whatsapp_number=CLINIC_NUMBER)
    now = utc_now()
    old = receive(1, now=now - timedelta(minutes=45))
    receive(2, now=now - timedelta(minutes=40))
    conversation = Conversation.objects.get()
    assert assistant.conversations_close_idle(now=now - timedelta(minutes=20)) == {"closed": 0, "summaries_queued": 0}
    assert assistant.conversations_close_idle(now=now) == {"closed": 1, "summaries_queued": 0}  # no responder
    conversation.refresh_from_db()
    assert conversation.status == "closed" and conversation.end_time == now - timedelta(minutes=40)
    assert (conversation.summary, conversation.metadata) == (None, None)
    assert published == [conversation.pk]
    assert assistant.conversations_close_idle(now=now + MINUTE) == {"closed": 0, "summaries_queued": 0}
    # The next message starts a new conversation.
    receive(3, now=now + MINUTE)
    assert Conversation.objects.count() == 2 and old.message.conversation_id == conversation.pk


def test_an_active_conversation_stays_open(clinic, delayed):
    clinic_settings_update(organization=clinic, actor=ACTOR, whatsapp_number=CLINIC_NUMBER)
    now = utc_now()
    receive(1, now=now - timedelta(minutes=10))
    assert tasks.close_idle_conversations.run()["closed"] == 0
    assert Conversation.objects.get().status == "open"


SUMMARY = {
    "summary": "El paciente pregunta el horario del sábado.",
    "intent": "question",
    "sentiment": "neutral",
    "escalated": False,
}


def _closed_conversation(delayed) -> Conversation:
    now = utc_now()
    receive(1, now=now - timedelta(hours=2))
    assistant.conversations_close_idle(now=now)
    return Conversation.objects.get()


def test_a_closed_conversation_is_summarised_from_the_responders_json(responder_clinic, anthropic, delayed):
    anthropic.answers = ["```json\n" + json.dumps(SUMMARY) + "\n```"]
    conversation = _closed_conversation(delayed)
    assert ("patients.tasks.summarize_conversation", (conversation.pk,)) in delayed
    assert tasks.summarize_conversation.run(conversation.pk) == "summarized"
    conversation.refresh_from_db()
    assert conversation.summary == SUMMARY["summary"]
    assert conversation.metadata == {"intent": "question", "sentiment": "neutral", "escalated": False}
    request = anthropic.bodies[-1]
    assert anthropic.problems == [] and "JSON" in request["system"] and "Spanish" in request["system"]
    assert request["messages"] == [{"role": "user", "content": f"Patient: {TEXT}"}]
    # Idempotent: a summarised conversation is left alone, and the sweeper no longer asks for it.
    assert tasks.summarize_conversation.run(conversation.pk) == "not_found"
    delayed.clear()
    assert assistant.conversations_close_idle()["summaries_queued"] == 0


@pytest.mark.parametrize(
    "answer",
    [
        "I think the patient asked about hours.",
        json.dumps({**SUMMARY, "intent": "world_domination"}),
        json.dumps({**SUMMARY, "sentiment": "ecstatic"}),
        json.dumps({**SUMMARY, "escalated": "no"}),
        json.dumps({**SUMMARY, "summary": ""}),
        json.dumps([SUMMARY]),
        "{not json}",
    ],
)
def test_an_answer_that_is_not_the_json_asked_for_leaves_summary_and_metadata_null(
    responder_clinic, anthropic, delayed, answer
):
    anthropic.answers = [answer]
    conversation = _closed_conversation(delayed)
    assert assistant.conversation_summarize(conversation_id=conversation.pk) == "invalid"
    conversation.refresh_from_db()
    assert (conversation.summary, conversation.metadata) == (None, None)


def test_a_failing_summary_is_tried_at_most_three_times(responder_clinic, anthropic, delayed):
    anthropic.status = 500
    conversation = _closed_conversation(delayed)
    for _ in range(4):
        assistant.conversation_summarize(conversation_id=conversation.pk)
    delayed.clear()
    assert assistant.conversations_close_idle()["summaries_queued"] == 0
    assert len(anthropic.bodies) == 4  # the task asked when run; the sweeper stops asking after three


def test_without_a_responder_the_summary_stays_null(clinic, anthropic, delayed):
    clinic_settings_update(organization=clinic, actor=ACTOR, whatsapp_number=CLINIC_NUMBER)
    conversation = _closed_conversation(delayed)
    assert delayed == []
    assert assistant.conversation_summarize(conversation_id=conversation.pk) == "no_responder"
    conversation.refresh_from_db()
    assert conversation.summary is None and anthropic.bodies == []


# --- Logs ------------------------------------------------------------------------------------------------


def test_inbound_reply_and_reminder_log_no_number_and_no_text(
    responder_clinic, anthropic, delayed, logs, django_capture_on_commit_callbacks
):
    """`logs`: DEBUG on every logger (httpx and httpcore included), tests/fixtures/messaging.py."""
    with django_capture_on_commit_callbacks(execute=True):
        result = receive(1)
    assert assistant.assistant_reply(message_id=result.message.pk) == "sent"
    patient = Patient.objects.get()
    start = utc_now() + timedelta(days=2)
    appointment = services.appointment_create(patient=patient, start_time=start, duration=30, actor=ACTOR)
    due = Reminder.objects.get(appointment=appointment, kind="24h").due_at
    Patient.objects.filter(pk=patient.pk).update(last_inbound_at=due - timedelta(hours=1))
    assert services.reminders_sweep(now=due)["sent"] == 1
    anthropic.status = 500
    receive(2, "Otra pregunta privada")
    assistant.assistant_reply(message_id=Message.objects.get(external_id="SM" + f"{2:032x}").pk)
    anthropic.status = 200
    anthropic.answers = [json.dumps(SUMMARY)]
    assistant.conversations_close_idle(now=utc_now() + timedelta(days=5))
    for conversation in Conversation.objects.all():
        assistant.conversation_summarize(conversation_id=conversation.pk)

    assert Conversation.objects.filter(summary__isnull=False).exists()
    assert "outbound POST 127.0.0.1 -> 200" in logs.text()  # the capture sees the responder calls
    logs.assert_clean(PHONE, PROFILE, TEXT, REPLY, "Otra pregunta privada", SUMMARY["summary"], API_KEY)


def test_a_transcribed_voice_note_is_answered_from_its_transcription(
    responder_clinic, anthropic, delayed, settings, monkeypatch
):
    from patients.services import messages as voice_messages
    from tests.patients.test_inbound import ACCOUNT_SID, TOKEN, FakeTwilioMedia, wav_bytes

    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = ACCOUNT_SID, TOKEN
    monkeypatch.setattr(voice_messages, "voice_transcribe", lambda **kwargs: TEXT)
    media = FakeTwilioMedia(wav_bytes())
    media.server.start()
    settings.TWILIO_API_BASE_URL = media.server.base_url
    try:
        result = inbound.inbound_whatsapp_record(
            inbound=inbound.Inbound(
                to=CLINIC_NUMBER,
                from_=PHONE,
                body="",
                message_sid="SM" + "7" * 32,
                num_media=1,
                media_url=media.url(),
                media_content_type="audio/ogg",
            )
        )
        assert inbound.inbound_media_fetch(message_id=result.message.pk, media_url=media.url()) == "stored"
    finally:
        media.server.stop()
    voice = Message.objects.get(pk=result.message.pk)
    assert (voice.content_type, voice.transcription) == ("voice", TEXT)
    assert ("patients.tasks.assistant_reply", (voice.pk,)) in delayed
    assert assistant.assistant_reply(message_id=voice.pk) == "sent"
    assert anthropic.bodies[-1]["messages"] == [{"role": "user", "content": TEXT}]
