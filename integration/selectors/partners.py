"""Staff-side reads about an integration partner: what it can reach right now (live keys, therapists,
webhook endpoints), for the partner admin's links and its confirmation pages."""

from __future__ import annotations

from dataclasses import dataclass

from integration.events import OWNER_TYPE
from integration.models import IntegrationPartner
from webhooks.models import WebhookEndpoint

# Therapists named on a confirmation page; more are counted, not listed.
THERAPISTS_NAMED = 10


@dataclass(frozen=True)
class PartnerReach:
    """What a partner can reach now: its live API keys (hints only), the therapists it acts for, and its
    webhook endpoints (all ids, for links; the active ones' count, for consequences)."""

    live_key_hints: tuple[str, ...]
    therapist_names: tuple[str, ...]
    therapist_count: int
    endpoint_ids: tuple[int, ...]
    active_endpoint_count: int


def partner_reach(partner: IntegrationPartner) -> PartnerReach:
    """Four queries whatever the partner's size (therapists named up to THERAPISTS_NAMED)."""
    live_key_hints = tuple(
        partner.credentials.filter(revoked_at__isnull=True).order_by("created_at").values_list("key_hint", flat=True)
    )
    therapists = partner.therapists.order_by("last_name", "first_name")
    names = tuple(
        f"{first} {last}" for first, last in therapists.values_list("first_name", "last_name")[:THERAPISTS_NAMED]
    )
    endpoints = list(
        WebhookEndpoint.objects.filter(owner_type=OWNER_TYPE, owner_id=str(partner.pk))
        .order_by("pk")
        .values_list("pk", "is_active")
    )
    return PartnerReach(
        live_key_hints=live_key_hints,
        therapist_names=names,
        therapist_count=therapists.count() if len(names) == THERAPISTS_NAMED else len(names),
        endpoint_ids=tuple(pk for pk, _ in endpoints),
        active_endpoint_count=sum(1 for _, active in endpoints if active),
    )
