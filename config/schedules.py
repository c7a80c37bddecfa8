"""The platform's periodic tasks, installed into django-celery-beat by `manage.py setup_periodic_tasks`.

Each app adds its entries here; `name` is the PeriodicTask's name and must stay stable (renaming one
creates a new task and disables the old). Run `manage.py setup_periodic_tasks` on every deploy:

- an entry is matched to its PeriodicTask by name and created or brought back to what is declared here
  (task, schedule, description, enabled=True); a second run creates and changes nothing;
- ownership: rows written by the command carry "[managed by setup_periodic_tasks]" in their description.
  An owned row whose entry was removed from this file is disabled, never deleted; rows without the
  marker (staff-made in the admin) are never touched;
- edits made in the admin to an owned row (schedule, enabled) last until the next run of the command:
  change the schedule here instead;
- crontabs run in UTC; an unknown task name fails the command before it writes anything.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Crontab:
    minute: str = "0"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"
    month_of_year: str = "*"


@dataclass(frozen=True)
class Interval:
    seconds: int


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    when: Crontab | Interval
    description: str = ""


PERIODIC_TASKS: tuple[Schedule, ...] = (
    Schedule(
        name="audit: retention purge",
        task="audit.tasks.purge_expired_audit_rows",
        when=Crontab(minute="17", hour="3"),
        description="Deletes access-log and audit-event rows older than AUDIT_RETENTION_YEARS (min 6).",
    ),
    Schedule(
        name="messaging: sweep queued messages",
        task="messaging.tasks.sweep_queued_messages",
        when=Interval(seconds=60),
        description="Re-enqueues queued messages that are due and not claimed (a lost broker message only "
        "delays a message).",
    ),
    Schedule(
        name="webhooks: sweep due deliveries",
        task="webhooks.tasks.sweep_due_webhook_deliveries",
        when=Interval(seconds=60),
        description="Re-enqueues due webhook deliveries (a lost broker message only delays one) and "
        "disables endpoints failing for WEBHOOK_DISABLE_AFTER_DAYS.",
    ),
    Schedule(
        name="integration: evaluate daily alerts",
        task="integration.tasks.evaluate_daily_alerts",
        when=Crontab(minute="5", hour="5"),
        description="LoveRescue time-based alert rules (STAGNATION: no activity for 7 days), once per UTC day.",
    ),
    Schedule(
        name="integration: high alert notifications",
        task="integration.tasks.send_high_alert_notifications",
        when=Crontab(minute="*/30"),
        description="LoveRescue HIGH alerts: one email per therapist for un-notified alerts (within the hour).",
    ),
    Schedule(
        name="integration: low alert digest",
        task="integration.tasks.send_low_alert_digest",
        when=Crontab(minute="0", hour="8"),
        description="LoveRescue LOW alerts (milestones): one daily digest email per therapist.",
    ),
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
