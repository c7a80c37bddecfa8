"""Thin Celery tasks over leads.services.payouts: idempotent and time-limited (docs/careos.md, "Payouts").

Running either twice is harmless: a run first finishes batches left `created` (same idempotency key, so
the provider never pays twice), payments are claimed with row locks, and a batch is completed once.
"""

from __future__ import annotations

from celery import shared_task

from core.actors import Actor
from leads.services import payouts


@shared_task(name="leads.tasks.process_partner_payments", soft_time_limit=1700, time_limit=1800)
def process_partner_payments() -> dict:
    """Monthly (beat): resume in-flight batches, then pay every platform's due payments."""
    report = payouts.payouts_process(actor=Actor.system("leads.tasks.process_partner_payments"))
    return report.to_dict()


@shared_task(name="leads.tasks.resume_payout_batches", soft_time_limit=840, time_limit=900)
def resume_payout_batches() -> int:
    """Daily (beat): finish batches a crash or a provider outage left `created`, without waiting a month.
    Creates no new batch. Returns how many batches were looked at."""
    return len(payouts.payout_batches_resume(actor=Actor.system("leads.tasks.resume_payout_batches")))
