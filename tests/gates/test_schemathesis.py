"""The Schemathesis gate: every operation of the OpenAPI schema the platform publishes, fuzzed in-process.

What it does (issue 10, "Gates in CI"):
- loads the schema from GET /api/schema/ through the WSGI application (config.wsgi), so every operation
  of every API present is covered, and an API added later is covered without touching this file;
- for each operation, generates cases in Schemathesis' examples, coverage and fuzzing phases, positive
  (schema-valid) and negative (schema-violating) ones, and sends them to the app in-process (no network,
  no server);
- authenticates every case as its API's demo identity (`seed_demo`), chosen by the operation's security
  requirement: the LoveRescue partner token of the demo partner acting for the demo therapist (with
  consented clients), the platform token of the demo client for the LoveRescue app API (/api/app/), the
  platform token of the demo clinic's owner with `X-Organization-ID` elsewhere (organization-scoped APIs;
  on the therapist dashboard the owner is a reviewer: every session of the clinic),
  the CareOS demo key with `X-Platform: businessos`; the public operations anonymously. An operation
  whose scheme has no demo identity fails with a message saying so (a new API adds its own here).
  Schemathesis' `ignored_auth` check then also sends each authenticated operation without credentials
  and with wrong ones, and expects a refusal;
- runs every check Schemathesis has for a single response except `positive_data_acceptance` (see
  CHECKS): 0 server errors, responses conform to the documented schema (status code, content type,
  body, headers), schema-violating requests refused with a 4xx, required headers required, methods
  the path does not have refused with 405, authentication enforced.

Bounded and reproducible: MAX_EXAMPLES fuzzing cases per operation plus the coverage phase's cases
(about 5,900 in total for 89 operations), a fixed seed and derandomized generation (the same cases on
every run), no example database, a per-case deadline; `test_gate_totals` checks the total, and
tests/conftest.py's GATE budget the time (300 s for tests/gates/). The run ends with
`SCHEMATHESIS cases=<n> ops=<m> failures=<f> seconds=<s>` in pytest's terminal summary.

Positive cases are sometimes steered onto the demo world (WORLD_SHARE): a path id becomes a real id the
identity may see, a therapist dashboard session id (path, query or body) is the demo therapist's latest
session, a date falls in the accepted window, a CareOS lead carries a phone encrypted to the
platform's key, a Twilio callback is signed. A schema cannot say "an id that exists", so without this
nearly every positive case would stop at a 404 or 401 and the code behind it would never be reached. The
choice is a pure function of the case (stable under shrinking). Negative cases are never changed.

Nothing is excluded: every operation of the schema runs (test_gate_totals fails if one did not).
"""

from __future__ import annotations

import json
import os
import time
import zlib
from datetime import timedelta

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation

from config.wsgi import application
from tests.contract.helpers import encrypt_phone, hash_phone, twilio_signature
from tests.servers import StaticResolver

SCHEMA_PATH = "/api/schema/"
# Reproducible by default (CI); a deeper or different local run: SCHEMATHESIS_MAX_EXAMPLES=200 SCHEMATHESIS_SEED=7.
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "20261130"))
# Fuzzing cases per operation; the coverage phase adds its own (a few to ~90 per operation, from the schema).
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "30"))
MIN_CASES = 1000
# A single case slower than this fails (a request hanging in-process); they take ~10-100 ms. The gate's
# total time is bounded by MAX_EXAMPLES and checked by tests/conftest.py's GATE budget for tests/gates/.
DEADLINE = timedelta(seconds=3)
# Share of positive cases steered onto the demo world (see the module docstring).
WORLD_SHARE = 2  # one in WORLD_SHARE

# Checks: all of Schemathesis' response checks, except `positive_data_acceptance`, which expects every
# schema-valid request to be accepted. The APIs have rules a JSON schema cannot state (a date within the
# last 365 days and not after tomorrow, "permissionLevel or consent", an id that exists, a phone that
# decrypts under our key, a signature that matches), so schema-valid requests are rightly refused with a
# 400/401/403/404 in the API's own body; the other checks still hold those answers to the documented
# statuses and bodies. Where the schema could say more it does (e.g. `limit` bounds: see
# test_schemathesis_findings.py).
CHECKS = {"positive_data_acceptance": {"enabled": False}}

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            # Credentials are the demo identities (below), not generated values.
            "with-security-parameters": False,
        },
        "checks": CHECKS,
    }
)

schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, application, config=CONFIG)

TWILIO_TOKEN = "schemathesis-gate-twilio-auth-token"
TWILIO_BASE = "https://platform.example.com"
# Twilio's webhooks (status callback, incoming messages): signed like Twilio signs them.
TWILIO_SIGNED_PATHS = ("/api/messaging/twilio/status", "/api/messaging/twilio/inbound")
WEBHOOK_HOST = "hooks.example.com"
APP_PREFIX = "/api/app/"
# The therapist dashboard: positive cases name the demo therapist's sessions (the identity, the demo clinic's
# owner, is a reviewer there), the therapist and the caller, wherever its operations take them.
THERAPIST_PREFIXES = ("/api/session", "/api/evaluation")
THERAPIST_SESSION_FIELDS = ("sessionId", "currentSessionId")
LEAD_PHONES = ("+14155550123", "+14155550124", "+442071838750")


class DemoWorld:
    """The demo identities and the ids they may see; steers positive cases onto them."""

    def __init__(self, demo: dict, headers: dict[str, dict[str, str]], ids: dict[str, list[str]]):
        self.demo = demo
        self.headers = headers  # security scheme name -> headers of its demo identity
        self.ids = ids  # path parameter name -> ids the identity may use
        self.therapist_ids: dict[str, str] = {}  # the therapist dashboard's ids (see _steer_therapist)

    def identity(self, case) -> dict[str, str]:
        """The headers of the demo identity for the operation's security requirement (the first one, of
        its alternatives, that the demo has every scheme of; none for a public operation)."""
        requirements = case.operation.definition.raw.get("security", [])
        chosen = next((req for req in requirements if all(self._has(case, scheme) for scheme in req)), None)
        if chosen is None:
            pytest.fail(
                f"{case.operation.label}: no demo identity for any of {requirements}; give DemoWorld one "
                "(a scheme of a new API needs its demo credential here)",
                pytrace=False,
            )
        headers: dict[str, str] = {}
        for scheme in chosen:
            headers.update(self._headers(case, scheme))
        if not _negative_at(case, ParameterLocation.HEADER):
            names = {parameter.name.lower() for parameter in case.operation.iter_parameters()}
            if case.operation.path == "/api/leads/ingest":
                # The CareOS credential is the key and its platform together.
                headers["X-Platform"] = self.demo["careos"]["platform"]
            if "x-organization-id" in names:  # organization-scoped APIs (Mark, Routiq): the demo clinic
                headers["X-Organization-ID"] = self.demo["platform"]["organizationId"]
        return headers

    def _has(self, case, scheme: str) -> bool:
        return scheme in self.headers

    def _headers(self, case, scheme: str) -> dict[str, str]:
        if scheme == "platformToken" and case.operation.path.startswith(APP_PREFIX):
            # The platform token of the LoveRescue app API is a client's; elsewhere it is the clinic staff's.
            return self.headers["platformToken:client"]
        return self.headers[scheme]

    def steer(self, case) -> None:
        """Make a positive case reach further: real ids, accepted dates, a decryptable phone, a signature."""
        if case.meta is None or case.meta.generation.mode.value != "positive":
            return
        pick = _stable_hash(case)
        if pick % WORLD_SHARE:
            self._sign_twilio(case)  # unsigned, every callback would stop at 403
            return
        for name in list(case.path_parameters or {}):
            if self.ids.get(name):
                choices = self.ids[name]
                case.path_parameters[name] = choices[pick // WORLD_SHARE % len(choices)]
        body = case.body
        if isinstance(body, dict):
            if "date" in body:
                body["date"] = (timezone.now().date() - timedelta(days=pick % 30)).isoformat()
            if case.operation.path == "/api/leads/ingest":
                careos = self.demo["careos"]
                phone = LEAD_PHONES[pick % len(LEAD_PHONES)]
                body["source_platform"] = careos["platform"]
                body["user_phone_hash"] = hash_phone(phone, careos["phoneHashSalt"])
                body["user_phone_encrypted"] = encrypt_phone(phone, careos["publicKeyPem"])
            if case.operation.path == "/api/integration/webhook/register":
                body["webhookUrl"] = f"https://{WEBHOOK_HOST}/loverescue/{pick % 1000}"
            if case.operation.path == "/api/v1/webhooks":  # Mark: a public https receiver
                body["url"] = f"https://{WEBHOOK_HOST}/mark/{pick % 1000}"
        if isinstance(case.query, dict) and "lastSessionDate" in case.query:
            case.query["lastSessionDate"] = (timezone.now() - timedelta(days=pick % 60)).isoformat()
        if case.operation.path.startswith(THERAPIST_PREFIXES):
            self._steer_therapist(case)
        self._sign_twilio(case)

    def _steer_therapist(self, case) -> None:
        names = self.therapist_ids
        for fields in (case.query, case.body):
            if not isinstance(fields, dict):
                continue
            for name in THERAPIST_SESSION_FIELDS:
                if name in fields:
                    fields[name] = names["session"]
            for name, value in (
                ("previousSessionId", names["previousSession"]),
                ("therapistId", names["therapist"]),
                ("evaluatorId", names["caller"]),
            ):
                if name in fields:
                    fields[name] = value

    def _sign_twilio(self, case) -> None:
        if case.operation.path not in TWILIO_SIGNED_PATHS or not isinstance(case.body, dict):
            return
        params = {name: str(value) for name, value in case.body.items()}
        case.body = params
        case.headers = {**(case.headers or {}), "X-Twilio-Signature": twilio_signature(
            TWILIO_TOKEN, TWILIO_BASE + case.operation.path, params
        )}


def _negative_at(case, location) -> bool:
    return case.meta is not None and case.meta.is_negative_at(location)


def _stable_hash(case) -> int:
    content = json.dumps(
        [case.path_parameters, case.query, case.body, case.operation.label], sort_keys=True, default=repr
    )
    return zlib.crc32(content.encode())


def _ok(response, what: str) -> dict:
    assert response.status_code == 200, f"{what}: {response.status_code} {response.content[:300]!r}"
    return response.json()


@pytest.fixture(scope="module")
def world(gate_demo, django_db_blocker) -> DemoWorld:
    """Log in as each API's demo identity, as its users do, and list the ids each may see."""
    lr = gate_demo["loverescue"]
    client = Client()
    with django_db_blocker.unblock():
        partner = _ok(
            client.post(
                "/api/integration/auth",
                {"apiKey": lr["apiKey"], "apiSecret": lr["apiSecret"], "therapistId": lr["therapistId"]},
                content_type="application/json",
            ),
            "LoveRescue partner token",
        )
        app = _ok(client.post("/api/v1/auth/token", lr["clientLogin"], content_type="application/json"), "app token")
        platform = gate_demo["platform"]
        staff = _ok(
            client.post(
                platform["tokenUrl"],
                {"username": platform["username"], "password": platform["password"]},
                content_type="application/json",
            ),
            "platform token",
        )
        partner_auth = {"HTTP_AUTHORIZATION": f"Bearer {partner['token']}"}
        app_auth = {"HTTP_AUTHORIZATION": f"Bearer {app['access_token']}"}
        alerts = _ok(client.get("/api/integration/alerts", **partner_auth), "alerts")
        tasks = _ok(client.get("/api/app/tasks", **app_auth), "app tasks")
        links = _ok(client.get("/api/app/therapist-links", **app_auth), "app links")
    ids = {
        "client_id": list(lr["clients"].values()),
        "couple_id": [lr["coupleId"]],
        "alert_id": [alert["id"] for alert in alerts["alerts"]],
        "task_id": [task["id"] for task in tasks["tasks"]],
        "link_id": [link["linkId"] for link in links["links"]],
    }
    assert all(ids.values()), f"the demo data lack ids the gate steers to: {ids}"
    ids["organization_id"] = [gate_demo["platform"]["organizationId"]]
    if gate_demo.get("mark", {}).get("conversationId"):
        ids["conversation_id"] = [gate_demo["mark"]["conversationId"]]  # Mark conversations: a real one
    therapist_ids = _therapist_ids(gate_demo, django_db_blocker)
    ids["session_id"] = [therapist_ids["session"]]
    headers = {
        "loveRescueIntegrationToken": {"Authorization": f"Bearer {partner['token']}"},
        "platformToken": {"Authorization": f"Bearer {staff['access_token']}"},
        "platformToken:client": {"Authorization": f"Bearer {app['access_token']}"},
        "careosPartnerApiKey": {"X-API-Key": gate_demo["careos"]["apiKey"]},
    }
    world = DemoWorld(gate_demo, headers, ids)
    world.therapist_ids = therapist_ids
    return world


def _therapist_ids(demo: dict, django_db_blocker) -> dict[str, str]:
    """The demo therapist's latest session and one started before it, the therapist's and the gate
    identity's (the demo clinic's owner) usr_ ids."""
    from accounts.models import User
    from sessions_analytics.models import TrainingSession

    seeded = demo["therapist"]
    with django_db_blocker.unblock():
        therapist = User.objects.get(username=seeded["therapist"]["username"])
        session = TrainingSession.objects.get(public_id=seeded["sessionId"])
        previous = (
            TrainingSession.objects.filter(therapist=therapist, start_time__lt=session.start_time)
            .order_by("-start_time")
            .first()
        )
        caller = User.objects.get(username=demo["platform"]["username"])
    assert previous is not None, "the demo therapist needs a session before the latest (comparisons)"
    return {
        "session": session.public_id,
        "previousSession": previous.public_id,
        "therapist": therapist.public_id,
        "caller": caller.public_id,
    }


@pytest.fixture
def gate(world, db, settings, monkeypatch, frozen_ratelimit_clock, gate_stats):
    # Twilio callbacks are verified against these (the gate signs the cases it steers).
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.MESSAGING_STATUS_CALLBACK_BASE_URL = TWILIO_BASE
    # Webhook URLs are resolved by a stand-in (no DNS): the steered host is public, any other is unknown.
    import webhooks.services

    monkeypatch.setattr(webhooks.services, "RESOLVER", StaticResolver({WEBHOOK_HOST: "93.184.216.34"}))
    # The app runs inside this test's transaction, as under Django's test client, which likewise keeps
    # close_old_connections from closing the connection mid-transaction at each request's start and end.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield world, frozen_ratelimit_clock, gate_stats
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
# The function-scoped fixture is per operation on purpose: its examples share one savepoint, as requests
# share a server; it is rolled back before the next operation.
@settings(deadline=DEADLINE, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_schemathesis(case, gate):
    world, ratelimit_clock, stats = gate
    # Each case in a fresh rate-limit window: the limits are counted and their headers sent as usual, but
    # hundreds of cases a minute on one key would otherwise test little more than the 429.
    ratelimit_clock.now += 86400
    world.steer(case)
    headers = world.identity(case)
    try:
        started = time.monotonic()
        response = case.call(headers=headers)
        stats.record(case, response.status_code, time.monotonic() - started)
        case.validate_response(response, headers=headers)
    except BaseException:
        stats.failed_operations.add(case.operation.label)
        raise


def test_gate_totals(gate_stats):
    """Runs after test_schemathesis (same module, in order): every operation of the schema ran, enough
    cases, none failed."""
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert gate_stats.cases, "test_schemathesis did not run: run the whole module (it feeds this test)"
    missing = operations - set(gate_stats.per_operation)
    assert not missing, f"operations the gate never called: {sorted(missing)}"
    assert gate_stats.cases >= MIN_CASES, f"{gate_stats.cases} cases, fewer than {MIN_CASES}: raise MAX_EXAMPLES"
    assert not gate_stats.failed_operations, f"failing operations: {sorted(gate_stats.failed_operations)}"
    print(gate_stats.summary())
