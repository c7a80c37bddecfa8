"""Issue 10, finding 6: forwarded headers are believed only from configured proxy addresses (TRUSTED_PROXIES),
never by count; rotating X-Forwarded-For from anywhere else changes nothing, failure counts included."""

from __future__ import annotations

import pytest
from django.test import Client

from core.apis import CAREOS_FAILURES
from core.net import client_ip
from tests.leads.factories import make_platform
from tests.settings_process import start_settings

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_ratelimit_clock")]

PROXIES = ["10.0.0.0/24", "2001:db8:ff::/48"]


@pytest.mark.parametrize(
    "proxies, remote, header, expected",
    [
        ([], "10.0.0.9", "1.1.1.1", "10.0.0.9"),  # nothing trusted: the header is ignored
        (PROXIES, "198.51.100.9", "1.1.1.1", "198.51.100.9"),  # peer is not our proxy: ignored
        (PROXIES, "10.0.0.9", "6.6.6.6, 1.1.1.1", "1.1.1.1"),  # our proxy saw 1.1.1.1; 6.6.6.6 is the client's
        (PROXIES, "10.0.0.9", "6.6.6.6, 1.1.1.1, 10.0.0.2", "1.1.1.1"),  # two of our proxies: skipped
        (PROXIES, "10.0.0.9", "", "10.0.0.9"),  # our proxy sent no header: the proxy is the peer
        (PROXIES, "10.0.0.9", "10.0.0.3, 10.0.0.2", "10.0.0.3"),  # all ours: the leftmost we know
        (PROXIES, "10.0.0.9", "1.1.1.1, not-an-ip", "10.0.0.9"),  # garbage stops the walk
        (PROXIES, "10.0.0.9", "1.1.1.1:443", "10.0.0.9"),  # a port is not an address
        (PROXIES, "::ffff:10.0.0.9", "2001:db8::7", "2001:db8::7"),  # IPv4-mapped peer is the IPv4 proxy
        (PROXIES, "2001:db8:ff::1", " 192.0.2.1 ,2001:db8:ff::2", "192.0.2.1"),
        (PROXIES, "::ffff:198.51.100.9", "1.1.1.1", "198.51.100.9"),  # reported as IPv4
    ],
)
def test_client_ip_walks_from_the_right_past_trusted_proxies(rf, settings, proxies, remote, header, expected):
    settings.TRUSTED_PROXIES = proxies
    request = rf.get("/", HTTP_X_FORWARDED_FOR=header, REMOTE_ADDR=remote)
    assert client_ip(request) == expected


def _bad_key(client, setup, forwarded):
    headers = setup.headers(api_key=setup.api_key[:-6] + "XXXXXX")
    return client.post("/api/leads/ingest", setup.lead(), content_type="application/json",
                       HTTP_X_FORWARDED_FOR=forwarded, **headers)


def test_rotating_x_forwarded_for_from_an_untrusted_peer_never_resets_the_failure_count(settings):
    settings.TRUSTED_PROXIES = PROXIES
    setup = make_platform()
    direct = Client(REMOTE_ADDR="198.51.100.9")  # reached the app without going through our proxy
    statuses = [_bad_key(direct, setup, f"203.0.113.{i}").status_code for i in range(CAREOS_FAILURES.per_ip + 10)]
    assert statuses == [401] * CAREOS_FAILURES.per_ip + [429] * 10


def test_behind_our_proxy_each_client_has_its_own_count(settings):
    settings.TRUSTED_PROXIES = PROXIES
    setup = make_platform()
    proxy = Client(REMOTE_ADDR="10.0.0.9")
    # The client may prepend anything; our proxy appends the address it saw (203.0.113.5).
    statuses = [_bad_key(proxy, setup, f"6.6.6.{i}, 203.0.113.5").status_code
                for i in range(CAREOS_FAILURES.per_ip + 1)]
    assert statuses == [401] * CAREOS_FAILURES.per_ip + [429]
    # Another client behind the same proxy is not throttled.
    assert _bad_key(proxy, setup, "203.0.113.6").status_code == 401


def test_ipv6_clients_are_counted_per_64(settings):
    setup = make_platform()
    statuses = [_bad_key(Client(REMOTE_ADDR=f"2001:db8:1:2::{i:x}"), setup, "").status_code
                for i in range(1, CAREOS_FAILURES.per_ip + 2)]
    assert statuses == [401] * CAREOS_FAILURES.per_ip + [429]
    assert _bad_key(Client(REMOTE_ADDR="2001:db8:1:3::1"), setup, "").status_code == 401


def test_x_forwarded_proto_is_believed_only_from_our_proxies(settings):
    settings.TRUSTED_PROXIES = PROXIES
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    forged = Client(REMOTE_ADDR="198.51.100.9").get("/", HTTP_X_FORWARDED_PROTO="https")
    assert forged.status_code == 301 and forged["Location"].startswith("https://")
    assert Client(REMOTE_ADDR="10.0.0.9").get("/", HTTP_X_FORWARDED_PROTO="https").status_code == 200


def test_trusted_proxy_count_is_refused_and_bad_proxy_entries_are_named():
    refused = start_settings({"TRUSTED_PROXY_COUNT": "1"})
    assert refused.returncode != 0 and "TRUSTED_PROXY_COUNT was replaced by TRUSTED_PROXIES" in refused.stderr
    typo = start_settings({"TRUSTED_PROXIES": "10.0.0.5,10.0.0.1/8"})
    assert typo.returncode != 0 and "TRUSTED_PROXIES: '10.0.0.1/8' is not a valid" in typo.stderr
    ok = start_settings({"TRUSTED_PROXIES": "10.0.0.5, 2001:db8::/32"})
    assert ok.returncode == 0, ok.stderr
