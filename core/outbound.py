"""Guarded outbound HTTP: the one way this project calls other servers (webhooks, Cliniko, SMS, payouts).

`guarded_request()` always applies:

* timeouts on connect, read, write and pool acquisition (`OUTBOUND_TIMEOUT_SECONDS`), plus an overall
  deadline of 3 x that value checked while the body streams, so a server dripping bytes cannot hold a
  worker forever;
* no redirects: a 3xx response is returned to the caller as it is, never followed;
* a response size cap (`OUTBOUND_MAX_RESPONSE_BYTES`): a larger Content-Length is refused before the
  body is read, and the body is streamed and abandoned as soon as it passes the cap. `Accept-Encoding:
  identity` is sent unless the caller sets it, and the cap counts decoded bytes;
* no proxies or other settings from the environment (`trust_env=False`), a fresh client per call (no
  shared cookies or pooled connections between destinations), unless the caller passes a
  `ConnectionPool` (`pool=`): keep-alive connections, each kept for one vetted address AND one host
  (see `ConnectionPool`), never cookies;
* logging of the destination host, status and duration only: never bodies, paths or query strings.

For user-supplied URLs (`user_supplied=True`, the default) it also guards against SSRF:

* scheme http or https only, no userinfo (`user:pass@`), a plain host name or an IP literal;
* IP literals in every legacy form (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`, `[::ffff:7f00:1]`,
  zone ids, trailing dots) are parsed as addresses and never handed to the resolver;
* names are resolved ONCE; if ANY resolved address is not globally routable the URL is refused (see
  `address_refusal` for the policy), then the request connects to the vetted address itself, so a
  second DNS answer (rebinding) cannot redirect it. The original host is kept in the Host header and,
  for https, as TLS SNI and the name the certificate is checked against (httpcore's `sni_hostname`
  request extension sets both `server_hostname` uses). With a pool the name is still resolved and
  checked on every request, and a pooled connection is reused only for the same vetted address and host.

Loopback (127.0.0.0/8 and ::1, nothing else) is allowed only with `OUTBOUND_ALLOW_LOOPBACK`, which tests
set and production refuses. Calls to fixed vendor base URLs that we configure pass `user_supplied=False`:
they skip the address check and keep everything else.
"""

from __future__ import annotations

import contextlib
import functools
import http.cookiejar
import ipaddress
import json as jsonlib
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import certifi
import httpx
from django.conf import settings

logger = logging.getLogger("core.outbound")
# httpx's own INFO lines carry full URLs: settings.LOGGING keeps the httpx/httpcore loggers at WARNING.

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# socket.getaddrinfo-compatible: called as resolver(host, port, type=socket.SOCK_STREAM) and returning
# (family, type, proto, canonname, sockaddr) tuples; only sockaddr[0] is used.
Resolver = Callable[..., list]

# Overall deadline, as a multiple of the per-operation timeout.
_DEADLINE_FACTOR = 3
# TLS verification for httpx: True uses certifi's bundle. Tests may swap in an SSLContext trusting a
# local test CA; nothing else should touch it.
_VERIFY: Any = True


@functools.cache
def _default_tls_context() -> ssl.SSLContext:
    """certifi's bundle, loaded once per process: building it per request costs ~50-90 ms, and every
    call gets a fresh client (no pooled connections shared between destinations)."""
    return ssl.create_default_context(cafile=certifi.where())


def _tls_verify() -> Any:
    return _default_tls_context() if _VERIFY is True else _VERIFY


class OutboundError(Exception):
    """An outbound call failed: refused destination, network error, timeout or oversized response."""


class UnsafeURLError(OutboundError):
    """The destination is refused (scheme, credentials in the URL, or a non-public address)."""


class ResponseTooLargeError(OutboundError):
    """The response body is larger than the allowed maximum."""


class OutboundTimeoutError(OutboundError):
    """Connecting, sending, waiting for or reading the response took too long."""


# --- Address policy ------------------------------------------------------------------------------

_DENIED_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        # IPv4
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT
        "127.0.0.0/8",  # loopback (allowed separately by setting)
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, includes broadcast 255.255.255.255
        # IPv6
        "::/96",  # unspecified, loopback and IPv4-compatible (deprecated) addresses
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b::/96",  # NAT64 well-known prefix
        "64:ff9b:1::/48",  # NAT64 local-use prefix
        "100::/64",  # discard-only
        "2001::/32",  # Teredo
        "2001:2::/48",  # benchmarking
        "2001:10::/28",  # ORCHID
        "2001:20::/28",  # ORCHIDv2
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4
        "3fff::/20",  # documentation (RFC 9637)
        "5f00::/16",  # segment routing SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")
_NAT64_WKP = ipaddress.IPv6Network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses carried inside an IPv6 address (mapped, compatible, 6to4, Teredo, NAT64)."""
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64_WKP or address in _V4_COMPATIBLE:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def address_refusal(address: IPAddress, *, allow_loopback: bool | None = None) -> str | None:
    """Why `address` may not be contacted, or None when it may.

    Allowed: globally routable unicast addresses (`ipaddress` `is_global`) outside the explicit deny list
    above; the deny list is kept because `is_global` alone misses 6to4, NAT64 and others and treats
    IPv4-mapped addresses differently across Python versions. Addresses with a zone id are refused.
    Loopback (127.0.0.0/8, ::1) is allowed only when `allow_loopback` (default: the setting).
    """
    if allow_loopback is None:
        allow_loopback = settings.OUTBOUND_ALLOW_LOOPBACK
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return "addresses with a zone id are not allowed"
    if allow_loopback and (address in _LOOPBACK_V4 if address.version == 4 else address == _LOOPBACK_V6):
        return None
    for network in _DENIED_NETWORKS:
        if address.version == network.version and address in network:
            return "address is not publicly routable"
    if isinstance(address, ipaddress.IPv6Address):
        for embedded in _embedded_ipv4(address):
            if address_refusal(embedded, allow_loopback=False):
                return "address embeds a non-public IPv4 address"
    if not address.is_global or address.is_multicast:
        return "address is not publicly routable"
    return None


def is_allowed_address(address: IPAddress, *, allow_loopback: bool | None = None) -> bool:
    return address_refusal(address, allow_loopback=allow_loopback) is None


# --- Host parsing --------------------------------------------------------------------------------

# One legacy IPv4 component: decimal, octal (leading 0) or hex (0x...). inet_aton decides validity.
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
# What a DNS name may look like once httpx has IDNA-encoded and lowercased it.
_HOSTNAME = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*\.?$")


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address if `host` (as in a URL, IPv6 without brackets) is an IP literal in any form.

    Returns None for a DNS name. Hosts that look numeric but are not valid addresses (`1.2.3.4.5`,
    `08.0.0.1`, `example.0x7f`) raise UnsafeURLError rather than going to a resolver that might read
    them some other way. Legacy IPv4 forms follow inet_aton: `2130706433`, `0177.0.0.1`, `0x7f.1`, `0`.
    """
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return ipaddress.ip_address(unquote(host))  # zone id arrives percent-encoded: fe80::1%25eth0
        except ValueError:
            raise UnsafeURLError("malformed IPv6 address") from None
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if all(_NUMERIC_LABEL.match(label) for label in labels):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            raise UnsafeURLError("malformed IPv4 address") from None
    if _NUMERIC_LABEL.match(labels[-1]):
        # URL parsers (WHATWG) read a host ending in a number as IPv4; never resolve such a name.
        raise UnsafeURLError("malformed IPv4 address")
    return None


def _parse_url(url: str | httpx.URL) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise UnsafeURLError("invalid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise UnsafeURLError("only http and https URLs are allowed")
    if not parsed.raw_host:
        raise UnsafeURLError("URL has no host")
    return parsed


@dataclass(frozen=True)
class Destination:
    """A vetted destination: connect to `address`, present `hostname` (Host header, TLS SNI)."""

    url: httpx.URL
    hostname: str  # as in the URL, IDNA-encoded, no trailing dot
    address: IPAddress
    host_is_ip: bool

    @property
    def connect_url(self) -> httpx.URL:
        """The URL with the vetted address in place of the host name (port, path and query kept)."""
        return self.url.copy_with(host=str(self.address))

    @property
    def host_header(self) -> str:
        return self.url.netloc.decode("ascii")


def _resolve(host: str, port: int, resolver: Resolver | None) -> list[IPAddress]:
    resolve = resolver or socket.getaddrinfo
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise OutboundError(f"could not resolve host {host}") from None
    addresses: list[IPAddress] = []
    for info in infos:
        try:
            address = ipaddress.ip_address(info[4][0])
        except ValueError:
            raise UnsafeURLError(f"host {host} resolved to something that is not an IP address") from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OutboundError(f"could not resolve host {host}")
    return addresses


def validate_destination(url: str | httpx.URL, *, resolver: Resolver | None = None) -> Destination:
    """Check a user-supplied URL and resolve its host once; raise UnsafeURLError if it is refused.

    `resolver` defaults to socket.getaddrinfo and is never called for IP literals. Every resolved address
    must be allowed (one bad answer refuses the URL); the request then goes to the first of them.
    Unresolvable names raise OutboundError. Messages name the host and the reason, never credentials,
    paths or queries.
    """
    parsed = _parse_url(url)
    if parsed.userinfo:
        raise UnsafeURLError("URLs with credentials (user:password@) are not allowed")
    host = parsed.raw_host.decode("ascii")
    literal = parse_ip_literal(host)
    if literal is not None:
        addresses = [literal]
    elif not _HOSTNAME.match(host):
        raise UnsafeURLError("host name contains characters that are not allowed")
    else:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        addresses = _resolve(host, port, resolver)
    for address in addresses:
        reason = address_refusal(address)
        if reason:
            logger.warning("outbound refused host=%s address=%s: %s", host, address, reason)
            raise UnsafeURLError(f"destination {host} is not allowed: {reason}")
    return Destination(url=parsed, hostname=host.rstrip("."), address=addresses[0], host_is_ip=literal is not None)


# --- Connection pool -----------------------------------------------------------------------------

# (scheme, address or fixed host, port, Host header, TLS server name): what a pooled connection is bound to.
PoolKey = tuple[str, str, int, str, str | None]


class ConnectionPool:
    """Keep-alive connections for `guarded_request(pool=...)`, for a worker that sends many requests to a
    few hosts (webhook deliveries). Without it every call opens a new connection (and TLS handshake).

    One httpx.Client per `PoolKey`: the vetted address it connects to, the port, and the Host header and
    TLS server name it presents. So a connection is reused only for a request that vetted that very
    address this time and names the same host: a DNS answer that changes (to another public address, or
    to a refused one, which is refused before any connection is chosen) can never send a request down a
    connection opened to another address, and a certificate checked for one name never serves another.
    Cookies are never stored. Idle connections are dropped after `keepalive_expiry` seconds (shorter than
    common servers' idle timeouts, so a request seldom meets a connection the server is closing); at most
    `max_clients` destinations are kept, the least recently used closed first. A forked child starts
    empty (it never shares its parent's sockets). Thread-safe; typically one per process."""

    def __init__(self, *, max_clients: int = 32, keepalive_expiry: float = 2.0, max_connections: int = 4):
        self.max_clients = max_clients
        self.keepalive_expiry = keepalive_expiry
        self.max_connections = max_connections
        self._clients: OrderedDict[PoolKey, tuple[httpx.Client, Any]] = OrderedDict()
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def keys(self) -> list[PoolKey]:
        with self._lock:
            return list(self._clients)

    def client(self, key: PoolKey, verify: Any) -> httpx.Client:
        """The client for `key` (created on first use, or again if the TLS verification changed)."""
        with self._lock:
            entry = self._clients.get(key)
            if entry is not None and entry[1] is verify:
                self._clients.move_to_end(key)
                return entry[0]
            retired = [entry[0]] if entry is not None else []
            client = httpx.Client(
                follow_redirects=False,
                trust_env=False,
                verify=verify,
                cookies=http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
                limits=httpx.Limits(
                    max_connections=self.max_connections,
                    max_keepalive_connections=self.max_connections,
                    keepalive_expiry=self.keepalive_expiry,
                ),
            )
            self._clients[key] = (client, verify)
            while len(self._clients) > self.max_clients:
                retired.append(self._clients.popitem(last=False)[1][0])
        for old in retired:
            old.close()
        return client

    def close(self) -> None:
        with self._lock:
            clients = [client for client, _ in self._clients.values()]
            self._clients.clear()
        for client in clients:
            client.close()

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._clients = OrderedDict()  # the parent's sockets stay the parent's: dropped, never closed here


# --- Requests ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboundResponse:
    status_code: int
    headers: httpx.Headers
    content: bytes
    elapsed: timedelta
    url: str  # the URL as the caller gave it (host name, not the vetted address)

    @property
    def text(self) -> str:
        try:
            return self.content.decode(_charset(self.headers) or "utf-8", errors="replace")
        except LookupError:  # unknown charset name
            return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def is_redirect(self) -> bool:
        return 300 <= self.status_code < 400


def _charset(headers: httpx.Headers) -> str | None:
    for param in headers.get("content-type", "").split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip('"')
    return None


def guarded_request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    content: bytes | str | None = None,
    json: Any = None,
    timeout: float | None = None,
    max_bytes: int | None = None,
    user_supplied: bool = True,
    resolver: Resolver | None = None,
    pool: ConnectionPool | None = None,
) -> OutboundResponse:
    """Send one HTTP request under the guards described in the module docstring.

    `timeout` (seconds, default OUTBOUND_TIMEOUT_SECONDS) applies to each of connect/read/write/pool;
    `max_bytes` defaults to OUTBOUND_MAX_RESPONSE_BYTES. Any status, including 3xx/4xx/5xx, is returned.
    `pool` reuses keep-alive connections (`ConnectionPool`); a response abandoned part-way (size cap,
    deadline) closes its connection instead of returning it to the pool.
    Raises UnsafeURLError (refused before any connection), OutboundTimeoutError, ResponseTooLargeError,
    or OutboundError for other failures (DNS, connection refused, TLS, protocol errors).
    """
    timeout = settings.OUTBOUND_TIMEOUT_SECONDS if timeout is None else timeout
    max_bytes = settings.OUTBOUND_MAX_RESPONSE_BYTES if max_bytes is None else max_bytes
    request_headers = httpx.Headers(headers or {})
    request_headers.setdefault("Accept-Encoding", "identity")
    extensions: dict[str, Any] = {}
    if user_supplied:
        destination = validate_destination(url, resolver=resolver)
        target = destination.connect_url
        host = destination.hostname
        request_headers["Host"] = destination.host_header
        if target.scheme == "https" and not destination.host_is_ip:
            # httpcore uses this as server_hostname: the SNI sent and the name the certificate must match.
            extensions["sni_hostname"] = destination.hostname
        pool_key: PoolKey = (
            target.scheme, str(destination.address), target.port or _default_port(target.scheme),
            destination.host_header, extensions.get("sni_hostname"),
        )  # fmt: skip
    else:
        target = _parse_url(url)
        host = target.host
        pool_key = (target.scheme, target.host, target.port or _default_port(target.scheme), target.host, None)

    start = time.monotonic()
    deadline = start + timeout * _DEADLINE_FACTOR
    if pool is None:
        client_context = httpx.Client(follow_redirects=False, trust_env=False, verify=_tls_verify())
    else:
        client_context = contextlib.nullcontext(pool.client(pool_key, _tls_verify()))
    try:
        with client_context as client:
            with client.stream(
                method, target, headers=request_headers, content=content, json=json, extensions=extensions,
                timeout=httpx.Timeout(timeout),
            ) as response:  # fmt: skip
                declared = response.headers.get("content-length", "")
                # A HEAD answer declares the length of a body it does not send.
                if method.upper() != "HEAD" and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
                    raise ResponseTooLargeError(f"response from {host} declares {declared} bytes (max {max_bytes})")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise ResponseTooLargeError(f"response from {host} exceeds {max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise OutboundTimeoutError(f"response from {host} took too long")
                status, response_headers = response.status_code, response.headers
    except httpx.TimeoutException as exc:
        _log_failure(method, host, start, type(exc).__name__)
        raise OutboundTimeoutError(f"timed out talking to {host}") from exc
    except httpx.HTTPError as exc:
        _log_failure(method, host, start, type(exc).__name__)
        raise OutboundError(f"request to {host} failed: {type(exc).__name__}") from exc
    except OutboundError as exc:
        _log_failure(method, host, start, type(exc).__name__)
        raise
    elapsed = timedelta(seconds=time.monotonic() - start)
    logger.info("outbound %s %s -> %s in %dms", method.upper(), host, status, elapsed.total_seconds() * 1000)
    return OutboundResponse(
        status_code=status, headers=response_headers, content=bytes(body), elapsed=elapsed, url=str(url)
    )


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _log_failure(method: str, host: str, start: float, what: str) -> None:
    logger.warning(
        "outbound %s %s failed after %dms: %s", method.upper(), host, (time.monotonic() - start) * 1000, what
    )
