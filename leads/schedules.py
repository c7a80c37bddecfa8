"""CareOS's periodic tasks (partner payouts), registered in leads/apps.py and installed by
`manage.py setup_periodic_tasks` (crontabs in UTC; `name` must stay stable: renaming creates a new task
and disables the old)."""

from core.registry import Crontab, Schedule

PERIODIC_TASKS: tuple[Schedule, ...] = (
    Schedule(
        name="leads: monthly partner payouts",
        task="leads.tasks.process_partner_payments",
        when=Crontab(minute="0", hour="6", day_of_month="1"),
        description="CareOS partner payouts on the 1st of each month at 06:00 UTC: due pending payments per "
        "partner over its minimum, one batch each, paid through the partner's backend (manual or Stripe).",
    ),
    Schedule(
        name="leads: resume payout batches",
        task="leads.tasks.resume_payout_batches",
        when=Crontab(minute="40", hour="6"),
        description="Daily: finishes payout batches left 'created' by a crash or a provider outage (same "
        "idempotency key: never pays twice). Creates no new batch.",
    ),
)
