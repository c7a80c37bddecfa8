"""Production refuses to start on missing secrets or test-only switches."""

import pytest

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
