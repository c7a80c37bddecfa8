"""Thin Celery tasks over patients.services: idempotent and time-limited."""

from __future__ import annotations

from celery import shared_task

from patients import services


@shared_task(name="patients.tasks.send_due_reminders", soft_time_limit=50, time_limit=60)
def send_due_reminders() -> dict[str, int]:
    """Every minute (beat): queue the WhatsApp text of every due pending reminder. Safe to run twice or
    in two workers at once: each reminder is taken under a row lock (SKIP LOCKED) and only while pending."""
    return services.reminders_sweep()
