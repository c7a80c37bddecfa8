"""Partner API keys and secrets: generated from `secrets`, shown once, stored only as key id + hash.

    generated = generate_api_key("lr_int")
    # Show generated.full_key to the partner once ("lr_int_<key_id>_<secret>"); never store or log it.
    Credential.objects.create(key_id=generated.key_id, secret_hash=generated.secret_hash, ...)

    # On each request:
    parsed = parse_api_key(presented, "lr_int")          # None for anything malformed
    cred = parsed and Credential.objects.filter(key_id=parsed[0]).first()
    ok = verify_secret(parsed[1], cred.secret_hash) if cred else verify_missing(...)

The key id is a public lookup handle (indexed, not secret); the secret is only ever compared through
bcrypt. When no row matches, call `verify_missing()` so unknown and wrong keys take the same time.

LoveRescue uses a key (`lr_int_...`, from generate_api_key) plus a separate secret (`sk_live_...`,
from generate_secret): store the key's id and the secret's hash the same way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass, field
from functools import lru_cache

import bcrypt
from django.conf import settings

KEY_ID_LENGTH = 12
SECRET_LENGTH = 40
# Nothing we issue is longer; refusing longer input before hashing keeps junk cheap to reject.
MAX_PRESENTED_LENGTH = 256

_KEY_ID_ALPHABET = string.ascii_lowercase + string.digits
_BASE62 = string.ascii_letters + string.digits
_PREFIX_RE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


@dataclass(frozen=True)
class GeneratedKey:
    full_key: str = field(repr=False)  # "{prefix}_{key_id}_{secret}": show once, never store
    key_id: str
    secret: str = field(repr=False)
    secret_hash: str


@dataclass(frozen=True)
class GeneratedSecret:
    secret: str = field(repr=False)  # "{prefix}_{40 base62}": show once, never store
    secret_hash: str


def _check_prefix(prefix: str) -> None:
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"Invalid key prefix {prefix!r}: lowercase words joined by '_', e.g. 'lr_int'")


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def generate_api_key(prefix: str) -> GeneratedKey:
    """A new key `"{prefix}_{key_id}_{secret}"`: key_id is 12 lowercase alnum, secret 40 base62 (~238 bits)."""
    _check_prefix(prefix)
    key_id = _random(_KEY_ID_ALPHABET, KEY_ID_LENGTH)
    secret = _random(_BASE62, SECRET_LENGTH)
    return GeneratedKey(
        full_key=f"{prefix}_{key_id}_{secret}", key_id=key_id, secret=secret, secret_hash=hash_secret(secret)
    )


def generate_secret(prefix: str) -> GeneratedSecret:
    """A standalone secret `"{prefix}_{40 base62}"` (e.g. `sk_live_...`) and its hash."""
    _check_prefix(prefix)
    secret = f"{prefix}_{_random(_BASE62, SECRET_LENGTH)}"
    return GeneratedSecret(secret=secret, secret_hash=hash_secret(secret))


def parse_api_key(full_key: str, prefix: str) -> tuple[str, str] | None:
    """(key_id, secret) if `full_key` is exactly `"{prefix}_{key_id}_{secret}"`, else None. Never raises."""
    if not isinstance(full_key, str) or not isinstance(prefix, str) or len(full_key) > MAX_PRESENTED_LENGTH:
        return None
    match = re.fullmatch(
        re.escape(prefix) + rf"_([a-z0-9]{{{KEY_ID_LENGTH}}})_([A-Za-z0-9]{{{SECRET_LENGTH}}})", full_key
    )
    if match is None:
        return None
    return match.group(1), match.group(2)


def _prehash(secret: str) -> bytes:
    # bcrypt reads at most 72 bytes (bcrypt>=5 raises past that; older versions silently truncate, so two
    # secrets sharing a 72-byte prefix would verify as each other) and stops at a NUL byte in some
    # implementations. sha256 condenses any length to 32 bytes; base64 makes them 44 printable bytes with
    # no NUL. The secrets are 238-bit random strings, so the pre-hash costs no strength.
    return base64.b64encode(hashlib.sha256(secret.encode("utf-8")).digest())


def _rounds() -> int:
    return int(getattr(settings, "API_KEY_BCRYPT_ROUNDS", 12))


def hash_secret(secret: str) -> str:
    """bcrypt hash (cost API_KEY_BCRYPT_ROUNDS) of the sha256 pre-hash of `secret`; ASCII, ~60 chars."""
    if not isinstance(secret, str) or not secret:
        raise ValueError("hash_secret takes a non-empty str")
    return bcrypt.hashpw(_prehash(secret), bcrypt.gensalt(rounds=_rounds())).decode("ascii")


def verify_secret(secret: str, secret_hash: str) -> bool:
    """True iff `secret` matches `secret_hash` (bcrypt's constant-time check). False, never an exception,
    for a malformed hash, a non-str, an empty or over-long secret."""
    if not isinstance(secret, str) or not isinstance(secret_hash, str):
        return False
    if not secret or len(secret) > MAX_PRESENTED_LENGTH:
        return False
    try:
        return bcrypt.checkpw(_prehash(secret), secret_hash.encode("ascii"))
    except (ValueError, TypeError, UnicodeError):
        return False


@lru_cache(maxsize=4)
def _dummy_hash(rounds: int) -> str:
    return bcrypt.hashpw(b"no-such-key", bcrypt.gensalt(rounds=rounds)).decode("ascii")


def verify_missing(secret: str = "") -> bool:
    """Spend one bcrypt check and return False: call when no stored key matches the key id, so a
    caller cannot tell unknown key ids from wrong secrets by timing."""
    verify_secret(secret or "x", _dummy_hash(_rounds()))
    return False


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Compare two secrets without leaking where they differ. str is compared as UTF-8."""
    if isinstance(a, str):
        a = a.encode("utf-8")
    if isinstance(b, str):
        b = b.encode("utf-8")
    if not isinstance(a, bytes) or not isinstance(b, bytes):
        return False
    return hmac.compare_digest(a, b)


def key_digest(full_key: str) -> str:
    """SHA-256 hex of a whole high-entropy API key (>= 200 random bits), stored to find and check it.
    A fast hash is enough for keys that random (unlike secrets people choose, which get bcrypt)."""
    return hashlib.sha256(full_key.encode("utf-8")).hexdigest()
