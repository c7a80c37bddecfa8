"""The published OpenAPI request and response schemas of POST /api/leads/ingest say what the API does.

The request is parsed by `leads.api.serializers.parse_inbound_lead` (strict JSON types, the API's own
messages); `InboundLeadSerializer` only publishes it. These tests keep the two together: every
documented type and format is accepted by the real endpoint, and on edge cases the published schema and
the parser agree. (A pattern cannot say that a language or country code exists in ISO 639-1 / 3166-1,
that a date exists, or that a timestamp is not in the future: those are in the field descriptions.)
"""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import jsonschema
import pytest
from django.test import Client

from core.errors import ApiError
from core.time import utc_now
from leads.api import serializers as s
from leads.models import Lead
from tests.leads.factories import INGEST, make_platform

pytestmark = pytest.mark.django_db

AMOUNT_PLACEHOLDER = '"__lead_value_literal__"'


@pytest.fixture(scope="module")
def openapi(django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    # Decimals, as the API parses bodies: multipleOf 0.01 is then checked exactly, not in binary floats.
    return json.loads(response.content, parse_float=Decimal)


def _operation(openapi: dict) -> dict:
    return openapi["paths"]["/api/leads/ingest"]["post"]


def _json_schema(openapi: dict, node):
    """An OpenAPI 3.0 schema as JSON Schema draft 4: $refs inlined, `nullable` as a "null" type."""
    if isinstance(node, list):
        return [_json_schema(openapi, item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/components/schemas/")
        return _json_schema(openapi, openapi["components"]["schemas"][name])
    out = {key: _json_schema(openapi, value) for key, value in node.items() if key not in {"nullable", "readOnly"}}
    if node.get("nullable"):
        if "type" in out and "enum" not in out:
            out["type"] = [out["type"], "null"]
        else:  # a oneOf/allOf composition or an enum
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def _request_schema(openapi: dict) -> dict:
    return _json_schema(openapi, _operation(openapi)["requestBody"]["content"]["application/json"]["schema"])


def _response_schema(openapi: dict) -> dict:
    return _json_schema(openapi, _operation(openapi)["responses"]["200"]["content"]["application/json"]["schema"])


def _valid_body() -> dict:
    """A body the parser accepts (the phone fields are not checked by the parser)."""
    return {
        "source_platform": "businessos",
        "source_conversation_id": "bizos-lead-12345",
        "user_phone_hash": "a1b2c3",
        "user_phone_encrypted": "base64ciphertext",
        "user_name": "John Doe",
        "user_language": "en",
        "user_location_state": "CA",
        "user_location_country": "US",
        "user_location_city": "San Francisco",
        "category": "healthcare",
        "subcategory": "caregiver_hiring",
        "original_message": "I need help finding a caregiver for my mom",
        "ai_extracted_details": {"urgency": "medium", "person_mentioned": "mom"},
        "user_consent": True,
        "consent_timestamp": "2025-01-08T12:00:00Z",
        "lead_value_agreed": Decimal("15.00"),
    }


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()

# (field, value, accepted by the parser): MISSING removes the field.
EDGE_CASES = [
    ("lead_value_agreed", 10, True),
    ("lead_value_agreed", Decimal("15.5"), True),
    ("lead_value_agreed", Decimal("15.00"), True),
    ("lead_value_agreed", Decimal("0.01"), True),
    ("lead_value_agreed", "15.00", False),  # the case that started it: a string is not a number
    ("lead_value_agreed", 0, False),
    ("lead_value_agreed", Decimal("-1"), False),
    ("lead_value_agreed", Decimal("15.001"), False),
    ("lead_value_agreed", True, False),
    ("lead_value_agreed", None, False),
    ("lead_value_agreed", MISSING, False),
    ("user_consent", False, False),
    ("user_consent", "true", False),
    ("consent_timestamp", "2025-01-08T12:00Z", True),
    ("consent_timestamp", "2025-01-08T13:00:00.123456789+0100", True),
    ("consent_timestamp", " 2025-01-08T12:00:00-05:00 ", True),
    ("consent_timestamp", "2025-01-08T12:00:00", False),  # no timezone
    ("consent_timestamp", "2025-01-08 12:00:00Z", False),
    ("consent_timestamp", "2025-13-08T12:00:00Z", False),
    ("consent_timestamp", "2025-01-08T24:00:00Z", False),
    ("consent_timestamp", "2025-01-08T12:00:00+24:00", False),
    ("user_language", "en-US", True),
    ("user_language", "ES_mx", True),
    ("user_language", "eng", False),
    ("user_language", "", False),
    ("user_location_country", None, True),
    ("user_location_country", "", True),
    ("user_location_country", " us ", True),
    ("user_location_country", "USA", False),
    ("user_name", None, True),
    ("user_name", "", True),
    ("user_name", "x" * s.MAX_NAME, True),
    ("user_name", "x" * (s.MAX_NAME + 1), False),
    ("user_name", 42, False),
    ("subcategory", MISSING, True),
    ("user_location_state", "x" * (s.MAX_STATE + 1), False),
    ("ai_extracted_details", None, True),
    ("ai_extracted_details", MISSING, True),
    ("ai_extracted_details", {"urgency": None, "extra": [1, {"a": 2}]}, True),
    ("ai_extracted_details", {"urgency": 5}, False),
    ("ai_extracted_details", {"service_type": "x" * (s.MAX_DETAIL + 1)}, False),
    ("ai_extracted_details", ["urgency"], False),
    ("category", "   ", False),
    ("category", None, False),
    ("category", "x" * (s.MAX_CATEGORY + 1), False),
    ("original_message", "x" * s.MAX_MESSAGE, True),
    ("original_message", "x" * (s.MAX_MESSAGE + 1), False),
    ("source_conversation_id", "x" * (s.MAX_ID + 1), False),
    ("user_phone_hash", "", True),
    ("user_phone_encrypted", "", True),
    ("user_phone_encrypted", 7, False),
]


def _parser_accepts(body: dict) -> bool:
    try:
        s.parse_inbound_lead(body, now=utc_now())
    except ApiError as exc:
        assert exc.status == 400
        return False
    return True


@pytest.mark.parametrize(("field", "value", "accepted"), EDGE_CASES, ids=lambda v: repr(v)[:30])
def test_the_published_request_schema_and_the_parser_agree(openapi, field, value, accepted):
    body = copy.deepcopy(_valid_body())
    if value is MISSING:
        del body[field]
    else:
        body[field] = value
    schema_accepts = jsonschema.Draft4Validator(_request_schema(openapi)).is_valid(body)

    assert _parser_accepts(body) is accepted
    assert schema_accepts is accepted


def test_the_required_fields_are_the_published_ones_in_the_spec_order(openapi):
    assert s.REQUIRED_FIELDS == (
        "source_platform",
        "source_conversation_id",
        "user_phone_hash",
        "user_phone_encrypted",
        "user_language",
        "category",
        "original_message",
        "user_consent",
        "consent_timestamp",
        "lead_value_agreed",
    )
    assert sorted(_request_schema(openapi)["required"]) == sorted(s.REQUIRED_FIELDS)


def test_lead_value_is_published_as_a_number_with_the_configured_bounds(openapi, settings):
    value = _request_schema(openapi)["properties"]["lead_value_agreed"]
    assert value["type"] == "number" and value["multipleOf"] == Decimal("0.01")
    assert (value["minimum"], value["exclusiveMinimum"]) == (0, True)
    assert Decimal(str(value["maximum"])) == s.max_lead_value()


def _post_raw(setup, body: dict, amount_literal: str):
    body = {**body, "lead_value_agreed": "__lead_value_literal__"}
    raw = json.dumps(body).replace(AMOUNT_PLACEHOLDER, amount_literal)
    return Client().post(INGEST, raw, content_type="application/json", **setup.headers())


ACCEPTED_FORMS = [
    ("integer amount", {}, "10"),
    ("amount with 2 decimals", {}, "15.00"),
    ("amount with 1 decimal", {}, "15.5"),
    ("amount with an exponent", {}, "1.5e1"),
    ("timestamp with fraction", {"consent_timestamp": "2025-01-08T12:00:00.123Z"}, "15"),
    ("timestamp with offset", {"consent_timestamp": "2025-01-08T13:00:00+01:00"}, "15"),
    ("timestamp without seconds", {"consent_timestamp": "2025-01-08T12:00Z"}, "15"),
    ("timestamp with compact offset", {"consent_timestamp": "2025-01-08T07:00:00-0500"}, "15"),
    ("language with region", {"user_language": "en-US"}, "15"),
    ("language with underscore region", {"user_language": "es_mx"}, "15"),
    ("country lowercase", {"user_location_country": "us"}, "15"),
    ("optional fields null", {"user_name": None, "subcategory": None, "ai_extracted_details": None}, "15"),
    ("details with other keys", {"ai_extracted_details": {"urgency": "high", "budget": 300.5}}, "15"),
]


@pytest.mark.parametrize(("label", "overrides", "amount"), ACCEPTED_FORMS, ids=[f[0] for f in ACCEPTED_FORMS])
def test_each_documented_type_and_format_is_accepted(openapi, label, overrides, amount):
    setup = make_platform()
    body = setup.lead(source_conversation_id=f"conv-{label}", **overrides)

    response = _post_raw(setup, body, amount)

    assert response.status_code == 200, response.content
    payload = response.json()
    jsonschema.Draft4Validator(_response_schema(openapi)).validate(payload)
    lead = Lead.objects.get(public_id=payload["careos_lead_id"])
    assert lead.lead_value == Decimal(amount)
    # What was sent also validates against the published request schema.
    sent = json.loads(json.dumps(body).replace('"__lead_value_literal__"', amount), parse_float=Decimal)
    jsonschema.Draft4Validator(_request_schema(openapi)).validate({**sent, "lead_value_agreed": Decimal(amount)})


def test_the_success_body_is_the_published_response_in_the_spec_order(openapi):
    setup = make_platform()

    first = Client().post(INGEST, setup.lead(), content_type="application/json", **setup.headers())
    replay = Client().post(INGEST, setup.lead(), content_type="application/json", **setup.headers())

    assert first.status_code == replay.status_code == 200
    assert list(first.json()) == ["success", "careos_lead_id", "careos_user_id", "careos_will_contact", "is_new_user"]
    assert replay.content == first.content
    schema = _response_schema(openapi)
    assert list(schema["properties"]) == list(first.json())
    jsonschema.Draft4Validator(schema).validate(first.json())
