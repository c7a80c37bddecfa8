"""Start Django's settings in a fresh process with a production environment, to test what production
refuses at start-up (shared by the settings tests of each app)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION_ENV = {
    "APP_ENV": "production",
    # Generated as the README says, so they pass production's key rules (length, distinct characters).
    "SECRET_KEY": secrets.token_urlsafe(64),
    "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "BLIND_INDEX_KEY": secrets.token_urlsafe(32),
    "ALLOWED_HOSTS": "api.example.com",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def start_settings(env_overrides: dict, drop: tuple = ()) -> subprocess.CompletedProcess:
    """Load config.settings in a new interpreter under PRODUCTION_ENV + `env_overrides` - `drop`; prints DEBUG."""
    inherited_switches = {"OUTBOUND_ALLOW_LOOPBACK", "DEBUG", "JWT_SIGNING_KEY"}
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV and k not in inherited_switches}
    env.update(PRODUCTION_ENV)
    env.update(env_overrides)
    for name in drop:
        env.pop(name, None)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    code = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
