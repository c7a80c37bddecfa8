"""Production refuses to start on missing secrets or test-only switches."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "APP_ENV": "production",
    "SECRET_KEY": "x" * 60,
    "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "BLIND_INDEX_KEY": "b" * 40,
    "ALLOWED_HOSTS": "api.example.com",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def _start(env_overrides: dict, drop: tuple = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV and k != "OUTBOUND_ALLOW_LOOPBACK"}
    env.update(PRODUCTION_ENV)
    env.update(env_overrides)
    for name in drop:
        env.pop(name, None)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


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
