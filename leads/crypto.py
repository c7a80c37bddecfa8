"""CareOS's RSA key ring: partners encrypt the phone with RSA-OAEP (SHA-256 for OAEP and MGF1) to the
current public key; any active pair decrypts, so a new pair can be handed out while old ones still work.

Pairs come from the database (`CareosKeyPair`, private key Fernet-encrypted at rest) and, if set, from
CAREOS_PRIVATE_KEY (PEM, never stored). Every failure is the same `DecryptionFailed` with no detail: a
padding oracle must not learn which step failed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings

DEFAULT_KEY_SIZE = 3072
# The longest phone is 15 digits plus "+"; anything that decrypts to more than this is not a phone.
MAX_PLAINTEXT_BYTES = 32
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class DecryptionFailed(Exception):
    """Anything wrong with a ciphertext. Deliberately carries no detail."""


@dataclass(frozen=True)
class GeneratedPair:
    fingerprint: str
    public_pem: str
    private_pem: str  # never log
    key_size: int


def fingerprint(public_key: rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def public_pem(public_key: rsa.RSAPublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
    )


def generate_pair(key_size: int = DEFAULT_KEY_SIZE) -> GeneratedPair:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    public_key = private_key.public_key()
    return GeneratedPair(fingerprint(public_key), public_pem(public_key), private_pem, key_size)


@lru_cache(maxsize=16)
def _load_private(private_pem: str) -> rsa.RSAPrivateKey:
    # Parsing a PEM costs milliseconds; keys are immutable, so each is parsed once per process.
    key = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("CareOS keys must be RSA")
    return key


def env_private_key() -> rsa.RSAPrivateKey | None:
    pem = (getattr(settings, "CAREOS_PRIVATE_KEY", "") or "").replace("\\n", "\n").strip()
    return _load_private(pem) if pem else None


def active_private_keys() -> list[rsa.RSAPrivateKey]:
    """The environment key first (if any), then the database's active pairs, newest first."""
    from leads.models import CareosKeyPair

    keys: list[rsa.RSAPrivateKey] = []
    env_key = env_private_key()
    if env_key is not None:
        keys.append(env_key)
    for pem in (
        CareosKeyPair.objects.filter(retired_at__isnull=True)
        .order_by("-created_at")
        .values_list("private_pem", flat=True)
    ):
        keys.append(_load_private(pem))
    return keys


def private_keys_from_stored(stored_pems) -> list[rsa.RSAPrivateKey]:
    """`active_private_keys` from rows the caller already read (leads.selectors.ingest_prelude): the
    environment key first, then each active pair's private PEM as stored (Fernet-encrypted), in order.
    Which pairs are active is the caller's fresh read, never a cache: a retired pair stops decrypting at once."""
    keys: list[rsa.RSAPrivateKey] = []
    env_key = env_private_key()
    if env_key is not None:
        keys.append(env_key)
    keys.extend(_stored_private(stored_pem) for stored_pem in stored_pems)
    return keys


@lru_cache(maxsize=16)
def _stored_private(stored_pem: str) -> rsa.RSAPrivateKey:
    # Keyed by the stored (encrypted) text: no Fernet decryption or PEM parsing per request; a row
    # re-encrypted by a field key rotation is simply decrypted and parsed again, once.
    from leads.models import CareosKeyPair

    return _load_private(CareosKeyPair._meta.get_field("private_pem").from_db_value(stored_pem, None, None))


def current_public_pem() -> str | None:
    """The public key to hand partners: the newest active database pair, else the environment key."""
    from leads.models import CareosKeyPair

    pair = CareosKeyPair.objects.filter(retired_at__isnull=True).order_by("-created_at").first()
    if pair is not None:
        return pair.public_pem
    env_key = env_private_key()
    return public_pem(env_key.public_key()) if env_key is not None else None


def decrypt_phone(ciphertext_b64: str, keys: list[rsa.RSAPrivateKey] | None = None) -> str:
    """The plaintext phone (UTF-8) of a base64 RSA-OAEP-SHA256 ciphertext, or DecryptionFailed.

    The ciphertext must be exactly one key's size in bytes (checked before any private-key operation);
    each key of that size is tried. Not valid base64, wrong length, wrong key, other padding, or a
    plaintext that is not short UTF-8 text: all the same DecryptionFailed."""
    return decrypt_phone_and_key(ciphertext_b64, keys)[0]


def decrypt_phone_and_key(ciphertext_b64: str, keys: list[rsa.RSAPrivateKey] | None = None) -> tuple[str, int]:
    """`decrypt_phone`, and the position in `keys` of the key that decrypted it (the ingest records which
    pair did, for the admin's retire page)."""
    if not isinstance(ciphertext_b64, str) or len(ciphertext_b64) > 2048:
        raise DecryptionFailed()
    try:
        ciphertext = base64.b64decode(ciphertext_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise DecryptionFailed() from None
    keys = active_private_keys() if keys is None else keys
    for position, key in enumerate(keys):
        if len(ciphertext) != (key.key_size + 7) // 8:
            continue
        try:
            plaintext = key.decrypt(ciphertext, _OAEP)
        except ValueError:
            continue
        if not (0 < len(plaintext) <= MAX_PLAINTEXT_BYTES):
            raise DecryptionFailed()
        try:
            return plaintext.decode("utf-8"), position
        except UnicodeDecodeError:
            raise DecryptionFailed() from None
    raise DecryptionFailed()
