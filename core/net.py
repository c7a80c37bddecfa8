"""Client address of a request, believing X-Forwarded-For only from our own proxies (by address)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(cidrs) -> list[Network]:
    """IPv4/IPv6 networks from CIDR strings (a bare address is a /32 or /128). ValueError names the first
    bad entry. Host bits set are refused ("10.0.0.1/8" is a typo, not a network)."""
    networks = []
    for cidr in cidrs:
        if not isinstance(cidr, str):
            raise ValueError(f"{cidr!r} is not a CIDR string")
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=True))
        except ValueError as exc:
            raise ValueError(f"{cidr!r} is not a valid IPv4 or IPv6 network: {exc}") from None
    return networks


def _address(text: str) -> Address | None:
    """An address, IPv4-mapped IPv6 (::ffff:a.b.c.d, as dual-stack sockets report IPv4 peers) as IPv4."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _inside(address: Address, networks) -> bool:
    return any(address.version == network.version and address in network for network in networks)


@lru_cache(maxsize=8)
def _trusted(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(parse_networks(entries))


def trusted_proxies() -> tuple[Network, ...]:
    """settings.TRUSTED_PROXIES parsed (validated at start-up by config.settings)."""
    return _trusted(tuple(settings.TRUSTED_PROXIES))


def from_trusted_proxy(request) -> bool:
    """True when the peer that connected to us is one of TRUSTED_PROXIES: only then are its forwarded
    headers (X-Forwarded-For, X-Forwarded-Proto) believed."""
    proxies = trusted_proxies()
    remote = _address(request.META.get("REMOTE_ADDR", "") or "")
    return bool(proxies) and remote is not None and _inside(remote, proxies)


def client_ip(request) -> str:
    """The address of the client: the peer itself unless the peer is a trusted proxy.

    Anyone can send X-Forwarded-For, so it is read only when REMOTE_ADDR is in TRUSTED_PROXIES. Each proxy
    appends the address it saw, so the chain is walked from the right, skipping our own proxies: the first
    address that is not a trusted proxy is the client. Entries further left were written by the client and
    are never believed; an unparsable entry stops the walk at the last address we know. Rotating the
    header from an address we do not trust changes nothing (issue 10, finding 6).
    """
    current = _address(request.META.get("REMOTE_ADDR", "") or "")
    if current is None:
        return "0.0.0.0"  # noqa: S104 - an address, not a bind
    proxies = trusted_proxies()
    if not proxies or not _inside(current, proxies):
        return str(current)
    hops = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        current = address
        if not _inside(current, proxies):
            break
    return str(current)


def address_bucket(ip: str) -> str:
    """What per-address limits count: the address, or its /64 for IPv6 (one subscriber's usual allocation,
    so cycling through the 2^64 addresses of one's own network is not a fresh budget each time)."""
    address = _address(ip)
    if address is None:
        return ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def ip_allowed(ip: str, cidrs) -> bool:
    """True when `cidrs` is empty (no allowlist) or `ip` is inside one of them. IPv4-mapped IPv6
    addresses match IPv4 networks."""
    if not cidrs:
        return True
    address = _address(ip)
    if address is None:
        return False
    try:
        networks = parse_networks(cidrs)
    except ValueError:
        return False  # a corrupt allowlist refuses everyone rather than no one
    return _inside(address, networks)


class ForwardedProtoMiddleware:
    """Drops X-Forwarded-Proto unless a trusted proxy sent the request, so SECURE_PROXY_SSL_HEADER (which
    Django believes from anyone) only takes our proxies' word that the client used HTTPS. Runs before
    SecurityMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "HTTP_X_FORWARDED_PROTO" in request.META and not from_trusted_proxy(request):
            del request.META["HTTP_X_FORWARDED_PROTO"]
        return self.get_response(request)
