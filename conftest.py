"""Loaded before Django is configured: test environment defaults (the environment still wins)."""

import os

os.environ.setdefault("APP_ENV", "test")
# Tests talk to servers they start on 127.0.0.1 (vendor simulators, webhook receivers).
os.environ.setdefault("OUTBOUND_ALLOW_LOOPBACK", "true")
os.environ.setdefault("API_KEY_BCRYPT_ROUNDS", "4")
