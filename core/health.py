"""Health: the production-grade key rules (shared by settings at start-up and `/health`), and the
operators' broker check.

Importable from config/settings.py: nothing here touches Django settings at import time.
"""

import dataclasses

from cryptography.fernet import Fernet
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable

SECRET_KEY_MIN_LENGTH = 50  # Django's own check (security.W009): 50 characters, 5 distinct
SECRET_KEY_MIN_DISTINCT = 5
HMAC_KEY_MIN_LENGTH = 32  # BLIND_INDEX_KEY and JWT_SIGNING_KEY: 256 bits of token_urlsafe(32)


def secret_key_problem(value: str, development_default: str) -> str | None:
    """Why `value` is no production SECRET_KEY (never quoting it), or None."""
    if not value:
        return "is not set"
    if value == development_default or value.startswith("django-insecure-"):
        return "is a published development default"
    if len(value) < SECRET_KEY_MIN_LENGTH or len(set(value)) < SECRET_KEY_MIN_DISTINCT:
        return f"is too short (at least {SECRET_KEY_MIN_LENGTH} characters, {SECRET_KEY_MIN_DISTINCT} of them distinct)"
    return None


def hmac_key_problem(value: str, development_defaults: tuple[str, ...]) -> str | None:
    if not value:
        return "is not set"
    if value in development_defaults:
        return "is a published development default"
    if len(value) < HMAC_KEY_MIN_LENGTH:
        return f"is too short (at least {HMAC_KEY_MIN_LENGTH} characters)"
    return None


def fernet_keys_problem(keys: list[str], development_default: str) -> str | None:
    """Why the MultiFernet key list is not production-grade: every key counts, since any key decrypts."""
    if not [key for key in keys if key.strip()]:
        return "is not set"
    for position, key in enumerate(keys, start=1):
        if key == development_default:
            return f"key {position} is a published development default"
        try:
            Fernet(key)
        except (ValueError, TypeError):
            return f"key {position} is not a valid Fernet key (32 url-safe base64-encoded bytes)"
    return None


def authentication_problems(*, secret_key: str, jwt_signing_key: str, dev_secret_key: str) -> dict[str, str]:
    """Setting name -> problem, for the keys that sign sessions and tokens."""
    problems = {}
    if problem := secret_key_problem(secret_key, dev_secret_key):
        problems["SECRET_KEY"] = problem
    # JWT_SIGNING_KEY defaults to SECRET_KEY; judged on its own only when set apart from it.
    if jwt_signing_key != secret_key and (problem := hmac_key_problem(jwt_signing_key, (dev_secret_key,))):
        problems["JWT_SIGNING_KEY"] = problem
    return problems


def encryption_problems(
    *, field_keys: list[str], blind_index_key: str, dev_field_key: str, dev_blind_index_key: str
) -> dict[str, str]:
    """Setting name -> problem, for the keys that protect data at rest."""
    problems = {}
    if problem := fernet_keys_problem(field_keys, dev_field_key):
        problems["FIELD_ENCRYPTION_KEYS"] = problem
    if problem := hmac_key_problem(blind_index_key, (dev_blind_index_key,)):
        problems["BLIND_INDEX_KEY"] = problem
    return problems


@dataclasses.dataclass
class Broker(HealthCheck):
    """The Celery broker accepts a connection (Redis, or the embedded filesystem queue)."""

    def run(self):
        from django.conf import settings
        from kombu import Connection

        try:
            with Connection(
                settings.CELERY_BROKER_URL,
                transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
                connect_timeout=3,
            ) as connection:
                connection.ensure_connection(max_retries=1)
        except Exception as exc:  # any failure to connect is "unavailable"
            raise ServiceUnavailable("Broker unavailable") from exc
