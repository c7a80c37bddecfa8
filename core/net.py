"""Client address of a request, trusting X-Forwarded-For only as far as our own proxies."""

import ipaddress

from django.conf import settings


def client_ip(request) -> str:
    """The address of the client as seen by the first proxy we trust.

    With TRUSTED_PROXY_COUNT = 0 (the default) X-Forwarded-For is ignored: anyone can send it. With N
    proxies in front of us, each appends the address it saw, so the client is the N-th entry from the
    right; entries left of that were written by the client and are not believed.
    """
    remote = request.META.get("REMOTE_ADDR", "") or "0.0.0.0"  # noqa: S104 - an address, not a bind
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < count:
        return remote
    candidate = forwarded[-count]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def parse_networks(cidrs) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
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


def ip_allowed(ip: str, cidrs) -> bool:
    """True when `cidrs` is empty (no allowlist) or `ip` is inside one of them. IPv4-mapped IPv6
    addresses (::ffff:a.b.c.d, as dual-stack sockets report IPv4 peers) match IPv4 networks."""
    if not cidrs:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    try:
        networks = parse_networks(cidrs)
    except ValueError:
        return False  # a corrupt allowlist refuses everyone rather than no one
    return any(address.version == network.version and address in network for network in networks)
