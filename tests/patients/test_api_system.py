"""Mark system API through HTTP (spec: mark-assistant-api.md, "System"): GET /api/v1/system/status (real
checks per component, overall rule, this clinic's metrics from the access log, version, uptime) and
GET /api/v1/system/encryption/status (key rotation from its audit event, this clinic's encrypted rows)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework_simplejwt.tokens import AccessToken

import core.process
from accounts import services as accounts_services
from accounts.models import User
from audit.models import AccessLog, AuditEvent
from core.time import iso_utc, utc_now
from messaging.models import OutboundMessage
from patients import services, system
from patients.models import ClinicSettings, Conversation
from tests.patients.conftest import ACTOR

pytestmark = pytest.mark.django_db

SPEC_STATUS_KEYS = {"status", "version", "uptime", "last_restart", "components", "metrics"}
SPEC_COMPONENTS = [
    "api", "database", "broker", "whatsapp_integration", "calendly_integration", "stripe_integration",
    "zoom_integration", "claude_api",
]  # fmt: skip
SPEC_ENCRYPTION_KEYS = {
    "enabled", "key_rotation_days", "last_rotation", "next_rotation", "encrypted_conversations", "encrypted_patients",
}  # fmt: skip


def _member(username: str, role: str, *organizations) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username + "-123!")
    for organization in organizations:
        accounts_services.membership_set(user=user, organization=organization, role=role, actor=ACTOR)
    return user


def _auth(user: User) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}


@pytest.fixture
def http(frozen_ratelimit_clock):
    return Client(raise_request_exception=False)


@pytest.fixture
def owner(clinic):
    return _member("owner", "owner", clinic)


@pytest.fixture(autouse=True)
def _plain_platform(settings):
    """No integration configured, and a fresh broker check per test."""
    settings.STRIPE_API_KEY = ""
    settings.MESSAGING_BACKEND = "locmem"
    system.broker_check_reset()
    yield
    system.broker_check_reset()


def _status(http, user) -> dict:
    response = http.get("/api/v1/system/status", **_auth(user))
    assert response.status_code == 200, response.content[:300]
    return response.json()


def _components(body) -> dict[str, str]:
    return {component["name"]: component["status"] for component in body["components"]}


# --- /system/status -------------------------------------------------------------------------------------


def test_status_answers_the_spec_shape_with_real_checks(http, clinic, owner, settings):
    body = _status(http, owner)
    assert set(body) == SPEC_STATUS_KEYS
    assert [component["name"] for component in body["components"]] == SPEC_COMPONENTS
    assert all(set(component) == {"name", "status"} for component in body["components"])
    assert _components(body) == {
        "api": "operational",
        "database": "operational",
        "broker": "operational",
        "whatsapp_integration": "not_configured",
        "calendly_integration": "not_configured",
        "stripe_integration": "not_configured",
        "zoom_integration": "not_configured",
        "claude_api": "not_configured",
    }
    assert body["status"] == "operational"  # not_configured is no fault
    assert body["version"] == settings.PLATFORM_VERSION
    assert body["last_restart"] == iso_utc(core.process.STARTED_AT)
    assert isinstance(body["uptime"], int) and body["uptime"] >= 0
    assert set(body["metrics"]) == {"requests_per_minute", "average_response_time", "error_rate"}


def test_uptime_counts_from_the_process_start(http, clinic, owner, monkeypatch):
    monkeypatch.setattr(core.process, "_STARTED_MONOTONIC", time.monotonic() - 3600)
    assert 3600 <= _status(http, owner)["uptime"] < 3700


def test_integrations_follow_the_configuration_and_the_clinic(http, clinic, owner, settings):
    settings.STRIPE_API_KEY = "sk_test_status"
    ClinicSettings.objects.create(
        organization=clinic,
        zoom_account_id="acc",
        zoom_client_id="cid",
        zoom_client_secret="zoom-secret",
        responder=ClinicSettings.Responder.ANTHROPIC,
        responder_api_key="sk-ant-test",
    )
    components = _components(_status(http, owner))
    assert components["stripe_integration"] == "operational"
    assert components["zoom_integration"] == "operational"
    assert components["claude_api"] == "operational"
    assert components["calendly_integration"] == "not_configured"  # Mark only stores Calendly links


def test_a_responder_without_its_key_is_degraded_and_so_is_the_whole(http, clinic, owner):
    ClinicSettings.objects.create(organization=clinic, responder=ClinicSettings.Responder.ANTHROPIC)
    body = _status(http, owner)
    assert _components(body)["claude_api"] == "degraded"
    assert body["status"] == "degraded"


def _twilio(settings):
    settings.MESSAGING_BACKEND = "twilio"
    settings.TWILIO_ACCOUNT_SID = "AC" + "0" * 32
    settings.TWILIO_AUTH_TOKEN = "twilio-token"


def _whatsapp_message(patient, status: str, now):
    outbound = OutboundMessage.objects.create(
        channel="whatsapp", recipient="+34612345678", recipient_index="x", body="hola", status=status
    )
    services.message_record(patient=patient, sender="system", content="hola", outbound_message=outbound, now=now)


def test_whatsapp_needs_twilio_and_the_clinics_number_and_degrades_when_most_recent_messages_fail(
    http, clinic, owner, settings
):
    _twilio(settings)
    assert _components(_status(http, owner))["whatsapp_integration"] == "not_configured"  # no clinic number
    ClinicSettings.objects.create(organization=clinic, whatsapp_number="+34600000001")
    assert _components(_status(http, owner))["whatsapp_integration"] == "operational"

    patient = services.patient_create(organization=clinic, name="Ana", phone_number="+34612345678", actor=ACTOR)
    now = utc_now()
    for status in ("failed", "failed", "failed", "sent", "delivered"):
        _whatsapp_message(patient, status, now)
    body = _status(http, owner)
    assert _components(body)["whatsapp_integration"] == "degraded"  # 3 of 5 failed
    assert body["status"] == "degraded"

    _whatsapp_message(patient, "delivered", now)  # 3 of 6: not "more than half"
    assert _components(_status(http, owner))["whatsapp_integration"] == "operational"

    settings.MESSAGING_BACKEND = "console"
    assert _components(_status(http, owner))["whatsapp_integration"] == "not_configured"


def test_old_failures_do_not_degrade_whatsapp(http, clinic, owner, settings):
    _twilio(settings)
    ClinicSettings.objects.create(organization=clinic, whatsapp_number="+34600000001")
    patient = services.patient_create(organization=clinic, name="Ana", phone_number="+34612345678", actor=ACTOR)
    old = utc_now() - system.WHATSAPP_WINDOW - timedelta(minutes=1)
    for _ in range(6):
        _whatsapp_message(patient, "failed", old)
    assert _components(_status(http, owner))["whatsapp_integration"] == "operational"


def test_an_unreachable_broker_is_degraded_and_checked_once_per_period(http, clinic, owner, settings, monkeypatch):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    calls = []
    run = system.Broker.run
    monkeypatch.setattr(system.Broker, "run", lambda self: calls.append(1) or run(self))
    body = _status(http, owner)
    assert _components(body)["broker"] == "degraded"
    assert body["status"] == "degraded"
    _status(http, owner)
    assert len(calls) == 1  # the second answer reused the first check
    monkeypatch.setattr(system, "_broker_result", (time.monotonic() - system.BROKER_CHECK_SECONDS - 1, "degraded"))
    _status(http, owner)
    assert len(calls) == 2  # expired: checked again


def test_a_failing_database_check_is_degraded(monkeypatch):
    class Broken:
        def __enter__(self):
            from django.db import OperationalError

            raise OperationalError("down")

        def __exit__(self, *args):
            return False

    monkeypatch.setattr(system.connection, "cursor", lambda: Broken())
    assert system.database_check() == "degraded"


def _log(organization_id: str, *, status: int, ms: int, ago: timedelta, api: str = "mark") -> None:
    AccessLog.objects.create(
        created_at=utc_now() - ago,
        api=api,
        organization_id=organization_id,
        method="GET",
        path="/api/v1/patients",
        status_code=status,
        duration_ms=ms,
    )


def test_metrics_are_this_clinics_mark_requests_of_the_last_five_minutes(http, clinic, other_clinic, owner):
    minute = timedelta(minutes=1)
    for status, ms in ((200, 100), (200, 200), (404, 300), (503, 401)):
        _log(clinic.public_id, status=status, ms=ms, ago=minute)
    _log(clinic.public_id, status=500, ms=9000, ago=timedelta(minutes=6))  # too old
    _log(clinic.public_id, status=500, ms=9000, ago=minute, api="routiq")  # another API
    for _ in range(5):
        _log(other_clinic.public_id, status=500, ms=9000, ago=minute)  # another clinic
    metrics = _status(http, owner)["metrics"]
    assert metrics == {"requests_per_minute": 0.8, "average_response_time": 250, "error_rate": 25.0}


def test_metrics_without_requests_are_zero(http, clinic, owner):
    assert _status(http, owner)["metrics"] == {
        "requests_per_minute": 0.0,
        "average_response_time": 0,
        "error_rate": 0.0,
    }


def test_metrics_count_real_requests(http, clinic, owner):
    for _ in range(3):
        assert http.get("/api/v1/patients", **_auth(owner)).status_code == 200
    metrics = _status(http, owner)["metrics"]
    assert metrics["requests_per_minute"] == 0.6  # 3 requests / 5 minutes; this one is not logged yet
    assert metrics["error_rate"] == 0.0


def test_status_query_count_is_bounded(http, clinic, owner):
    _status(http, owner)  # warm the broker check
    with CaptureQueriesContext(connection) as queries:
        _status(http, owner)
    # auth + scope + clinic settings + SELECT 1 + metrics + access row; no per-row work anywhere
    assert len(queries) <= 12, [query["sql"][:120] for query in queries]


# --- Roles and scoping ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/system/status", "/api/v1/system/encryption/status"])
def test_roles(http, clinic, path):
    for role in ("owner", "admin", "staff", "viewer"):
        assert http.get(path, **_auth(_member(f"u-{role}", role, clinic))).status_code == 200, role
    response = http.get(path, **_auth(_member("u-therapist", "therapist", clinic)))
    assert response.status_code == 403
    anonymous = http.get(path)
    assert anonymous.status_code == 401
    assert set(anonymous.json()) == {"error"} and anonymous.json()["error"]["code"]


@pytest.mark.parametrize("path", ["/api/v1/system/status", "/api/v1/system/encryption/status"])
def test_writes_are_not_allowed(http, clinic, owner, path):
    response = http.post(path, {}, content_type="application/json", **_auth(owner))
    assert response.status_code == 405
    assert set(response.json()) == {"error"}


def test_a_member_of_two_clinics_names_one(http, clinic, other_clinic):
    both = _member("both", "owner", clinic, other_clinic)
    response = http.get("/api/v1/system/status", **_auth(both))
    assert response.status_code == 400
    assert "X-Organization-ID" in response.json()["error"]["message"]
    response = http.get("/api/v1/system/status", HTTP_X_ORGANIZATION_ID=other_clinic.public_id, **_auth(both))
    assert response.status_code == 200


# --- /system/encryption/status --------------------------------------------------------------------------


def _encryption(http, user) -> dict:
    response = http.get("/api/v1/system/encryption/status", **_auth(user))
    assert response.status_code == 200, response.content[:300]
    return response.json()


def test_encryption_status_before_any_rotation(http, clinic, owner, settings):
    settings.MARK_KEY_ROTATION_DAYS = 45
    body = _encryption(http, owner)
    assert set(body) == SPEC_ENCRYPTION_KEYS
    assert body == {
        "enabled": True,
        "key_rotation_days": 45,
        "last_rotation": None,
        "next_rotation": None,
        "encrypted_conversations": 0,
        "encrypted_patients": 0,
    }


def test_encryption_counts_are_this_clinics_rows_holding_encrypted_data(http, clinic, other_clinic, owner):
    ana = services.patient_create(organization=clinic, name="Ana", actor=ACTOR)
    services.patient_create(organization=clinic, name="Bo", phone_number="+34612345678", actor=ACTOR)
    other = services.patient_create(organization=other_clinic, name="Cy", actor=ACTOR)
    now = utc_now()
    services.message_record(patient=ana, sender="patient", content="hola", now=now)  # a conversation with text
    Conversation.objects.create(organization=clinic, patient=ana, status="closed", summary="resumen")
    Conversation.objects.create(organization=clinic, patient=ana, status="closed")  # empty: nothing encrypted
    services.message_record(patient=other, sender="patient", content="hi", now=now)
    body = _encryption(http, owner)
    assert (body["encrypted_conversations"], body["encrypted_patients"]) == (2, 2)


def test_last_rotation_is_the_rotation_commands_audit_event(http, clinic, owner, settings):
    services.patient_create(organization=clinic, name="Ana", phone_number="+34612345678", actor=ACTOR)
    call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115
    rotated = AuditEvent.objects.get(action=system.KEY_ROTATION_ACTION).created_at
    body = _encryption(http, owner)
    assert body["last_rotation"] == iso_utc(rotated)
    assert body["next_rotation"] == iso_utc(rotated + timedelta(days=settings.MARK_KEY_ROTATION_DAYS))


def test_encryption_disabled_when_the_key_ring_is_unusable(settings):
    settings.FIELD_ENCRYPTION_KEYS = []
    assert system.encryption_enabled() is False
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    assert system.encryption_enabled() is False
