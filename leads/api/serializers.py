"""Input and output of `POST /api/leads/ingest`.

Input: the body is parsed and validated by `parse_body` + `parse_inbound_lead` rather than by DRF fields,
because the contract is strict where DRF coerces: JSON types are checked as sent (`"true"` is not
`true`, `"15"` is not a number), `lead_value_agreed` is read as the exact decimal literal (no float
rounding), missing fields are named together in one message, and the 400 messages are the API's own.
`InboundLeadSerializer` publishes exactly what that parser accepts (types, patterns, bounds, required,
nullable) as the OpenAPI request schema, from the same constants; tests/leads/test_ingest_schema.py
checks the two agree. The limits below (characters unless stated) are listed in docs/careos.md,
"Limits". Error messages name fields, never quote values.

Output: `IngestResponseSerializer` renders the 200 body from the stored lead and is the schema's 200.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

import pycountry
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.errors import ApiError
from core.parsers import JsonHasNul, loads_checked
from core.serializers import OutputSerializer
from core.time import parse_instant
from leads.services.ingest import LeadInput

MAX_BODY_BYTES = 64 * 1024
MAX_ID = 200  # source_conversation_id, user_phone_hash
MAX_NAME = 200
MAX_MESSAGE = 5000
MAX_CITY = 100
MAX_STATE = 10
MAX_CATEGORY = 60  # category, subcategory
MAX_TIMESTAMP = 64
MAX_DETAIL = 500  # each known ai_extracted_details value
MAX_DETAILS_BYTES = 8 * 1024  # ai_extracted_details as compact JSON
CLOCK_SKEW = timedelta(minutes=5)

DETAIL_KEYS = ("urgency", "person_mentioned", "service_type", "condition_mentioned")

_LANGUAGE_RE = re.compile(r"([A-Za-z]{2})(?:[-_]([A-Za-z]{2}))?")
# What the published schema says of the same rules (ECMA regexes, searched, so anchored; the parser strips
# surrounding whitespace first). Codes must also exist in ISO 639-1 / ISO 3166-1 (pycountry), and a
# timestamp must be a real date: the descriptions say so, a pattern cannot.
NOT_BLANK_PATTERN = r"\S"
LANGUAGE_PATTERN = r"^\s*[A-Za-z]{2}(?:[-_][A-Za-z]{2})?\s*$"
COUNTRY_PATTERN = r"^\s*(?:[A-Za-z]{2})?\s*$"
TIMESTAMP_PATTERN = (
    r"^\s*(?!0000)\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d"
    r"(?::[0-5]\d(?:\.\d{1,9})?)?(?:Z|[+-](?:[01]\d|2[0-3]):?\d{2})\s*$"
)
_COUNTRY_RE = re.compile(r"[A-Za-z]{2}")


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


# --- Body ----------------------------------------------------------------------------------------------


def _reject_constant(value: str):
    raise ValueError("NaN and Infinity are not JSON")


def parse_body(http_request) -> dict:
    """The request body as a JSON object, numbers with a fraction or exponent as exact Decimals.
    Too large, not UTF-8 JSON, or not an object: 400 (the body is never quoted back)."""
    try:
        declared = int(http_request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        raise bad_request(f"Request body is too large (limit {MAX_BODY_BYTES} bytes)")
    try:
        raw = http_request.body
    except RequestDataTooBig:
        raise bad_request(f"Request body is too large (limit {MAX_BODY_BYTES} bytes)") from None
    if len(raw) > MAX_BODY_BYTES:
        raise bad_request(f"Request body is too large (limit {MAX_BODY_BYTES} bytes)")
    try:
        data = loads_checked(raw.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant)
    except JsonHasNul:
        raise bad_request("Request body must not contain NUL characters") from None
    except ValueError:  # UnicodeDecodeError and JsonTooDeep too, as before
        raise bad_request("Malformed JSON body") from None
    if not isinstance(data, dict):
        raise bad_request("Request body must be a JSON object")
    return data


# --- Fields --------------------------------------------------------------------------------------------


def _string(data: dict, name: str, limit: int | None, *, required: bool, allow_blank: bool = False) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_request(f"{name} must be a string")
    if limit is not None and len(value) > limit:
        raise bad_request(f"{name} must be at most {limit} characters")
    if required and not allow_blank and not value.strip():
        raise bad_request(f"{name} must not be empty")
    return value


def _language(value: str) -> str:
    match = _LANGUAGE_RE.fullmatch(value.strip())
    language = match and pycountry.languages.get(alpha_2=match.group(1).lower())
    region = match and match.group(2)
    if not language or (region and pycountry.countries.get(alpha_2=region.upper()) is None):
        raise bad_request("user_language must be an ISO 639-1 language code such as 'en' (or 'en-US')")
    return f"{match.group(1).lower()}-{region.upper()}" if region else match.group(1).lower()


def _country(value: str) -> str:
    value = value.strip()
    if not value:
        return ""
    if not _COUNTRY_RE.fullmatch(value) or pycountry.countries.get(alpha_2=value.upper()) is None:
        raise bad_request("user_location_country must be an ISO 3166-1 alpha-2 country code such as 'US'")
    return value.upper()


def _consent_timestamp(value: str, now: datetime) -> datetime:
    message = "consent_timestamp must be an ISO 8601 timestamp with a timezone, e.g. 2025-01-08T12:00:00Z"
    value = value.strip()
    parsed = parse_instant(value, require_offset=True) if len(value) <= MAX_TIMESTAMP else None
    if parsed is None:
        raise bad_request(message)
    if parsed > now + CLOCK_SKEW:
        raise bad_request("consent_timestamp must not be in the future")
    return parsed


def max_lead_value() -> Decimal:
    return Decimal(str(settings.CAREOS_MAX_LEAD_VALUE)).quantize(Decimal("0.01"))


def _lead_value(value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise bad_request("lead_value_agreed must be a number")
    amount = Decimal(value)
    if not amount.is_finite() or amount <= 0:
        raise bad_request("lead_value_agreed must be greater than 0")
    maximum = max_lead_value()
    if amount > maximum:
        raise bad_request(f"lead_value_agreed must not exceed {maximum}")
    try:
        cents = amount.quantize(Decimal("0.01"))
    except InvalidOperation:
        raise bad_request("lead_value_agreed must have at most 2 decimal places") from None
    if cents != amount:
        raise bad_request("lead_value_agreed must have at most 2 decimal places")
    return cents


def _plain_json(value):
    """Decimals (how the body's fractions were parsed) back to JSON floats, for storage."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: _plain_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_json(item) for item in value]
    return value


def _details(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise bad_request("ai_extracted_details must be an object")
    details = {}
    for key, item in value.items():
        if key in DETAIL_KEYS:
            if item is None:
                continue
            if not isinstance(item, str):
                raise bad_request(f"ai_extracted_details.{key} must be a string")
            if len(item) > MAX_DETAIL:
                raise bad_request(f"ai_extracted_details.{key} must be at most {MAX_DETAIL} characters")
        details[key] = _plain_json(item)
    size = len(json.dumps(details, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > MAX_DETAILS_BYTES:
        raise bad_request(f"ai_extracted_details must be at most {MAX_DETAILS_BYTES} bytes as JSON")
    return details


def parse_inbound_lead(data: dict, *, now: datetime) -> LeadInput:
    """Validate a parsed body (everything before any decryption or write); 400 ApiError otherwise.
    Order: missing fields (all named), consent, then each field in the spec's order."""
    missing = [name for name in REQUIRED_FIELDS if data.get(name) is None]
    if missing:
        raise bad_request(f"Missing required fields: {', '.join(missing)}")
    if data["user_consent"] is not True:
        raise bad_request("User consent required")

    _string(data, "source_platform", MAX_ID, required=True)
    conversation_id = _string(data, "source_conversation_id", MAX_ID, required=True)
    phone_hash = _string(data, "user_phone_hash", MAX_ID, required=True, allow_blank=True)
    # No size limit of its own: an oversized ciphertext fails decryption like any other bad one.
    phone_encrypted = _string(data, "user_phone_encrypted", None, required=True, allow_blank=True)
    user_name = _string(data, "user_name", MAX_NAME, required=False).strip()
    language = _language(_string(data, "user_language", None, required=True))
    state = _string(data, "user_location_state", MAX_STATE, required=False).strip()
    country = _country(_string(data, "user_location_country", None, required=False))
    city = _string(data, "user_location_city", MAX_CITY, required=False).strip()
    category = _string(data, "category", MAX_CATEGORY, required=True).strip()
    subcategory = _string(data, "subcategory", MAX_CATEGORY, required=False).strip()
    message = _string(data, "original_message", MAX_MESSAGE, required=True)
    details = _details(data.get("ai_extracted_details"))
    consent_at = _consent_timestamp(_string(data, "consent_timestamp", None, required=True), now)
    amount = _lead_value(data["lead_value_agreed"])
    return LeadInput(
        source_conversation_id=conversation_id,
        user_phone_hash=phone_hash,
        user_phone_encrypted=phone_encrypted,
        user_language=language,
        category=category,
        original_message=message,
        consent_timestamp=consent_at,
        lead_value=amount,
        user_name=user_name or None,
        location_state=state,
        location_country=country,
        location_city=city,
        subcategory=subcategory,
        ai_extracted_details=details,
    )


# --- The published request schema ------------------------------------------------------------------


def _pattern(regex: str) -> RegexValidator:
    return RegexValidator(regex)


def _optional_text(max_length: int | None = None, **kwargs) -> serializers.CharField:
    """An optional string the parser also takes as null or blank."""
    if max_length is not None:
        kwargs["max_length"] = max_length
    return serializers.CharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False, **kwargs)


def _required_text(max_length: int | None = None, *, allow_blank: bool = False, **kwargs) -> serializers.CharField:
    """A required string (null counts as missing); unless blank is allowed, it needs a non-space character."""
    if max_length is not None:
        kwargs["max_length"] = max_length
    validators = [*kwargs.pop("validators", []), *([] if allow_blank else [_pattern(NOT_BLANK_PATTERN)])]
    return serializers.CharField(allow_blank=allow_blank, trim_whitespace=False, validators=validators, **kwargs)


@extend_schema_field({"type": "boolean", "enum": [True], "description": "Must be true (the JSON literal)."})
class ConsentField(serializers.BooleanField):
    pass


# A pattern that also matches blank: DRF's allow_blank would publish it as a oneOf that blank matches twice.
@extend_schema_field(
    {
        "type": "string",
        "nullable": True,
        "pattern": COUNTRY_PATTERN,
        "description": "ISO 3166-1 alpha-2 (any case), e.g. 'US'; blank or null for none",
    }
)
class CountryField(serializers.Field):
    pass


class LeadValueField(serializers.Field):
    """`lead_value_agreed`: a JSON number, > 0, at most 2 decimal places, at most CAREOS_MAX_LEAD_VALUE."""


class LeadValueFieldSchema(OpenApiSerializerFieldExtension):
    target_class = LeadValueField

    def map_serializer_field(self, auto_schema, direction):
        # OpenAPI 3.0: exclusiveMinimum is a boolean beside minimum. The maximum is the setting's value.
        return {
            "type": "number",
            "minimum": 0,
            "exclusiveMinimum": True,
            "maximum": float(max_lead_value()),
            "multipleOf": 0.01,
            "description": "USD as a JSON number (not a string): > 0, at most 2 decimal places, at most "
            f'{max_lead_value()} (CAREOS_MAX_LEAD_VALUE). 10, 15.5 and 15.00 are accepted; "15.00" is not.',
            "example": 15.0,
        }


class AiExtractedDetailsSerializer(serializers.Serializer):
    """Known keys are strings (or null); other keys are kept as sent."""

    urgency = _optional_text(MAX_DETAIL, help_text="'low', 'medium', 'high'")
    person_mentioned = _optional_text(MAX_DETAIL, help_text="'mom', 'dad', ...")
    service_type = _optional_text(MAX_DETAIL, help_text="'caregiver', 'doctor', ...")
    condition_mentioned = _optional_text(MAX_DETAIL, help_text="A medical condition, if mentioned")


class InboundLeadSerializer(serializers.Serializer):
    """The spec's `InboundLead`, as `parse_inbound_lead` accepts it (schema only: the parser validates)."""

    source_platform = _required_text(MAX_ID, help_text="Must equal X-Platform, e.g. 'businessos' (else 401)")
    source_conversation_id = _required_text(MAX_ID, help_text="Idempotency key per platform")
    user_phone_hash = _required_text(
        MAX_ID, allow_blank=True, help_text="hex SHA-256 of phone + PHONE_HASH_SALT (hex case ignored)"
    )
    user_phone_encrypted = _required_text(
        allow_blank=True, help_text="base64 RSA-OAEP (SHA-256) ciphertext of the phone (within the 64 KiB body)"
    )
    user_name = _optional_text(MAX_NAME)
    user_language = _required_text(
        validators=[_pattern(LANGUAGE_PATTERN)],
        help_text="An ISO 639-1 code, optionally with an ISO 3166-1 region: 'en', 'es', 'en-US' (any case)",
    )
    user_location_state = _optional_text(MAX_STATE)
    user_location_country = CountryField(required=False)
    user_location_city = _optional_text(MAX_CITY)
    category = _required_text(MAX_CATEGORY, help_text="'healthcare', 'caregiver', ... (mapped to a CareOS category)")
    subcategory = _optional_text(MAX_CATEGORY)
    original_message = _required_text(MAX_MESSAGE)
    ai_extracted_details = AiExtractedDetailsSerializer(
        required=False, allow_null=True, help_text=f"At most {MAX_DETAILS_BYTES} bytes as compact JSON"
    )
    user_consent = ConsentField()
    consent_timestamp = _required_text(
        validators=[_pattern(TIMESTAMP_PATTERN)],
        help_text="ISO 8601 date-time with Z or an offset (seconds optional), a real date, not more than 5 "
        "minutes in the future, e.g. 2025-01-08T12:00:00Z",
    )
    lead_value_agreed = LeadValueField()


REQUIRED_FIELDS = tuple(name for name, field in InboundLeadSerializer().fields.items() if field.required)


# --- The response ----------------------------------------------------------------------------------------


class IngestResponseSerializer(OutputSerializer):
    """The spec's success body, rendered from the stored lead (so a replay answers exactly as the first time)."""

    success = serializers.SerializerMethodField()
    careos_lead_id = serializers.CharField(source="public_id")
    # The person's id as the calling platform knows it (never the internal CareUser id, never another
    # platform's), and "new" as that platform may know it.
    careos_user_id = serializers.CharField(source="partner_user.public_id")
    careos_will_contact = serializers.BooleanField(source="will_contact")
    is_new_user = serializers.BooleanField(help_text="True on this partner's first lead for the person")

    def get_success(self, lead) -> bool:
        return True
