"""Mark system reads (spec: "System"; docs/mark.md, "API: system"): the status page of one clinic and its
encryption status. Cheap enough to be polled: no vendor is called per request; the checks read the
configuration, one `SELECT 1`, one aggregate over the access log and one over the clinic's recent
WhatsApp messages, and a broker connection whose result is kept BROKER_CHECK_SECONDS per process.

Components (each `operational`, `degraded` or `not_configured`):
- api: operational (this answer is the proof);
- database: `SELECT 1` on the default connection; degraded if it fails;
- broker: a Celery broker connection (core.health.Broker, 3 s connect timeout); degraded when it fails
  (work is not lost: the outboxes keep it and the sweepers re-enqueue it, but it waits);
- whatsapp_integration: not_configured unless Twilio is the messaging backend with an account SID and
  auth token AND the clinic has a WhatsApp number (or messaging service); degraded when, of the clinic's
  WhatsApp messages queued in the last WHATSAPP_WINDOW, at least WHATSAPP_MIN_MESSAGES were and more than
  half failed; else operational;
- calendly_integration: not_configured: Mark stores the Calendly links it is given and calls no Calendly API;
- stripe_integration: operational when STRIPE_API_KEY is set, else not_configured;
- zoom_integration: operational when the clinic connected Zoom (its server-to-server OAuth app), else
  not_configured;
- claude_api: the clinic's assistant responder: not_configured with none; operational with Anthropic and
  an API key; degraded with Anthropic and no key (chosen, cannot answer).

Overall `status`: `degraded` when any component is degraded, else `operational` (a not_configured
integration is the clinic's choice, not a fault).

`metrics`: from the access log (audit.AccessLog), THIS clinic's Mark API requests over the last
METRICS_WINDOW (never another clinic's traffic): requests_per_minute (requests / 5, one decimal),
average_response_time (mean duration_ms, whole ms; 0 without requests), error_rate (percentage of those
requests answered 5xx, two decimals; 4xx are the caller's errors, not the system's). The request being
answered is not in it (its row is written after the answer is ready).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Avg, Count, Q
from health_check.exceptions import HealthCheckException

from audit.models import AccessLog, AuditEvent
from core.apis import MARK
from core.encryption import primary_key_fingerprint
from core.health import Broker
from core.process import STARTED_AT, uptime_seconds
from core.rounding import percentage, round_half_up
from core.time import utc_now
from patients.models import ClinicSettings, Conversation, Message, Patient
from patients.selectors import clinic_settings

OPERATIONAL, DEGRADED, NOT_CONFIGURED = "operational", "degraded", "not_configured"
COMPONENT_STATUSES = (OPERATIONAL, DEGRADED, NOT_CONFIGURED)
OVERALL_STATUSES = (OPERATIONAL, DEGRADED)
METRICS_WINDOW = timedelta(minutes=5)
WHATSAPP_WINDOW = timedelta(hours=1)
WHATSAPP_MIN_MESSAGES = 5
BROKER_CHECK_SECONDS = 10.0
# The audit event `manage.py rotate_encryption_keys` writes when a rotation completes.
KEY_ROTATION_ACTION = "core.encryption_keys_rotated"


@dataclass(frozen=True)
class Component:
    name: str
    status: str


@dataclass(frozen=True)
class Metrics:
    requests_per_minute: float
    average_response_time: int
    error_rate: float


@dataclass(frozen=True)
class SystemStatus:
    status: str
    version: str
    uptime: int
    last_restart: datetime
    components: list[Component]
    metrics: Metrics


@dataclass(frozen=True)
class EncryptionStatus:
    enabled: bool
    key_rotation_days: int
    last_rotation: datetime | None
    next_rotation: datetime | None
    encrypted_conversations: int
    encrypted_patients: int


# --- Checks ---------------------------------------------------------------------------------------------


def database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            ok = cursor.fetchone() == (1,)
    except DatabaseError:
        return DEGRADED
    return OPERATIONAL if ok else DEGRADED


_broker_lock = threading.Lock()
_broker_result: tuple[float, str] | None = None  # (monotonic time checked, status)


def broker_check() -> str:
    """The broker accepts a connection; the answer is reused for BROKER_CHECK_SECONDS in this process,
    so a status page polled every second connects at most once per period (and a down broker costs the
    connect timeout once per period, not per request)."""
    global _broker_result
    with _broker_lock:
        cached = _broker_result
        if cached is not None and time.monotonic() - cached[0] < BROKER_CHECK_SECONDS:
            return cached[1]
        try:
            Broker().run()
            status = OPERATIONAL
        except HealthCheckException:
            status = DEGRADED
        _broker_result = (time.monotonic(), status)
        return status


def broker_check_reset() -> None:
    """Forget the cached broker answer (tests; after an operator fixed the broker)."""
    global _broker_result
    with _broker_lock:
        _broker_result = None


def twilio_configured() -> bool:
    return bool(
        settings.MESSAGING_BACKEND == "twilio"
        and settings.TWILIO_ACCOUNT_SID.strip()
        and settings.TWILIO_AUTH_TOKEN.strip()
    )


def whatsapp_check(*, organization, clinic: ClinicSettings, now: datetime) -> str:
    if not (twilio_configured() and (clinic.whatsapp_number or clinic.whatsapp_messaging_service_sid)):
        return NOT_CONFIGURED
    recent = Message.objects.filter(
        organization=organization, outbound_message__isnull=False, created_at__gte=now - WHATSAPP_WINDOW
    ).aggregate(total=Count("pk"), failed=Count("pk", filter=Q(outbound_message__status="failed")))
    if recent["total"] >= WHATSAPP_MIN_MESSAGES and recent["failed"] * 2 > recent["total"]:
        return DEGRADED
    return OPERATIONAL


def responder_check(clinic: ClinicSettings) -> str:
    if clinic.responder != ClinicSettings.Responder.ANTHROPIC:
        return NOT_CONFIGURED
    return OPERATIONAL if clinic.responder_api_key else DEGRADED


def request_metrics(*, organization, now: datetime) -> Metrics:
    """One aggregate over the clinic's Mark access-log rows of the last METRICS_WINDOW."""
    totals = AccessLog.objects.filter(
        api=MARK.name, organization_id=organization.public_id, created_at__gt=now - METRICS_WINDOW, created_at__lte=now
    ).aggregate(
        count=Count("pk"),
        mean_ms=Avg("duration_ms"),
        errors=Count("pk", filter=Q(status_code__gte=500)),
    )
    minutes = METRICS_WINDOW.total_seconds() / 60
    return Metrics(
        requests_per_minute=round_half_up(totals["count"] / minutes, 1),
        average_response_time=int(round_half_up(totals["mean_ms"] or 0, 0)),
        error_rate=float(percentage(totals["errors"], totals["count"], places=2)),
    )


def system_status(*, organization, now: datetime | None = None) -> SystemStatus:
    """The clinic's status page (module docstring): components, overall status, metrics, version, uptime."""
    now = now or utc_now()
    clinic = clinic_settings(organization=organization)
    components = [
        Component("api", OPERATIONAL),
        Component("database", database_check()),
        Component("broker", broker_check()),
        Component("whatsapp_integration", whatsapp_check(organization=organization, clinic=clinic, now=now)),
        Component("calendly_integration", NOT_CONFIGURED),
        Component("stripe_integration", OPERATIONAL if settings.STRIPE_API_KEY.strip() else NOT_CONFIGURED),
        Component("zoom_integration", OPERATIONAL if clinic.zoom_connected else NOT_CONFIGURED),
        Component("claude_api", responder_check(clinic)),
    ]
    overall = DEGRADED if any(component.status == DEGRADED for component in components) else OPERATIONAL
    return SystemStatus(
        status=overall,
        version=settings.PLATFORM_VERSION,
        uptime=uptime_seconds(),
        last_restart=STARTED_AT,
        components=components,
        metrics=request_metrics(organization=organization, now=now),
    )


# --- Encryption -----------------------------------------------------------------------------------------


def encryption_enabled() -> bool:
    """Field encryption has a usable key ring (FIELD_ENCRYPTION_KEYS: the platform refuses to start
    without one in production, so this is True unless the configuration is broken)."""
    try:
        primary_key_fingerprint()
    except Exception:  # ImproperlyConfigured: empty or invalid keys
        return False
    return True


def last_key_rotation() -> datetime | None:
    """When the last `manage.py rotate_encryption_keys` run completed (its audit event), or None."""
    return (
        AuditEvent.objects.filter(action=KEY_ROTATION_ACTION)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )


def encryption_status(*, organization) -> EncryptionStatus:
    """The key ring, the rotation policy and the last rotation, and the clinic's rows holding encrypted
    data: conversations with at least one message (message text is encrypted) or a summary, and every
    patient (each patient row stores its notes column encrypted, even when empty; phone and e-mail too
    when given). Three queries: the rotation event and two counts."""
    last = last_key_rotation()
    days = settings.MARK_KEY_ROTATION_DAYS
    return EncryptionStatus(
        enabled=encryption_enabled(),
        key_rotation_days=days,
        last_rotation=last,
        next_rotation=last + timedelta(days=days) if last is not None else None,
        encrypted_conversations=Conversation.objects.filter(organization=organization)
        .filter(Q(message_count__gt=0) | Q(summary__isnull=False))
        .count(),
        encrypted_patients=Patient.objects.filter(organization=organization).count(),
    )
