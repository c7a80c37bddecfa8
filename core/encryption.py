"""Field encryption at rest and blind indexes for exact-match lookups (DESIGN.md, "Protected data").

Encryption
    `cryptography`'s MultiFernet over settings.FIELD_ENCRYPTION_KEYS: the first key encrypts, every key
    decrypts. To rotate, put the new key first, deploy, run `manage.py rotate_encryption_keys`, then drop
    the old key. `EncryptedTextField` / `EncryptedJSONField` store Fernet tokens (authenticated, random
    IV), so the same plaintext never gives the same column value and the database cannot compare them:
    every lookup except `isnull` raises `EncryptedLookupError`.

Blind index
    For "find the row whose phone is X", store `blind_index(normalized_value, purpose=...)` in a plain
    indexed column next to the encrypted one (`BlindIndexField`) and filter on that. Normalizing is the
    caller's job and must be the same on write and on lookup (e.g. E.164 for phone numbers, `strip()` +
    `casefold()` for emails): the index matches exact bytes only. `purpose` separates domains, so equal
    values in two columns (a lead's phone and a patient's phone) give unrelated hashes and cannot be
    joined by someone holding a database dump.

Nothing here logs or puts a value or a key in an exception message.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django import forms
from django.apps import apps
from django.conf import settings
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import models
from django.dispatch import receiver

__all__ = [
    "BlindIndexField",
    "DecryptionError",
    "EncryptedJSONField",
    "EncryptedLookupError",
    "EncryptedTextField",
    "blind_index",
    "decrypt_str",
    "encrypt_str",
    "encrypted_fields",
    "key_fingerprint",
    "primary_key_fingerprint",
]


class DecryptionError(ValueError):
    """No configured key decrypts a stored value (wrong keys, or the old key was dropped too early)."""


class EncryptedLookupError(FieldError):
    """A query tried to compare an encrypted column."""


# --- Keys -------------------------------------------------------------------------------------------

_keyring: tuple[tuple[str, ...], MultiFernet, Fernet] | None = None
# The settings value the keyring was built from: while it is the very same object, nothing is re-read
# (decrypting a list of 1,000 rows would otherwise re-parse the setting 1,000 times).
_keyring_source: object = None


def _configured_keys() -> tuple[str, ...]:
    keys = getattr(settings, "FIELD_ENCRYPTION_KEYS", None) or ()
    if isinstance(keys, str):
        keys = [keys]
    keys = tuple(k.strip() for k in keys if k and k.strip())
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: at least one Fernet key is required.")
    return keys


def _get_keyring() -> tuple[tuple[str, ...], MultiFernet, Fernet]:
    """(keys, MultiFernet over all keys, Fernet of the primary key), rebuilt when the setting changes.

    Cached while the setting is the same object (assigning it, `override_settings` or the pytest `settings`
    fixture take effect at once; the setting_changed receiver below also drops the cache)."""
    global _keyring, _keyring_source
    source = getattr(settings, "FIELD_ENCRYPTION_KEYS", None)
    if _keyring is not None and source is _keyring_source:
        return _keyring
    keys = _configured_keys()
    cached = _keyring
    if cached is not None and cached[0] == keys:
        return cached
    fernets = []
    for position, key in enumerate(keys):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            # Never echo the key itself.
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS[{position}] is not a valid Fernet key (32 url-safe base64 bytes)."
            ) from None
    _keyring = (keys, MultiFernet(fernets), fernets[0])
    _keyring_source = source
    return _keyring


@receiver(setting_changed)
def _reset_keyring(*, setting: str, **kwargs: Any) -> None:
    global _keyring, _keyring_source
    if setting == "FIELD_ENCRYPTION_KEYS":
        _keyring = None
        _keyring_source = None


def key_fingerprint(key: str) -> str:
    """First 16 hex chars of sha256(key): identifies a key in records and output without revealing it."""
    return hashlib.sha256(key.strip().encode("utf-8")).hexdigest()[:16]


def primary_key_fingerprint() -> str:
    return key_fingerprint(_get_keyring()[0][0])


# --- Strings ------------------------------------------------------------------------------------------


def encrypt_str(value: str) -> str:
    """Fernet token (ASCII) for `value` under the primary key."""
    if not isinstance(value, str):
        raise TypeError("encrypt_str takes a str")
    return _get_keyring()[1].encrypt(value.encode("utf-8")).decode("ascii")


def _token_bytes(token: str | bytes) -> bytes:
    if isinstance(token, memoryview):
        token = token.tobytes()
    if isinstance(token, str):
        try:
            return token.encode("ascii")
        except UnicodeEncodeError:
            raise DecryptionError("Stored value is not a Fernet token.") from None
    if isinstance(token, bytes):
        return token
    raise TypeError("decrypt_str takes a str token")


def decrypt_str(token: str) -> str:
    """Plaintext of a token made under any configured key; DecryptionError if none decrypts it."""
    try:
        return _get_keyring()[1].decrypt(_token_bytes(token)).decode("utf-8")
    except InvalidToken:
        raise DecryptionError("No configured FIELD_ENCRYPTION_KEYS key decrypts this value.") from None


def is_under_primary_key(token: str) -> bool:
    """True if the primary key alone decrypts `token` (nothing to rotate)."""
    try:
        _get_keyring()[2].decrypt(_token_bytes(token))
    except (InvalidToken, DecryptionError):
        return False
    return True


def reencrypt_str(token: str) -> str:
    """`token` re-encrypted under the primary key; DecryptionError if no configured key decrypts it."""
    try:
        return _get_keyring()[1].rotate(_token_bytes(token)).decode("ascii")
    except InvalidToken:
        raise DecryptionError("No configured FIELD_ENCRYPTION_KEYS key decrypts this value.") from None


# --- Blind index ------------------------------------------------------------------------------------

_PURPOSE_RE = re.compile(r"[a-z0-9][a-z0-9_.:-]{0,99}")


def blind_index(value: str, *, purpose: str) -> str:
    """Hex HMAC-SHA256 of `value` under BLIND_INDEX_KEY, separated by `purpose` (64 chars).

    `purpose` names the column, e.g. "leads.lead.phone". A per-purpose subkey is derived first
    (HMAC(BLIND_INDEX_KEY, "blind-index:" + purpose)), so no two purposes share a hash space.
    Normalize `value` before calling (see the module docstring); this function hashes exact bytes.
    """
    if not isinstance(value, str):
        raise TypeError("blind_index takes a str value (normalize it first)")
    if not isinstance(purpose, str) or not _PURPOSE_RE.fullmatch(purpose):
        raise ValueError("blind_index purpose must be a short lowercase name such as 'leads.lead.phone'")
    key = getattr(settings, "BLIND_INDEX_KEY", "") or ""
    if not key:
        raise ImproperlyConfigured("BLIND_INDEX_KEY is empty.")
    subkey = hmac.new(key.encode("utf-8"), b"blind-index:" + purpose.encode("ascii"), hashlib.sha256).digest()
    return hmac.new(subkey, value.encode("utf-8"), hashlib.sha256).hexdigest()


class BlindIndexField(models.CharField):
    """CharField(max_length=64, db_index=True) holding `blind_index(...)` output. Fill it in the service
    that writes the encrypted value; filter with `field=blind_index(normalized, purpose=...)`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 64)
        kwargs.setdefault("db_index", True)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)


# --- Model fields ------------------------------------------------------------------------------------

_ALLOWED_LOOKUPS = frozenset({"isnull"})


class _EncryptedFieldMixin:
    """Refuses comparisons: a Fernet token differs every time, so equality, ordering or LIKE on the
    column would silently match nothing (or leak shape). Use a BlindIndexField for exact matches."""

    def get_lookup(self, lookup_name: str):
        if lookup_name in _ALLOWED_LOOKUPS:
            return super().get_lookup(lookup_name)
        raise EncryptedLookupError(
            f"{self._describe()} is encrypted: lookup '{lookup_name}' cannot compare encrypted values. "
            "Filter on a blind index column (core.encryption.blind_index) instead; only 'isnull' is supported."
        )

    def get_transform(self, lookup_name: str):
        raise EncryptedLookupError(f"{self._describe()} is encrypted: transform '{lookup_name}' is not supported.")

    def _describe(self) -> str:
        model = getattr(self, "model", None)
        name = getattr(self, "name", None) or "field"
        return f"{model._meta.label}.{name}" if model is not None else name


class EncryptedTextField(_EncryptedFieldMixin, models.TextField):
    """Text stored as a Fernet token. Python value: str (empty allowed) or None (SQL NULL)."""

    description = "Text encrypted at rest (Fernet)"

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return decrypt_str(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None:
            return None
        return encrypt_str(value)


class EncryptedJSONField(_EncryptedFieldMixin, models.TextField):
    """Any JSON-serializable value stored as the Fernet token of its JSON text. Python None is SQL NULL
    (a JSON `null` cannot be stored distinctly)."""

    description = "JSON encrypted at rest (Fernet)"

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return json.loads(decrypt_str(value))

    def to_python(self, value):
        if isinstance(value, str):
            # Form input (JSON text). Values from the database arrive through from_db_value instead.
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value
        return value

    def get_prep_value(self, value):
        if value is None:
            return None
        return encrypt_str(json.dumps(value, separators=(",", ":"), sort_keys=True))

    def value_to_string(self, obj):
        return json.dumps(self.value_from_object(obj))

    def formfield(self, **kwargs):
        return super().formfield(**{"form_class": forms.JSONField, **kwargs})


ENCRYPTED_FIELD_CLASSES = (EncryptedTextField, EncryptedJSONField)


def encrypted_fields() -> Iterator[tuple[type[models.Model], models.Field]]:
    """(model, field) for every encrypted column in the installed apps, each column once: local concrete
    fields of managed, non-proxy, non-swapped models (a multi-table child does not repeat its parent's)."""
    for model in apps.get_models():
        opts = model._meta
        if opts.proxy or not opts.managed or opts.swapped:
            continue
        for field in opts.local_concrete_fields:
            if isinstance(field, ENCRYPTED_FIELD_CLASSES):
                yield model, field
