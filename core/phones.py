"""Phone numbers: one E.164 rule for the whole platform, on `phonenumbers`.

The rule: a number written with a leading `+` is read as international; anything else is read as a
national number of `region` (ISO 3166-1 alpha-2, e.g. the organization's or the lead's country). It must
be a valid number for its country (not merely the right length), and is stored and compared as E.164
(`+14155550123`). A `whatsapp:` prefix (Twilio's address form) is accepted and dropped.
"""

from __future__ import annotations

import re

import phonenumbers

from core.domain import Invalid

MASK = "•••"
WHATSAPP_PREFIX = "whatsapp:"
# What a person might type for a phone number: digits with spaces, dots, dashes, brackets, one leading +.
_PHONE_LIKE_RE = re.compile(r"[+(]?[0-9][0-9 ().-]{5,24}")
MAX_INPUT_LENGTH = 250  # phonenumbers' own cap on what it will parse


class InvalidPhone(Invalid):
    default_message = "Invalid phone number"


def normalize_e164(raw: str, *, region: str | None = None) -> str:
    """The number as E.164, or InvalidPhone. `region` is the hint for numbers written without `+`."""
    value = (raw or "").strip()
    if value.startswith(WHATSAPP_PREFIX):
        value = value[len(WHATSAPP_PREFIX) :]
    if not value or len(value) > MAX_INPUT_LENGTH:
        raise InvalidPhone()
    # phonenumbers decides what is international (`+`, a full-width `＋`, `tel:+...`); the hint serves
    # only numbers written without one.
    hint = (region or "").upper() or None
    try:
        parsed = phonenumbers.parse(value, hint)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE and hint is None:
            raise InvalidPhone("Phone number must start with + and the country code") from None
        raise InvalidPhone() from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone()
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def e164_or_none(raw: str, *, region: str | None = None) -> str | None:
    """`normalize_e164` for search boxes: None when the text is not a phone number under the rule."""
    text = (raw or "").strip()
    if not _PHONE_LIKE_RE.fullmatch(text.removeprefix(WHATSAPP_PREFIX)):
        return None
    try:
        return normalize_e164(text, region=region)
    except InvalidPhone:
        return None


def region_of(e164: str) -> str | None:
    """The ISO 3166-1 region a number belongs to ("ES" for +34...), None when it cannot be told."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None


def mask(phone: str | None) -> str:
    """ "+14155550123" -> "+1 ••• ••• 0123": the country code and the last four digits only."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    try:
        country_code = phonenumbers.parse(phone, None).country_code
    except phonenumbers.NumberParseException:
        country_code = None
    if country_code is None or len(digits) < len(str(country_code)) + 6:
        return f"{MASK} {digits[-2:]}" if len(digits) >= 6 else MASK
    return f"+{country_code} {MASK} {MASK} {digits[-4:]}"
