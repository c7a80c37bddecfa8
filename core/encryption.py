"""Field encryption at rest and blind indexes for exact-match lookups (DESIGN.md, "Protected data").

Encryption
    Keys are settings.FIELD_ENCRYPTION_KEYS (Fernet keys: 32 url-safe base64 bytes): the first key
    encrypts, every key decrypts. To rotate, put the new key first, deploy, run `manage.py
    rotate_encryption_keys`, then drop the old key. `EncryptedTextField` / `EncryptedJSONField` store
    authenticated ciphertext with a random nonce, so the same plaintext never gives the same column value
    and the database cannot compare them: every lookup except `isnull` raises `EncryptedLookupError`.

    Stored format (version 1, written by `encrypt_str` since issue 15):

        $g1$<key id>$<base64url(nonce || ciphertext || tag), unpadded>

    AES-256-GCM (cryptography's AESGCM) with a 12-byte random nonce and a 16-byte tag. The AES key is
    HKDF-SHA256 of the configured key's 32 bytes with the fixed label `_GCM_INFO`; the key id is 8
    url-safe base64 characters of another HKDF output (label `_KEY_ID_INFO`), so a value names the key
    that decrypts it and nothing about the key leaks. The prefix "$g1$<key id>$" is the GCM associated
    data: changing the version or key id fails authentication. "$" is outside the url-safe base64
    alphabet, so a version-1 value can never be mistaken for a Fernet token (those start "gAAAAA"), and
    the reverse.

    Nonce limit: nonces are random, so one key must not encrypt more than 2**32 values (NIST SP 800-38D;
    the chance of a repeated nonce stays below 2**-32). Rotating the key (above) resets the count: rotate
    long before four billion encrypted writes under one key.

    Values written before version 1 are Fernet tokens (MultiFernet over the same keys): they still
    decrypt, `is_under_primary_key` reports them as due, and `rotate_encryption_keys` rewrites them in
    version 1 under the primary key. AES-GCM decrypts a typical short value about 6x faster than Fernet
    (AES-CBC + HMAC-SHA256 in Python-driven steps), which is most of a 1,000-row list's decryption.

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

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterator
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
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
    "decrypt_many",
    "decrypt_str",
    "encrypt_str",
    "encrypted_fields",
    "key_fingerprint",
    "primary_key_fingerprint",
    "seal",
    "unseal",
]


class DecryptionError(ValueError):
    """No configured key decrypts a stored value (wrong keys, or the old key was dropped too early)."""


class EncryptedLookupError(FieldError):
    """A query tried to compare an encrypted column."""


# --- Keys -------------------------------------------------------------------------------------------

_PREFIX = "$g1$"  # version 1: AES-256-GCM (module docstring); "$" is not in base64url, so never a Fernet token
_KEY_ID_LENGTH = 8
_NONCE_BYTES = 12
_TAG_BYTES = 16
_GCM_INFO = b"core.encryption field v1 aes-256-gcm"
_KEY_ID_INFO = b"core.encryption field v1 key id"
_BASE64URL_RE = re.compile(r"[A-Za-z0-9_-]+")


class _Keyring:
    """The configured keys: `keys` (as configured), `multi` (MultiFernet over all, for old values),
    `primary_fernet`, `primary_id` and `primary_gcm` (AESGCM of the primary key), and `by_id` (key id ->
    AESGCM ciphers with that id, in configured order; two keys sharing an id are both tried)."""

    __slots__ = ("keys", "multi", "primary_fernet", "primary_id", "primary_gcm", "by_id")

    def __init__(self, keys: tuple[str, ...], fernets: list[Fernet], raw_keys: list[bytes]) -> None:
        self.keys = keys
        self.multi = MultiFernet(fernets)
        self.primary_fernet = fernets[0]
        self.by_id: dict[str, list[AESGCM]] = {}
        ids = []
        for raw in raw_keys:
            key_id, cipher = _derive(raw)
            ids.append(key_id)
            self.by_id.setdefault(key_id, []).append(cipher)
        self.primary_id = ids[0]
        self.primary_gcm = self.by_id[ids[0]][0]


def _derive(raw_key: bytes) -> tuple[str, AESGCM]:
    """(key id, AESGCM) for one configured key's 32 bytes: two HKDF-SHA256 outputs with fixed labels."""
    aes_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_GCM_INFO).derive(raw_key)
    id_bytes = HKDF(algorithm=hashes.SHA256(), length=6, salt=None, info=_KEY_ID_INFO).derive(raw_key)
    return base64.urlsafe_b64encode(id_bytes).decode("ascii"), AESGCM(aes_key)


_keyring: _Keyring | None = None
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


def _get_keyring() -> _Keyring:
    """The keyring of the configured keys, rebuilt when the setting changes.

    Cached while the setting is the same object (assigning it, `override_settings` or the pytest `settings`
    fixture take effect at once; the setting_changed receiver below also drops the cache)."""
    global _keyring, _keyring_source
    source = getattr(settings, "FIELD_ENCRYPTION_KEYS", None)
    if _keyring is not None and source is _keyring_source:
        return _keyring
    keys = _configured_keys()
    cached = _keyring
    if cached is not None and cached.keys == keys:
        _keyring_source = source
        return cached
    fernets, raw_keys = [], []
    for position, key in enumerate(keys):
        try:
            fernets.append(Fernet(key))
            raw_keys.append(base64.urlsafe_b64decode(key))
        except (ValueError, TypeError, binascii.Error):
            # Never echo the key itself.
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS[{position}] is not a valid Fernet key (32 url-safe base64 bytes)."
            ) from None
    _keyring = _Keyring(keys, fernets, raw_keys)
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
    return key_fingerprint(_get_keyring().keys[0])


# --- Strings ------------------------------------------------------------------------------------------

_UNDECRYPTABLE = "No configured FIELD_ENCRYPTION_KEYS key decrypts this value."


def _encrypt_v1(keyring: _Keyring, data: bytes) -> str:
    header = f"{_PREFIX}{keyring.primary_id}$"
    aad = header.encode("ascii")
    nonce = os.urandom(_NONCE_BYTES)
    sealed = keyring.primary_gcm.encrypt(nonce, data, aad)
    return header + base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")


def encrypt_str(value: str) -> str:
    """`value` encrypted under the primary key, in the current stored format (ASCII; module docstring)."""
    if not isinstance(value, str):
        raise TypeError("encrypt_str takes a str")
    return _encrypt_v1(_get_keyring(), value.encode("utf-8"))


def _token_text(token: str | bytes) -> str:
    if isinstance(token, memoryview):
        token = token.tobytes()
    if isinstance(token, bytes):
        try:
            return token.decode("ascii")
        except UnicodeDecodeError:
            raise DecryptionError("Stored value is not an encrypted value.") from None
    if isinstance(token, str):
        return token
    raise TypeError("decrypt_str takes a str token")


def _decrypt_v1(keyring: _Keyring, token: str, *, primary_only: bool = False) -> bytes:
    """Plaintext bytes of a version-1 value; DecryptionError if no configured key (or, with
    `primary_only`, not the primary key) authenticates it."""
    end = len(_PREFIX) + _KEY_ID_LENGTH
    key_id = token[len(_PREFIX) : end]
    if token[end : end + 1] != "$":
        raise DecryptionError(_UNDECRYPTABLE)
    body = token[end + 1 :]
    if not _BASE64URL_RE.fullmatch(body):  # the decoder would skip stray characters: refuse them
        raise DecryptionError(_UNDECRYPTABLE)
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise DecryptionError(_UNDECRYPTABLE) from None
    if len(raw) < _NONCE_BYTES + _TAG_BYTES:
        raise DecryptionError(_UNDECRYPTABLE)
    if primary_only:
        ciphers = [keyring.primary_gcm] if key_id == keyring.primary_id else None
    else:
        ciphers = keyring.by_id.get(key_id)
    if not ciphers:
        raise DecryptionError(_UNDECRYPTABLE)
    aad = token[: end + 1].encode("ascii")
    nonce, sealed = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
    for cipher in ciphers:
        try:
            return cipher.decrypt(nonce, sealed, aad)
        except InvalidTag:
            continue
    raise DecryptionError(_UNDECRYPTABLE)


def _decrypt_bytes(keyring: _Keyring, token: str) -> bytes:
    if token.startswith(_PREFIX):
        return _decrypt_v1(keyring, token)
    try:
        # A value written before version 1: a Fernet token under any configured key.
        return keyring.multi.decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        raise DecryptionError(_UNDECRYPTABLE) from None


def decrypt_str(token: str) -> str:
    """Plaintext of a value made under any configured key (either stored format); DecryptionError if
    none decrypts it (wrong keys, tampered, truncated or not an encrypted value)."""
    keyring = _get_keyring()
    text = _token_text(token)
    try:
        return _decrypt_bytes(keyring, text).decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionError(_UNDECRYPTABLE) from None


def decrypt_many(tokens: list) -> list:
    """`decrypt_str` of each item (None stays None), with the keyring looked up once: for a column of a
    whole list, e.g. the 1,000 emails of a caseload."""
    keyring = _get_keyring()
    decrypted = []
    for token in tokens:
        if token is None:
            decrypted.append(None)
            continue
        try:
            decrypted.append(_decrypt_bytes(keyring, _token_text(token)).decode("utf-8"))
        except UnicodeDecodeError:
            raise DecryptionError(_UNDECRYPTABLE) from None
    return decrypted


def is_under_primary_key(token: str) -> bool:
    """True if `token` is in the current format under the primary key and authenticates (nothing to
    rotate). A Fernet token is always due: rotation rewrites it in the current format."""
    keyring = _get_keyring()
    try:
        text = _token_text(token)
        if not text.startswith(_PREFIX):
            return False
        _decrypt_v1(keyring, text, primary_only=True)
    except DecryptionError:
        return False
    return True


def reencrypt_str(token: str) -> str:
    """`token` re-encrypted in the current format under the primary key; DecryptionError if no configured
    key decrypts it."""
    keyring = _get_keyring()
    return _encrypt_v1(keyring, _decrypt_bytes(keyring, _token_text(token)))


# --- Sealed bytes -------------------------------------------------------------------------------------

_SEAL_VERSION = b"s1"


def seal(data: bytes, *, context: bytes) -> bytes:
    """`data` encrypted under the primary key for keeping outside the database (e.g. a cached response body in
    Redis): b"s1" + key id + nonce + AES-256-GCM ciphertext and tag. `context` (e.g. the cache key) is
    authenticated, not stored: `unseal` needs the same context, so a sealed value moved under another key
    does not open."""
    keyring = _get_keyring()
    header = _SEAL_VERSION + keyring.primary_id.encode("ascii")
    nonce = os.urandom(_NONCE_BYTES)
    return header + nonce + keyring.primary_gcm.encrypt(nonce, data, header + b"|" + context)


def unseal(sealed: bytes, *, context: bytes) -> bytes:
    """The bytes `seal(..., context=context)` sealed; DecryptionError if no configured key authenticates them
    under this context (another context, a dropped key, tampering, or not a sealed value)."""
    if not isinstance(sealed, bytes):
        raise DecryptionError(_UNDECRYPTABLE)
    head = len(_SEAL_VERSION) + _KEY_ID_LENGTH
    if len(sealed) < head + _NONCE_BYTES + _TAG_BYTES or not sealed.startswith(_SEAL_VERSION):
        raise DecryptionError(_UNDECRYPTABLE)
    header = sealed[:head]
    ciphers = _get_keyring().by_id.get(header[len(_SEAL_VERSION) :].decode("ascii", "replace"))
    nonce, body = sealed[head : head + _NONCE_BYTES], sealed[head + _NONCE_BYTES :]
    for cipher in ciphers or ():
        try:
            return cipher.decrypt(nonce, body, header + b"|" + context)
        except InvalidTag:
            continue
    raise DecryptionError(_UNDECRYPTABLE)


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
    """Refuses comparisons: an encrypted value differs every time (random nonce), so equality, ordering or LIKE on the
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
    """Text stored encrypted (module docstring: format). Python value: str (empty allowed) or None (SQL NULL)."""

    description = "Text encrypted at rest"

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
    """Any JSON-serializable value stored as its JSON text, encrypted. Python None is SQL NULL
    (a JSON `null` cannot be stored distinctly)."""

    description = "JSON encrypted at rest"

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
