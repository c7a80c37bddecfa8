"""SSRF guard of core.outbound: user-supplied URLs that must be refused before any connection."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from core import outbound
from core.outbound import (
    UnsafeURLError,
    address_refusal,
    guarded_request,
    parse_ip_literal,
    validate_destination,
)
from tests.servers import StaticResolver

PUBLIC = "93.184.215.14"
PUBLIC_V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

RESOLVER_MAP = {
    "localhost": ["127.0.0.1", "::1"],
    "internal.test": "10.0.0.1",
    "metadata.test": "169.254.169.254",
    "mixed.test": [PUBLIC, "10.0.0.1"],
    "mixed6.test": [PUBLIC, "fd00::1"],
    "mapped.test": "::ffff:10.0.0.1",
    "nat64.test": "64:ff9b::a9fe:a9fe",
    "cgnat.test": "100.64.0.1",
    "public.test": PUBLIC,
    "public6.test": PUBLIC_V6,
    "both.test": [PUBLIC, PUBLIC_V6],
}

# (url, needs the resolver): literal hosts must be refused without a lookup.
REFUSED = [
    ("http://127.0.0.1/", False),
    ("http://127.0.0.1:8000/admin", False),
    ("http://127.255.255.254/", False),
    ("http://localhost/", True),
    ("http://localhost./", True),
    ("http://2130706433/", False),
    ("http://0177.0.0.1/", False),
    ("http://0x7f000001/", False),
    ("http://0x7f.0.0.1/", False),
    ("http://0x7F.1/", False),
    ("http://127.1/", False),
    ("http://127.0.0.1./", False),
    ("http://0/", False),
    ("http://0.0.0.0/", False),
    ("http://[::]/", False),
    ("http://[::1]/", False),
    ("http://[::ffff:127.0.0.1]/", False),
    ("http://[::ffff:7f00:1]/", False),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/", False),
    ("http://[::127.0.0.1]/", False),
    ("http://[::ffff:8.8.8.8]/", False),  # mapped form refused even for a public v4 address
    ("http://10.0.0.1/", False),
    ("http://172.16.0.1/", False),
    ("http://172.31.255.255/", False),
    ("http://192.168.1.1/", False),
    ("http://169.254.169.254/latest/meta-data/", False),
    ("http://0xa9fea9fe/latest/meta-data/", False),
    ("http://100.64.0.1/", False),
    ("http://100.127.255.254/", False),
    ("http://192.0.2.1/", False),
    ("http://198.51.100.7/", False),
    ("http://203.0.113.9/", False),
    ("http://198.18.0.1/", False),
    ("http://224.0.0.1/", False),
    ("http://255.255.255.255/", False),
    ("http://240.0.0.1/", False),
    ("http://[fd00::1]/", False),
    ("http://[fc00::1]/", False),
    ("http://[fe80::1]/", False),
    ("http://[fe80::1%25eth0]/", False),
    ("http://[fec0::1]/", False),
    ("http://[ff02::1]/", False),
    ("http://[64:ff9b::a00:1]/", False),
    ("http://[64:ff9b::808:808]/", False),  # NAT64 refused wholesale
    ("http://[64:ff9b:1::a00:1]/", False),
    ("http://[2002:7f00:1::]/", False),
    ("http://[2002:808:808::1]/", False),  # 6to4 refused wholesale
    ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", False),  # Teredo
    ("http://[2001:db8::1]/", False),
    ("http://1.2.3.4.5/", False),  # numeric but not an address: never resolved
    ("http://08.0.0.1/", False),
    ("http://example.0x7f/", False),
    ("ftp://example.com/", False),
    ("file:///etc/passwd", False),
    ("gopher://example.com:70/", False),
    ("javascript:alert(1)", False),
    ("http://user:pass@example.com/", False),
    ("http://user@public.test/", False),
    ("http:///nohost", False),
    ("http://internal.test/", True),
    ("http://metadata.test/latest/meta-data/", True),
    ("http://mixed.test/", True),
    ("http://mixed6.test/", True),
    ("http://mapped.test/", True),
    ("http://nat64.test/", True),
    ("http://cgnat.test:8443/", True),
    ("https://internal.test/", True),
    ("http://a%2eb.test/", False),  # percent-encoded host: refused, not resolved
]


@pytest.fixture
def no_loopback(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test on any real DNS lookup or TCP connection."""
    attempts: list[tuple] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"unexpected network use: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def test_table_is_large_enough():
    assert len(REFUSED) >= 30


@pytest.mark.parametrize(("url", "resolves"), REFUSED, ids=[url for url, _ in REFUSED])
def test_refused_by_validation(url, resolves, no_loopback, no_network):
    resolver = StaticResolver(RESOLVER_MAP)
    with pytest.raises(UnsafeURLError):
        validate_destination(url, resolver=resolver)
    # Literal hosts never reach the resolver; names are looked up exactly once.
    assert len(resolver.calls) == (1 if resolves else 0)
    assert no_network == []


@pytest.mark.parametrize(("url", "resolves"), REFUSED, ids=[url for url, _ in REFUSED])
def test_refused_request_makes_no_connection(url, resolves, no_loopback, no_network):
    resolver = StaticResolver(RESOLVER_MAP)
    with pytest.raises(UnsafeURLError):
        guarded_request("GET", url, resolver=resolver, timeout=0.5)
    assert no_network == []


def test_refusal_message_does_not_echo_credentials_or_query(no_loopback, no_network):
    with pytest.raises(UnsafeURLError) as info:
        validate_destination("http://alice:s3cret@example.com/?token=abc")
    assert "s3cret" not in str(info.value)
    assert "credentials" in str(info.value)
    with pytest.raises(UnsafeURLError) as info:
        validate_destination("http://internal.test/path?token=abc", resolver=StaticResolver(RESOLVER_MAP))
    message = str(info.value)
    assert "internal.test" in message and "token" not in message and "10.0.0.1" not in message


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://public.test/", PUBLIC),
        ("https://public.test:8443/hook?x=1", PUBLIC),
        ("http://public6.test/", PUBLIC_V6),
        ("http://both.test/", PUBLIC),
        (f"http://{PUBLIC}/", PUBLIC),
        ("http://1572394766/", PUBLIC),  # decimal form of 93.184.215.14
        (f"http://[{PUBLIC_V6}]/", PUBLIC_V6),
        ("http://PUBLIC.test./", PUBLIC),
    ],
)
def test_public_destinations_pass_validation(url, address, no_loopback, no_network):
    destination = validate_destination(url, resolver=StaticResolver(RESOLVER_MAP))
    assert destination.address == ipaddress.ip_address(address)
    assert destination.connect_url.host == address
    # Only the host is swapped: path, query and port stay.
    original = destination.url
    assert (destination.connect_url.port, destination.connect_url.raw_path) == (original.port, original.raw_path)


def test_public_name_is_resolved_once_with_the_url_port(no_loopback, no_network):
    resolver = StaticResolver(RESOLVER_MAP)
    validate_destination("https://public.test:8443/x", resolver=resolver)
    assert resolver.calls == ["public.test"]


def test_unresolvable_name_is_an_outbound_error(no_loopback, no_network):
    with pytest.raises(outbound.OutboundError) as info:
        validate_destination("http://nowhere.test/", resolver=StaticResolver({}))
    assert not isinstance(info.value, UnsafeURLError)


def test_default_resolver_is_getaddrinfo(no_loopback, monkeypatch):
    seen = []

    def fake_getaddrinfo(host, port, *args, **kwargs):
        seen.append((host, port))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(UnsafeURLError):
        validate_destination("http://example.test/")
    assert seen == [("example.test", 80)]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:7f00:1", "::ffff:127.0.0.1"),
        ("fe80::1%25eth0", "fe80::1%eth0"),
        ("example.com", None),
        ("example.com.", None),
        ("cafe.be", None),
        ("0x.example", None),
    ],
)
def test_parse_ip_literal(host, expected):
    assert parse_ip_literal(host) == (ipaddress.ip_address(expected) if expected is not None else None)


@pytest.mark.parametrize("host", ["1.2.3.4.5", "256.0.0.1", "08.0.0.1", "4294967296", "foo.127", "[::1:::]"])
def test_parse_ip_literal_rejects_malformed_numeric_hosts(host):
    with pytest.raises(UnsafeURLError):
        parse_ip_literal(host)


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", PUBLIC, PUBLIC_V6, "2001:4860:4860::8888", "2a00:1450:4001:81c::200e"],
)
def test_global_addresses_allowed(address):
    assert address_refusal(ipaddress.ip_address(address), allow_loopback=False) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "127.8.9.10", "::1"])
def test_loopback_only_with_the_setting(address):
    ip = ipaddress.ip_address(address)
    assert address_refusal(ip, allow_loopback=True) is None
    assert address_refusal(ip, allow_loopback=False) is not None


@pytest.mark.parametrize(
    "address",
    ["::ffff:127.0.0.1", "::127.0.0.1", "0.0.0.0", "::", "10.0.0.1", "169.254.169.254", "2002:7f00:1::",
     "64:ff9b::7f00:1", "fe80::1"],
)
def test_loopback_setting_allows_nothing_else(address):
    assert address_refusal(ipaddress.ip_address(address), allow_loopback=True) is not None


def test_loopback_setting_read_at_call_time(settings, no_network):
    settings.OUTBOUND_ALLOW_LOOPBACK = True
    assert validate_destination("http://127.0.0.1:9/").address == ipaddress.ip_address("127.0.0.1")
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    with pytest.raises(UnsafeURLError):
        validate_destination("http://127.0.0.1:9/")
