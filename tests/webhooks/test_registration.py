"""Registration refusals (issue 10, finding 7): every refused destination gets the same message and code, so
registration cannot be used to learn which names our resolver knows or where they point; the precise
reason is logged. The SSRF guard itself (tests/core/test_outbound.py, test_ssrf.py) is unchanged."""

from __future__ import annotations

import logging

import pytest

from tests.servers import StaticResolver
from tests.webhooks.factories import register
from webhooks import services
from webhooks.models import WebhookEndpoint
from webhooks.services.endpoints import URL_REFUSED_MESSAGE

pytestmark = pytest.mark.django_db

REFUSED = [
    "http://no-such-name.partner.test/hook",  # NXDOMAIN
    "http://private.partner.test/hook",  # resolves to 10.0.0.5
    "http://mixed.partner.test/hook",  # one public, one private answer
    "http://metadata.partner.test/hook",  # link-local (cloud metadata)
    "http://10.0.0.5/hook",  # private literal
    "http://0x7f000001/hook",  # loopback in a legacy form (loopback not allowed here)
    "http://[::ffff:10.0.0.1]/hook",  # IPv4-mapped private
    "http://user:pw@hooks.partner.test/hook",  # credentials
]


@pytest.fixture
def resolver(monkeypatch, settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    fake = StaticResolver(
        {
            "private.partner.test": "10.0.0.5",
            "mixed.partner.test": ["93.184.216.34", "192.168.1.1"],
            "metadata.partner.test": "169.254.169.254",
            "hooks.partner.test": "93.184.216.34",
        }
    )
    monkeypatch.setattr(services, "RESOLVER", fake)
    return fake


@pytest.mark.parametrize("url", REFUSED)
def test_every_refused_destination_gets_the_same_answer(resolver, url):
    with pytest.raises(services.WebhookEndpointInvalid) as excinfo:
        register(url)
    assert (excinfo.value.message, excinfo.value.code) == (URL_REFUSED_MESSAGE, "url_refused")
    assert not WebhookEndpoint.objects.exists()


def test_the_reason_is_logged_not_returned(resolver, caplog):
    with caplog.at_level(logging.WARNING, logger="webhooks.endpoints"):
        for url in ("http://no-such-name.partner.test/hook", "http://private.partner.test/hook"):
            with pytest.raises(services.WebhookEndpointInvalid):
                register(url)
    lines = [record.getMessage() for record in caplog.records if record.name == "webhooks.endpoints"]
    assert len(lines) == 2
    assert "host=no-such-name.partner.test reason=unresolvable" in lines[0]
    assert "host=private.partner.test reason=unsafe" in lines[1] and "not publicly routable" in lines[1]
    assert "/hook" not in "".join(lines)  # the host only, never the path


def test_a_public_destination_is_registered(resolver):
    endpoint, secret = register("http://hooks.partner.test/hook")
    assert endpoint.is_active and len(secret) == 64
    assert resolver.calls == ["hooks.partner.test"]


def test_syntax_errors_keep_their_own_message(resolver, settings):
    """Only destination refusals are merged: a URL's own form depends on nothing of ours."""
    settings.WEBHOOK_REQUIRE_HTTPS = True
    with pytest.raises(services.WebhookEndpointInvalid) as excinfo:
        register("http://hooks.partner.test/hook")
    assert excinfo.value.code == "https_required"
    assert resolver.calls == []
