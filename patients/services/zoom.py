"""Zoom meetings for appointments (issue 11, `zoom_link`).

When an appointment is booked through the API and
- its location mentions Zoom (case-insensitive: "Online (Zoom)", "zoom"),
- the clinic connected Zoom (ClinicSettings: account id, client id and client secret of a Zoom
  server-to-server OAuth app; `zoom_connected`), and
- the caller gave no `zoom_link`,
a Zoom meeting is created and its `join_url` stored as the appointment's `zoom_link`. Otherwise the link is
the caller's value or null. A Zoom failure never fails the booking: the link stays null and the booking's
audit trail gets `appointment.zoom_meeting_failed` with a short code (and a warning log line: the code
and the appointment id, nothing else).

The HTTP call never runs inside the transaction that holds the patient lock: the meeting is created
BEFORE the booking's transaction (so the 201 carries the link, as the spec shows), after the cheap checks
(start in the future, duration); if the booking is then refused (an overlap, a 409), the meeting is deleted
again (best effort). A moved appointment (PUT with a new start or duration) keeps its link: the meeting
Mark created for it (the id in its join URL, matched against the appointment's
`appointment.zoom_meeting_created` audit event) is moved (PATCH) after the update committed; the patient's
link does not change. A cancelled appointment's Mark-made meeting is deleted after the cancel committed.
An update that makes the location Zoom (or moves a Zoom appointment that has no link yet) creates a meeting
as a booking does. A caller's own `zoom_link` is never replaced, moved or deleted (it may be a meeting
shared by many appointments).

The access token (a secret: kept in the cache only, never logged) is cached per clinic and credentials
until shortly before it expires; a 401 with a cached token fetches a new one once.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from audit.models import AuditEvent
from core.actors import Actor
from core.time import utc_now
from patients import services
from patients.clients.zoom import ZoomAuthError, ZoomClient, ZoomError, ZoomMeeting, meeting_id_from_join_url
from patients.models import Appointment, ClinicSettings, Patient
from patients.selectors import clinic_settings, clinic_time_zone

logger = logging.getLogger("patients.zoom")

TOKEN_CACHE_PREFIX = "mark:zoom:token"
# A cached token is dropped this long before Zoom says it expires (clock skew, a slow request).
TOKEN_EARLY_EXPIRY_SECONDS = 120


def mentions_zoom(location: Any) -> bool:
    return isinstance(location, str) and "zoom" in location.casefold()


def _client(config: ClinicSettings) -> ZoomClient:
    return ZoomClient(
        account_id=config.zoom_account_id,
        client_id=config.zoom_client_id,
        client_secret=config.zoom_client_secret or "",
        oauth_base_url=settings.ZOOM_OAUTH_BASE_URL,
        api_base_url=settings.ZOOM_API_BASE_URL,
        timeout=settings.ZOOM_TIMEOUT_SECONDS,
    )


def token_cache_key(config: ClinicSettings) -> str:
    """Per clinic and per credentials: new credentials never reuse the old app's token."""
    digest = hashlib.sha256(
        "\x00".join([config.zoom_account_id, config.zoom_client_id, config.zoom_client_secret or ""]).encode()
    ).hexdigest()[:24]
    return f"{TOKEN_CACHE_PREFIX}:{config.organization_id}:{digest}"


def _token(client: ZoomClient, config: ClinicSettings, *, fresh: bool = False) -> str:
    key = token_cache_key(config)
    if not fresh:
        cached = cache.get(key)
        if cached:
            return cached
    token = client.fetch_token()
    ttl = token.expires_in - TOKEN_EARLY_EXPIRY_SECONDS
    if ttl > 0:
        cache.set(key, token.access_token, ttl)
    return token.access_token


def _call(config: ClinicSettings, call):
    """`call(client, token)` with the cached token; on a 401, once more with a new token."""
    client = _client(config)
    try:
        return call(client, _token(client, config))
    except ZoomAuthError:
        cache.delete(token_cache_key(config))
        return call(client, _token(client, config, fresh=True))


def _topic(organization) -> str:
    # Never the patient's name: the topic is visible to anyone with access to the clinic's Zoom account.
    return f"{organization.name}: appointment"[:200]


def meeting_create(*, config: ClinicSettings, start_time: datetime, duration: int) -> ZoomMeeting:
    """A scheduled Zoom meeting of the clinic's account. Raises ZoomError."""
    organization = config.organization
    timezone = clinic_time_zone(organization=organization).key
    return _call(
        config,
        lambda client, token: client.create_meeting(
            token=token, topic=_topic(organization), start_time=start_time, duration=duration, timezone=timezone
        ),
    )


def meeting_move(*, config: ClinicSettings, meeting_id: str, start_time: datetime, duration: int) -> None:
    timezone = clinic_time_zone(organization=config.organization).key
    _call(
        config,
        lambda client, token: client.update_meeting(
            token=token, meeting_id=meeting_id, start_time=start_time, duration=duration, timezone=timezone
        ),
    )


def _meeting_delete_quietly(config: ClinicSettings, meeting: ZoomMeeting) -> None:
    """Undo a meeting made for a booking that was then refused. Best effort: a failure is logged."""
    try:
        _call(config, lambda client, token: client.delete_meeting(token=token, meeting_id=meeting.id))
    except ZoomError as exc:
        logger.warning("zoom meeting of a refused booking not deleted: %s", exc.code)


def _audit(action: str, *, actor: Actor, appointment: Appointment, organization, **metadata) -> None:
    services._audit(
        action,
        actor=actor,
        organization=organization,
        subject_type="appointment",
        subject_id=appointment.public_id,
        **metadata,
    )


def _try_create(config: ClinicSettings, *, start_time: datetime, duration: int) -> tuple[ZoomMeeting | None, str]:
    try:
        return meeting_create(config=config, start_time=start_time, duration=duration), ""
    except ZoomError as exc:
        return None, exc.code


def _record_creation(
    *, appointment: Appointment, actor: Actor, organization, meeting: ZoomMeeting | None, failure: str
) -> None:
    if meeting is not None:
        _audit("appointment.zoom_meeting_created", actor=actor, appointment=appointment, organization=organization,
               meeting_id=meeting.id)  # fmt: skip
    elif failure:
        logger.warning("zoom meeting for %s not created: %s", appointment.public_id, failure)
        _audit("appointment.zoom_meeting_failed", actor=actor, appointment=appointment, organization=organization,
               code=failure)  # fmt: skip


def appointment_create_with_zoom(
    *,
    patient: Patient,
    start_time: Any,
    duration: Any,
    actor: Actor,
    location: str = "",
    zoom_link: str | None = None,
    now: datetime | None = None,
    **fields: Any,
) -> Appointment:
    """`services.appointment_create` plus a Zoom meeting when the location says Zoom, the clinic is
    connected and the caller gave no link (module docstring). Not atomic on purpose: the Zoom call runs
    before the booking's transaction; the booking and the audit event of the meeting (created, or failed
    with its code) are written in one transaction after it."""
    now = now or utc_now()
    organization = patient.organization
    meeting, failure = None, ""
    if not zoom_link and mentions_zoom(location):
        config = clinic_settings(organization=organization)
        if config.zoom_connected:
            # The booking's own checks first: a request that will be refused makes no meeting.
            services._clean_start(start_time, now=now)
            services._clean_duration(duration)
            meeting, failure = _try_create(config, start_time=start_time, duration=duration)
            if meeting is not None:
                zoom_link = meeting.join_url
    try:
        with transaction.atomic():
            appointment = services.appointment_create(
                patient=patient,
                start_time=start_time,
                duration=duration,
                actor=actor,
                location=location,
                zoom_link=zoom_link,
                now=now,
                **fields,
            )
            _record_creation(
                appointment=appointment, actor=actor, organization=organization, meeting=meeting, failure=failure
            )
    except Exception:
        if meeting is not None:
            _meeting_delete_quietly(config, meeting)
        raise
    return appointment


def appointment_update_with_zoom(
    *, appointment: Appointment, actor: Actor, now: datetime | None = None, **changes: Any
) -> Appointment:
    """`services.appointment_update` keeping the Zoom meeting in step (module docstring): a new start or
    duration moves the meeting of the stored link after the update committed (the link stays); an update
    that makes a link-less appointment's location Zoom, or moves one, creates a meeting first."""
    now = now or utc_now()
    organization = appointment.patient.organization
    start = changes.get("start_time", appointment.start_time)
    duration = changes.get("duration", appointment.duration)
    retimed = start != appointment.start_time or duration != appointment.duration
    caller_link = "zoom_link" in changes
    meeting, failure, config = None, "", None
    wants_meeting = (
        not caller_link
        and not appointment.zoom_link
        and appointment.status in Appointment.ACTIVE_STATUSES
        and mentions_zoom(changes.get("location", appointment.location))
        and ("location" in changes or retimed)
    )
    if wants_meeting or (retimed and not caller_link and appointment.zoom_link):
        config = clinic_settings(organization=organization)
        if not config.zoom_connected:
            config = None
    if wants_meeting and config is not None:
        if "start_time" in changes and start != appointment.start_time:
            services._clean_start(start, now=now)
        services._clean_duration(duration)
        meeting, failure = _try_create(config, start_time=start, duration=duration)
        if meeting is not None:
            changes["zoom_link"] = meeting.join_url
    try:
        with transaction.atomic():
            appointment = services.appointment_update(appointment=appointment, actor=actor, now=now, **changes)
            _record_creation(
                appointment=appointment, actor=actor, organization=organization, meeting=meeting, failure=failure
            )
    except Exception:
        if meeting is not None:
            _meeting_delete_quietly(config, meeting)
        raise
    meeting_id = meeting_id_from_join_url(appointment.zoom_link)
    if (
        config is not None
        and meeting is None
        and not failure
        and retimed
        and not caller_link
        and meeting_id
        and made_by_mark(appointment=appointment, meeting_id=meeting_id)
    ):
        _move(config, appointment=appointment, meeting_id=meeting_id, actor=actor, organization=organization)
    return appointment


def made_by_mark(*, appointment: Appointment, meeting_id: str) -> bool:
    """True if Mark created this meeting for this appointment (its `appointment.zoom_meeting_created`
    event), so moving or deleting it touches nobody else's meeting."""
    return AuditEvent.objects.filter(
        subject_id=appointment.public_id,
        subject_type="appointment",
        action="appointment.zoom_meeting_created",
        metadata__meeting_id=meeting_id,
    ).exists()


def appointment_cancel_with_zoom(
    *, appointment: Appointment, actor: Actor, reason: str | None = "", notify_patient: bool = False
) -> tuple[Appointment, bool]:
    """`services.appointment_cancel_and_notify`, then (after it committed) the meeting Mark made for the
    appointment is deleted; a failure is audited with its code and changes nothing else. The link stays
    on the cancelled appointment for the record."""
    appointment, notified = services.appointment_cancel_and_notify(
        appointment=appointment, actor=actor, reason=reason, notify_patient=notify_patient
    )
    meeting_id = meeting_id_from_join_url(appointment.zoom_link)
    if not meeting_id:
        return appointment, notified
    organization = appointment.patient.organization
    config = clinic_settings(organization=organization)
    if not config.zoom_connected or not made_by_mark(appointment=appointment, meeting_id=meeting_id):
        return appointment, notified
    try:
        _call(config, lambda client, token: client.delete_meeting(token=token, meeting_id=meeting_id))
    except ZoomError as exc:
        logger.warning("zoom meeting for %s not deleted: %s", appointment.public_id, exc.code)
        with transaction.atomic():
            _audit("appointment.zoom_meeting_delete_failed", actor=actor, appointment=appointment,
                   organization=organization, meeting_id=meeting_id, code=exc.code)  # fmt: skip
    else:
        with transaction.atomic():
            _audit("appointment.zoom_meeting_deleted", actor=actor, appointment=appointment,
                   organization=organization, meeting_id=meeting_id)  # fmt: skip
    return appointment, notified


def _move(config: ClinicSettings, *, appointment: Appointment, meeting_id: str, actor: Actor, organization) -> None:
    """After the update committed: move the meeting to the appointment's new time. A failure leaves the
    link as it is (the meeting keeps its old time) and is on the audit trail with its code."""
    try:
        meeting_move(
            config=config, meeting_id=meeting_id, start_time=appointment.start_time, duration=appointment.duration
        )
    except ZoomError as exc:
        logger.warning("zoom meeting for %s not moved: %s", appointment.public_id, exc.code)
        with transaction.atomic():
            _audit("appointment.zoom_meeting_move_failed", actor=actor, appointment=appointment,
                   organization=organization, meeting_id=meeting_id, code=exc.code)  # fmt: skip
        return
    with transaction.atomic():
        _audit("appointment.zoom_meeting_moved", actor=actor, appointment=appointment, organization=organization,
               meeting_id=meeting_id)  # fmt: skip
