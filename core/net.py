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
