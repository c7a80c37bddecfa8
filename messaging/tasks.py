"""Thin Celery tasks over messaging.services: they take ids, are idempotent and time-limited.

The outbox row is the record of the work; a task is only a prompt. Retries are rescheduled here from
the outcome the service recorded (its `next_attempt_at` in the database), and the sweeper re-enqueues
anything due that a lost broker message left behind.
"""

from __future__ import annotations

from celery import shared_task

from messaging import services


def enqueue_send(message_id: int, countdown: float | None = None) -> None:
    send_message.apply_async((message_id,), countdown=countdown)


@shared_task(name="messaging.tasks.send_message", soft_time_limit=60, time_limit=90)
def send_message(message_id: int) -> str:
    """Send one message if it is queued, due and unclaimed; safe to run twice (the second run skips).
    On a transient failure with attempts left, enqueue the next attempt at its backoff."""
    outcome = services.message_send(message_id=message_id)
    if outcome.retry_in is not None:
        enqueue_send(message_id, countdown=outcome.retry_in)
    return outcome.result


@shared_task(name="messaging.tasks.sweep_queued_messages", soft_time_limit=50, time_limit=60)
def sweep_queued_messages() -> int:
    """Every minute (beat): enqueue every queued message that is due and not claimed."""
    return services.messages_sweep()
