"""Production refuses to start on missing secrets or test-only switches."""

import secrets

import pytest
from cryptography.fernet import Fernet

from tests.settings_process import start_settings as _start


def test_production_starts_with_everything_set():
    result = _start({})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"  # DEBUG is off unless asked for


@pytest.mark.parametrize(
    "missing", ["SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "BLIND_INDEX_KEY", "ALLOWED_HOSTS", "REDIS_URL"]
)
def test_production_refuses_to_start_without(missing):
    result = _start({}, drop=(missing,))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr


def test_production_refuses_loopback_outbound():
    result = _start({"OUTBOUND_ALLOW_LOOPBACK": "true"})
    assert result.returncode != 0
    assert "OUTBOUND_ALLOW_LOOPBACK" in result.stderr


def test_unknown_app_env_is_refused():
    result = _start({"APP_ENV": "staging-ish"})
    assert result.returncode != 0
    assert "APP_ENV" in result.stderr


# Published development defaults and weak keys (issue 10, finding 1). Each message names the setting and
# never prints its value.
DEV_SECRET_KEY = "dev-insecure-secret-key-never-use-in-production-0123456789"
DEV_FIELD_KEY = "ZGV2LWluc2VjdXJlLWZpZWxkLWtleS0wMTIzNDU2Nzg="
DEV_BLIND_INDEX_KEY = "dev-insecure-blind-index-key"
GOOD_FERNET_KEY = "c2VjcmV0LWZlcm5ldC1rZXktZm9yLXRoZS10ZXN0cyE="  # a valid key that is no default


def test_development_defaults_in_this_test_are_the_published_ones():
    from django.conf import settings

    assert (settings.DEV_SECRET_KEY, settings.DEV_FIELD_KEY, settings.DEV_BLIND_INDEX_KEY) == (
        DEV_SECRET_KEY,
        DEV_FIELD_KEY,
        DEV_BLIND_INDEX_KEY,
    )


@pytest.mark.parametrize(
    "name, value",
    [
        ("SECRET_KEY", DEV_SECRET_KEY),
        ("SECRET_KEY", "django-insecure-" + "k3y-0f-a-n3w-pr0j3ct-" * 3),
        ("SECRET_KEY", "Short-but-varied-key-0123456789"),  # 31 characters
        ("SECRET_KEY", "ab" * 40),  # long, but 2 distinct characters
        ("FIELD_ENCRYPTION_KEYS", DEV_FIELD_KEY),
        ("FIELD_ENCRYPTION_KEYS", f"{GOOD_FERNET_KEY},{DEV_FIELD_KEY}"),  # an old key still decrypts: any counts
        ("FIELD_ENCRYPTION_KEYS", "not-a-fernet-key-but-long-enough-to-look-like-one"),
        ("FIELD_ENCRYPTION_KEYS", f"{GOOD_FERNET_KEY},short"),
        ("BLIND_INDEX_KEY", DEV_BLIND_INDEX_KEY),
        ("BLIND_INDEX_KEY", "31-characters-of-blind-index-k!"),
        ("JWT_SIGNING_KEY", DEV_SECRET_KEY),
        ("JWT_SIGNING_KEY", "short-jwt-signing-key"),
    ],
)
def test_production_refuses_a_development_default_or_weak_key(name, value):
    result = _start({name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr
    for part in value.split(","):
        assert part not in result.stderr  # the value never reaches the logs


@pytest.mark.parametrize("debug", ["true", "1", "on"])
def test_production_refuses_debug(debug):
    result = _start({"DEBUG": debug})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DEBUG" in result.stderr


def test_production_starts_with_rotated_keys_and_its_own_jwt_key():
    result = _start(
        {
            "FIELD_ENCRYPTION_KEYS": f"{GOOD_FERNET_KEY},{Fernet.generate_key().decode()}",
            "JWT_SIGNING_KEY": secrets.token_urlsafe(32),
            "DEBUG": "false",
        }
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"
