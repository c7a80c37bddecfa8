"""Mark voice messages: audio sniffing by content (patients.media.audio_inspect), signed expiring media
URLs and the public audio view, POST /api/v1/messages/voice through HTTP, and speech-to-text against an
OpenAI-compatible server on 127.0.0.1.

The audio files are made here without network or encoders: WAV with the stdlib `wave` module, MP3 as
CBR MPEG-1 Layer III frames (silent payload), OGG Opus/Vorbis as real Ogg pages (mutagen's OggPage
computes the CRCs) carrying the codecs' identification headers and a final granule position."""

from __future__ import annotations

import io
import json
import struct
import time
import wave
from datetime import timedelta
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test import Client
from mutagen.ogg import OggPage
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as accounts_services
from accounts.models import User
from audit.models import AccessLog, AuditEvent
from core.domain import Invalid
from core.time import utc_now
from messaging.models import OutboundMessage
from patients import media, selectors, services
from patients.clients.stt import OpenAITranscriptionClient, SpeechToTextError
from patients.models import Message, Patient
from patients.services import messages as message_services
from tests.patients.conftest import ACTOR
from tests.servers import LocalServer, Recorded, Reply

pytestmark = pytest.mark.django_db

PHONE = "+34612345678"
TRANSCRIPT = "Hola, le recordamos su cita de mañana"


# --- Audio made in the test --------------------------------------------------------------------------


def wav_bytes(seconds: float = 2.5, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(b"\x00\x01" * int(rate * seconds))
    return out.getvalue()


def mp3_bytes(frames: int = 100) -> bytes:
    """CBR MPEG-1 Layer III, 128 kbit/s, 44.1 kHz: 417-byte frames of 1152 samples each."""
    return (bytes([0xFF, 0xFB, 0x90, 0x64]) + b"\x00" * 413) * frames


def _ogg(pages) -> bytes:
    out = io.BytesIO()
    for sequence, (packets, position) in enumerate(pages):
        page = OggPage()
        page.serial, page.sequence, page.packets, page.position = 4321, sequence, packets, position
        page.first = sequence == 0
        page.last = sequence == len(pages) - 1
        out.write(page.write())
    return out.getvalue()


def ogg_opus_bytes(seconds: int = 2, pre_skip: int = 312) -> bytes:
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    return _ogg([([head], 0), ([tags], 0), ([b"\xfc" * 10] * 5, 48000 * seconds + pre_skip)])


def ogg_vorbis_bytes(seconds: int = 3, rate: int = 44100) -> bytes:
    ident = b"\x01vorbis" + struct.pack("<IBIiiiBB", 0, 1, rate, 0, 128000, 0, 0xB8, 1)
    comment = b"\x03vorbis" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0) + b"\x01"
    setup = b"\x05vorbis" + b"\x00" * 10
    return _ogg([([ident], 0), ([comment, setup], 0), ([b"\x00" * 10] * 3, rate * seconds)])


# --- Fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def media_root(settings, tmp_path):
    root = tmp_path / "mark-media"
    settings.STORAGES = {
        **settings.STORAGES,
        "mark_media": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "base_url": None},
        },
    }
    return root


def stored_files(root) -> list:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


@pytest.fixture
def http(frozen_ratelimit_clock):
    return Client(raise_request_exception=False)


def _member(username: str, role: str, *organizations) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username + "-123!")
    for organization in organizations:
        accounts_services.membership_set(user=user, organization=organization, role=role, actor=ACTOR)
    return user


def _auth(user: User) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}


@pytest.fixture
def owner(clinic):
    return _member("owner", "owner", clinic)


def _patient(clinic, *, window_open: bool = True, **fields) -> Patient:
    fields.setdefault("phone_number", PHONE)
    patient = services.patient_create(organization=clinic, name="Núria Puig", actor=ACTOR, **fields)
    if window_open:  # the patient wrote recently: WhatsApp's 24-hour window is open
        Patient.objects.filter(pk=patient.pk).update(last_inbound_at=utc_now() - timedelta(minutes=5))
        patient.refresh_from_db()
    return patient


def _upload(name: str, content: bytes, content_type: str = "application/octet-stream"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, content, content_type=content_type)


def _send_voice(http, user, patient_id: str, content: bytes, name: str = "note.wav", **extra):
    data = {"patient_id": patient_id, "audio_file": _upload(name, content, "audio/wav")}
    data.update(extra.pop("fields", {}))
    return http.post("/api/v1/messages/voice", data, **_auth(user), **extra)


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    return body["error"]


def _fetch(http, url: str):
    parts = urlsplit(url)
    return http.get(parts.path + "?" + parts.query)


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


# --- audio_inspect -----------------------------------------------------------------------------------


def test_wav_made_with_the_wave_module_is_accepted_with_its_duration():
    info = media.audio_inspect(io.BytesIO(wav_bytes(2.5)))
    assert (info.format, info.content_type) == ("wav", "audio/wav")
    assert info.duration_seconds == pytest.approx(2.5)


def test_mp3_frames_are_accepted_with_their_duration():
    info = media.audio_inspect(io.BytesIO(mp3_bytes(100)))
    assert (info.format, info.content_type) == ("mp3", "audio/mpeg")
    assert info.duration_seconds == pytest.approx(100 * 1152 / 44100, rel=0.02)


def test_mp3_with_an_id3_tag_is_accepted():
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x00"  # ID3v2.4 header, no frames
    assert media.audio_inspect(io.BytesIO(tag + mp3_bytes(50))).format == "mp3"


@pytest.mark.parametrize(
    "content, codec, seconds",
    [(ogg_opus_bytes(2), "opus", 2.0), (ogg_vorbis_bytes(3), "vorbis", 3.0)],
    ids=["opus", "vorbis"],
)
def test_ogg_opus_and_vorbis_are_accepted(content, codec, seconds):
    info = media.audio_inspect(io.BytesIO(content))
    assert (info.format, info.codec, info.content_type) == ("ogg", codec, "audio/ogg")
    assert info.duration_seconds == pytest.approx(seconds)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"Dear patient, these are my notes, not audio at all.\n" * 20,
        b"%PDF-1.7\n" + b"0" * 500,
        b"RIFF\x24\x00\x00\x00WAVE" + b"\x00" * 20,  # a WAV header with no fmt chunk
        b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"text after the tag" * 30,  # a tag and no MPEG frame
        b"OggS" + b"\x00" * 60,  # an Ogg capture pattern and garbage
    ],
    ids=["empty", "text", "pdf", "wav-header-only", "id3-no-frames", "ogg-garbage"],
)
def test_what_is_not_audio_is_refused_naming_audio_file(content):
    with pytest.raises(Invalid) as refused:
        media.audio_inspect(io.BytesIO(content))
    assert refused.value.details == {"field": "audio_file"}


def test_an_ogg_of_another_codec_is_refused():
    flac_in_ogg = _ogg([([b"\x7fFLAC\x01\x00\x00\x01fLaC" + b"\x00" * 34], 0), ([b"\x00" * 10], 44100)])
    with pytest.raises(Invalid, match="not Vorbis or Opus"):
        media.audio_inspect(io.BytesIO(flac_in_ogg))


def test_audio_store_uses_the_media_upload_rule(clinic, media_root):
    name = media.audio_store(organization=clinic, fileobj=io.BytesIO(wav_bytes(1)), format="wav")
    assert name.startswith(f"voice/{clinic.pk}/") and name.endswith(".wav")
    assert (media_root / name).read_bytes() == wav_bytes(1)
    media.audio_delete(name)
    assert stored_files(media_root) == []


# --- Signed URLs and the audio view ------------------------------------------------------------------


def _voice_message(clinic, media_root, content: bytes | None = None) -> Message:
    patient = _patient(clinic)
    content = content or wav_bytes(1.5)
    return message_services.message_send_voice(
        organization=clinic,
        patient=patient,
        fileobj=io.BytesIO(content),
        info=media.audio_inspect(io.BytesIO(content)),
        transcription=None,
        actor=ACTOR,
        media_base_url="https://api.clinic.example",
    )


def test_a_signed_url_serves_the_audio_without_a_token(http, clinic, media_root):
    message = _voice_message(clinic, media_root)
    url = media.signed_media_url(message)
    assert url.startswith(f"/api/v1/messages/{message.public_id}/audio?expires=")
    response = http.get(url)
    assert response.status_code == 200
    assert _body(response) == wav_bytes(1.5)
    assert response["Content-Type"] == "audio/wav"
    assert response["Cache-Control"] == "private, no-store"
    log = AccessLog.objects.get(path=f"/api/v1/messages/{message.public_id}/audio")
    assert (log.api, log.status_code, log.organization_id) == ("mark", 200, clinic.public_id)
    assert log.subject_ids == [f"message:{message.public_id}"]


def test_expiry_defaults_to_the_setting(settings, clinic, media_root):
    settings.MARK_MEDIA_URL_SECONDS = 120
    message = _voice_message(clinic, media_root)
    before = int(time.time())
    expires = int(parse_qs(urlsplit(media.signed_media_url(message)).query)["expires"][0])
    assert before + 120 <= expires <= int(time.time()) + 120


def test_tampered_expired_or_missing_signatures_are_refused(http, clinic, media_root):
    message = _voice_message(clinic, media_root)
    other = _voice_message(clinic, media_root)
    path = f"/api/v1/messages/{message.public_id}/audio"
    query = parse_qs(urlsplit(media.signed_media_url(message)).query)
    expires, signature = query["expires"][0], query["signature"][0]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    cases = {
        "flipped": f"{path}?expires={expires}&signature={flipped}",
        "later expiry": f"{path}?expires={int(expires) + 3600}&signature={signature}",
        "missing signature": f"{path}?expires={expires}",
        "missing both": path,
        "not hex length": f"{path}?expires={expires}&signature=abc",
        "expires not a number": f"{path}?expires=soon&signature={signature}",
        "another message": f"/api/v1/messages/{other.public_id}/audio?expires={expires}&signature={signature}",
    }
    for name, url in cases.items():
        error = _error(http.get(url), 403)
        assert error["code"] == "invalid_signature", name
    past = media.signed_media_path(message.public_id, expires_in=60, now=time.time() - 120)
    assert _error(http.get(past), 403)["code"] == "link_expired"


def test_a_signature_made_with_a_previous_secret_key_still_works(http, settings, clinic, media_root):
    message = _voice_message(clinic, media_root)
    old_url = media.signed_media_url(message)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-rotated-secret-key-" + "x" * 40
    assert http.get(old_url).status_code == 200
    settings.SECRET_KEY_FALLBACKS = []
    assert _error(http.get(old_url), 403)["code"] == "invalid_signature"


def test_no_audio_is_404_once_the_signature_is_good(http, clinic, media_root):
    message = _voice_message(clinic, media_root)
    text = services.message_send_text(organization=clinic, patient=_patient(clinic), text="Hola", actor=ACTOR)
    _error(http.get(media.signed_media_url(text)), 404)  # a text message has no audio
    _error(http.get(media.signed_media_path("msg_doesnotexist1")), 404)
    media.audio_delete(message.media.name)
    _error(http.get(media.signed_media_url(message)), 404)  # the file is gone


def test_absolute_urls_use_the_public_base_url(settings, clinic, media_root):
    message = _voice_message(clinic, media_root)
    settings.MARK_PUBLIC_BASE_URL = "https://api.clinic.example"
    assert media.signed_media_url(message).startswith(
        f"https://api.clinic.example/api/v1/messages/{message.public_id}/"
    )


# --- POST /api/v1/messages/voice -----------------------------------------------------------------------


VOICE_KEYS = {"id", "patient_id", "timestamp", "sender", "content", "content_type", "status", "conversation_id"}


def test_voice_message_is_stored_queued_and_served(http, clinic, owner, media_root):
    patient = _patient(clinic)
    response = _send_voice(http, owner, patient.public_id, wav_bytes(2.6), fields={"language": "es"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == VOICE_KEYS | {"metadata"}
    assert (body["sender"], body["content_type"], body["status"]) == ("system", "voice", "queued")
    assert body["patient_id"] == patient.public_id and body["conversation_id"].startswith("conv_")
    assert body["metadata"] == {"duration": 3, "format": "wav", "transcription": None}  # 2.6 s rounds to 3
    assert body["content"].startswith(f"http://testserver/api/v1/messages/{body['id']}/audio?expires=")

    message = Message.objects.get(public_id=body["id"])
    assert (message.content_type, message.media_format, message.content) == ("voice", "wav", "")
    assert message.media_duration == pytest.approx(2.6)
    assert (media_root / message.media.name).read_bytes() == wav_bytes(2.6)

    outbound = OutboundMessage.objects.get()
    assert message.outbound_message_id == outbound.pk
    assert (outbound.channel, outbound.recipient) == ("whatsapp", PHONE)
    assert outbound.media_url.startswith(f"http://testserver/api/v1/messages/{body['id']}/audio?")
    twilio_expiry = int(parse_qs(urlsplit(outbound.media_url).query)["expires"][0])
    assert twilio_expiry > time.time() + 6 * 86400  # long-lived: Twilio may fetch it after retries

    fetched = _fetch(http, body["content"])
    assert fetched.status_code == 200 and _body(fetched) == wav_bytes(2.6)
    event = AuditEvent.objects.get(action="message.sent")
    assert event.subject_id == body["id"]
    assert PHONE not in json.dumps(event.metadata) and "voice/" not in json.dumps(event.metadata)


def test_voice_message_detail_gives_a_fresh_signed_url(http, clinic, owner, media_root):
    patient = _patient(clinic)
    created = _send_voice(http, owner, patient.public_id, ogg_opus_bytes(4), name="n.ogg").json()
    response = http.get(f"/api/v1/messages/{created['id']}", **_auth(owner))
    assert response.status_code == 200
    body = response.json()
    assert body["metadata"] == {"duration": 4, "format": "ogg", "transcription": None}
    assert body["content"] != "" and _fetch(http, body["content"]).status_code == 200


def test_renamed_text_file_is_refused_and_nothing_is_kept(http, clinic, owner, media_root):
    patient = _patient(clinic)
    response = _send_voice(http, owner, patient.public_id, b"These are my notes, honestly.\n" * 10, name="notes.mp3")
    error = _error(response, 400)
    assert error["details"] == {"field": "audio_file"}
    assert not Message.objects.exists() and not OutboundMessage.objects.exists()
    assert stored_files(media_root) == []


def test_voice_size_cap_is_413(http, settings, clinic, owner, media_root):
    settings.MARK_VOICE_MAX_BYTES = 4096
    patient = _patient(clinic)
    error = _error(_send_voice(http, owner, patient.public_id, wav_bytes(1)), 413)  # 16 kB
    assert (error["code"], error["details"]["field"]) == ("audio_too_large", "audio_file")
    assert _send_voice(http, owner, patient.public_id, wav_bytes(0.2)).status_code == 201  # 3.2 kB


def test_voice_refusals(http, clinic, other_clinic, owner, media_root):
    patient = _patient(clinic)
    foreign = _patient(other_clinic)
    unknown = _error(_send_voice(http, owner, "pat_unknown123", wav_bytes(1)), 400)
    cross = _error(_send_voice(http, owner, foreign.public_id, wav_bytes(1)), 400)
    assert unknown == cross and unknown["details"] == {"field": "patient_id"}
    assert _error(_send_voice(http, owner, patient.public_id, wav_bytes(1), fields={"language": "x!"}), 400)[
        "details"
    ] == {"field": "language"}
    missing = http.post("/api/v1/messages/voice", {"patient_id": patient.public_id}, **_auth(owner))
    assert "audio_file" in _error(missing, 400)["details"]
    as_json = http.post(
        "/api/v1/messages/voice", {"patient_id": patient.public_id}, content_type="application/json", **_auth(owner)
    )
    _error(as_json, 415)
    services.patient_whatsapp_opt_out(patient=patient, reason="stop_keyword", actor=ACTOR)
    opted_out = _error(_send_voice(http, owner, patient.public_id, wav_bytes(1)), 409)
    assert opted_out["details"]["reason"] == "stop_keyword"
    assert not Message.objects.exists() and stored_files(media_root) == []


def test_outside_the_whatsapp_window_the_stored_file_is_removed(http, clinic, owner, media_root):
    patient = _patient(clinic, window_open=False)  # templates carry no audio: 409, and the file goes
    error = _error(_send_voice(http, owner, patient.public_id, wav_bytes(1)), 409)
    assert error["code"] == "OUTSIDE_WHATSAPP_WINDOW"
    assert not Message.objects.exists() and not OutboundMessage.objects.exists()
    assert stored_files(media_root) == []


def test_voice_roles(http, clinic, media_root):
    patient = _patient(clinic)
    viewer = _member("viewer", "viewer", clinic)
    _error(_send_voice(http, viewer, patient.public_id, wav_bytes(1)), 403)
    anonymous = http.post(
        "/api/v1/messages/voice", {"patient_id": patient.public_id, "audio_file": _upload("a.wav", wav_bytes(1))}
    )
    _error(anonymous, 401)
    assert stored_files(media_root) == []


# --- Speech-to-text ------------------------------------------------------------------------------------


def _multipart(recorded: Recorded) -> dict:
    raw = b"Content-Type: " + recorded.headers["Content-Type"].encode() + b"\r\n\r\n" + recorded.body
    message = BytesParser(policy=HTTP).parsebytes(raw)
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        parts[name] = (part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
    return parts


def openai_like(reply_text: str = TRANSCRIPT, status: int = 200):
    def handler(request: Recorded) -> Reply:
        if request.path != "/v1/audio/transcriptions" or request.method != "POST":
            return Reply(404, {"Content-Type": "application/json"}, b'{"error": {"message": "not found"}}')
        if request.headers.get("Authorization") != "Bearer sk-test-stt":
            return Reply(401, {"Content-Type": "application/json"}, b'{"error": {"message": "bad key"}}')
        parts = _multipart(request)
        if not {"file", "model"} <= set(parts) or parts["model"][2] != b"whisper-1":
            return Reply(400, {"Content-Type": "application/json"}, b'{"error": {"message": "bad form"}}')
        body = json.dumps({"text": reply_text}) if status == 200 else '{"error": {"message": "boom"}}'
        return Reply(status, {"Content-Type": "application/json"}, body.encode())

    return handler


@pytest.fixture
def stt_settings(settings):
    settings.MARK_STT_BACKEND = "openai"
    settings.MARK_STT_API_KEY = "sk-test-stt"
    settings.MARK_STT_MODEL = "whisper-1"
    settings.MARK_STT_TIMEOUT_SECONDS = 2.0
    return settings


def test_stt_client_sends_openais_multipart_request():
    audio = wav_bytes(1)
    with LocalServer(openai_like()) as server:
        client = OpenAITranscriptionClient(base_url=server.url(""), api_key="sk-test-stt", model="whisper-1")
        assert client.transcribe(data=audio, filename="audio.wav", content_type="audio/wav", language="es-ES") == (
            TRANSCRIPT
        )
    (request,) = server.requests
    parts = _multipart(request)
    assert parts["file"] == ("audio.wav", "audio/wav", audio)
    assert parts["model"][2] == b"whisper-1" and parts["language"][2] == b"es"
    assert parts["response_format"][2] == b"json"
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")


@pytest.mark.parametrize(
    "handler, code",
    [
        (openai_like(status=500), "stt_http_500"),
        (lambda _request: Reply(200, {"Content-Type": "application/json"}, b'{"no_text": 1}'), "stt_bad_response"),
        (lambda _request: Reply(200, {"Content-Type": "application/json"}, b"not json"), "stt_bad_response"),
        (lambda _request: Reply(200, {}, b"{}", delay=3.0), "stt_timeout"),
    ],
    ids=["500", "no-text", "not-json", "slow"],
)
def test_stt_client_failures_have_short_codes(handler, code):
    with LocalServer(handler) as server:
        client = OpenAITranscriptionClient(
            base_url=server.url(""), api_key="sk-test-stt", model="whisper-1", timeout=1.0
        )
        with pytest.raises(SpeechToTextError) as failed:
            client.transcribe(data=b"abc", filename="a.wav", content_type="audio/wav")
    assert failed.value.code == code


def test_voice_message_gets_its_transcription(http, stt_settings, clinic, owner, media_root):
    patient = _patient(clinic)
    with LocalServer(openai_like()) as server:
        stt_settings.MARK_STT_BASE_URL = server.url("")
        response = _send_voice(http, owner, patient.public_id, wav_bytes(1), fields={"language": "es"})
    assert response.status_code == 201, response.content
    assert response.json()["metadata"]["transcription"] == TRANSCRIPT
    assert _multipart(server.requests[0])["language"][2] == b"es"
    message = Message.objects.get()
    assert message.transcription == TRANSCRIPT
    with connection.cursor() as cursor:
        cursor.execute("SELECT transcription FROM patients_message WHERE id = %s", [message.pk])
        assert TRANSCRIPT not in cursor.fetchone()[0]  # encrypted at rest


def test_a_failing_transcription_is_null_and_logged_without_content(
    http, stt_settings, clinic, owner, media_root, logs
):
    patient = _patient(clinic)
    with LocalServer(openai_like(status=500)) as server:
        stt_settings.MARK_STT_BASE_URL = server.url("")
        response = _send_voice(http, owner, patient.public_id, wav_bytes(1))
    assert response.status_code == 201, response.content
    assert response.json()["metadata"]["transcription"] is None
    assert "speech-to-text failed: stt_http_500" in logs.text()
    logs.assert_clean(PHONE, "sk-test-stt")


def test_stt_is_not_called_for_a_refused_request(http, stt_settings, clinic, owner, media_root):
    with LocalServer(openai_like()) as server:
        stt_settings.MARK_STT_BASE_URL = server.url("")
        _error(_send_voice(http, owner, "pat_unknown123", wav_bytes(1)), 400)
        _error(_send_voice(http, owner, _patient(clinic).public_id, b"not audio at all" * 10), 400)
    assert server.requests == []


@pytest.mark.parametrize("key", [None, "voice-rollback"], ids=["no-key", "idempotency-key"])
def test_a_failure_after_the_service_rolls_back_and_removes_the_file(http, monkeypatch, clinic, owner, media_root, key):
    patient = _patient(clinic)

    def broken(**_kwargs):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(selectors, "message_get", broken)
    extra = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    response = _send_voice(http, owner, patient.public_id, wav_bytes(1), **extra)
    assert response.status_code == 500
    assert not Message.objects.exists() and not OutboundMessage.objects.exists()
    assert stored_files(media_root) == []
