"""Thin Celery tasks over messaging.services: they take ids, are idempotent and time-limited.

The outbox row is the record of the work; a task is only a prompt. Retries are rescheduled here from
the outcome the service recorded (its `next_attempt_at` in the database), and the sweeper re-enqueues
anything due that a lost broker message left behind.
"""

from __future__ import annotations

from celery import shared_task

from messaging import services

# Whether the message's purpose is urgent (messaging.outbox.is_urgent), in a header of each publish whose
# caller knows it: the router (config.celery.route_urgent_messages) picks the queue from it without reading
# the row. A publish without it (the sweeper, a retry) is routed by the row's purpose, read by the router.
URGENT_HEADER = "message_urgent"


def enqueue_send(
    message_id: int, countdown: float | None = None, *, urgent: bool | None = None, drain: bool = False
) -> None:
    """Prompt a worker for one message (`drain`: and then for every ordinary message due, a wake-up's run:
    messaging.outbox). `urgent`: is_urgent(its purpose), when the caller has it at hand."""
    headers = None if urgent is None else {URGENT_HEADER: bool(urgent)}
    kwargs = {"drain": True} if drain else None
    send_message.apply_async((message_id,), kwargs=kwargs, countdown=countdown, headers=headers)


@shared_task(name="messaging.tasks.send_message", soft_time_limit=60, time_limit=90)
def send_message(message_id: int, drain: bool = False) -> str:
    """Send one message if it is queued, due and unclaimed; safe to run twice (the second run skips).
    On a transient failure with attempts left, enqueue the next attempt at its backoff. With `drain` (a
    wake-up), then every ordinary message due as well (services.messages_drain)."""
    if drain:
        outcome = services.messages_drain(first_message_id=message_id)
        for retried_id, retry_in in outcome.retries:
            enqueue_send(retried_id, countdown=retry_in)
        return f"drained: {outcome.sent} sent" + (", handed on" if outcome.handed_on else "")
    outcome = services.message_send(message_id=message_id)
    if outcome.retry_in is not None:
        enqueue_send(message_id, countdown=outcome.retry_in)
    return outcome.result


@shared_task(name="messaging.tasks.sweep_queued_messages", soft_time_limit=50, time_limit=60)
def sweep_queued_messages() -> int:
    """Every minute (beat): enqueue every queued message that is due and not claimed."""
    return services.messages_sweep()
