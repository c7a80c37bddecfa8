"""`manage.py connect_cliniko ORG_ID [--base-url URL]` against the Cliniko stand-in on 127.0.0.1: the key comes
from standard input only, is stored encrypted, and the connection test's result is printed."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts import services as accounts_services
from audit.models import AuditEvent
from core.actors import Actor
from sync.models import ClinikoConnection
from tests.cliniko_stub import ClinikoStub

ACTOR = Actor.system("tests")


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def cliniko_settings(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    settings.CLINIKO_USER_AGENT = "Routiq tests (dev@example.com)"
    settings.CLINIKO_MAX_RETRIES = 0  # a failing connection test answers at once


@pytest.fixture
def stub():
    with ClinikoStub() as server:
        yield server


@pytest.fixture
def clinic(db):
    return accounts_services.organization_create(name="Clinic A", actor=ACTOR)


def run(*args, stdin) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("connect_cliniko", *args, stdin=stdin, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_key_from_standard_input_is_stored_and_tested(clinic, stub):
    key = stub.add_account(f"MS0x{uuid.uuid4().hex}-au2")
    stub.generate(key, patients=12, appointments=0)
    out, _ = run(clinic.public_id, "--base-url", stub.base_url, stdin=io.StringIO(f"{key}\n"))
    assert "Connection test: OK (12 patients)" in out
    assert key not in out
    connection = ClinikoConnection.objects.get(organization=clinic)
    assert connection.api_key == key and connection.base_url == stub.base_url and connection.credentials_valid is True
    request = stub.requests_to("/v1/patients", key)[-1]
    assert request.api_key == key  # the stored key is the one Cliniko saw
    assert all(key not in str(event.metadata) for event in AuditEvent.objects.all())


def test_a_terminal_gets_a_hidden_prompt(clinic, stub, monkeypatch):
    key = stub.add_account(f"MS0x{uuid.uuid4().hex}-au2")
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or key)
    out, _ = run(clinic.public_id, "--base-url", stub.base_url, stdin=FakeTerminal())
    assert prompts and "hidden" in prompts[0]
    assert "Connection test: OK" in out
    assert ClinikoConnection.objects.get(organization=clinic).api_key == key


def test_empty_input_is_refused_with_a_clear_error(clinic):
    with pytest.raises(CommandError, match="No API key on standard input"):
        run(clinic.public_id, stdin=io.StringIO(""))
    assert not ClinikoConnection.objects.exists()


def test_the_key_is_never_an_argument(clinic):
    with pytest.raises(CommandError):
        run(clinic.public_id, "MS0xsecret-au2", stdin=io.StringIO(""))
    assert not ClinikoConnection.objects.exists()


def test_unknown_organization_and_bad_base_url(clinic, settings):
    with pytest.raises(CommandError, match="No organization"):
        run("org_doesnotexist", stdin=io.StringIO("MS0xkey-au2\n"))
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    with pytest.raises(CommandError, match=r"https.*\(base_url\)"):
        run(clinic.public_id, "--base-url", "http://cliniko.example.test/v1", stdin=io.StringIO("MS0xkey-au2\n"))
    assert not ClinikoConnection.objects.exists()


def test_a_refused_key_is_saved_but_reported(clinic, stub):
    out = io.StringIO()
    with pytest.raises(CommandError, match="did not accept"):
        call_command(
            "connect_cliniko",
            clinic.public_id,
            "--base-url",
            stub.base_url,
            stdin=io.StringIO("MS0xunknown-au2\n"),
            stdout=out,
        )
    assert "Connection test failed: cliniko_http_401" in out.getvalue()
    assert ClinikoConnection.objects.get(organization=clinic).credentials_valid is False
