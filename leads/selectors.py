"""Reads of the CareOS leads domain, scoped to the partner platform asking."""

from __future__ import annotations

from leads.models import CareUser, Lead, PartnerPlatform


def lead_for_conversation(*, platform: PartnerPlatform, source_conversation_id: str) -> Lead | None:
    """The platform's lead for one of its conversations (the idempotency key), with its user."""
    return (
        Lead.objects.select_related("user")
        .filter(platform=platform, source_conversation_id=source_conversation_id)
        .first()
    )


def user_by_phone_index(*, phone_index: str) -> CareUser | None:
    return CareUser.objects.filter(phone_index=phone_index).first()
