"""The schema walk: every operation of the published OpenAPI schema (GET /api/schema/?format=json) is
called on the demo data, and what it answers is checked against what it documents.

For each operation: at least one real request answers 2xx; every response body is valid against the
schema documented for its status (an undocumented status is a failure too); every request body meant
to be valid is valid against the documented requestBody; and a body written in the documented types
(e.g. a decimal documented as a string sent as "15.00") is accepted. An operation of the schema with no
request in the walk fails the test: add it to the walk (tests/contract/helpers.py scenarios or below).

The failure message lists every failing operation and why.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from urllib.parse import urlencode

import pytest

from core.time import utc_now
from tests.contract.helpers import Api, SchemaBook, careos_scenario, conform, loverescue_scenario, twilio_signature

TWILIO_TOKEN = "contract-walk-twilio-auth-token"
TWILIO_BASE = "https://platform.example.com"
IGNORED_STATUSES = {405}  # a method the path does not have: not an operation of the schema


@pytest.fixture
def twilio_settings(settings):
    settings.TWILIO_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.MESSAGING_STATUS_CALLBACK_BASE_URL = TWILIO_BASE
    return settings


def platform_scenario(api: Api) -> None:
    """The Platform operations that are not part of the two partner APIs."""
    api.call("root", "GET", "/")
    api.call("health", "GET", "/health")
    path = "/api/messaging/twilio/status"
    params = {
        "MessageSid": "SM" + "0f" * 16,
        "MessageStatus": "delivered",
        "AccountSid": "AC" + "0123456789abcdef" * 2,
        "To": "+14155550123",
        "From": "+15005550006",
    }
    signature = twilio_signature(TWILIO_TOKEN, TWILIO_BASE + path, params)
    api.call(
        "twilio status: unknown MessageSid (ignored)",
        "POST",
        path,
        params,
        raw=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature},
        expect_valid=True,
    )
    api.call(
        "twilio status: bad signature",
        "POST",
        path,
        params,
        raw=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": "bad"},
    )
    api.call(
        "twilio status: JSON body",
        "POST",
        path,
        raw=json.dumps(params),
        content_type="application/json",
        headers={"X-Twilio-Signature": signature},
    )
    inbound_walk(api)


def inbound_walk(api: Api) -> None:
    """Twilio's incoming-message webhook: a signed message to a number no clinic has (answered, ignored),
    a bad signature, a signed form missing MessageSid, and JSON."""
    path = "/api/messaging/twilio/inbound"
    params = {
        "MessageSid": "SM" + "1e" * 16,
        "AccountSid": "AC" + "0123456789abcdef" * 2,
        "From": "whatsapp:+14155550123",
        "To": "whatsapp:+14155550199",
        "Body": "Hola",
        "NumMedia": "0",
        "ProfileName": "Walker",
    }
    form = "application/x-www-form-urlencoded"

    def signed(values: dict) -> dict:
        return {"X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, TWILIO_BASE + path, values)}

    api.call(
        "twilio inbound: unknown To (ignored)",
        "POST",
        path,
        params,
        raw=urlencode(params),
        content_type=form,
        headers=signed(params),
        expect_valid=True,
    )
    api.call(
        "twilio inbound: bad signature",
        "POST",
        path,
        params,
        raw=urlencode(params),
        content_type=form,
        headers={"X-Twilio-Signature": "bad"},
    )
    partial = {key: value for key, value in params.items() if key != "MessageSid"}
    api.call(
        "twilio inbound: no MessageSid",
        "POST",
        path,
        partial,
        raw=urlencode(partial),
        content_type=form,
        headers=signed(partial),
    )
    api.call(
        "twilio inbound: JSON body",
        "POST",
        path,
        raw=json.dumps(params),
        content_type="application/json",
        headers=signed(params),
    )


def mark_scenario(api: Api, demo: dict) -> None:
    """The Mark patients operations, as the demo clinic's owner (platform token + X-Organization-ID)."""
    platform = demo["platform"]
    login = {"username": platform["username"], "password": platform["password"]}
    token = api.call("mark: platform token", "POST", platform["tokenUrl"], login, expect_valid=True).json()[
        "access_token"
    ]
    headers = {"X-Organization-ID": platform["organizationId"]}
    created = api.call(
        "mark: create patient",
        "POST",
        "/api/v1/patients",
        {
            "name": "Jane Smith",
            "phone_number": "+34698765432",
            "email": "jane.smith@example.com",
            "preferred_language": "en",
            "notes": "New patient referred by Dr. Garcia",
            "metadata": {"source": "referral"},
        },
        token=token,
        headers=headers,
        expect_valid=True,
    ).json()
    api.call("mark: create patient, no name", "POST", "/api/v1/patients", {"notes": "x"}, token=token, headers=headers)
    api.call("mark: create patient, anonymous", "POST", "/api/v1/patients", {"name": "X"}, headers=headers)
    api.call("mark: list patients", "GET", "/api/v1/patients?search=jane&limit=5", token=token, headers=headers)
    api.call("mark: list patients, bad limit", "GET", "/api/v1/patients?limit=500", token=token, headers=headers)
    path = f"/api/v1/patients/{created['id']}"
    api.call("mark: get patient", "GET", path, token=token, headers=headers)
    api.call("mark: get unknown patient", "GET", "/api/v1/patients/pat_unknown1", token=token, headers=headers)
    api.call(
        "mark: update patient",
        "PUT",
        path,
        {"name": "Jane Smith-Johnson", "preferred_language": "ca", "status": "active"},
        token=token,
        headers=headers,
        expect_valid=True,
    )
    api.call("mark: update patient, bad status", "PUT", path, {"status": "gone"}, token=token, headers=headers)
    start = (utc_now() + timedelta(days=30)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    appointment = api.call(
        "mark: create appointment",
        "POST",
        "/api/v1/appointments",
        {
            "patient_id": created["id"],
            "start_time": start,
            "duration": 60,
            "type": "initial_consultation",
            "notes": "New patient consultation",
            "location": "Online (Zoom)",
        },
        token=token,
        headers=headers,
        expect_valid=True,
    ).json()
    api.call(
        "mark: create appointment, unknown patient",
        "POST",
        "/api/v1/appointments",
        {"patient_id": "pat_unknown1", "start_time": start, "duration": 60},
        token=token,
        headers=headers,
    )
    api.call(
        "mark: create appointment, overlap",
        "POST",
        "/api/v1/appointments",
        {"patient_id": created["id"], "start_time": start, "duration": 30},
        token=token,
        headers=headers,
    )
    api.call("mark: list appointments", "GET", "/api/v1/appointments?status=scheduled", token=token, headers=headers)
    api.call(
        "mark: list appointments, bad date", "GET", "/api/v1/appointments?start_date=x", token=token, headers=headers
    )
    apt_path = f"/api/v1/appointments/{appointment['id']}"
    api.call("mark: get appointment", "GET", apt_path, token=token, headers=headers)
    api.call("mark: get unknown appointment", "GET", "/api/v1/appointments/apt_unknown1", token=token, headers=headers)
    api.call(
        "mark: update appointment",
        "PUT",
        apt_path,
        {"duration": 45, "notes": "Rescheduled at patient's request"},
        token=token,
        headers=headers,
        expect_valid=True,
    )
    api.call("mark: update appointment, bad duration", "PUT", apt_path, {"duration": 0}, token=token, headers=headers)
    api.call(
        "mark: cancel appointment",
        "POST",
        f"{apt_path}/cancel",
        {"reason": "Patient unavailable", "notify_patient": True},
        token=token,
        headers=headers,
        expect_valid=True,
    )
    api.call("mark: cancel appointment again", "POST", f"{apt_path}/cancel", {}, token=token, headers=headers)
    for name in ("conversations", "appointments", "patients"):
        analytics = f"/api/v1/analytics/{name}"
        api.call(f"mark: {name} analytics", "GET", f"{analytics}?interval=week", token=token, headers=headers)
        api.call(f"mark: {name} analytics, bad date", "GET", f"{analytics}?end_date=x", token=token, headers=headers)
    api.call("mark: delete patient", "DELETE", path, token=token, headers=headers)
    api.call("mark: delete patient again", "DELETE", path, token=token, headers=headers)


def mark_messages_scenario(api: Api, demo: dict) -> None:
    """The Mark messages operations (text, voice, get, signed audio) and Idempotency-Key, as the demo
    clinic's owner; voice audio is kept in a temporary media directory."""
    import io
    import tempfile
    import wave
    from urllib.parse import urlsplit

    from django.conf import settings
    from django.test import override_settings
    from django.test.client import encode_multipart

    from patients.models import Patient

    platform = demo["platform"]
    login = {"username": platform["username"], "password": platform["password"]}
    token = api.call("mark: platform token", "POST", platform["tokenUrl"], login, expect_valid=True).json()[
        "access_token"
    ]
    headers = {"X-Organization-ID": platform["organizationId"]}
    patient = api.call(
        "mark messages: create patient",
        "POST",
        "/api/v1/patients",
        {"name": "Marta Vidal", "phone_number": "+34698765433", "preferred_language": "ca"},
        token=token,
        headers=headers,
        expect_valid=True,
    ).json()
    Patient.objects.filter(public_id=patient["id"]).update(last_inbound_at=utc_now())  # WhatsApp window open
    send = {
        "patient_id": patient["id"],
        "content": "Hello, this is a test message from the API",
        "content_type": "text",
    }
    keyed = {**headers, "Idempotency-Key": "contract-walk-1"}
    sent = api.call(
        "mark: send message", "POST", "/api/v1/messages", send, token=token, headers=keyed, expect_valid=True
    ).json()
    api.call("mark: send message, replayed", "POST", "/api/v1/messages", send, token=token, headers=keyed)
    api.call(
        "mark: send message, key reused",
        "POST",
        "/api/v1/messages",
        {**send, "content": "Another text"},
        token=token,
        headers=keyed,
    )
    api.call(
        "mark: send message, bad key",
        "POST",
        "/api/v1/messages",
        send,
        token=token,
        headers={**headers, "Idempotency-Key": ""},
    )
    api.call(
        "mark: send message, voice type",
        "POST",
        "/api/v1/messages",
        {**send, "content_type": "voice"},
        token=token,
        headers=headers,
    )
    api.call(
        "mark: send message, unknown patient",
        "POST",
        "/api/v1/messages",
        {**send, "patient_id": "pat_unknown1"},
        token=token,
        headers=headers,
    )
    api.call("mark: send message, anonymous", "POST", "/api/v1/messages", send, headers=headers)
    api.call("mark: get message", "GET", f"/api/v1/messages/{sent['id']}", token=token, headers=headers)
    api.call("mark: get unknown message", "GET", "/api/v1/messages/msg_unknown1", token=token, headers=headers)

    audio = io.BytesIO()
    with wave.open(audio, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(b"\x00\x00" * 12000)
    with tempfile.TemporaryDirectory() as root:
        media = {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": root}}
        with override_settings(STORAGES={**settings.STORAGES, "mark_media": media}):

            def voice(name, content, **extra):
                fields = {"patient_id": patient["id"], "audio_file": content, "language": "ca"}
                raw, boundary = encode_multipart("contract-walk-boundary", fields), "contract-walk-boundary"
                multipart = f"multipart/form-data; boundary={boundary}"
                return api.call(name, "POST", "/api/v1/messages/voice", raw=raw, content_type=multipart, **extra)

            wav = io.BytesIO(audio.getvalue())
            wav.name = "note.wav"
            voiced = voice("mark: send voice message", wav, token=token, headers=headers, expect_valid=True).json()
            text = io.BytesIO(b"not audio, only text" * 10)
            text.name = "notes.mp3"
            voice("mark: send voice message, text renamed .mp3", text, token=token, headers=headers)
            api.call("mark: get voice message", "GET", f"/api/v1/messages/{voiced['id']}", token=token, headers=headers)
            url = urlsplit(voiced["content"])
            api.call("mark: voice audio (signed URL)", "GET", f"{url.path}?{url.query}", expect_valid=True)
            api.call("mark: voice audio, bad signature", "GET", f"{url.path}?expires=1&signature={'0' * 64}")


def mark_conversations_scenario(api: Api, demo: dict) -> None:
    """The Mark conversations operations (list, get, export in each format, delete), as the demo clinic's owner."""
    platform = demo["platform"]
    login = {"username": platform["username"], "password": platform["password"]}
    token = api.call("mark: platform token", "POST", platform["tokenUrl"], login, expect_valid=True).json()[
        "access_token"
    ]
    headers = {"X-Organization-ID": platform["organizationId"]}
    listed = api.call(
        "mark: list conversations",
        "GET",
        "/api/v1/conversations?limit=5",
        token=token,
        headers=headers,
        expect_valid=True,
    ).json()
    api.call(
        "mark: list conversations, bad date", "GET", "/api/v1/conversations?start_date=x", token=token, headers=headers
    )
    first, last = listed["data"][0]["id"], listed["data"][-1]["id"]
    path = f"/api/v1/conversations/{first}"
    api.call("mark: get conversation", "GET", path, token=token, headers=headers, expect_valid=True)
    api.call(
        "mark: get unknown conversation", "GET", "/api/v1/conversations/conv_unknown1", token=token, headers=headers
    )
    for fmt in ("pdf", "csv", "json"):
        api.call(
            f"mark: export conversation ({fmt})",
            "GET",
            f"{path}/export?format={fmt}",
            token=token,
            headers=headers,
            expect_valid=True,
        )
    api.call("mark: export conversation, bad format", "GET", f"{path}/export?format=doc", token=token, headers=headers)
    api.call(
        "mark: delete conversation",
        "DELETE",
        f"/api/v1/conversations/{last}",
        token=token,
        headers=headers,
        expect_valid=True,
    )
    api.call("mark: delete conversation again", "DELETE", f"/api/v1/conversations/{last}", token=token, headers=headers)


def mark_system_webhooks_scenario(api: Api, demo: dict) -> None:
    """The Mark system and webhooks operations, as the demo clinic's owner."""
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import User

    platform = demo["platform"]
    # A token as the token endpoint issues it, without another login (the walk's logins are rate limited).
    token = str(AccessToken.for_user(User.objects.get(username=platform["username"])))
    headers = {"X-Organization-ID": platform["organizationId"]}
    api.call("mark: system status", "GET", "/api/v1/system/status", token=token, headers=headers)
    api.call("mark: system status, anonymous", "GET", "/api/v1/system/status", headers=headers)
    api.call("mark: encryption status", "GET", "/api/v1/system/encryption/status", token=token, headers=headers)
    api.call("mark: encryption status, anonymous", "GET", "/api/v1/system/encryption/status", headers=headers)
    events = [
        "conversation.created",
        "conversation.updated",
        "appointment.created",
        "appointment.updated",
        "appointment.canceled",
        "patient.created",
        "patient.updated",
    ]
    hook = {"url": "https://93.184.216.34/webhooks/mark", "secret": "your_webhook_secret", "events": events}
    created = api.call(
        "mark: configure webhook", "POST", "/api/v1/webhooks", hook, token=token, headers=headers, expect_valid=True
    ).json()
    api.call(
        "mark: configure webhook, unknown event",
        "POST",
        "/api/v1/webhooks",
        {**hook, "events": ["patient.deleted"]},
        token=token,
        headers=headers,
    )
    api.call(
        "mark: configure webhook, private address",
        "POST",
        "/api/v1/webhooks",
        {**hook, "url": "https://10.0.0.1/hook"},
        token=token,
        headers=headers,
    )
    api.call("mark: list webhooks", "GET", "/api/v1/webhooks?limit=5", token=token, headers=headers)
    api.call("mark: list webhooks, bad page", "GET", "/api/v1/webhooks?page=0", token=token, headers=headers)
    hook_path = f"/api/v1/webhooks/{created['id']}"
    api.call("mark: delete webhook", "DELETE", hook_path, token=token, headers=headers)
    api.call("mark: delete webhook again", "DELETE", hook_path, token=token, headers=headers)


def routiq_read_scenario(api: Api, demo: dict) -> None:
    """The Routiq auth checks, patient views and dashboards, on the demo clinic as its owner."""
    from urllib.parse import quote

    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import User

    platform = demo["platform"]
    token = str(AccessToken.for_user(User.objects.get(username=platform["username"])))
    org = platform["organizationId"]
    api.call("routiq: verify", "GET", "/api/v1/auth/verify", token=token, headers={"X-Organization-ID": org})
    api.call("routiq: verify, anonymous", "GET", "/api/v1/auth/verify")
    api.call(
        "routiq: verify, unknown organization",
        "GET",
        "/api/v1/auth/verify",
        token=token,
        headers={"X-Organization-ID": "org_unknown1"},
    )
    api.call("routiq: access", "GET", f"/api/v1/auth/organization/{org}/access", token=token)
    api.call("routiq: access, unknown", "GET", "/api/v1/auth/organization/org_unknown1/access", token=token)
    base = f"/api/v1/patients/{org}"
    for name, path in (
        ("patients", f"{base}/patients?limit=5&offset=0"),
        ("active summary", f"{base}/active/summary"),
        ("with appointments", f"{base}/patients/with-appointments"),
        ("by appointment type", f"{base}/patients/by-appointment-type/{quote('Initial consultation é')}"),
        ("appointment types summary", f"{base}/patients/appointment-types/summary"),
        ("dashboard", f"/api/v1/dashboard/{org}"),
        ("dashboard summary", f"/api/v1/dashboard/{org}/summary"),
        ("dashboard activity", f"/api/v1/dashboard/{org}/activity?limit=5"),
    ):
        api.call(f"routiq: {name}", "GET", path, token=token)
        api.call(f"routiq: {name}, anonymous", "GET", path)
        api.call(f"routiq: {name}, unknown organization", "GET", path.replace(org, "org_unknown1"), token=token)
    api.call("routiq: patients, bad limit", "GET", f"{base}/patients?limit=501", token=token)
    api.call("routiq: activity, bad limit", "GET", f"/api/v1/dashboard/{org}/activity?limit=0", token=token)


def routiq_ops_scenario(api: Api, demo: dict) -> None:
    """The Routiq sync, Cliniko and administration operations, on the Routiq demo clinic as its owner
    (connected to a Cliniko stand-in on 127.0.0.1) and its empty clinic (not connected)."""
    from django.test import override_settings
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import Organization, User
    from core.actors import Actor
    from sync import services as sync_services
    from tests.cliniko_stub import ClinikoStub

    routiq = demo["routiq"]
    token = str(AccessToken.for_user(User.objects.get(username=routiq["username"])))
    org, empty, other = routiq["organizationId"], routiq["emptyOrganizationId"], routiq["otherOrganizationId"]
    headers = {"X-Organization-ID": org}
    cliniko = override_settings(OUTBOUND_ALLOW_LOOPBACK=True, CLINIKO_USER_AGENT="Routiq walk (walk@example.com)")
    with ClinikoStub() as stub, cliniko:
        key = stub.add_account("MS0xLXdhbGsta2V5-au1")
        sync_services.cliniko_connect(
            organization=Organization.objects.get(public_id=org), api_key=key, base_url=stub.base_url,
            actor=Actor.system("tests"),
        )  # fmt: skip
        api.call("routiq: trigger, not connected", "POST", "/api/v1/sync/trigger", token=token,
                 headers={"X-Organization-ID": empty})  # fmt: skip
        started = api.call(
            "routiq: trigger", "POST", "/api/v1/sync/trigger", token=token, headers=headers, expect_valid=True
        ).json()
        api.call("routiq: trigger, anonymous", "POST", "/api/v1/sync/trigger", headers=headers)
        api.call("routiq: scheduler trigger (running)", "POST", "/api/v1/sync/scheduler/trigger", token=token,
                 headers=headers, expect_valid=True)  # fmt: skip
        api.call("routiq: scheduler trigger, no organization named (two)", "POST", "/api/v1/sync/scheduler/trigger",
                 token=token)  # fmt: skip
        api.call("routiq: scheduler status", "GET", "/api/v1/sync/scheduler/status", token=token, headers=headers)
        api.call("routiq: scheduler status, another organization", "GET", "/api/v1/sync/scheduler/status",
                 token=token, headers={"X-Organization-ID": other})  # fmt: skip
        api.call("routiq: progress", "GET", f"/api/v1/sync/progress/{started['sync_id']}", token=token)
        api.call("routiq: progress, unknown", "GET", "/api/v1/sync/progress/sync_unknown1", token=token)
        api.call("routiq: history", "GET", f"/api/v1/sync/history/{org}?limit=5", token=token)
        api.call("routiq: history, bad limit", "GET", f"/api/v1/sync/history/{org}?limit=0", token=token)
        api.call("routiq: cliniko sync", "POST", f"/api/v1/cliniko/sync/{org}?mode=basic", token=token,
                 expect_valid=True)  # fmt: skip
        api.call("routiq: cliniko sync, bad mode", "POST", f"/api/v1/cliniko/sync/{org}?mode=all", token=token)
        api.call("routiq: import patients", "POST", f"/api/v1/cliniko/import-patients/{org}", token=token,
                 expect_valid=True)  # fmt: skip
        api.call("routiq: import patients, another organization", "POST", f"/api/v1/cliniko/import-patients/{other}",
                 token=token)  # fmt: skip
        api.call("routiq: cliniko status", "GET", f"/api/v1/cliniko/status/{org}", token=token)
        api.call("routiq: cliniko status, unknown", "GET", "/api/v1/cliniko/status/org_unknown1", token=token)
        api.call("routiq: test connection", "GET", f"/api/v1/cliniko/test-connection/{org}", token=token)
        api.call("routiq: test connection, not connected", "GET", f"/api/v1/cliniko/test-connection/{empty}",
                 token=token)  # fmt: skip
        api.call("routiq: debug", "GET", f"/api/v1/cliniko/debug/{org}", token=token)
        api.call("routiq: debug, another organization", "GET", f"/api/v1/cliniko/debug/{other}", token=token)
        api.call("routiq: system health", "GET", "/api/v1/admin/monitoring/system-health", token=token,
                 headers=headers)  # fmt: skip
        api.call("routiq: system health, anonymous", "GET", "/api/v1/admin/monitoring/system-health")
        api.call("routiq: cleanup", "POST", "/api/v1/admin/database/cleanup?days_old=90", token=token,
                 headers=headers, expect_valid=True)  # fmt: skip
        api.call("routiq: cleanup, bad days_old", "POST", "/api/v1/admin/database/cleanup?days_old=0", token=token,
                 headers=headers)  # fmt: skip


def therapist_scenario(api: Api, demo: dict) -> None:
    """The therapist dashboard operations on the demo clinic: its first therapist writes and reads their own
    sessions, the supervisor evaluates; each operation's documented failures (400, 401, 403, 404, 409)."""
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts.models import User

    seeded = demo["therapist"]
    users = {
        key: User.objects.get(username=seeded[key]["username"]) for key in ("therapist", "otherTherapist", "supervisor")
    }
    token, supervisor = (str(AccessToken.for_user(users[key])) for key in ("therapist", "supervisor"))
    me, other = users["therapist"].public_id, users["otherTherapist"].public_id
    headers = {"X-Organization-ID": seeded["organizationId"]}
    unknown = "ses_unknown1"

    def call(name, method, path, body=None, *, as_=token, valid=False):
        return api.call(name, method, path, body, token=as_, headers=headers, expect_valid=valid)

    def day(offset: int) -> str:
        return (utc_now() - timedelta(days=offset)).replace(microsecond=0).isoformat().replace("+00:00", "Z")

    # Sessions: create (two, for the comparison), list, read, update and its refused transitions.
    previous = call("td: create session", "POST", "/api/session", {"clientId": "walk-client", "startTime": day(2)},
                    valid=True).json()  # fmt: skip
    current = call("td: create session, now", "POST", "/api/session", {"clientId": "walk-client"}, valid=True).json()
    call("td: create session, no clientId", "POST", "/api/session", {"startTime": day(1)})
    call("td: create session, startTime without offset", "POST", "/api/session",
         {"clientId": "walk-client", "startTime": "2026-01-01T10:00:00"})  # fmt: skip
    api.call("td: create session, anonymous", "POST", "/api/session", {"clientId": "walk-client"}, headers=headers)
    call("td: list sessions", "GET", "/api/session?page=1&limit=5&status=active&timeRange=30d")
    call("td: list sessions, supervisor", "GET", f"/api/session?therapistId={me}", as_=supervisor)
    call("td: list sessions, bad status", "GET", "/api/session?status=done")
    call("td: list sessions, another therapist", "GET", f"/api/session?therapistId={other}")
    api.call("td: list sessions, anonymous", "GET", "/api/session", headers=headers)
    detail = f"/api/session/{current['id']}"
    call("td: get session", "GET", detail)
    call("td: get session, demo", "GET", f"/api/session/{seeded['sessionId']}")
    call("td: get session, unknown", "GET", f"/api/session/{unknown}")
    call("td: get session, another therapist", "GET", detail, as_=str(AccessToken.for_user(users["otherTherapist"])))
    call("td: update session", "PATCH", detail, {"status": "paused", "progress": 40}, valid=True)
    call("td: update session, nothing", "PATCH", detail, {})
    call("td: update session, endTime before start", "PATCH", detail, {"endTime": "2000-01-01T00:00:00Z"})
    call("td: update session, unknown", "PATCH", f"/api/session/{unknown}", {"status": "paused"})
    ended = call("td: create session to cancel", "POST", "/api/session", {"clientId": "walk-client"}).json()
    call("td: cancel session", "PATCH", f"/api/session/{ended['id']}", {"status": "cancelled"}, valid=True)
    call("td: reopen cancelled session", "PATCH", f"/api/session/{ended['id']}", {"status": "active"})

    session = current["id"]
    metrics = {
        "totalMessages": 42, "therapistMessages": 21, "clientMessages": 21, "sessionDuration": 3600,
        "activeTime": 3000, "skillScores": {"Active Listening": 85, "Empathy": 78}, "responseTime": 2.5,
        "conversationFlow": 88, "milestonesReached": ["introduction", "exploration"],
        "lastMilestoneTime": day(0),
    }  # fmt: skip
    progress = {"sessionId": session, "progressMetrics": metrics, "therapistId": me, "evaluationFeedback": "Calm"}
    call("td: post progress", "POST", "/api/session/progress", progress, valid=True)
    call("td: post progress, activeTime over duration", "POST", "/api/session/progress",
         {**progress, "progressMetrics": {**metrics, "activeTime": 4000}})  # fmt: skip
    call("td: post progress, unknown session", "POST", "/api/session/progress", {**progress, "sessionId": unknown})
    call("td: post progress, another therapist", "POST", "/api/session/progress", {**progress, "therapistId": other})
    call("td: get progress", "GET", f"/api/session/progress?sessionId={session}&includeFeedback=true")
    call("td: get progress, never posted", "GET", f"/api/session/progress?sessionId={previous['id']}")
    call("td: get progress, no sessionId", "GET", "/api/session/progress")
    call("td: get progress, bad includeFeedback", "GET", f"/api/session/progress?sessionId={session}&includeFeedback=1")
    call("td: get progress, unknown", "GET", f"/api/session/progress?sessionId={unknown}")

    snapshots = {
        "sessionId": session,
        "snapshots": [{"timestamp": day(0), "value": 25}, {"timestamp": day(1), "value": 30}],
    }
    call("td: post snapshots", "POST", "/api/session/snapshots", snapshots, valid=True)
    call("td: post snapshots again (stored once)", "POST", "/api/session/snapshots", snapshots, valid=True)
    call("td: post snapshots, duplicate timestamps", "POST", "/api/session/snapshots",
         {**snapshots, "snapshots": [{"timestamp": day(3), "value": 1}] * 2})  # fmt: skip
    call("td: post snapshots, unknown", "POST", "/api/session/snapshots", {**snapshots, "sessionId": unknown})
    call("td: get snapshots", "GET", f"/api/session/snapshots?sessionId={session}")
    call("td: get snapshots, no sessionId", "GET", "/api/session/snapshots")
    call("td: get snapshots, unknown", "GET", f"/api/session/snapshots?sessionId={unknown}")

    skills = {"sessionId": previous["id"], "therapistId": me, "skillScores": {"Active Listening": 70, "Empathy": 80}}
    call("td: post skills", "POST", "/api/session/skills", skills, valid=True)
    call("td: post skills, score over 100", "POST", "/api/session/skills", {**skills, "skillScores": {"Empathy": 101}})
    call("td: post skills, unknown", "POST", "/api/session/skills", {**skills, "sessionId": unknown})
    call("td: get skills of a session", "GET", f"/api/session/skills?sessionId={session}")
    call("td: get skills of the therapist", "GET", f"/api/session/skills?therapistId={me}", as_=supervisor)
    call("td: get skills, nothing named", "GET", "/api/session/skills")
    call("td: get skills, another therapist", "GET", f"/api/session/skills?therapistId={other}")
    call("td: get skills, unknown", "GET", f"/api/session/skills?sessionId={unknown}")

    analytics = {
        "sessionId": session,
        "analyticsData": {
            "sessionMetrics": [{
                "date": day(0)[:10], "sessions": 1, "therapistSessions": 1, "averageSessionProgress": 85,
                "sessionId": session, "therapistId": me, "milestonesAchieved": 2, "averageResponseTime": 2.5,
            }],
            "skillProgress": [{
                "skill": "Active Listening", "skillId": "active-listening", "score": 85, "trend": "up",
                "category": "therapeutic", "sessionsPracticed": 5, "averageImprovement": 12,
            }],
            "summaryStats": [{
                "value": 1, "label": "Total Sessions", "therapistId": me,
                "trend": {"value": 1, "direction": "up", "period": "recent"}, "color": "blue",
            }],
            "progressSnapshots": [{"timestamp": day(0), "value": 25}],
        },
    }  # fmt: skip
    call("td: post analytics", "POST", "/api/session/analytics", analytics, valid=True)
    call("td: post analytics, bad date", "POST", "/api/session/analytics", {**analytics, "analyticsData": {
        **analytics["analyticsData"], "sessionMetrics": [{**analytics["analyticsData"]["sessionMetrics"][0],
                                                          "date": "yesterday"}]}})  # fmt: skip
    call("td: post analytics, unknown", "POST", "/api/session/analytics", {**analytics, "sessionId": unknown})
    call("td: get analytics (posted)", "GET", f"/api/session/analytics?sessionId={session}&timeRange=30d")
    call("td: get analytics (derived)", "GET", f"/api/session/analytics?sessionId={seeded['sessionId']}")
    call("td: get analytics, bad timeRange", "GET", f"/api/session/analytics?sessionId={session}&timeRange=2w")
    call("td: get analytics, no sessionId", "GET", "/api/session/analytics")
    call("td: get analytics, unknown", "GET", f"/api/session/analytics?sessionId={unknown}")

    comparison = {
        "therapistId": me, "currentSessionId": session, "previousSessionId": previous["id"], "improvementScore": 85,
        "metrics": {"progressImprovement": 10, "skillScoreImprovement": 5, "responseTimeImprovement": 0.5},
    }  # fmt: skip
    call("td: post comparison", "POST", "/api/session/comparison", comparison, valid=True)
    call("td: post comparison, one session twice", "POST", "/api/session/comparison",
         {**comparison, "previousSessionId": session})  # fmt: skip
    call("td: post comparison, unknown", "POST", "/api/session/comparison", {**comparison, "currentSessionId": unknown})
    call(
        "td: post comparison, another therapist",
        "POST",
        "/api/session/comparison",
        {**comparison, "therapistId": other},
    )
    call("td: get comparisons", "GET", f"/api/session/comparison?therapistId={me}&timeRange=7d")
    call("td: get comparisons of a session", "GET", f"/api/session/comparison?sessionId={session}", as_=supervisor)
    call("td: get comparisons, nothing named", "GET", "/api/session/comparison")
    call("td: get comparisons, unknown", "GET", f"/api/session/comparison?sessionId={unknown}")

    evaluation = {"sessionId": session, "feedback": "Good rapport", "rating": 5, "comments": "Keep going"}
    call("td: post evaluation", "POST", "/api/evaluation", {**evaluation, "evaluatorId": users["supervisor"].public_id},
         as_=supervisor, valid=True)  # fmt: skip
    call("td: post evaluation, rating 6", "POST", "/api/evaluation", {**evaluation, "rating": 6}, as_=supervisor)
    call("td: post evaluation, as the therapist", "POST", "/api/evaluation", evaluation)
    call(
        "td: post evaluation, unknown", "POST", "/api/evaluation", {**evaluation, "sessionId": unknown}, as_=supervisor
    )
    call("td: get evaluations", "GET", f"/api/evaluation?sessionId={session}")
    call("td: get evaluations, no sessionId", "GET", "/api/evaluation")
    call("td: get evaluations, unknown", "GET", f"/api/evaluation?sessionId={unknown}")
    api.call("td: get evaluations, anonymous", "GET", f"/api/evaluation?sessionId={session}", headers=headers)


def _fresh(body):
    """A documented-types re-send of a body that must not be taken for a replay of the first."""
    if isinstance(body, dict) and "source_conversation_id" in body:
        return {**body, "source_conversation_id": body["source_conversation_id"] + "-documented-types"}
    return body


def test_every_documented_operation_answers_as_documented(demo, twilio_settings, frozen_ratelimit_clock):
    api = Api()
    schema_response = api.client.get("/api/schema/?format=json")
    assert schema_response.status_code == 200, schema_response.content[:500]
    book = SchemaBook(json.loads(schema_response.content))

    loverescue_scenario(api, demo)
    careos_scenario(api, demo)
    platform_scenario(api)
    mark_scenario(api, demo)
    mark_messages_scenario(api, demo)
    frozen_ratelimit_clock.now += 61  # a new minute: the walk's Mark calls exceed 60/min per IP
    mark_conversations_scenario(api, demo)
    frozen_ratelimit_clock.now += 61  # system and webhooks in a minute of their own (60/min per IP)
    mark_system_webhooks_scenario(api, demo)
    routiq_read_scenario(api, demo)
    routiq_ops_scenario(api, demo)
    therapist_scenario(api, demo)

    problems: dict[tuple[str, str], list[str]] = defaultdict(list)
    successes: dict[tuple[str, str], int] = defaultdict(int)
    called: set[tuple[str, str]] = set()
    resent: set[tuple[str, str]] = set()

    index = 0
    while index < len(api.log):  # the log grows with documented-types re-sends
        exchange = api.log[index]
        index += 1
        key = book.operation_for(exchange["method"], exchange["path"])
        if key is None:
            continue  # unknown path or method (404/405 by design): no operation to check
        called.add(key)
        label = f"[{exchange['name']}] {exchange['status']}"
        status = exchange["status"]
        if 200 <= status < 300:
            successes[key] += 1

        # Request body (only requests meant to be valid)
        request_schema = book.request_schema(key, exchange["request_content_type"])
        if exchange["expect_valid"]:
            if not 200 <= status < 300:
                problems[key].append(f"{label}: a valid request was refused: {json.dumps(exchange['body'])[:300]}")
            if exchange["request_body"] is not None and request_schema is not None:
                errors = book.errors(request_schema, exchange["request_body"])
                if errors:
                    problems[key].append(
                        f"{label}: the request body the API accepts does not match the documented "
                        "requestBody: " + "; ".join(errors[:5])
                    )
                documented = conform(exchange["request_body"], request_schema, book)
                if documented != exchange["request_body"] and key not in resent:
                    resent.add(key)
                    still = book.errors(request_schema, documented)
                    if still:
                        problems[key].append(
                            f"{label}: even in the documented types, the body is invalid against "
                            "the documented requestBody: " + "; ".join(still[:5])
                        )
                    changes = (
                        {k: v for k, v in documented.items() if exchange["request_body"].get(k) != v}
                        if isinstance(documented, dict)
                        else documented
                    )
                    api.resend(
                        exchange,
                        f"{exchange['name']} (documented types: {json.dumps(changes)[:120]})",
                        _fresh(documented),
                    )

        # Response body
        if status in IGNORED_STATUSES:
            continue
        doc = book.response_doc(key, status)
        if doc is None:
            problems[key].append(
                f"{label}: status {status} is not documented "
                f"(documented: {', '.join(sorted(book.operations[key].get('responses', {})))}); "
                f"body {json.dumps(exchange['body'])[:200]}"
            )
            continue
        content = doc.get("content") or {}
        if not content:
            if exchange["body"] not in (None, {}, ""):
                problems[key].append(
                    f"{label}: documented without a body, answered {json.dumps(exchange['body'])[:200]}"
                )
            continue
        non_json = exchange["body"].get("<non-json>") if isinstance(exchange["body"], dict) else None
        if non_json is not None and len(exchange["body"]) == 1:
            if non_json.split(";")[0].strip() not in content:
                problems[key].append(f"{label}: answered {non_json}, documented: {', '.join(content)}")
            continue  # a file in a documented media type (audio, PDF...): no JSON schema to check
        media = content.get("application/json") or next(iter(content.values()))
        schema = media.get("schema")
        if schema is None:
            continue
        errors = book.errors(schema, exchange["body"])
        if errors:
            problems[key].append(
                f"{label}: response body does not match the documented schema: "
                + "; ".join(errors[:8])
                + (f" (+{len(errors) - 8} more)" if len(errors) > 8 else "")
            )

    for key in book.operations:
        if key not in called:
            problems[key].insert(0, "no request in the walk: add one (tests/contract/helpers.py or this module)")
        elif not successes[key]:
            problems[key].insert(0, "no request of the walk answered 2xx")

    if problems:
        lines = [f"{len(problems)} of {len(book.operations)} documented operations fail the schema walk:"]
        for (method, template), reasons in sorted(problems.items(), key=lambda item: (item[0][1], item[0][0])):
            lines.append(f"\n{method} {template}  ({book.operations[(method, template)].get('operationId')})")
            lines.extend(f"  - {reason}" for reason in reasons)
        pytest.fail("\n".join(lines), pytrace=False)
