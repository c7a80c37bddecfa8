"""Reads of the CareOS leads domain, scoped to the partner platform asking."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from leads.models import CareUser, Lead, PartnerPayment, PartnerPlatform, PartnerUser


def _one(queryset: QuerySet):
    """The row of a lookup on a unique key, or None: LIMIT 1 without the ORDER BY `.first()` adds."""
    return next(iter(queryset.order_by()[:1]), None)


def lead_for_conversation(*, platform: PartnerPlatform, source_conversation_id: str) -> Lead | None:
    """The platform's lead for one of its conversations (the idempotency key), with its user.

    On ingest this read usually finds nothing, so it asks for the id alone first (a narrow query, much
    cheaper to build and run than the lead joined to its user); only a hit loads the lead and user."""
    lead_id = _one(
        Lead.objects.filter(platform_id=platform.pk, source_conversation_id=source_conversation_id).values_list(
            "pk", flat=True
        )
    )
    if lead_id is None:
        return None
    return _one(Lead.objects.select_related("user", "partner_user").filter(pk=lead_id))


def user_by_phone_index(*, phone_index: str) -> CareUser | None:
    return _one(CareUser.objects.filter(phone_index=phone_index))


def partner_user_for(*, platform: PartnerPlatform, user: CareUser) -> PartnerUser | None:
    """The person's id as this platform knows it, if the platform referred them before."""
    return _one(PartnerUser.objects.filter(platform_id=platform.pk, user_id=user.pk))


def paid_lead_since(*, user: CareUser, since: datetime) -> Lead | None:
    """The person's latest lead, from any platform, created after `since` that earned a payment (whatever
    the payment's status since): while there is one, a new lead for the person is not paid."""
    return (
        Lead.objects.filter(user_id=user.pk, created_at__gt=since, payment__isnull=False)
        .order_by("-created_at", "-pk")
        .first()
    )


def payout_export_rows(*, batch_pks: list[int]):
    """The payments of these batches as CSV rows (batch, lead_id, amount, currency, created, due), in
    batch then payment order; a values_list to stream with `.iterator()`."""
    return (
        PartnerPayment.objects.filter(batch_id__in=batch_pks)
        .order_by("batch__created_at", "batch_id", "pk")
        .values_list("batch__public_id", "lead__public_id", "amount", "currency", "created_at", "due_at")
    )
