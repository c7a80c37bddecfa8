"""core.outbound against real local servers on 127.0.0.1 (loopback allowed by the test settings)."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from core import outbound
from core.outbound import (
    OutboundError,
    OutboundTimeoutError,
    ResponseTooLargeError,
    UnsafeURLError,
    guarded_request,
)
from tests.servers import LocalServer, Recorded, Reply, StaticResolver, tls_contexts


@pytest.fixture(autouse=True)
def allow_loopback(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = True


@pytest.fixture
def connections(monkeypatch):
    """Every TCP connection httpx opens, as (host, port); connections still go through."""
    seen: list[tuple[str, int]] = []
    real = socket.create_connection

    def spy(address, *args, **kwargs):
        seen.append((address[0], address[1]))
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", spy)
    return seen


def echo(request: Recorded) -> Reply:
    body = json.dumps({"method": request.method, "path": request.path, "body": request.body.decode()})
    return Reply(201, {"Content-Type": "application/json", "X-Echo": "yes"}, body)


def test_get_round_trip_keeps_original_host_header(connections):
    resolver = StaticResolver({"receiver.test": "127.0.0.1"})
    with LocalServer(echo) as server:
        response = guarded_request("GET", server.url("/hook?a=1", host="receiver.test"), resolver=resolver)
    assert response.status_code == 201
    assert response.json() == {"method": "GET", "path": "/hook?a=1", "body": ""}
    assert response.headers["x-echo"] == "yes"
    assert response.url == server.url("/hook?a=1", host="receiver.test")
    assert response.elapsed.total_seconds() > 0
    assert len(server.requests) == 1
    assert server.requests[0].headers["Host"] == f"receiver.test:{server.port}"
    assert resolver.calls == ["receiver.test"]
    assert connections == [("127.0.0.1", server.port)]


def test_post_json_and_content(connections):
    with LocalServer(echo) as server:
        posted = guarded_request("POST", server.url("/json"), json={"event": "patient.created"})
        raw = guarded_request("PUT", server.url("/raw"), content=b"hello", headers={"Content-Type": "text/plain"})
    assert posted.status_code == 201 and raw.status_code == 201
    first, second = server.requests
    assert (first.method, json.loads(first.body)) == ("POST", {"event": "patient.created"})
    assert first.headers["Content-Type"] == "application/json"
    assert (second.method, second.body, second.headers["Content-Type"]) == ("PUT", b"hello", "text/plain")
    assert raw.json()["body"] == "hello"


def test_caller_cannot_override_host_header_for_user_urls():
    with LocalServer(echo) as server:
        guarded_request("GET", server.url("/"), headers={"Host": "internal.admin"})
    assert server.requests[0].headers["Host"] == f"127.0.0.1:{server.port}"


@pytest.mark.parametrize("location", ["http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/"])
def test_redirect_is_returned_not_followed(location, connections):
    with LocalServer(lambda request: Reply(302, {"Location": location}, b"")) as server:
        response = guarded_request("GET", server.url("/start"))
    assert response.status_code == 302
    assert response.is_redirect
    assert response.headers["location"] == location
    assert [r.path for r in server.requests] == ["/start"]
    assert connections == [("127.0.0.1", server.port)]


def test_size_cap_by_content_length_rejects_before_reading():
    with LocalServer(lambda request: Reply(200, {}, b"x" * 2_000_000)) as server:
        with pytest.raises(ResponseTooLargeError, match="declares 2000000 bytes"):
            guarded_request("GET", server.url("/big"))


def test_size_cap_default_comes_from_settings(settings):
    settings.OUTBOUND_MAX_RESPONSE_BYTES = 100
    with LocalServer(lambda request: Reply(200, {}, b"x" * 101)) as server:
        with pytest.raises(ResponseTooLargeError):
            guarded_request("GET", server.url("/"))
        assert guarded_request("GET", server.url("/"), max_bytes=101).content == b"x" * 101


def test_size_cap_while_streaming_without_content_length():
    def handler(request):
        return Reply(200, {}, (b"y" * 1024 for _ in range(2000)))

    with LocalServer(handler) as server:
        with pytest.raises(ResponseTooLargeError, match="exceeds 10000 bytes"):
            guarded_request("GET", server.url("/stream"), max_bytes=10_000)


def test_body_at_the_cap_is_accepted():
    with LocalServer(lambda request: Reply(200, {}, b"z" * 5000)) as server:
        response = guarded_request("GET", server.url("/"), max_bytes=5000)
    assert response.content == b"z" * 5000


def test_slow_server_times_out():
    with LocalServer(lambda request: Reply(200, {}, b"late", delay=2)) as server:
        started = time.monotonic()
        with pytest.raises(OutboundTimeoutError):
            guarded_request("GET", server.url("/slow"), timeout=0.3)
        assert time.monotonic() - started < 1.5


def test_dripping_server_hits_the_overall_deadline():
    # Each chunk arrives within the 0.3 s read timeout, but the whole body would take ~4 s.
    reply = Reply(200, {}, (b"." for _ in range(20)), chunk_delay=0.2)
    with LocalServer(lambda request: reply) as server:
        started = time.monotonic()
        with pytest.raises(OutboundTimeoutError, match="took too long"):
            guarded_request("GET", server.url("/drip"), timeout=0.3)
        assert time.monotonic() - started < 2.5


def test_connection_refused_is_an_outbound_error():
    with LocalServer() as server:
        port = server.port
    with pytest.raises(OutboundError) as info:
        guarded_request("GET", f"http://127.0.0.1:{port}/", timeout=1)
    assert type(info.value) is OutboundError


def test_loopback_refused_when_setting_is_false(settings, connections):
    settings.OUTBOUND_ALLOW_LOOPBACK = False
    resolver = StaticResolver({"receiver.test": "127.0.0.1"})
    with LocalServer(echo) as server:
        for url in (server.url("/"), server.url("/", host="receiver.test"), f"http://[::1]:{server.port}/"):
            with pytest.raises(UnsafeURLError):
                guarded_request("GET", url, resolver=resolver)
    assert server.requests == []
    assert connections == []


def test_vendor_urls_skip_the_address_check_but_keep_the_guards(settings):
    settings.OUTBOUND_ALLOW_LOOPBACK = False

    def handler(request):
        if request.path == "/redirect":
            return Reply(301, {"Location": "http://10.0.0.1/"})
        return Reply(200, {}, b"v" * 3000)

    with LocalServer(handler) as server:
        assert guarded_request("GET", server.url("/ok"), user_supplied=False).content == b"v" * 3000
        assert guarded_request("GET", server.url("/redirect"), user_supplied=False).status_code == 301
        with pytest.raises(ResponseTooLargeError):
            guarded_request("GET", server.url("/ok"), user_supplied=False, max_bytes=1000)
        with pytest.raises(UnsafeURLError):
            guarded_request("GET", "ftp://vendor.example/", user_supplied=False)
    assert [r.path for r in server.requests] == ["/ok", "/redirect", "/ok"]


def test_environment_proxies_are_ignored(monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with LocalServer(echo) as server:
        assert guarded_request("GET", server.url("/direct")).status_code == 201
    assert server.requests[0].path == "/direct"


def test_logs_host_and_status_only(caplog):
    with LocalServer(echo) as server, caplog.at_level(logging.INFO, logger="core.outbound"):
        guarded_request("POST", server.url("/hook?token=SECRET-Q"), json={"ssn": "SECRET-B"})
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "127.0.0.1" in text and "201" in text
    assert "SECRET" not in text and "/hook" not in text


def test_identity_encoding_requested_by_default():
    with LocalServer(echo) as server:
        guarded_request("GET", server.url("/"))
        guarded_request("GET", server.url("/"), headers={"Accept-Encoding": "gzip"})
    assert [r.headers["Accept-Encoding"] for r in server.requests] == ["identity", "gzip"]


# --- https: connect to the vetted address, present the original name for SNI and the certificate ----


@pytest.fixture
def trust_test_ca(monkeypatch):
    def install(client_context):
        monkeypatch.setattr(outbound, "_VERIFY", client_context)

    return install


def test_https_uses_hostname_for_sni_and_certificate(trust_test_ca, connections):
    server_tls, client_tls = tls_contexts("receiver.test")
    trust_test_ca(client_tls)
    resolver = StaticResolver({"receiver.test": "127.0.0.1"})
    with LocalServer(echo, tls=server_tls) as server:
        response = guarded_request("GET", server.url("/secure", host="receiver.test"), resolver=resolver)
    assert response.status_code == 201
    assert server.sni == ["receiver.test"]
    assert server.requests[0].headers["Host"] == f"receiver.test:{server.port}"
    assert connections == [("127.0.0.1", server.port)]


def test_https_certificate_for_another_name_is_refused(trust_test_ca):
    server_tls, client_tls = tls_contexts("someone-else.test")
    trust_test_ca(client_tls)
    resolver = StaticResolver({"receiver.test": "127.0.0.1"})
    with LocalServer(echo, tls=server_tls) as server:
        with pytest.raises(OutboundError, match="ConnectError"):
            guarded_request("GET", server.url("/secure", host="receiver.test"), resolver=resolver, timeout=2)
    assert server.requests == []
    assert server.sni == ["receiver.test"]


def test_head_with_large_declared_length_is_fine():
    with LocalServer(lambda request: Reply(200, {}, b"h" * 5000)) as server:
        response = guarded_request("HEAD", server.url("/"), max_bytes=100)
    assert response.status_code == 200
    assert response.headers["content-length"] == "5000" and response.content == b""


# --- ConnectionPool: keep-alive connections bound to one vetted address and one host ------------------


class LocalServerAt(LocalServer):
    """A LocalServer on a chosen address and port (a second address of the same URL's port)."""

    def __init__(self, handler, host: str, port: int):
        from http.server import ThreadingHTTPServer

        super().__init__(handler, host=host)
        self._server.server_close()
        self._server = ThreadingHTTPServer((host, port), self._request_handler_class())
        self._server.daemon_threads = True


def test_pool_reuses_one_connection_for_the_same_address_and_host(connections):
    pool = outbound.ConnectionPool()
    with LocalServer(echo) as server:
        for _ in range(3):
            assert guarded_request("POST", server.url("/hook"), content=b"x", pool=pool).status_code == 201
    pool.close()
    assert connections == [("127.0.0.1", server.port)]
    assert len({request.client_address for request in server.requests}) == 1
    assert pool.keys() == []


def test_pool_never_reuses_a_connection_for_another_vetted_address(connections):
    """The name moves from one address to another (same URL): the request goes to the address vetted for
    it on a connection of its own, and a refused answer is refused before any pooled connection is used."""
    pool = outbound.ConnectionPool()
    resolver = StaticResolver({"receiver.test": "127.0.0.1"})
    with LocalServer(echo) as first:
        try:
            second = LocalServerAt(echo, "127.0.0.2", first.port).start()
        except OSError:
            pytest.skip("127.0.0.2 is not available here")
        try:
            url = first.url("/hook", host="receiver.test")
            guarded_request("GET", url, resolver=resolver, pool=pool)
            resolver.mapping["receiver.test"] = ["127.0.0.2"]
            guarded_request("GET", url, resolver=resolver, pool=pool)
            resolver.mapping["receiver.test"] = ["10.0.0.1"]
            with pytest.raises(UnsafeURLError):
                guarded_request("GET", url, resolver=resolver, pool=pool)
            resolver.mapping["receiver.test"] = ["127.0.0.1"]
            guarded_request("GET", url, resolver=resolver, pool=pool)
        finally:
            second.stop()
    assert len(first.requests) == 2 and len(second.requests) == 1
    assert first.requests[0].client_address == first.requests[1].client_address  # reused for its own address
    assert connections == [("127.0.0.1", first.port), ("127.0.0.2", first.port)]
    assert sorted(key[1] for key in pool.keys()) == ["127.0.0.1", "127.0.0.2"]
    pool.close()


def test_pool_keeps_a_connection_per_host_name_over_tls(trust_test_ca, connections):
    """Two names on one address: each gets its own connection, handshake (SNI) and certificate check."""
    server_tls, client_tls = tls_contexts("a.receiver.test", "b.receiver.test")
    trust_test_ca(client_tls)
    resolver = StaticResolver({"a.receiver.test": "127.0.0.1", "b.receiver.test": "127.0.0.1"})
    pool = outbound.ConnectionPool()
    with LocalServer(echo, tls=server_tls) as server:
        for host in ("a.receiver.test", "b.receiver.test", "a.receiver.test", "b.receiver.test"):
            guarded_request("GET", server.url("/", host=host), resolver=resolver, pool=pool)
    pool.close()
    assert server.sni == ["a.receiver.test", "b.receiver.test"]
    assert len(connections) == 2
    assert [request.headers["Host"].split(":")[0] for request in server.requests] == [
        "a.receiver.test", "b.receiver.test", "a.receiver.test", "b.receiver.test",
    ]  # fmt: skip


def test_pool_keeps_no_cookies():
    pool = outbound.ConnectionPool()
    with LocalServer(lambda request: Reply(200, {"Set-Cookie": "session=abc; Path=/"}, b"ok")) as server:
        guarded_request("GET", server.url("/"), pool=pool)
        guarded_request("GET", server.url("/"), pool=pool)
    pool.close()
    assert [request.headers.get("Cookie") for request in server.requests] == [None, None]


def test_pool_drops_a_connection_whose_response_was_abandoned(connections):
    """A response cut by the size cap is not read to its end: its connection is closed, not reused."""
    pool = outbound.ConnectionPool()
    with LocalServer(lambda request: Reply(200, {}, b"z" * 5000)) as server:
        with pytest.raises(ResponseTooLargeError):
            guarded_request("GET", server.url("/big"), max_bytes=100, pool=pool)
        assert guarded_request("GET", server.url("/big"), pool=pool).content == b"z" * 5000
    pool.close()
    assert len(connections) == 2
