"""POST /api/leads/ingest: the happy path, every error of the contract (status and exact body), replay,
dedup by phone, the welcome SMS, the category table and the per-partner rate limit."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives import hashes
from django.test import Client

from audit.models import AccessLog, AuditEvent
from core.actors import Actor
from core.encryption import blind_index
from core.time import utc_now
from leads import categories
from leads.models import CareUser, Lead, PartnerPayment, PartnerPlatform
from leads.services import ingest
from leads.services.platforms import api_key_create
from messaging.models import OutboundMessage
from messaging.services import InvalidRecipientError
from messaging.tasks import send_message
from tests.leads.factories import INGEST, encrypt_phone, hash_phone, make_platform, rsa_pair

pytestmark = pytest.mark.django_db

PHONE = "+14155550123"
INVALID_KEY = {"error": "Invalid API key"}
DECRYPT_FAILED = {"error": "Failed to decrypt user data"}


@pytest.fixture(autouse=True)
def enqueued(monkeypatch) -> list[int]:
    """send_message.apply_async recorded, never published."""
    calls: list[int] = []
    monkeypatch.setattr(send_message, "apply_async", lambda args=None, **options: calls.append(args[0]))
    return calls


@pytest.fixture
def setup():
    return make_platform()


def post(client, setup, body, **headers):
    payload = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(INGEST, payload, content_type="application/json", **(headers or setup.headers()))


def counts() -> dict[str, int]:
    return {
        "leads": Lead.objects.count(),
        "payments": PartnerPayment.objects.count(),
        "users": CareUser.objects.count(),
        "messages": OutboundMessage.objects.count(),
        "ingest_events": AuditEvent.objects.filter(action="leads.lead_ingested").count(),
    }


NOTHING = {"leads": 0, "payments": 0, "users": 0, "messages": 0, "ingest_events": 0}


# --- Happy path ----------------------------------------------------------------------------------------


def test_a_lead_creates_user_lead_payment_sms_and_audit(client, setup, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, setup, setup.lead(phone=PHONE))

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"success", "careos_lead_id", "careos_user_id", "careos_will_contact", "is_new_user"}
    assert body["success"] is True and body["careos_will_contact"] is True and body["is_new_user"] is True
    assert body["careos_lead_id"].startswith("lead_") and body["careos_user_id"].startswith("user_")

    lead = Lead.objects.get()
    user = CareUser.objects.get()
    # The partner's id for the person is its own (PartnerUser), never the internal CareUser id.
    assert (lead.public_id, lead.partner_user.public_id) == (body["careos_lead_id"], body["careos_user_id"])
    assert user.public_id != body["careos_user_id"] and lead.partner_user.platform == setup.platform
    assert user.welcome_sent_at == lead.created_at and lead.duplicate_of is None
    assert user.phone == PHONE and user.phone_index == blind_index(PHONE, purpose="leads.user.phone")
    assert user.source == "businessos_referral" and user.source_platform == setup.platform
    assert user.name == "John Doe" and user.language == "en"
    assert lead.platform == setup.platform and lead.user == user and lead.is_new_user is True
    assert lead.source_conversation_id == "bizos-lead-12345"
    assert (lead.source_category, lead.category, lead.subcategory) == (
        "healthcare",
        "general_healthcare",
        "caregiver_hiring",
    )
    assert (lead.location_state, lead.location_country, lead.location_city) == ("CA", "US", "San Francisco")
    assert lead.original_message.startswith("I need help finding a caregiver")
    assert lead.ai_extracted_details["condition_mentioned"] == "mobility issues"
    assert lead.consent_timestamp.isoformat() == "2025-01-08T12:00:00+00:00"
    assert lead.lead_value == Decimal("15.00")

    payment = PartnerPayment.objects.get()
    assert payment.lead == lead and payment.platform == setup.platform
    assert payment.status == "pending" and payment.amount == Decimal("15.00") and payment.currency == "USD"
    assert payment.due_at - lead.created_at == timedelta(days=30)

    message = OutboundMessage.objects.get()
    assert lead.will_contact is True and lead.welcome_message_id == message.public_id
    assert message.channel == "sms" and message.recipient == PHONE and message.purpose == "careos.welcome"
    assert message.body.startswith("Hi John, this is CareOS. businessos told us you'd like help")
    assert message.body.endswith("Reply STOP to opt out.")
    assert "caregiver" not in message.body and "mobility" not in message.body and "mom" not in message.body
    assert enqueued == [message.pk]  # the send task is enqueued after commit

    event = AuditEvent.objects.get(action="leads.lead_ingested")
    assert (event.actor_type, event.actor_id, event.subject_id) == ("partner_platform", "businessos", lead.public_id)
    assert event.metadata == {
        "lead_id": lead.public_id,
        "user_id": user.public_id,
        "partner_user_id": body["careos_user_id"],
        "platform": "businessos",
        "category": "general_healthcare",
        "is_new_user": True,
        "new_person": True,
        "will_contact": True,
        "welcome": "queued",
        "welcome_message_id": message.public_id,
        "amount": "15.00",
        "payable": True,
        "duplicate_of": None,
    }
    # The welcome SMS is queued by the same actor (it was "partner", outside the actor vocabulary).
    queued = AuditEvent.objects.get(action="messaging.message_queued")
    assert (queued.actor_type, queued.actor_id) == ("partner_platform", "businessos")
    log = AccessLog.objects.get(path=INGEST)
    assert (log.api, log.actor_type, log.actor_id, log.status_code) == ("careos", "partner_platform", "businessos", 200)
    assert f"lead:{lead.public_id}" in log.subject_ids
    assert response["X-RateLimit-Limit"] == "100" and response["X-RateLimit-Remaining"] == "99"


def test_optional_fields_may_be_left_out(client, setup):
    body = setup.lead()
    for name in (
        "user_name",
        "user_location_state",
        "user_location_country",
        "user_location_city",
        "subcategory",
        "ai_extracted_details",
    ):
        del body[name]
    response = post(client, setup, body)
    assert response.status_code == 200, response.content
    lead = Lead.objects.get()
    assert lead.user_name is None and lead.ai_extracted_details == {} and lead.location_country == ""
    assert OutboundMessage.objects.get().body.startswith("Hi, this is CareOS.")


def test_unknown_detail_keys_are_kept_and_numbers_stay_numbers(client, setup):
    details = {"urgency": "high", "budget_usd": 25.5, "tags": ["night", 2]}
    assert post(client, setup, setup.lead(ai_extracted_details=details)).status_code == 200
    assert Lead.objects.get().ai_extracted_details == details


def test_the_same_phone_in_another_conversation_reuses_the_user(client, setup):
    first = post(client, setup, setup.lead(phone=PHONE)).json()
    second = post(client, setup, setup.lead(phone=PHONE, source_conversation_id="bizos-lead-99999")).json()
    assert second["careos_user_id"] == first["careos_user_id"]
    assert second["careos_lead_id"] != first["careos_lead_id"]
    assert (first["is_new_user"], second["is_new_user"]) == (True, False)
    assert second["careos_will_contact"] is True
    # Within the period the person gets no second welcome SMS and the second lead earns no payment
    # (docs/careos.md, "Partners see only their own"; tests/leads/test_ingest_partners.py).
    assert counts() == {"leads": 2, "payments": 1, "users": 1, "messages": 1, "ingest_events": 2}


def test_a_national_number_is_normalized_with_the_lead_country(client, setup):
    # The partner encrypted and hashed the number as it had it; CareOS stores E.164.
    response = post(client, setup, setup.lead(phone="(415) 555-0123", user_location_country="us"))
    assert response.status_code == 200, response.content
    assert CareUser.objects.get().phone == PHONE and Lead.objects.get().location_country == "US"
    # ... and the same number sent in E.164 later is the same user.
    again = post(client, setup, setup.lead(phone=PHONE, source_conversation_id="other"))
    assert again.json()["is_new_user"] is False


def test_the_hash_may_be_upper_case_hex(client, setup):
    body = setup.lead()
    body["user_phone_hash"] = body["user_phone_hash"].upper()
    assert post(client, setup, body).status_code == 200


# --- Replay ---------------------------------------------------------------------------------------------


def test_a_replay_answers_the_same_and_creates_nothing(client, setup, enqueued, django_capture_on_commit_callbacks):
    body = setup.lead()
    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, setup, body)
    before = counts()
    assert before == {"leads": 1, "payments": 1, "users": 1, "messages": 1, "ingest_events": 1}
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        second = post(client, setup, body)
    assert second.status_code == 200 and second.json() == first.json()
    assert counts() == before and callbacks == [] and len(enqueued) == 1


def test_a_replay_is_keyed_by_conversation_and_skips_decryption(client, setup):
    """Decision (docs/careos.md): the replay check comes before decryption, so a retry is cheap and
    answers as the first request did even if the partner's retry differs."""
    first = post(client, setup, setup.lead()).json()
    retry = setup.lead(user_phone_encrypted=encrypt_phone(PHONE, rsa_pair(3).public_pem), category="plumbing")
    response = post(client, setup, retry)
    assert response.status_code == 200 and response.json() == first
    assert counts()["leads"] == 1 and Lead.objects.get().category == "general_healthcare"


def test_the_replay_flags_are_the_stored_ones(client, setup, monkeypatch):
    def refuse(**kwargs):
        raise InvalidRecipientError("sms recipient refused")

    original = ingest.message_new
    monkeypatch.setattr(ingest, "message_new", refuse)
    first = post(client, setup, setup.lead()).json()
    assert first["careos_will_contact"] is False
    monkeypatch.setattr(ingest, "message_new", original)
    assert post(client, setup, setup.lead()).json() == first


def test_another_platform_may_reuse_a_conversation_id(client, setup):
    other = make_platform("carepartner")
    a = post(client, setup, setup.lead()).json()
    b = post(client, other, other.lead()).json()
    assert a["careos_lead_id"] != b["careos_lead_id"]
    # One person inside CareOS, but each platform has its own id for them and is told "new" on its
    # first lead (it was the shared id and is_new_user false: an oracle; issue 10 finding 4).
    assert a["careos_user_id"] != b["careos_user_id"] and b["is_new_user"] is True
    assert CareUser.objects.get().source == "businessos_referral"


# --- Welcome SMS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "language, start",
    [
        ("en", "Hi John, this is CareOS."),
        ("en-US", "Hi John, this is CareOS."),
        ("es", "Hola John, somos CareOS."),
        ("es-MX", "Hola John, somos CareOS."),
        ("fr", "Bonjour John, ici CareOS."),
        ("de", "Hi John, this is CareOS."),
    ],
)
def test_the_welcome_sms_speaks_the_lead_language(client, setup, language, start):
    assert post(client, setup, setup.lead(user_language=language)).status_code == 200
    text = OutboundMessage.objects.get().body
    assert text.startswith(start)
    assert "STOP" in text
    assert Lead.objects.get().language == language


def test_a_recipient_messaging_refuses_still_makes_the_lead(client, setup, monkeypatch):
    def refuse(**kwargs):
        raise InvalidRecipientError("sms recipient refused")

    monkeypatch.setattr(ingest, "message_new", refuse)
    response = post(client, setup, setup.lead())
    assert response.status_code == 200
    assert response.json()["careos_will_contact"] is False
    lead = Lead.objects.get()
    assert lead.will_contact is False and lead.welcome_message_id == ""
    assert counts() == {"leads": 1, "payments": 1, "users": 1, "messages": 0, "ingest_events": 1}
    assert AuditEvent.objects.get(action="leads.lead_ingested").metadata["will_contact"] is False
    # messaging refused the number before the write: the new person's row never had a welcome time.
    assert CareUser.objects.get().welcome_sent_at is None


def test_messagings_own_refusal_is_known_before_the_write(client, setup, monkeypatch):
    """messaging's recipient check (message_new's own) runs before the write, so a new person's INSERT carries
    their welcome time or none: a refused number is created without one, and the lead is made without an SMS."""
    from messaging.services import queueing

    def refuse(channel, recipient):
        raise InvalidRecipientError("sms recipient refused")

    monkeypatch.setattr(queueing, "normalize_recipient", refuse)
    response = post(client, setup, setup.lead())
    assert response.status_code == 200 and response.json()["careos_will_contact"] is False
    assert counts() == {"leads": 1, "payments": 1, "users": 1, "messages": 0, "ingest_events": 1}
    assert CareUser.objects.get().welcome_sent_at is None
    assert AuditEvent.objects.get(action="leads.lead_ingested").metadata["welcome"] == "refused"


def test_a_new_persons_welcome_time_is_the_leads_time(client, setup):
    assert post(client, setup, setup.lead()).status_code == 200
    assert CareUser.objects.get().welcome_sent_at == Lead.objects.get().created_at


# --- Authentication: everything is the same 401 ---------------------------------------------------------


def _expired_key(setup):
    issued = api_key_create(
        platform=setup.platform,
        environment="live",
        actor=Actor.system("t"),
        expires_at=utc_now() + timedelta(seconds=1),
    )
    type(issued.api_key).objects.filter(pk=issued.api_key.pk).update(expires_at=utc_now() - timedelta(seconds=1))
    return issued.full_key


def _revoked_key(setup):
    issued = api_key_create(platform=setup.platform, environment="live", actor=Actor.system("t"))
    type(issued.api_key).objects.filter(pk=issued.api_key.pk).update(revoked_at=utc_now())
    return issued.full_key


def _suspended(setup):
    PartnerPlatform.objects.filter(pk=setup.platform.pk).update(status="suspended")
    return setup.api_key


AUTH_CASES = {
    "no headers": lambda setup, other: ({}, {}),
    "no key": lambda setup, other: ({"HTTP_X_PLATFORM": "businessos"}, {}),
    "no platform": lambda setup, other: ({"HTTP_X_API_KEY": setup.api_key}, {}),
    "unknown key": lambda setup, other: (setup.headers(api_key="businessos_live_abcdefabcdef_" + "x" * 40), {}),
    "wrong secret": lambda setup, other: (setup.headers(api_key=setup.api_key[:-4] + "AAAA"), {}),
    "not a key": lambda setup, other: (setup.headers(api_key="businessos_live_test123"), {}),
    "expired key": lambda setup, other: (setup.headers(api_key=_expired_key(setup)), {}),
    "revoked key": lambda setup, other: (setup.headers(api_key=_revoked_key(setup)), {}),
    "suspended platform": lambda setup, other: (setup.headers(api_key=_suspended(setup)), {}),
    "key of another platform": lambda setup, other: (setup.headers(api_key=other.api_key), {}),
    "platform header of another": lambda setup, other: (setup.headers(platform="carepartner"), {}),
    "unknown platform": lambda setup, other: (setup.headers(platform="nosuchplatform"), {}),
    "source_platform mismatch": lambda setup, other: (setup.headers(), {"source_platform": "carepartner"}),
    "source_platform not a string": lambda setup, other: (setup.headers(), {"source_platform": ["businessos"]}),
}


@pytest.mark.parametrize("case", list(AUTH_CASES))
def test_every_authentication_failure_is_the_same_401(client, setup, case):
    other = make_platform("carepartner")
    headers, overrides = AUTH_CASES[case](setup, other)
    response = client.post(INGEST, json.dumps(setup.lead(**overrides)), content_type="application/json", **headers)
    assert response.status_code == 401
    assert response.json() == INVALID_KEY
    assert counts() == NOTHING


def test_the_key_last_use_is_recorded_at_most_once_a_minute(client, setup):
    key = setup.platform.api_keys.get()
    assert key.last_used_at is None
    post(client, setup, b"{}")
    key.refresh_from_db()
    first_use = key.last_used_at
    assert first_use is not None
    post(client, setup, b"{}")
    key.refresh_from_db()
    assert key.last_used_at == first_use
    type(key).objects.filter(pk=key.pk).update(last_used_at=first_use - timedelta(minutes=2))
    post(client, setup, b"{}")
    key.refresh_from_db()
    assert key.last_used_at > first_use


def test_an_unexpected_error_is_the_spec_500_and_writes_nothing(client, setup, monkeypatch):
    real_insert = ingest._rows_insert

    def broken(rows):
        real_insert(rows)
        raise RuntimeError("database on fire")

    # After every row of the lead's transaction is written (user, SMS, partner id + lead + payment + the lead's
    # audit event), the transaction fails: nothing of the lead stays.
    monkeypatch.setattr(ingest, "_rows_insert", broken)
    response = post(client, setup, setup.lead())
    assert (response.status_code, response.json()) == (500, {"error": "Internal server error"})
    assert counts() == NOTHING


def test_anonymous_get_is_refused_and_a_partner_get_is_405(client, setup):
    assert client.get(INGEST).status_code == 401
    response = client.get(INGEST, **setup.headers())
    assert response.status_code == 405 and set(response.json()) == {"error"}


# --- Validation: 400 with the exact message, nothing written ------------------------------------------------


def _without(*names):
    def mutate(body):
        for name in names:
            body.pop(name)
        return body

    return mutate


def _set(**values):
    def mutate(body):
        body.update(values)
        return body

    return mutate


def _details(**values):
    def mutate(body):
        body["ai_extracted_details"] = {**body["ai_extracted_details"], **values}
        return body

    return mutate


def _in(**delta):
    """consent_timestamp relative to now (the server allows 5 minutes of clock skew)."""

    def mutate(body):
        body["consent_timestamp"] = (utc_now() + timedelta(**delta)).isoformat().replace("+00:00", "Z")
        return body

    return mutate


FUTURE = "consent_timestamp must not be in the future"
BAD_TIME = "consent_timestamp must be an ISO 8601 timestamp with a timezone, e.g. 2025-01-08T12:00:00Z"
BAD_LANGUAGE = "user_language must be an ISO 639-1 language code such as 'en' (or 'en-US')"
BAD_COUNTRY = "user_location_country must be an ISO 3166-1 alpha-2 country code such as 'US'"
NOT_NUMBER = "lead_value_agreed must be a number"
NOT_POSITIVE = "lead_value_agreed must be greater than 0"
CENTS = "lead_value_agreed must have at most 2 decimal places"
TOO_MUCH = "lead_value_agreed must not exceed 1000.00"
ALL_REQUIRED = (
    "Missing required fields: source_platform, source_conversation_id, user_phone_hash, user_phone_encrypted, "
    "user_language, category, original_message, user_consent, consent_timestamp, lead_value_agreed"
)

VALIDATION_CASES = [
    (
        "two missing",
        _without("user_phone_encrypted", "original_message"),
        "Missing required fields: user_phone_encrypted, original_message",
    ),
    ("null is missing", _set(category=None), "Missing required fields: category"),
    ("consent missing", _without("user_consent"), "Missing required fields: user_consent"),
    ("everything missing", lambda body: {}, ALL_REQUIRED),
    ("consent false", _set(user_consent=False), "User consent required"),
    ("consent string", _set(user_consent="true"), "User consent required"),
    ("consent 1", _set(user_consent=1), "User consent required"),
    ("timestamp words", _set(consent_timestamp="yesterday"), BAD_TIME),
    ("timestamp no zone", _set(consent_timestamp="2025-01-08T12:00:00"), BAD_TIME),
    ("timestamp date only", _set(consent_timestamp="2025-01-08"), BAD_TIME),
    ("timestamp month 13", _set(consent_timestamp="2025-13-08T12:00:00Z"), BAD_TIME),
    ("timestamp odd separator", _set(consent_timestamp="2025-01-08X12:00:00Z"), BAD_TIME),
    ("timestamp number", _set(consent_timestamp=1736337600), "consent_timestamp must be a string"),
    ("timestamp future", _in(minutes=10), FUTURE),
    ("timestamp far future", _set(consent_timestamp="2999-01-01T00:00:00Z"), FUTURE),
    ("value zero", _set(lead_value_agreed=0), NOT_POSITIVE),
    ("value negative", _set(lead_value_agreed=-5), NOT_POSITIVE),
    ("value string", _set(lead_value_agreed="15"), NOT_NUMBER),
    ("value bool", _set(lead_value_agreed=True), NOT_NUMBER),
    ("value object", _set(lead_value_agreed={"usd": 15}), NOT_NUMBER),
    ("value cents", lambda body: {**body, "lead_value_agreed": Decimal("15.001")}, CENTS),
    ("value over max", lambda body: {**body, "lead_value_agreed": Decimal("1000.01")}, TOO_MUCH),
    ("value huge", lambda body: {**body, "lead_value_agreed": Decimal("1e400")}, TOO_MUCH),
    ("language word", _set(user_language="english"), BAD_LANGUAGE),
    ("language unknown", _set(user_language="qq"), BAD_LANGUAGE),
    ("language region unknown", _set(user_language="en-QQ"), BAD_LANGUAGE),
    ("language three letters", _set(user_language="eng"), BAD_LANGUAGE),
    ("language type", _set(user_language=1), "user_language must be a string"),
    ("country alpha-3", _set(user_location_country="USA"), BAD_COUNTRY),
    ("country unknown", _set(user_location_country="QQ"), BAD_COUNTRY),
    ("country digits", _set(user_location_country="U1"), BAD_COUNTRY),
    (
        "conversation id long",
        _set(source_conversation_id="c" * 201),
        "source_conversation_id must be at most 200 characters",
    ),
    ("conversation id type", _set(source_conversation_id=12345), "source_conversation_id must be a string"),
    ("conversation id blank", _set(source_conversation_id="  "), "source_conversation_id must not be empty"),
    ("hash long", _set(user_phone_hash="a" * 201), "user_phone_hash must be at most 200 characters"),
    ("ciphertext type", _set(user_phone_encrypted=12), "user_phone_encrypted must be a string"),
    ("name long", _set(user_name="n" * 201), "user_name must be at most 200 characters"),
    ("name type", _set(user_name=5), "user_name must be a string"),
    ("message long", _set(original_message="m" * 5001), "original_message must be at most 5000 characters"),
    ("message blank", _set(original_message=" \n "), "original_message must not be empty"),
    ("message list", _set(original_message=["help"]), "original_message must be a string"),
    ("city long", _set(user_location_city="c" * 101), "user_location_city must be at most 100 characters"),
    ("state long", _set(user_location_state="s" * 11), "user_location_state must be at most 10 characters"),
    ("category long", _set(category="c" * 61), "category must be at most 60 characters"),
    ("category blank", _set(category=""), "category must not be empty"),
    ("subcategory long", _set(subcategory="s" * 61), "subcategory must be at most 60 characters"),
    ("details not object", _set(ai_extracted_details="urgent"), "ai_extracted_details must be an object"),
    ("detail not string", _details(urgency=3), "ai_extracted_details.urgency must be a string"),
    (
        "detail long",
        _details(condition_mentioned="x" * 501),
        "ai_extracted_details.condition_mentioned must be at most 500 characters",
    ),
    ("details large", _details(notes="x" * 9000), "ai_extracted_details must be at most 8192 bytes as JSON"),
]


def _dumps(body: dict) -> str:
    """JSON with Decimal values written as exact literals (15.001, 1e400), as a partner may send."""
    marker = {}
    for key, value in body.items():
        if isinstance(value, Decimal):
            marker[f"__dec_{key}__"] = str(value)
            body = {**body, key: f"__dec_{key}__"}
    text = json.dumps(body)
    for placeholder, literal in marker.items():
        text = text.replace(f'"{placeholder}"', literal)
    return text


@pytest.mark.parametrize("case, mutate, message", VALIDATION_CASES, ids=[c[0] for c in VALIDATION_CASES])
def test_every_validation_error_is_a_400_naming_the_problem(client, setup, case, mutate, message):
    response = post(client, setup, _dumps(mutate(setup.lead())))
    assert response.status_code == 400, response.content
    assert response.json() == {"error": message}
    assert counts() == NOTHING


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"not json", "Malformed JSON body"),
        (b'{"source_platform": "businessos",', "Malformed JSON body"),
        (b'{"lead_value_agreed": NaN}', "Malformed JSON body"),
        (b"\xff\xfe{}", "Malformed JSON body"),
        (b"[" * 20000 + b"]" * 20000, "Malformed JSON body"),
        (b"[1, 2]", "Request body must be a JSON object"),
        (b'"lead"', "Request body must be a JSON object"),
    ],
    ids=["text", "truncated", "nan", "not utf-8", "deep nesting", "array", "string"],
)
def test_a_body_that_is_not_a_json_object_is_a_400(client, setup, raw, message):
    response = post(client, setup, raw)
    assert response.status_code == 400
    assert response.json() == {"error": message}


def test_a_body_over_64_kb_is_refused_before_parsing(client, setup):
    body = setup.lead(padding="p" * (64 * 1024))
    response = post(client, setup, body)
    assert response.status_code == 400
    assert response.json() == {"error": "Request body is too large (limit 65536 bytes)"}
    assert counts() == NOTHING


@pytest.mark.parametrize(
    "value, stored",
    [
        (1000, Decimal("1000.00")),
        (Decimal("0.01"), Decimal("0.01")),
        (Decimal("15.50"), Decimal("15.50")),
        (Decimal("1E+1"), Decimal("10.00")),
        (7, Decimal("7.00")),
    ],
)
def test_lead_values_within_the_rules_are_stored_exactly(client, setup, value, stored):
    response = post(client, setup, _dumps(setup.lead(lead_value_agreed=value)))
    assert response.status_code == 200, response.content
    assert Lead.objects.get().lead_value == stored and PartnerPayment.objects.get().amount == stored


def test_the_maximum_lead_value_is_a_setting(client, setup, settings):
    settings.CAREOS_MAX_LEAD_VALUE = 50
    response = post(client, setup, setup.lead(lead_value_agreed=60))
    assert response.json() == {"error": "lead_value_agreed must not exceed 50.00"}
    assert post(client, setup, setup.lead(lead_value_agreed=50)).status_code == 200


def test_a_consent_a_little_ahead_of_our_clock_is_accepted(client, setup):
    response = post(client, setup, _in(minutes=4)(setup.lead()))
    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "stamp, stored",
    [
        ("2025-01-08T12:00:00.000Z", "2025-01-08T12:00:00+00:00"),
        ("2025-01-08T14:30:00+02:30", "2025-01-08T12:00:00+00:00"),
        ("2025-01-08T07:00:00-0500", "2025-01-08T12:00:00+00:00"),
    ],
)
def test_consent_timestamps_with_offsets_are_stored_in_utc(client, setup, stamp, stored):
    assert post(client, setup, setup.lead(consent_timestamp=stamp)).status_code == 200
    assert Lead.objects.get().consent_timestamp.isoformat() == stored


def test_language_and_country_codes_are_normalized(client, setup):
    assert (
        post(
            client, setup, setup.lead(user_language="EN_us", user_location_country="ca", phone="+16135550123")
        ).status_code
        == 200
    )
    lead = Lead.objects.get()
    assert (lead.language, lead.location_country) == ("en-US", "CA")


# --- The phone: decryption, hash, number ------------------------------------------------------------------


def test_a_ciphertext_under_an_unknown_key_fails_decryption(client, setup):
    body = setup.lead(user_phone_encrypted=encrypt_phone(PHONE, rsa_pair(3).public_pem))
    response = post(client, setup, body)
    assert (response.status_code, response.json()) == (400, DECRYPT_FAILED)
    body = setup.lead(user_phone_encrypted=encrypt_phone(PHONE, setup.pair.public_pem, hash_algorithm=hashes.SHA1()))
    assert post(client, setup, body).json() == DECRYPT_FAILED
    assert counts() == NOTHING


@pytest.mark.parametrize(
    "hash_of",
    [
        lambda setup: hash_phone(PHONE, "another-salt"),
        lambda setup: hash_phone("+14155550124", setup.platform.phone_hash_salt),
        lambda setup: hash_phone(PHONE, setup.platform.phone_hash_salt)[:-1],
        lambda setup: "",
        lambda setup: "abc123hash",
        lambda setup: hash_phone(PHONE.lstrip("+"), setup.platform.phone_hash_salt),
    ],
    ids=["wrong salt", "other phone", "short", "empty", "spec placeholder", "phone reformatted"],
)
def test_a_hash_that_does_not_match_the_decrypted_phone_is_refused(client, setup, hash_of):
    response = post(client, setup, setup.lead(user_phone_hash=hash_of(setup)))
    assert (response.status_code, response.json()) == (400, {"error": "Phone hash mismatch"})
    assert counts() == NOTHING


@pytest.mark.parametrize(
    "phone, country",
    [
        ("+1415", "US"),
        ("4155550123", None),
        ("not a phone", "US"),
        ("+999123456789", None),
        ("+1 415", None),
        ("0612345678", "US"),
    ],
    ids=[
        "too short",
        "national without country",
        "words",
        "no such country code",
        "spaced short",
        "national of another country",
    ],
)
def test_a_number_that_is_not_a_phone_is_refused(client, setup, phone, country):
    body = setup.lead(phone=phone)
    body.pop("user_location_country")
    if country:
        body["user_location_country"] = country
    response = post(client, setup, body)
    assert (response.status_code, response.json()) == (400, {"error": "Invalid phone number"})
    assert counts() == NOTHING


# --- Category mapping ---------------------------------------------------------------------------------------

# The spec's table, written out again here (not read from leads.categories) so a change to either shows.
SPEC_TABLE = {
    "healthcare": "general_healthcare",
    "health": "general_healthcare",
    "medical": "general_healthcare",
    "caregiver": "caregiver_hiring",
    "caregiver_hiring": "caregiver_hiring",
    "staffing_hiring": "caregiver_hiring",
    "doctor": "telehealth",
    "telehealth": "telehealth",
    "consulting_urgent": "telehealth",
    "medication": "rx_management",
    "rx_management": "rx_management",
    "prescription": "rx_management",
    "mental_health": "mental_health",
    "therapy": "mental_health",
    "counseling": "mental_health",
    "home_health": "home_health",
    "nursing": "home_health",
    "medical_equipment": "medical_equipment",
    "equipment_supply": "medical_equipment",
}


def test_the_category_table_is_exactly_the_spec():
    assert categories.CATEGORY_MAP == SPEC_TABLE
    assert categories.DEFAULT_CATEGORY == "other"
    assert set(categories.CAREOS_CATEGORIES) == set(SPEC_TABLE.values()) | {"other"}


@pytest.mark.parametrize("source", list(SPEC_TABLE))
def test_every_spec_category_maps_whatever_its_case(source):
    for variant in (source, source.upper(), f"  {source.title()}\t"):
        assert categories.careos_category(variant) == SPEC_TABLE[source]


@pytest.mark.parametrize("source", ["plumbing", "health care", "mental-health", "caregivers", "rx", "other", "x"])
def test_unmapped_categories_go_to_other(source):
    assert categories.careos_category(source) == "other"


@pytest.mark.parametrize(
    "source, stored", [("  Mental_Health ", "mental_health"), ("plumbing", "other"), ("NURSING", "home_health")]
)
def test_the_lead_keeps_the_partner_category_and_the_mapped_one(client, setup, source, stored):
    assert post(client, setup, setup.lead(category=source)).status_code == 200
    lead = Lead.objects.get()
    assert (lead.source_category, lead.category) == (source.strip(), stored)


# --- Rate limit -------------------------------------------------------------------------------------------


def test_100_requests_a_minute_per_partner(client, setup, frozen_ratelimit_clock):
    other = make_platform("carepartner")
    for number in range(100):
        response = post(client, setup, b"{}")  # a 400 after authentication still counts
        assert response.status_code == 400, number
    limited = post(client, setup, setup.lead())
    assert limited.status_code == 429
    assert limited.json() == {"error": "Rate limit exceeded"}
    assert int(limited["Retry-After"]) >= 1 and limited["X-RateLimit-Remaining"] == "0"
    assert Lead.objects.count() == 0  # refused before the body was read
    # Another partner has its own budget; a second key of the same partner does not add one.
    assert post(client, other, other.lead()).status_code == 200
    second_key = api_key_create(platform=setup.platform, environment="live", actor=Actor.system("t"))
    assert post(client, setup, setup.lead(), **setup.headers(api_key=second_key.full_key)).status_code == 429
    frozen_ratelimit_clock.now += 61
    assert post(client, setup, setup.lead()).status_code == 200


@pytest.mark.parametrize(
    ("plaintext", "country", "expected"),
    [
        ("+14155550123", "", "+14155550123"),
        ("+1 (415) 555-0123", "", "+14155550123"),
        (" +1 415 555 0123 ", "", "+14155550123"),
        ("whatsapp:+14155550123", "", "+14155550123"),
        ("(415) 555-0123", "US", "+14155550123"),
        ("415-555-0123", "us", "+14155550123"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 20 7946 0958", "US", "+442079460958"),
    ],
)
def test_the_phone_forms_partners_send_are_normalized_by_the_one_rule(plaintext, country, expected):
    setup = make_platform()
    body = setup.lead(
        phone=plaintext, user_location_country=country or None, source_conversation_id=f"c-{plaintext}-{country}"
    )

    response = Client().post(INGEST, body, content_type="application/json", **setup.headers())

    assert response.status_code == 200, response.content
    assert CareUser.objects.get().phone == expected


@pytest.mark.parametrize(
    ("plaintext", "country"), [("4155550123", ""), ("(415) 555-0123", ""), ("+1 415 555", ""), ("12", "US")]
)
def test_numbers_the_rule_refuses_answer_invalid_phone(plaintext, country):
    setup = make_platform()
    body = setup.lead(phone=plaintext, user_location_country=country or None)

    response = Client().post(INGEST, body, content_type="application/json", **setup.headers())

    assert (response.status_code, response.json()) == (400, {"error": "Invalid phone number"})
    assert not CareUser.objects.exists()
