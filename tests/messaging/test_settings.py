"""Production refuses MESSAGING_BACKEND=twilio without credentials and a sender, and locmem outright."""

from __future__ import annotations

import pytest

from tests.settings_process import start_settings as _start

TWILIO = {
    "MESSAGING_BACKEND": "twilio",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "token",
    "TWILIO_FROM_NUMBER": "+15005550006",
}


def test_production_starts_with_twilio_configured():
    result = _start(TWILIO)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("missing", ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"])
def test_production_twilio_refuses_to_start_without(missing):
    result = _start({**TWILIO, missing: ""})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and missing in result.stderr


def test_production_twilio_whatsapp_sender_alone_is_enough():
    result = _start({**TWILIO, "TWILIO_FROM_NUMBER": "", "TWILIO_WHATSAPP_FROM": "+14155238886"})
    assert result.returncode == 0, result.stderr[-2000:]


def test_production_refuses_locmem():
    result = _start({"MESSAGING_BACKEND": "locmem"})
    assert result.returncode != 0 and "locmem" in result.stderr


def test_unknown_backend_is_refused():
    result = _start({"MESSAGING_BACKEND": "pigeon"})
    assert result.returncode != 0 and "MESSAGING_BACKEND" in result.stderr
