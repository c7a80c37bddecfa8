"""Messaging test fixtures: no task ever reaches a broker, a Twilio-like server on 127.0.0.1, and a log
capture at DEBUG on every logger (httpx and httpcore included) that proves no number or text is logged."""

from __future__ import annotations

import base64
import json
import logging
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, quote

import pytest

from messaging import backends
from messaging.tasks import send_message
from tests.servers import LocalServer, Recorded, Reply

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-9f8e7d6c5b4a"
FROM_NUMBER = "+15005550006"
WHATSAPP_FROM = "+14155238886"
CALLBACK_BASE = "https://platform.example.com"
CALLBACK_URL = CALLBACK_BASE + "/api/messaging/twilio/status"

PHONE = "+447700900123"
PHONE_NATIONAL = "7700900123"
BODY = "Your appointment with Dr Quillfeather is confirmed for Tuesday"
EMAIL = "patient.zebrafinch@example.org"


@dataclass
class Enqueued:
    message_id: int
    countdown: float | None


@pytest.fixture(autouse=True)
def enqueued(monkeypatch) -> list[Enqueued]:
    """Every send_message.apply_async call, recorded instead of published: tests run tasks themselves."""
    calls: list[Enqueued] = []

    def fake_apply_async(args=None, kwargs=None, countdown=None, **options):
        calls.append(Enqueued(args[0], countdown))

    monkeypatch.setattr(send_message, "apply_async", fake_apply_async)
    return calls


@pytest.fixture(autouse=True)
def _clean_outbox():
    backends.outbox.clear()
    yield
    backends.outbox.clear()


class LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(self._formatter.format(record) for record in self.records)

    def assert_clean(self, *secrets: str) -> None:
        """No formatted record (message, arguments, exception text) contains any form of the secrets."""
        text = self.text()
        for secret in secrets:
            for form in _forms(secret):
                assert form not in text, f"logged: {form!r}"


def _forms(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote(secret)}
    if secret.startswith("+"):
        forms |= {secret[1:], secret[3:]}  # without "+", without the country code
    if " " in secret:
        forms |= {word for word in secret.split() if len(word) >= 8}
    if "@" in secret:
        forms.add(secret.split("@")[0])
    return forms


@pytest.fixture
def logs():
    """DEBUG on every logger, handler on the root and on every logger that does not propagate."""
    handler = LogCapture()
    manager = logging.root.manager
    loggers = [logging.root] + [logger for logger in manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    for name in ("httpx", "httpcore", "httpcore.http11", "httpcore.connection", "messaging", "core.outbound"):
        logger = logging.getLogger(name)
        if logger not in loggers:
            loggers.append(logger)
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    attached = []
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if logger is logging.root or not logger.propagate:
            logger.addHandler(handler)
            attached.append(logger)
    yield handler
    for logger in attached:
        logger.removeHandler(handler)
    for logger, level, disabled in saved:
        logger.setLevel(level)
        logger.disabled = disabled


# --- Twilio-like server ------------------------------------------------------------------------------


class FakeTwilio:
    """Answers like Twilio's Messages API: checks the path, basic auth and form, answers 201 with a SID.

    `script` holds replies to give first (in order); after it runs out every valid request gets a 201.
    Problems with a request (wrong path, auth, content type, missing fields) are collected in
    `problems` and answered 400/401, so a test sees them either way."""

    def __init__(self):
        self.script: list[Reply] = []
        self.problems: list[str] = []
        self.accepted: list[dict[str, str]] = []  # forms answered 201
        self.sids: list[str] = []
        self.server = LocalServer(self._handle)

    @property
    def requests(self) -> list[Recorded]:
        return self.server.requests

    def form(self, index: int = -1) -> dict[str, str]:
        parsed = parse_qs(self.requests[index].body.decode(), keep_blank_values=True, strict_parsing=True)
        return {key: values[0] for key, values in parsed.items()}

    def _handle(self, request: Recorded) -> Reply:
        expected_path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        if request.method != "POST" or request.path != expected_path:
            self.problems.append(f"unexpected {request.method} {request.path}")
            return _json(404, {"code": 20404, "message": "The requested resource was not found"})
        expected_auth = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if request.headers.get("Authorization") != expected_auth:
            self.problems.append("bad basic auth")
            return _json(401, {"code": 20003, "message": "Authenticate"})
        if request.headers.get("Content-Type", "").split(";")[0] != "application/x-www-form-urlencoded":
            self.problems.append("not form-encoded")
            return _json(400, {"code": 20001, "message": "bad content type"})
        form = {key: values[0] for key, values in parse_qs(request.body.decode(), keep_blank_values=True).items()}
        missing = {"To", "From", "Body"} - set(form)
        if missing:
            self.problems.append(f"missing {sorted(missing)}")
            return _json(400, {"code": 21604, "message": "A 'To' phone number is required."})
        if self.script:
            return self.script.pop(0)
        sid = "SM" + uuid.uuid4().hex
        self.sids.append(sid)
        self.accepted.append(form)
        # Like Twilio, the answer repeats the number and the body: they must not reach logs either.
        return _json(201, {"sid": sid, "status": "queued", "to": form["To"], "from": form["From"],
                           "body": form["Body"], "account_sid": ACCOUNT_SID})


def _json(status: int, body: dict, headers: dict | None = None) -> Reply:
    return Reply(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body))


def twilio_error(status: int, code: int, headers: dict | None = None) -> Reply:
    """An error answer that, like Twilio's, quotes the destination number in its message."""
    return _json(status, {"code": code, "message": f"The 'To' number {PHONE} is not valid.", "status": status,
                          "more_info": f"https://www.twilio.com/docs/errors/{code}"}, headers)


@pytest.fixture
def twilio(settings):
    fake = FakeTwilio()
    fake.server.start()
    settings.MESSAGING_BACKEND = "twilio"
    settings.TWILIO_ACCOUNT_SID = ACCOUNT_SID
    settings.TWILIO_AUTH_TOKEN = AUTH_TOKEN
    settings.TWILIO_FROM_NUMBER = FROM_NUMBER
    settings.TWILIO_WHATSAPP_FROM = WHATSAPP_FROM
    settings.TWILIO_API_BASE_URL = fake.server.base_url
    settings.MESSAGING_STATUS_CALLBACK_BASE_URL = CALLBACK_BASE
    yield fake
    fake.server.stop()
    assert not fake.server.errors, fake.server.errors


@pytest.fixture
def locmem_backend(settings):
    settings.MESSAGING_BACKEND = "locmem"
    return backends.outbox
