"""Zoom meetings for appointments (issue 11, `zoom_link`), against a fake Zoom on 127.0.0.1 that speaks the
server-to-server OAuth token endpoint and the meetings API and checks auth and bodies: a booking whose
location says Zoom in a connected clinic gets the meeting's join URL; the token is reused until it expires
(and refetched once after a 401); Zoom failures book without a link and are audited; a refused booking
deletes its meeting; a reschedule moves it; no HTTP runs while the patient row is locked; no secret, token
or link reaches the logs."""

from __future__ import annotations

import base64
import json
import logging
import threading
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as accounts_services
from accounts.models import User
from audit.models import AuditEvent
from core.time import utc_now
from patients import services
from patients.clients.zoom import ZoomClient, ZoomError, meeting_id_from_join_url
from patients.models import Appointment
from patients.selectors import clinic_settings
from patients.services import zoom
from patients.services.clinic_settings import clinic_settings_update
from tests.patients.conftest import ACTOR
from tests.servers import LocalServer, Recorded, Reply

pytestmark = pytest.mark.django_db

ACCOUNT_ID, CLIENT_ID, CLIENT_SECRET = "acc-Zm9v", "client-id-1", "zoom-secret-value-42"
JSON = "application/json"


class FakeZoom:
    """Zoom's token endpoint and meetings API. Tokens it issued are valid until `revoke()`; anything else
    is a 401 like Zoom's. `fail` = a status the meetings API answers with instead."""

    def __init__(self):
        self.lock = threading.Lock()
        self.issued: list[str] = []
        self.valid: set[str] = set()
        self.meetings: dict[str, dict] = {}
        self.fail: int | None = None
        self.token_fail: int | None = None
        self.delay = 0.0
        self.log: list[tuple[str, str]] = []  # (method, path) in order

    def revoke(self) -> None:
        self.valid.clear()

    def calls(self, method: str, prefix: str) -> list[str]:
        return [path for m, path in self.log if m == method and path.startswith(prefix)]

    def __call__(self, request: Recorded) -> Reply:
        path, _, query = request.path.partition("?")
        with self.lock:
            self.log.append((request.method, path))
        if request.method == "POST" and path == "/oauth/token":
            return self._token(request, parse_qs(query))
        token = (request.headers.get("Authorization") or "").removeprefix("Bearer ")
        if token not in self.valid:
            return _json(401, {"code": 124, "message": "Invalid access token."})
        if self.fail:
            return _json(self.fail, {"code": 3000, "message": "Zoom is having a bad day"}, delay=self.delay)
        if request.method == "POST" and path == "/v2/users/me/meetings":
            assert request.headers["Content-Type"].startswith(JSON)
            body = json.loads(request.body)
            meeting_id = str(85746065000 + len(self.meetings) + 1)
            self.meetings[meeting_id] = body
            return _json(
                201, {"id": int(meeting_id), "join_url": f"https://us05web.zoom.us/j/{meeting_id}?pwd=abc", **body}
            )
        meeting_id = path.removeprefix("/v2/meetings/")
        if meeting_id not in self.meetings:
            return _json(404, {"code": 3001, "message": "Meeting does not exist"})
        if request.method == "PATCH":
            self.meetings[meeting_id].update(json.loads(request.body))
            return Reply(204)
        if request.method == "DELETE":
            del self.meetings[meeting_id]
            return Reply(204)
        return _json(405, {})

    def _token(self, request: Recorded, query: dict) -> Reply:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return _json(401, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"})
        if query != {"grant_type": ["account_credentials"], "account_id": [ACCOUNT_ID]}:
            return _json(400, {"reason": "bad grant", "error": "invalid_request"})
        if self.token_fail:
            return _json(self.token_fail, {"error": "unavailable"})
        with self.lock:
            token = f"zoom-access-token-{len(self.issued) + 1}"
            self.issued.append(token)
            self.valid.add(token)
        return _json(200, {"access_token": token, "token_type": "bearer", "expires_in": 3599, "scope": "x"})


def _json(status: int, body: dict, delay: float = 0.0) -> Reply:
    return Reply(status, {"Content-Type": JSON}, json.dumps(body).encode(), delay=delay)


@pytest.fixture
def fake_zoom(settings):
    fake = FakeZoom()
    with LocalServer(fake) as server:
        settings.ZOOM_OAUTH_BASE_URL = server.base_url
        settings.ZOOM_API_BASE_URL = server.base_url
        settings.ZOOM_TIMEOUT_SECONDS = 2.0
        fake.server = server
        yield fake
        assert server.errors == []


@pytest.fixture
def connected(clinic):
    return clinic_settings_update(
        organization=clinic,
        actor=ACTOR,
        zoom_account_id=ACCOUNT_ID,
        zoom_client_id=CLIENT_ID,
        zoom_client_secret=CLIENT_SECRET,
    )


@pytest.fixture
def http(frozen_ratelimit_clock):
    return Client(raise_request_exception=False)


@pytest.fixture
def owner(clinic):
    user = User.objects.create_user(username="owner", password="pw-owner-123!")
    accounts_services.membership_set(user=user, organization=clinic, role="owner", actor=ACTOR)
    return {"HTTP_AUTHORIZATION": f"Bearer {AccessToken.for_user(user)}"}


@pytest.fixture
def patient(clinic):
    return services.patient_create(organization=clinic, name="Núria Zoomova", actor=ACTOR)


def _future(days: int = 10, hours: int = 0):
    return (utc_now() + timedelta(days=days, hours=hours)).replace(microsecond=0)


def _iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _book(http, owner, patient, *, location="Online (Zoom)", start=None, **extra):
    body = {"patient_id": patient.public_id, "start_time": _iso(start or _future()), "duration": 45,
            "location": location, **extra}  # fmt: skip
    return http.post("/api/v1/appointments", json.dumps(body), content_type=JSON, **owner)


# --- Booking -------------------------------------------------------------------------------------------


def test_a_zoom_booking_gets_the_meetings_join_url(http, owner, patient, connected, fake_zoom):
    start = _future(days=5)
    response = _book(http, owner, patient, start=start, location="Online (ZOOM)")

    assert response.status_code == 201, response.content
    body = response.json()
    (meeting_id,) = fake_zoom.meetings
    assert body["zoom_link"] == f"https://us05web.zoom.us/j/{meeting_id}?pwd=abc"
    assert Appointment.objects.get(public_id=body["id"]).zoom_link == body["zoom_link"]
    sent = fake_zoom.meetings[meeting_id]
    assert sent["start_time"] == _iso(start) and sent["duration"] == 45 and sent["type"] == 2
    assert sent["timezone"] == "Europe/Madrid"
    assert "Núria" not in sent["topic"] and "Zoomova" not in sent["topic"]
    assert fake_zoom.log == [("POST", "/oauth/token"), ("POST", "/v2/users/me/meetings")]
    event = AuditEvent.objects.get(action="appointment.zoom_meeting_created")
    assert event.subject_id == body["id"] and event.metadata == {"meeting_id": meeting_id}


def test_the_token_is_reused_until_it_expires(http, owner, clinic, connected, fake_zoom):
    first = services.patient_create(organization=clinic, name="A", actor=ACTOR)
    second = services.patient_create(organization=clinic, name="B", actor=ACTOR)
    assert _book(http, owner, first).status_code == 201
    assert _book(http, owner, second).status_code == 201
    assert fake_zoom.issued == ["zoom-access-token-1"]  # one token for both meetings
    assert len(fake_zoom.calls("POST", "/v2/users/me/meetings")) == 2

    cache.delete(zoom.token_cache_key(clinic_settings(organization=clinic)))  # as if it had expired
    third = services.patient_create(organization=clinic, name="C", actor=ACTOR)
    assert _book(http, owner, third).status_code == 201
    assert fake_zoom.issued == ["zoom-access-token-1", "zoom-access-token-2"]


def test_the_token_is_cached_until_shortly_before_zoom_says_it_expires(connected, fake_zoom, monkeypatch):
    seen = {}

    class SpyCache:
        def get(self, key):
            return cache.get(key)

        def set(self, key, value, timeout=None):
            seen[key] = timeout
            cache.set(key, value, timeout)

    monkeypatch.setattr(zoom, "cache", SpyCache())
    zoom.meeting_create(config=connected, start_time=_future(), duration=30)
    assert seen == {zoom.token_cache_key(connected): 3599 - zoom.TOKEN_EARLY_EXPIRY_SECONDS}


def test_a_revoked_cached_token_is_replaced_once(http, owner, clinic, patient, connected, fake_zoom):
    zoom.meeting_create(config=connected, start_time=_future(days=20), duration=30)  # caches token 1
    fake_zoom.revoke()
    response = _book(http, owner, patient)
    assert response.status_code == 201 and response.json()["zoom_link"]
    assert fake_zoom.issued == ["zoom-access-token-1", "zoom-access-token-2"]


def test_new_credentials_never_reuse_the_old_apps_token(clinic, connected, fake_zoom):
    before = zoom.token_cache_key(connected)
    changed = clinic_settings_update(organization=clinic, actor=ACTOR, zoom_client_secret="another-secret")
    assert zoom.token_cache_key(changed) != before


@pytest.mark.parametrize(
    "case",
    ["not_zoom_location", "not_connected", "caller_link"],
)
def test_no_meeting_without_zoom_location_connection_or_with_the_callers_link(
    http, owner, clinic, patient, fake_zoom, case
):
    if case != "not_connected":
        clinic_settings_update(
            organization=clinic, actor=ACTOR, zoom_account_id=ACCOUNT_ID, zoom_client_id=CLIENT_ID,
            zoom_client_secret=CLIENT_SECRET,
        )  # fmt: skip
    extra = {"zoom_link": "https://zoom.us/j/111222333"} if case == "caller_link" else {}
    response = _book(http, owner, patient, location="Room 2" if case == "not_zoom_location" else "Zoom", **extra)

    assert response.status_code == 201, response.content
    assert response.json()["zoom_link"] == (extra["zoom_link"] if extra else None)
    assert fake_zoom.log == []
    assert not AuditEvent.objects.filter(action__startswith="appointment.zoom").exists()


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("meetings_500", "zoom_http_500_error_3000"),
        ("meetings_404", "zoom_http_404_error_3000"),
        ("token_503", "zoom_token_http_503"),
        ("timeout", "zoom_timeout"),
        ("bad_secret", "zoom_token_http_401"),
    ],
)
def test_a_zoom_failure_books_without_a_link_and_is_audited(
    http, owner, clinic, patient, connected, fake_zoom, settings, setup, code, caplog
):
    if setup == "meetings_500":
        fake_zoom.fail = 500
    elif setup == "meetings_404":
        fake_zoom.fail = 404
    elif setup == "token_503":
        fake_zoom.token_fail = 503
    elif setup == "timeout":
        settings.ZOOM_TIMEOUT_SECONDS = 0.2
        fake_zoom.fail, fake_zoom.delay = 500, 1.0
    else:
        clinic_settings_update(organization=clinic, actor=ACTOR, zoom_client_secret="wrong")

    with caplog.at_level(logging.WARNING, logger="patients.zoom"):
        response = _book(http, owner, patient)

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["zoom_link"] is None and Appointment.objects.get(public_id=body["id"]).zoom_link == ""
    event = AuditEvent.objects.get(action="appointment.zoom_meeting_failed")
    assert event.subject_id == body["id"] and event.metadata == {"code": code}
    assert any(code in record.getMessage() for record in caplog.records)


def test_a_refused_booking_makes_no_meeting_or_deletes_it(http, owner, patient, connected, fake_zoom):
    # Refused before Zoom: a start in the past is checked first, nothing is called.
    response = _book(http, owner, patient, start=utc_now() - timedelta(hours=1))
    assert response.status_code == 400 and fake_zoom.log == []

    # Refused after: an overlap is only known under the patient lock; the meeting made for it is deleted.
    start = _future(days=3)
    assert _book(http, owner, patient, start=start).status_code == 201
    response = _book(http, owner, patient, start=start + timedelta(minutes=15))
    assert response.status_code == 409, response.content
    assert len(fake_zoom.calls("POST", "/v2/users/me/meetings")) == 2
    assert len(fake_zoom.calls("DELETE", "/v2/meetings/")) == 1
    assert len(fake_zoom.meetings) == 1 and Appointment.objects.count() == 1
    assert AuditEvent.objects.filter(action="appointment.zoom_meeting_created").count() == 1


def test_zoom_is_never_called_while_the_patient_row_is_locked(http, owner, patient, connected, fake_zoom, monkeypatch):
    order: list[str] = []
    real_lock = services._lock_patient

    def lock(p):
        order.append("patient locked")
        return real_lock(p)

    monkeypatch.setattr(services, "_lock_patient", lock)
    real_handler = fake_zoom.__call__

    def handler(request):
        order.append(f"zoom {request.method}")
        return real_handler(request)

    fake_zoom.server.handler = handler
    assert _book(http, owner, patient).status_code == 201
    assert order == ["zoom POST", "zoom POST", "patient locked"]  # token, meeting, then the booking


# --- Updates -------------------------------------------------------------------------------------------


def test_a_reschedule_moves_the_meeting_and_keeps_the_link(http, owner, patient, connected, fake_zoom):
    created = _book(http, owner, patient).json()
    new_start = _future(days=12, hours=3)
    response = http.put(
        f"/api/v1/appointments/{created['id']}",
        json.dumps({"start_time": _iso(new_start), "duration": 30}),
        content_type=JSON,
        **owner,
    )

    assert response.status_code == 200, response.content
    assert response.json()["zoom_link"] == created["zoom_link"]
    meeting_id = meeting_id_from_join_url(created["zoom_link"])
    assert fake_zoom.calls("PATCH", "/v2/meetings/") == [f"/v2/meetings/{meeting_id}"]
    moved = fake_zoom.meetings[meeting_id]
    assert moved["start_time"] == _iso(new_start) and moved["duration"] == 30
    assert AuditEvent.objects.get(action="appointment.zoom_meeting_moved").metadata == {"meeting_id": meeting_id}

    # A change that does not move it calls nothing.
    http.put(f"/api/v1/appointments/{created['id']}", json.dumps({"notes": "x"}), content_type=JSON, **owner)
    assert len(fake_zoom.calls("PATCH", "/v2/meetings/")) == 1


def test_a_failed_move_keeps_the_link_and_is_audited(http, owner, patient, connected, fake_zoom):
    created = _book(http, owner, patient).json()
    fake_zoom.fail = 500
    response = http.put(
        f"/api/v1/appointments/{created['id']}",
        json.dumps({"start_time": _iso(_future(days=15))}),
        content_type=JSON,
        **owner,
    )
    assert response.status_code == 200 and response.json()["zoom_link"] == created["zoom_link"]
    assert response.json()["status"] == "rescheduled"
    event = AuditEvent.objects.get(action="appointment.zoom_meeting_move_failed")
    assert event.metadata["code"] == "zoom_http_500_error_3000"


def test_an_update_that_makes_the_location_zoom_creates_a_meeting(http, owner, patient, connected, fake_zoom):
    created = _book(http, owner, patient, location="Room 2").json()
    assert created["zoom_link"] is None and fake_zoom.log == []
    response = http.put(
        f"/api/v1/appointments/{created['id']}", json.dumps({"location": "Zoom"}), content_type=JSON, **owner
    )
    assert response.status_code == 200, response.content
    (meeting_id,) = fake_zoom.meetings
    assert response.json()["zoom_link"].endswith(f"/j/{meeting_id}?pwd=abc")


def test_a_callers_link_on_update_is_kept_and_nothing_is_moved(http, owner, patient, connected, fake_zoom):
    created = _book(http, owner, patient).json()
    own = "https://zoom.us/j/999888777"
    response = http.put(
        f"/api/v1/appointments/{created['id']}",
        json.dumps({"start_time": _iso(_future(days=14)), "zoom_link": own}),
        content_type=JSON,
        **owner,
    )
    assert response.json()["zoom_link"] == own
    assert fake_zoom.calls("PATCH", "/v2/meetings/") == []


# --- Logs and the client -------------------------------------------------------------------------------


def test_no_secret_token_or_link_in_any_log(http, owner, clinic, patient, connected, fake_zoom, caplog):
    with caplog.at_level(logging.DEBUG):
        created = _book(http, owner, patient).json()
        http.put(
            f"/api/v1/appointments/{created['id']}",
            json.dumps({"start_time": _iso(_future(days=16))}),
            content_type=JSON,
            **owner,
        )
        fake_zoom.fail = 500
        other = services.patient_create(organization=clinic, name="Other", actor=ACTOR)
        _book(http, owner, other)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records  # the outbound lines are there
    for secret in (CLIENT_SECRET, "zoom-access-token", "pwd=abc", created["zoom_link"], "Zoomova"):
        assert secret not in text


def test_meeting_id_from_join_url():
    assert meeting_id_from_join_url("https://us05web.zoom.us/j/85746065123?pwd=x") == "85746065123"
    assert meeting_id_from_join_url("https://zoom.us/j/123456789") == "123456789"
    assert meeting_id_from_join_url("https://evil.example/j/123456789") is None
    assert meeting_id_from_join_url("http://zoom.us/j/123456789") is None
    assert meeting_id_from_join_url("https://zoom.us/my/room") is None
    assert meeting_id_from_join_url("") is None


def test_the_client_refuses_missing_credentials_and_bad_answers(fake_zoom, settings):
    with pytest.raises(ZoomError, match="zoom_not_configured"):
        ZoomClient(account_id=ACCOUNT_ID, client_id=CLIENT_ID, client_secret="")
    client = ZoomClient(
        account_id=ACCOUNT_ID, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
        oauth_base_url=fake_zoom.server.base_url, api_base_url=fake_zoom.server.base_url,
    )  # fmt: skip
    token = client.fetch_token()
    assert CLIENT_SECRET not in repr(client) and token.access_token not in repr(token)
    fake_zoom.server.handler = lambda request: _json(201, {"id": 1, "join_url": "javascript:alert(1)"})
    with pytest.raises(ZoomError, match="zoom_bad_response"):
        client.create_meeting(token=token.access_token, topic="t", start_time=_future(), duration=30, timezone="UTC")


def test_an_idempotent_retry_creates_no_second_meeting(http, owner, patient, connected, fake_zoom):
    body = {"patient_id": patient.public_id, "start_time": _iso(_future(days=6)), "duration": 30, "location": "Zoom"}
    headers = {**owner, "HTTP_IDEMPOTENCY_KEY": "book-zoom-1"}
    first = http.post("/api/v1/appointments", json.dumps(body), content_type=JSON, **headers)
    again = http.post("/api/v1/appointments", json.dumps(body), content_type=JSON, **headers)

    assert first.status_code == again.status_code == 201, again.content
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["zoom_link"] == first.json()["zoom_link"] is not None
    assert len(fake_zoom.calls("POST", "/v2/users/me/meetings")) == 1 and Appointment.objects.count() == 1


# --- Cancel, and meetings Mark did not make ---------------------------------------------------------------


def _cancel(http, owner, appointment_id):
    return http.post(f"/api/v1/appointments/{appointment_id}/cancel", json.dumps({}), content_type=JSON, **owner)


def test_cancel_deletes_the_meeting_mark_made(http, owner, patient, connected, fake_zoom):
    created = _book(http, owner, patient).json()
    meeting_id = meeting_id_from_join_url(created["zoom_link"])

    response = _cancel(http, owner, created["id"])

    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert fake_zoom.calls("DELETE", "/v2/meetings/") == [f"/v2/meetings/{meeting_id}"]
    assert fake_zoom.meetings == {}
    assert AuditEvent.objects.get(action="appointment.zoom_meeting_deleted").metadata == {"meeting_id": meeting_id}


def test_a_failed_delete_still_cancels_and_is_audited(http, owner, patient, connected, fake_zoom):
    created = _book(http, owner, patient).json()
    fake_zoom.fail = 503
    response = _cancel(http, owner, created["id"])
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    event = AuditEvent.objects.get(action="appointment.zoom_meeting_delete_failed")
    assert event.metadata["code"] == "zoom_http_503_error_3000"


def test_a_meeting_mark_did_not_make_is_never_moved_or_deleted(http, owner, patient, connected, fake_zoom):
    # A Zoom link of the clinic's own account that the caller manages (maybe shared by many appointments).
    shared = zoom.meeting_create(config=connected, start_time=_future(days=30), duration=60)
    fake_zoom.log.clear()
    created = _book(http, owner, patient, zoom_link=shared.join_url).json()
    assert created["zoom_link"] == shared.join_url

    http.put(
        f"/api/v1/appointments/{created['id']}",
        json.dumps({"start_time": _iso(_future(days=17))}),
        content_type=JSON,
        **owner,
    )
    _cancel(http, owner, created["id"])

    assert fake_zoom.log == []  # nothing moved, nothing deleted
    assert shared.id in fake_zoom.meetings
