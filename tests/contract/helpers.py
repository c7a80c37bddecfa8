"""Shared machinery of the contract tests (response snapshots and the schema walk).

- `seed_demo()`: the demo data exactly as a user gets it (`manage.py seed_demo --json`).
- `Api`: a django.test.Client that records every exchange (method, path, status, the headers that
  matter, the JSON body) in order.
- `Normaliser`: replaces ONLY generated values (random uuids, public ids, tokens, secrets, datetimes
  near "now") by placeholders; dates become relative to today (`<today-3>`), numbers are kept exactly.
- `loverescue_scenario` / `careos_scenario`: the fixed, ordered list of requests, covering every
  operation of both APIs with good and bad input.
- CareOS lead bodies (phone encrypted to the published key with RSA-OAEP-SHA256, hashed with the salt).

No test module imports another test module: both import from here.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
import io
import json
import os
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.test import Client
from django.utils import timezone

SNAPSHOT_DIR = Path(__file__).parent / "snapshots"
RECORDED_HEADERS = (
    "Content-Type",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "Retry-After",
    "WWW-Authenticate",
    "Allow",
    "Cache-Control",
)
PRESENCE_HEADERS = ("X-RateLimit-Reset",)
UNKNOWN_UUID = "00000000-0000-4000-8000-000000000000"
PUBLIC_WEBHOOK_URL = "https://93.184.216.34/hooks/loverescue"  # a public IP literal: no DNS needed


# --- Demo data ---------------------------------------------------------------------------------------


def seed_demo() -> dict:
    """`seed_demo --json`: one JSON object on stdout."""
    out, err = io.StringIO(), io.StringIO()
    call_command("seed_demo", "--json", stdout=out, stderr=err)
    return json.loads(out.getvalue())


# --- Recording ---------------------------------------------------------------------------------------


class Api:
    """A test client that records every exchange in `log` (in order)."""

    def __init__(self):
        self.client = Client()
        self.log: list[dict] = []

    def call(
        self,
        name: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: str | bytes | None = None,
        content_type: str = "application/json",
        token: str | None = None,
        headers: dict | None = None,
        expect_valid: bool = False,
    ):
        """One request. `body` is sent as JSON; `raw` as is. `expect_valid`: the request is meant to be
        valid (the schema walk checks its body against the documented requestBody)."""
        extra = {}
        if token is not None:
            extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        for key, value in (headers or {}).items():
            extra["HTTP_" + key.upper().replace("-", "_")] = value
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        kwargs = {"content_type": content_type} if data is not None else {}
        handler = getattr(self.client, method.lower())
        response = handler(path, data, **kwargs, **extra) if data is not None else handler(path, **extra)
        self.log.append(
            {
                "name": name,
                "method": method.upper(),
                "path": path,
                "request_body": body,
                "request_extra": extra,
                "request_content_type": content_type if data is not None else None,
                "expect_valid": expect_valid,
                "status": response.status_code,
                "headers": recorded_headers(response),
                "body": json_body(response),
            }
        )
        return response

    def resend(self, exchange: dict, name: str, body: Any):
        """The same request (method, path, credentials), with another JSON body."""
        handler = getattr(self.client, exchange["method"].lower())
        response = handler(
            exchange["path"], json.dumps(body), content_type="application/json", **exchange["request_extra"]
        )
        self.log.append(
            {
                **exchange,
                "name": name,
                "request_body": body,
                "request_content_type": "application/json",
                "status": response.status_code,
                "headers": recorded_headers(response),
                "body": json_body(response),
            }
        )
        return response


def recorded_headers(response) -> dict:
    headers = {name: response.headers[name] for name in RECORDED_HEADERS if name in response.headers}
    for name in PRESENCE_HEADERS:
        headers[name] = "<present>" if name in response.headers else "<absent>"
    return headers


def json_body(response):
    if getattr(response, "streaming", False):  # a file (e.g. audio): read it so it is closed
        b"".join(response.streaming_content)
        return {"<non-json>": response.headers.get("Content-Type", "")}
    if not response.content:
        return None
    if "json" not in response.headers.get("Content-Type", ""):
        return {"<non-json>": response.headers.get("Content-Type", "")}
    try:
        return json.loads(response.content)
    except ValueError:
        return {"<invalid-json>": response.content.decode("utf-8", "replace")[:200]}


# --- Normalisation -----------------------------------------------------------------------------------

JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
PUBLIC_ID_RE = re.compile(r"\b([a-z][a-z0-9]*)_([A-Za-z0-9]{24})\b")
HEX_RE = re.compile(r"\b[0-9a-f]{32,}\b")
DATETIME_RE = re.compile(r"\b(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})?")
DATE_RE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
NEAR_NOW = timedelta(hours=2)
RELATIVE_DAYS = 180


class Normaliser:
    """Replaces generated values by stable placeholders. Each distinct generated id gets `<id:N>` in
    order of first appearance, so equal ids stay equal and different ids stay different. Known fixed
    ids (the demo's uuid5 ids) get their names. Dates within RELATIVE_DAYS of today are written relative
    to it (`<today-3>`); a datetime within two hours of `now` or on today's date (its time depends on when
    the demo ran) is `<today+0>T<time>`; an older or later one keeps its time of day when that is a set
    time (`<today-86>T19:30:00.000Z`), else only its day (`<today-90>T<time>`, i.e. "now - 90 days")."""

    def __init__(self, *, today: date, now: datetime, known: dict[str, str] | None = None):
        self.today = today
        self.now = now
        self.known = {key.lower(): value for key, value in (known or {}).items()}
        self.ids: dict[str, str] = {}

    def _id(self, value: str) -> str:
        if value.lower() in self.known:
            return self.known[value.lower()]
        if value not in self.ids:
            self.ids[value] = f"<id:{len(self.ids) + 1}>"
        return self.ids[value]

    def _day(self, text: str) -> str:
        """Dates of the demo's window (and a few days after) relative to today; others (a fixed example
        in a message) as they are."""
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return text
        offset = (day - self.today).days
        return f"<today{offset:+d}>" if abs(offset) <= RELATIVE_DAYS else text

    def _datetime(self, match: re.Match) -> str:
        day_text, time_text, zone = match.group(1), match.group(2), match.group(3) or ""
        try:
            parsed = datetime.fromisoformat(match.group(0).replace("Z", "+00:00"))
        except ValueError:
            return match.group(0)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        if abs(parsed - self.now) < NEAR_NOW or parsed.astimezone(UTC).date() == self.today:
            return "<today+0>T<time>"  # made while the demo or this test ran: its time is not reproducible
        if parsed.second == 0 and parsed.microsecond == 0:
            return f"{self._day(day_text)}T{time_text}{zone}"  # a set time of day (19:30): deterministic
        return f"{self._day(day_text)}T<time>"  # "now - 90 days": the day is reproducible, not the time

    def string(self, value: str) -> str:
        value = JWT_RE.sub(lambda m: "<jwt>", value)
        value = UUID_RE.sub(lambda m: self._id(m.group(0)), value)
        value = PUBLIC_ID_RE.sub(
            lambda m: f"{m.group(1)}_{self._id(m.group(0))}" if re.search(r"[A-Z0-9]", m.group(2)) else m.group(0),
            value,
        )
        value = HEX_RE.sub(lambda m: f"<hex:{self._id(m.group(0))}>", value)
        value = DATETIME_RE.sub(self._datetime, value)
        value = DATE_RE.sub(lambda m: self._day(m.group(1)), value)
        return value

    def __call__(self, value):
        if isinstance(value, str):
            return self.string(value)
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, dict):
            return {self.string(key): self(item) for key, item in value.items()}
        return value  # numbers, booleans, null: exactly as they are


def known_ids(demo: dict) -> dict[str, str]:
    """The demo's fixed ids (uuid5, the same on every machine) by name."""
    lr = demo["loverescue"]
    known = {lr["therapistId"]: "<therapist>", lr["coupleId"]: "<couple>", UNKNOWN_UUID: "<unknown-uuid>"}
    for key, value in lr["clients"].items():
        known[value] = f"<client:{key}>"
    return known


def snapshot_entries(log: list[dict], normaliser: Normaliser) -> list[dict]:
    entries = []
    for exchange in log:
        entries.append(
            {
                "name": normaliser.string(exchange["name"]),
                "request": f"{exchange['method']} {normaliser.string(exchange['path'])}",
                "status": exchange["status"],
                "headers": normaliser(exchange["headers"]),
                "body": normaliser(exchange["body"]),
            }
        )
    return entries


# --- Golden files ------------------------------------------------------------------------------------


def without_row_ids(entries: list[dict]) -> list[dict]:
    """A body's integer `id` (a database sequence value: PostgreSQL never rolls sequences back, so it depends
    on what ran before) becomes "<row-id>"; it is a generated id like the others."""
    for entry in entries:
        body = entry.get("body")
        if isinstance(body, dict) and type(body.get("id")) is int:
            body["id"] = "<row-id>"
    return entries


def check_snapshot(name: str, entries: list[dict]) -> None:
    """Compare with snapshots/<name>.json, or (re)write it when UPDATE_SNAPSHOTS=1."""
    path = SNAPSHOT_DIR / f"{name}.json"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(without_row_ids(entries), indent=2, ensure_ascii=False, sort_keys=True) + "\n")
        return
    if not path.exists():
        raise AssertionError(f"no golden file {path}: run with UPDATE_SNAPSHOTS=1 at the reference commit")
    golden = without_row_ids(json.loads(path.read_text()))
    actual = without_row_ids(json.loads(json.dumps(entries)))
    if golden == actual:
        return
    raise AssertionError(snapshot_diff(name, golden, actual))


def snapshot_diff(name: str, golden: list[dict], actual: list[dict], shown: int = 3) -> str:
    lines = [f"{name}: responses differ from the golden file snapshots/{name}.json"]
    if len(golden) != len(actual):
        lines.append(f"  {len(golden)} exchanges recorded in the golden file, {len(actual)} now")
    differing = [
        i
        for i in range(max(len(golden), len(actual)))
        if i >= len(golden) or i >= len(actual) or golden[i] != actual[i]
    ]
    lines.append(
        f"  {len(differing)} differing exchange(s): "
        + ", ".join(
            f"#{i} {(golden + actual)[i]['name'] if i < len(golden) else actual[i]['name']}" for i in differing[:40]
        )
        + (" ..." if len(differing) > 40 else "")
    )
    for i in differing[:shown]:
        before = json.dumps(golden[i], indent=2, sort_keys=True).splitlines() if i < len(golden) else []
        after = json.dumps(actual[i], indent=2, sort_keys=True).splitlines() if i < len(actual) else []
        label = (golden[i] if i < len(golden) else actual[i])["name"]
        lines.append(f"\n--- exchange #{i}: {label}")
        lines.extend(difflib.unified_diff(before, after, "golden", "actual", lineterm="", n=3))
    return "\n".join(lines)


# --- Tokens ------------------------------------------------------------------------------------------


def partner_token(api: Api, demo: dict, name: str = "auth: good credentials") -> str:
    lr = demo["loverescue"]
    response = api.call(
        name,
        "POST",
        "/api/integration/auth",
        {"apiKey": lr["apiKey"], "apiSecret": lr["apiSecret"], "therapistId": lr["therapistId"]},
        expect_valid=True,
    )
    assert response.status_code == 200, response.content
    return response.json()["token"]


def expired_partner_token(token: str) -> str:
    """The same claims, issued two hours ago (so expired an hour ago)."""
    import jwt

    from integration.tokens import issue_token

    claims = jwt.decode(token, options={"verify_signature": False})
    return issue_token(
        partner_id=claims["sub"],
        credential_id=claims["cid"],
        therapist_id=claims["tid"],
        now=timezone.now() - timedelta(hours=2),
    )


def platform_token(api: Api, demo: dict, name: str = "platform token: good login") -> str:
    response = api.call(name, "POST", "/api/v1/auth/token", demo["loverescue"]["clientLogin"], expect_valid=True)
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


# --- CareOS lead bodies ------------------------------------------------------------------------------


def encrypt_phone(phone: str, public_pem: str) -> str:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    key = serialization.load_pem_public_key(public_pem.encode())
    ciphertext = key.encrypt(
        phone.encode("utf-8"),
        padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
    )
    return base64.b64encode(ciphertext).decode("ascii")


def hash_phone(phone: str, salt: str) -> str:
    return hashlib.sha256((phone + salt).encode("utf-8")).hexdigest()


def careos_headers(demo: dict, **overrides) -> dict:
    careos = demo["careos"]
    return {"X-API-Key": careos["apiKey"], "X-Platform": careos["platform"], **overrides}


def lead_body(demo: dict, conversation: str, phone: str = "+14155550123", **overrides) -> dict:
    careos = demo["careos"]
    body = {
        "source_platform": careos["platform"],
        "source_conversation_id": conversation,
        "user_phone_hash": hash_phone(phone, careos["phoneHashSalt"]),
        "user_phone_encrypted": encrypt_phone(phone, careos["publicKeyPem"]),
        "user_name": "John Doe",
        "user_language": "en",
        "user_location_state": "CA",
        "user_location_country": "US",
        "user_location_city": "San Francisco",
        "category": "healthcare",
        "subcategory": "caregiver_hiring",
        "original_message": "I need help finding a caregiver for my mom who has mobility issues",
        "ai_extracted_details": {
            "urgency": "medium",
            "person_mentioned": "mom",
            "service_type": "caregiver",
            "condition_mentioned": "mobility issues",
        },
        "user_consent": True,
        "consent_timestamp": "2025-01-08T12:00:00Z",
        "lead_value_agreed": 15,
    }
    body.update(overrides)
    return body


# --- Scenarios ---------------------------------------------------------------------------------------


def _day(offset: int) -> str:
    return (timezone.now().date() + timedelta(days=offset)).isoformat()


def loverescue_scenario(api: Api, demo: dict) -> None:
    """Every LoveRescue operation (partner API and client app API), good and bad input, in a fixed order."""
    lr = demo["loverescue"]
    clients = lr["clients"]
    auth = "/api/integration/auth"

    # Partner token exchange
    api.call("auth: missing apiSecret", "POST", auth, {"apiKey": lr["apiKey"], "therapistId": lr["therapistId"]})
    api.call(
        "auth: unknown key",
        "POST",
        auth,
        {"apiKey": "lr_int_nosuchkey000_x", "apiSecret": lr["apiSecret"], "therapistId": lr["therapistId"]},
    )
    api.call(
        "auth: wrong secret",
        "POST",
        auth,
        {"apiKey": lr["apiKey"], "apiSecret": "sk_live_wrong", "therapistId": lr["therapistId"]},
    )
    api.call(
        "auth: unknown therapist",
        "POST",
        auth,
        {"apiKey": lr["apiKey"], "apiSecret": lr["apiSecret"], "therapistId": UNKNOWN_UUID},
    )
    api.call("auth: not JSON", "POST", auth, raw="apiKey=x", content_type="application/json")
    api.call("auth: GET not allowed", "GET", auth)
    token = partner_token(api, demo)

    # Tokens
    api.call("clients: no token", "GET", "/api/integration/clients")
    api.call("clients: garbage token", "GET", "/api/integration/clients", token="not-a-jwt")
    api.call("clients: expired token", "GET", "/api/integration/clients", token=expired_partner_token(token))
    api.call("clients", "GET", "/api/integration/clients", token=token)
    api.call("clients: DELETE not allowed", "DELETE", "/api/integration/clients", token=token)

    # Progress per permission level
    for key in ("basic", "standard", "full", "revoked"):
        api.call(f"progress: {key}", "GET", f"/api/integration/clients/{clients[key]}/progress", token=token)
    api.call("progress: unknown client", "GET", f"/api/integration/clients/{UNKNOWN_UUID}/progress", token=token)
    api.call("progress: not a uuid", "GET", "/api/integration/clients/not-a-uuid/progress", token=token)

    # Session prep
    for key in ("full", "standard", "basic", "revoked"):
        api.call(f"session-prep: {key}", "GET", f"/api/integration/clients/{clients[key]}/session-prep", token=token)
    base = f"/api/integration/clients/{clients['full']}/session-prep"
    api.call("session-prep: lastSessionDate 14 days ago", "GET", f"{base}?lastSessionDate={_day(-14)}", token=token)
    api.call("session-prep: lastSessionDate bad", "GET", f"{base}?lastSessionDate=yesterday", token=token)
    api.call("session-prep: lastSessionDate future", "GET", f"{base}?lastSessionDate={_day(3)}", token=token)
    api.call(
        "session-prep: unknown client", "GET", f"/api/integration/clients/{UNKNOWN_UUID}/session-prep", token=token
    )

    # Couple dynamics
    api.call("dynamics", "GET", f"/api/integration/couples/{lr['coupleId']}/dynamics", token=token)
    api.call("dynamics: unknown couple", "GET", f"/api/integration/couples/{UNKNOWN_UUID}/dynamics", token=token)

    # Alerts and filters
    alerts = "/api/integration/alerts"
    response = api.call("alerts", "GET", alerts, token=token)
    for query in (
        "type=RISK",
        "type=STAGNATION",
        "type=CRISIS",
        "type=MILESTONE",
        "unreadOnly=true",
        "unreadOnly=false",
        f"since={_day(-7)}",
        f"since={_day(-30)}T00:00:00Z",
        "limit=1",
        "limit=500",
        "type=MILESTONE&unreadOnly=true&limit=2",
    ):
        api.call(f"alerts: {query}", "GET", f"{alerts}?{query}", token=token)
    for query in (
        "type=BOGUS",
        "type=risk",
        "unreadOnly=maybe",
        "since=not-a-date",
        "limit=0",
        "limit=501",
        "limit=abc",
        "limit=-1",
    ):
        api.call(f"alerts: bad {query}", "GET", f"{alerts}?{query}", token=token)

    # Mark read
    unread = [alert for alert in response.json().get("alerts", []) if alert.get("readAt") is None]
    if unread:
        alert_id = unread[0]["id"]
        api.call("alert read", "POST", f"{alerts}/{alert_id}/read", token=token, expect_valid=True)
        api.call("alert read: again", "POST", f"{alerts}/{alert_id}/read", token=token, expect_valid=True)
    api.call("alert read: unknown", "POST", f"{alerts}/{UNKNOWN_UUID}/read", token=token)
    api.call("alerts: unreadOnly=true after read", "GET", f"{alerts}?unreadOnly=true", token=token)

    # Assign
    assign = f"/api/integration/clients/{clients['standard']}/assign"
    good = {
        "taskDescription": "Complete the Gottman Love Map exercise",
        "module": "gottman_love_maps",
        "activities": ["love_map_quiz", "open_ended_questions"],
        "notes": "Focus on curiosity about partner's inner world",
        "dueDate": _day(7),
        "priority": "high",
    }
    api.call("assign: standard client", "POST", assign, good, token=token, expect_valid=True)
    api.call(
        "assign: minimal body",
        "POST",
        assign,
        {"taskDescription": "Write three appreciations"},
        token=token,
        expect_valid=True,
    )
    api.call(
        "assign: basic client",
        "POST",
        f"/api/integration/clients/{clients['basic']}/assign",
        {"taskDescription": "Weekly check-in"},
        token=token,
        expect_valid=True,
    )
    api.call("assign: missing taskDescription", "POST", assign, {"module": "x"}, token=token)
    api.call("assign: dueDate in the past", "POST", assign, {**good, "dueDate": _day(-1)}, token=token)
    api.call("assign: bad dueDate format", "POST", assign, {**good, "dueDate": "19/02/2026"}, token=token)
    api.call("assign: bad priority", "POST", assign, {**good, "priority": "urgent"}, token=token)
    api.call("assign: activities not a list", "POST", assign, {**good, "activities": "love_map_quiz"}, token=token)
    api.call(
        "assign: revoked client", "POST", f"/api/integration/clients/{clients['revoked']}/assign", good, token=token
    )
    api.call("assign: unknown client", "POST", f"/api/integration/clients/{UNKNOWN_UUID}/assign", good, token=token)

    # Outcomes
    api.call("outcomes", "GET", "/api/integration/outcomes", token=token)

    # Webhook registration
    webhook = "/api/integration/webhook/register"
    events = ["alert.created", "alert.critical", "milestone.achieved"]
    api.call(
        "webhook register: public https URL",
        "POST",
        webhook,
        {"webhookUrl": PUBLIC_WEBHOOK_URL, "events": events},
        token=token,
        expect_valid=True,
    )
    api.call(
        "webhook register: http URL",
        "POST",
        webhook,
        {"webhookUrl": "http://93.184.216.34/hook", "events": events},
        token=token,
    )
    api.call(
        "webhook register: private address",
        "POST",
        webhook,
        {"webhookUrl": "https://10.0.0.1/hook", "events": events},
        token=token,
    )
    api.call(
        "webhook register: unknown event",
        "POST",
        webhook,
        {"webhookUrl": PUBLIC_WEBHOOK_URL, "events": ["alert.deleted"]},
        token=token,
    )
    api.call(
        "webhook register: no events", "POST", webhook, {"webhookUrl": PUBLIC_WEBHOOK_URL, "events": []}, token=token
    )
    api.call("webhook register: missing url", "POST", webhook, {"events": events}, token=token)

    # Unknown path under the API
    api.call("unknown partner path", "GET", "/api/integration/nope", token=token)

    # The client app (platform token)
    app_token = client_app_scenario(api, demo, partner_token=token)

    # What the partner sees after the client's changes
    api.call("clients: after app changes", "GET", "/api/integration/clients", token=token)
    api.call(
        "progress: full after app changes", "GET", f"/api/integration/clients/{clients['full']}/progress", token=token
    )
    api.call("partner API with a platform token", "GET", "/api/integration/clients", token=app_token)


def client_app_scenario(api: Api, demo: dict, *, partner_token: str) -> str:
    token_path = "/api/v1/auth/token"
    login = demo["loverescue"]["clientLogin"]
    api.call("platform token: wrong password", "POST", token_path, {"username": login["username"], "password": "x"})
    api.call("platform token: missing password", "POST", token_path, {"username": login["username"]})
    token = platform_token(api, demo)

    api.call("app: no token", "GET", "/api/app/therapist-links")
    api.call("app: partner token", "GET", "/api/app/therapist-links", token=partner_token)

    today, yesterday = _day(0), _day(-1)
    api.call(
        "app checkin: new day",
        "POST",
        "/api/app/checkins",
        {"date": _day(1), "mood": 7, "closeness": 6},
        token=token,
        expect_valid=True,
    )
    api.call(
        "app checkin: replace today",
        "POST",
        "/api/app/checkins",
        {"date": today, "mood": 8, "closeness": 7, "crisis": False},
        token=token,
        expect_valid=True,
    )
    api.call(
        "app checkin: mood 11", "POST", "/api/app/checkins", {"date": today, "mood": 11, "closeness": 6}, token=token
    )
    api.call(
        "app checkin: mood as string",
        "POST",
        "/api/app/checkins",
        {"date": today, "mood": "7", "closeness": 6},
        token=token,
    )
    api.call(
        "app checkin: too far in the future",
        "POST",
        "/api/app/checkins",
        {"date": _day(5), "mood": 7, "closeness": 6},
        token=token,
    )

    api.call(
        "app ratio: new day",
        "POST",
        "/api/app/ratios",
        {"date": _day(1), "positive": 10, "negative": 3},
        token=token,
        expect_valid=True,
    )
    api.call(
        "app ratio: replace yesterday",
        "POST",
        "/api/app/ratios",
        {"date": yesterday, "positive": 6, "negative": 0},
        token=token,
        expect_valid=True,
    )
    api.call(
        "app ratio: negative -1", "POST", "/api/app/ratios", {"date": today, "positive": 5, "negative": -1}, token=token
    )

    api.call(
        "app activity: extra",
        "POST",
        "/api/app/activities",
        {"date": today, "activity": "gratitude_note"},
        token=token,
        expect_valid=True,
    )
    api.call("app activity: missing activity", "POST", "/api/app/activities", {"date": today}, token=token)
    api.call(
        "app activity: week 13",
        "POST",
        "/api/app/activities",
        {"date": today, "activity": "x", "weekNumber": 13},
        token=token,
    )

    api.call(
        "app assessment",
        "POST",
        "/api/app/assessments",
        {"type": "attachment", "score": {"style": "secure", "anxiety": 2.5, "avoidance": 1.75}, "responses": {"q1": 3}},
        token=token,
        expect_valid=True,
    )
    api.call(
        "app assessment: unknown type", "POST", "/api/app/assessments", {"type": "bogus", "score": {}}, token=token
    )
    api.call(
        "app assessment: score not an object",
        "POST",
        "/api/app/assessments",
        {"type": "attachment", "score": 5},
        token=token,
    )

    api.call(
        "app journal",
        "POST",
        "/api/app/journal",
        {"text": "We cooked together tonight.", "therapistHidden": False},
        token=token,
        expect_valid=True,
    )
    api.call(
        "app journal: hidden",
        "POST",
        "/api/app/journal",
        {"text": "Private thought.", "therapistHidden": True},
        token=token,
        expect_valid=True,
    )
    api.call("app journal: missing therapistHidden", "POST", "/api/app/journal", {"text": "x"}, token=token)
    api.call("app journal: empty text", "POST", "/api/app/journal", {"text": "", "therapistHidden": False}, token=token)

    response = api.call("app therapist-links", "GET", "/api/app/therapist-links", token=token)
    links = response.json().get("links", []) if response.status_code == 200 else []
    if links:
        link = f"/api/app/therapist-links/{links[0]['linkId']}"
        api.call(
            "app link: to STANDARD", "PATCH", link, {"permissionLevel": "STANDARD"}, token=token, expect_valid=True
        )
        api.call(
            "app link: back to FULL",
            "PATCH",
            link,
            {"permissionLevel": "FULL", "consent": "granted"},
            token=token,
            expect_valid=True,
        )
        api.call("app link: empty body", "PATCH", link, {}, token=token)
        api.call("app link: bad level", "PATCH", link, {"permissionLevel": "SUPER"}, token=token)
    api.call(
        "app link: unknown",
        "PATCH",
        f"/api/app/therapist-links/{UNKNOWN_UUID}",
        {"permissionLevel": "FULL"},
        token=token,
    )

    response = api.call("app tasks", "GET", "/api/app/tasks", token=token)
    tasks = response.json().get("tasks", []) if response.status_code == 200 else []
    pending = [task for task in tasks if not task.get("completedAt") and task.get("status") != "completed"]
    if pending:
        path = f"/api/app/tasks/{pending[0]['id']}/complete"
        api.call("app task complete", "POST", path, token=token, expect_valid=True)
        api.call("app task complete: again, with {}", "POST", path, {}, token=token, expect_valid=True)
    api.call("app task complete: unknown", "POST", f"/api/app/tasks/{UNKNOWN_UUID}/complete", token=token)
    api.call("app tasks: after complete", "GET", "/api/app/tasks", token=token)
    return token


def careos_scenario(api: Api, demo: dict) -> None:
    ingest = "/api/leads/ingest"
    headers = careos_headers(demo)

    def post(name, body=None, *, raw=None, hdrs=None, valid=False):
        return api.call(
            name, "POST", ingest, body, raw=raw, headers=headers if hdrs is None else hdrs, expect_valid=valid
        )

    good = lead_body(demo, "contract-lead-1")
    post("ingest: good lead", good, valid=True)
    post("ingest: replay of the same conversation", good, valid=True)
    post("ingest: same phone, new conversation", lead_body(demo, "contract-lead-2"), valid=True)
    post(
        "ingest: new phone, minimal fields",
        {
            key: value
            for key, value in lead_body(demo, "contract-lead-3", phone="+14155550199").items()
            if key
            not in {"user_name", "user_location_state", "user_location_country", "user_location_city", "subcategory"}
        },
        valid=True,
    )
    post("ingest: lead_value_agreed 15.5", lead_body(demo, "contract-lead-4", lead_value_agreed=15.5), valid=True)

    missing = {
        key: value
        for key, value in lead_body(demo, "contract-lead-5").items()
        if key not in {"user_phone_encrypted", "original_message"}
    }
    post("ingest: missing user_phone_encrypted and original_message", missing)
    post("ingest: missing category", {k: v for k, v in lead_body(demo, "contract-lead-5").items() if k != "category"})
    post("ingest: no API key", lead_body(demo, "contract-lead-6"), hdrs={"X-Platform": demo["careos"]["platform"]})
    post(
        "ingest: bad API key",
        lead_body(demo, "contract-lead-6"),
        hdrs=careos_headers(demo, **{"X-API-Key": "businessos_live_nosuchkey000_x"}),
    )
    post(
        "ingest: unknown platform header",
        lead_body(demo, "contract-lead-6"),
        hdrs=careos_headers(demo, **{"X-Platform": "othertool"}),
    )
    post(
        "ingest: source_platform differs from X-Platform",
        lead_body(demo, "contract-lead-6", source_platform="othertool"),
    )
    post(
        "ingest: bad ciphertext (valid base64)",
        lead_body(demo, "contract-lead-7", user_phone_encrypted=base64.b64encode(b"x" * 256).decode()),
    )
    post("ingest: ciphertext not base64", lead_body(demo, "contract-lead-7", user_phone_encrypted="%%%not-base64%%%"))
    post(
        "ingest: phone hash mismatch",
        lead_body(demo, "contract-lead-8", user_phone_hash=hash_phone("+14155550000", demo["careos"]["phoneHashSalt"])),
    )
    for value in ("15.00", -1, 1.234, 0, True, None, "abc"):
        post(f"ingest: lead_value_agreed {value!r}", lead_body(demo, "contract-lead-9", lead_value_agreed=value))
    post("ingest: consent false", lead_body(demo, "contract-lead-10", user_consent=False))
    post("ingest: consent as string", lead_body(demo, "contract-lead-10", user_consent="true"))
    post("ingest: consent_timestamp bad", lead_body(demo, "contract-lead-10", consent_timestamp="yesterday"))
    post(
        "ingest: consent_timestamp in the future",
        lead_body(demo, "contract-lead-10", consent_timestamp=f"{_day(3)}T12:00:00Z"),
    )
    post("ingest: ai_extracted_details not an object", lead_body(demo, "contract-lead-11", ai_extracted_details="x"))
    post("ingest: body not JSON", raw="not json")
    post("ingest: body a JSON array", raw="[]")
    api.call("ingest: GET not allowed", "GET", ingest, headers=headers)
    post("ingest: replay after errors", good, valid=True)


def fresh_uuid() -> str:
    return str(uuid.uuid4())


# --- OpenAPI 3.0 -> JSON Schema, validation ----------------------------------------------------------

REF_PREFIX = "#/components/schemas/"


def to_json_schema(node):
    """One OpenAPI 3.0 schema object as JSON Schema (2020-12): `nullable: true` becomes "or null" (for
    any schema, $ref and enums included), boolean exclusiveMinimum/Maximum become numbers, component
    refs point into `$defs`. OpenAPI-only keywords that JSON Schema ignores are left as they are."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    nullable = node.pop("nullable", False) is True
    for keyword, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if node.get(keyword) is True and bound in node:
            node[keyword] = node.pop(bound)
        elif node.get(keyword) is False:
            node.pop(keyword)
    for keyword in ("discriminator", "xml", "externalDocs", "example"):
        node.pop(keyword, None)
    converted = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
            converted[key] = "#/$defs/" + value[len(REF_PREFIX) :]
        elif key in ("properties", "patternProperties"):
            converted[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            converted[key] = to_json_schema(value)
        else:
            converted[key] = value
    if nullable:
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


class SchemaBook:
    """The published schema: operations by (METHOD, template), and validators for their bodies."""

    def __init__(self, document: dict):
        self.document = document
        self.defs = {
            name: to_json_schema(schema) for name, schema in document.get("components", {}).get("schemas", {}).items()
        }
        self.operations: dict[tuple[str, str], dict] = {}
        self._patterns: list[tuple[re.Pattern, str, str]] = []
        for template, item in document.get("paths", {}).items():
            regex = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")
            for method, operation in item.items():
                if method.lower() in {"get", "post", "put", "patch", "delete", "head", "options"}:
                    self.operations[(method.upper(), template)] = operation
                    self._patterns.append((regex, method.upper(), template))
        # Literal segments win over parameters (as Django's urls are written).
        self._patterns.sort(key=lambda entry: entry[2].count("{"))

    def operation_for(self, method: str, path: str) -> tuple[str, str] | None:
        bare = path.split("?", 1)[0]
        for regex, op_method, template in self._patterns:
            if op_method == method and regex.match(bare):
                return (op_method, template)
        return None

    def validator(self, schema: dict):
        from jsonschema import Draft202012Validator

        full = {**to_json_schema(schema), "$defs": self.defs}
        return Draft202012Validator(full, format_checker=format_checker())

    def errors(self, schema: dict, instance) -> list[str]:
        found = sorted(self.validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
        return [f"{error.json_path}: {_short(error)}" for error in found]

    def request_schema(self, key: tuple[str, str], content_type: str | None) -> dict | None:
        body = self.operations[key].get("requestBody") or {}
        content = body.get("content") or {}
        if content_type and content_type.split(";")[0] in content:
            return content[content_type.split(";")[0]].get("schema")
        return next(iter(content.values()), {}).get("schema") if content else None

    def response_doc(self, key: tuple[str, str], status: int) -> dict | None:
        responses = self.operations[key].get("responses") or {}
        return responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")


def format_checker():
    """jsonschema's checkers, plus `date-time` (RFC 3339: a date, a time and an offset or Z), which
    jsonschema only checks with an optional package."""
    from jsonschema import Draft202012Validator, FormatChecker

    checker = FormatChecker(formats=())
    checker.checkers = dict(Draft202012Validator.FORMAT_CHECKER.checkers)

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value):
        if not isinstance(value, str):
            return True
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", value):
            raise ValueError(f"{value!r} is not an RFC 3339 date-time")
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        return True

    return checker


def _short(error) -> str:
    message = error.message
    if len(message) > 300:
        message = message[:300] + "..."
    if error.validator in ("anyOf", "oneOf") and error.context:
        inner = sorted(error.context, key=lambda e: -len(list(e.absolute_path)))[0]
        message += f" (e.g. {inner.json_path}: {inner.message[:200]})"
    return message


def conform(value, schema: dict | None, book: SchemaBook, depth: int = 0):
    """The value written in the documented type: a number sent where the schema documents a string
    becomes that string (a "decimal" with two places: 15 -> "15.00"), and a numeric string where a
    number is documented becomes the number. Used to send what a client reading the schema would send."""
    if schema is None or depth > 20:
        return value
    if "$ref" in schema:
        return conform(
            value, book.document["components"]["schemas"][schema["$ref"][len(REF_PREFIX) :]], book, depth + 1
        )
    for keyword in ("allOf", "oneOf", "anyOf"):
        if keyword in schema and schema[keyword]:
            return conform(value, schema[keyword][0], book, depth + 1)
    kind = schema.get("type")
    if isinstance(value, dict) and (kind == "object" or "properties" in schema):
        properties = schema.get("properties", {})
        return {key: conform(item, properties.get(key), book, depth + 1) for key, item in value.items()}
    if isinstance(value, list) and kind == "array":
        return [conform(item, schema.get("items"), book, depth + 1) for item in value]
    if kind == "string" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.2f}" if schema.get("format") == "decimal" else str(value)
    if kind in ("number", "integer") and isinstance(value, str):
        try:
            return int(value) if kind == "integer" else float(value)
        except ValueError:
            return value
    return value


def twilio_signature(token: str, url: str, params: dict[str, str]) -> str:
    """Twilio's documented algorithm: URL + each POST parameter name and value sorted by name,
    HMAC-SHA1 with the auth token, base64."""
    import hmac

    payload = url + "".join(name + params[name] for name in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), payload.encode(), hashlib.sha1).digest()).decode()
