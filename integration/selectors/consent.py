"""The consent check every client endpoint starts with, and the domain errors it raises.

The API's envelope renders them: unknown client (or couple, or alert this therapist may not see) -> 404
NOT_FOUND; no consent in force -> 403 NO_CONSENT; level too low -> 403 INSUFFICIENT_PERMISSION.
"""

from __future__ import annotations

from core.domain import NotFound, PermissionDenied
from integration.models import Client, PermissionLevel, Therapist, TherapistClientLink, level_allows
from integration.selectors.common import consented_links

NO_CONSENT_MESSAGE = "Client has not granted consent to this therapist"
LEVEL_TOO_LOW_MESSAGE = "Client's permission level too low for this data"


class ClientNotFound(NotFound):
    """No such client (or couple, or alert visible to this therapist): "<What> not found"."""

    def __init__(self, what: str = "Client"):
        super().__init__(f"{what} not found", code="NOT_FOUND")


class NoConsent(PermissionDenied):
    """No link with consent in force between this therapist and the client."""

    def __init__(self):
        super().__init__(NO_CONSENT_MESSAGE, code="NO_CONSENT")


class LevelTooLow(PermissionDenied):
    """The link's permission level is below what the data requires."""

    def __init__(self):
        super().__init__(LEVEL_TOO_LOW_MESSAGE, code="INSUFFICIENT_PERMISSION")


def client_link_for(
    *, therapist: Therapist, client_id, required_level: str = PermissionLevel.BASIC
) -> TherapistClientLink:
    """The consented link of `therapist` to the client, at `required_level` or above (client loaded).

    ClientNotFound for an unknown client; NoConsent when unlinked, unconsented or revoked (another
    therapist's client, or the client of another partner's therapist, is simply unlinked here);
    LevelTooLow when the level is below `required_level`. One query when allowed."""
    link = consented_links(therapist).select_related("client").filter(client_id=client_id).first()
    if link is None:
        if not Client.objects.filter(pk=client_id).exists():
            raise ClientNotFound()
        raise NoConsent()
    if not level_allows(link.permission_level, required_level):
        raise LevelTooLow()
    return link
