"""A payout run (`payouts_process`: monthly beat task, `manage.py process_partner_payments`, admin action):

1. resumes every batch left `created` by an earlier run (`payout_batches_resume`);
2. for each active platform whose due payments (pending, in no batch, `due_at <= now`) reach its
   `minimum_payout`, creates a batch of them and pays it through the batch's backend (`batches`).

A dry run reads only: it writes nothing and calls no provider. An unexpected error on one batch or
platform is logged and reported, and the run goes on with the others (the batch, if any, stays `created`
and is resumed next run). Money is never paid twice (one idempotency key per batch, payments attached to
one batch) and never lost (a payment is in no batch, or in a batch that is created/awaiting/paid, or
released by a failure).
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from core.actors import Actor
from core.time import utc_now
from leads.models import PartnerPlatform
from leads.services.payouts import batches
from leads.services.payouts.reports import PayoutReport, PlatformReport, money

logger = logging.getLogger("leads.payouts")


def payouts_process(*, now: datetime | None = None, dry_run: bool = False, actor: Actor) -> PayoutReport:
    """One payout run over every platform (see the module docstring)."""
    now = now or utc_now()
    report = PayoutReport(now=now, dry_run=dry_run)
    report.resumed = batches.payout_batches_resume(now=now, dry_run=dry_run, actor=actor)
    for platform in PartnerPlatform.objects.order_by("slug"):
        report.platforms.append(_process_platform(platform, now=now, dry_run=dry_run, actor=actor))
    return report


def _process_platform(platform: PartnerPlatform, *, now: datetime, dry_run: bool, actor: Actor) -> PlatformReport:
    amounts = list(batches.due_payments(platform, now).values_list("amount", flat=True))
    total = sum(amounts, Decimal("0"))
    report = PlatformReport(
        platform=platform.slug,
        backend=platform.payout_backend,
        minimum_payout=money(platform.minimum_payout),
        due_count=len(amounts),
        due_amount=money(total),
        status="nothing_due",
    )
    if not amounts:
        return report
    if not platform.is_active:
        report.status = "held"
        return report
    if total < platform.minimum_payout:
        report.status = "below_minimum"
        return report
    if dry_run:
        report.status = "would_pay"
        return report
    try:
        batch = batches.batch_create(platform=platform, now=now, actor=actor)
    except batches.AttachConflict:
        batch = None
    except Exception:
        logger.exception("payouts for %s: batch creation failed", platform.slug)
        report.status, report.error = "error", "unexpected error; see the logs"
        return report
    if batch is None:
        report.status = "claimed_elsewhere"  # another run holds (or took) these payments, or under minimum
        return report
    report.batch_id = batch.public_id
    try:
        outcome = batches.batch_pay(batch=batch, first_attempt=True, now=now, actor=actor)
    except Exception:
        logger.exception("payout batch %s: payment step failed; it stays created", batch.public_id)
        report.status, report.error = "error", "unexpected error; the batch is resumed next run"
        return report
    report.status, report.error = outcome.status, outcome.error
    return report
