"""Public identifiers: `<prefix>_<random>` as the specs show them (`org_...`, `pat_...`, `evt_...`).

The random part is 24 characters of base62 from `secrets` (~143 bits): unguessable, URL-safe, and
never derived from a database row id, so ids reveal neither counts nor order.
"""

import re
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
RANDOM_LENGTH = 24


_PREFIX_RE = re.compile(r"[a-z][a-z0-9]*")
_BASE = len(_ALPHABET)


def new_public_id(prefix: str, length: int = RANDOM_LENGTH) -> str:
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"Invalid id prefix {prefix!r}")
    # One uniform draw below 62**length written in base 62: each character uniform and independent, as
    # `length` calls of secrets.choice would give, for one call to the OS's generator instead of ~length.
    number = secrets.randbelow(_BASE**length)
    characters = []
    for _ in range(length):
        number, digit = divmod(number, _BASE)
        characters.append(_ALPHABET[digit])
    return f"{prefix}_" + "".join(characters)


def public_id_regex(prefix: str) -> str:
    """Regex for a path converter that only matches ids of this prefix."""
    return rf"{prefix}_[A-Za-z0-9]{{1,64}}"


def is_public_id(value: str, prefix: str) -> bool:
    return bool(re.fullmatch(public_id_regex(prefix), value or ""))


class PublicIdConverter:
    """Base path converter: `<org_id:organization_id>` matches `org_...` only, so two APIs that share
    a path prefix (Mark `pat_...`, Routiq `org_...`) resolve by type, never by trial and fallback."""

    prefix = ""

    @property
    def regex(self) -> str:
        return public_id_regex(self.prefix)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class OrganizationIdConverter(PublicIdConverter):
    """`org_...`: our public ids and Clerk organization ids both match (core.scoping resolves either)."""

    prefix = "org"


def _converter(prefix: str) -> type[PublicIdConverter]:
    return type(f"{prefix.capitalize()}IdConverter", (PublicIdConverter,), {"prefix": prefix})


# Path converters by name, one per public-id prefix of the specs: `<pat_id:patient_id>` matches `pat_...`.
PATH_CONVERTERS: dict[str, type[PublicIdConverter]] = {
    "org_id": OrganizationIdConverter,
    **{
        f"{prefix}_id": _converter(prefix)
        for prefix in ("pat", "conv", "apt", "msg", "wh", "evt", "ses", "usr", "lead")
    },
}


def register_path_converters() -> None:
    """Register every converter of PATH_CONVERTERS with Django (idempotent; config/urls.py calls it
    before including any app's urls)."""
    from django.urls import converters, register_converter

    for name, converter in PATH_CONVERTERS.items():
        if name not in converters.get_converters():
            register_converter(converter, name)


def public_id_default(prefix: str):
    """A model field default: `default=public_id_default("org")` (a named callable, so migrations keep it)."""
    return _PublicIdFactory(prefix)


class _PublicIdFactory:
    def __init__(self, prefix: str):
        self.prefix = prefix

    def __call__(self) -> str:
        return new_public_id(self.prefix)

    def deconstruct(self):
        return ("core.ids._PublicIdFactory", (self.prefix,), {})

    def __eq__(self, other):
        return isinstance(other, _PublicIdFactory) and other.prefix == self.prefix

    def __hash__(self):
        return hash(self.prefix)
