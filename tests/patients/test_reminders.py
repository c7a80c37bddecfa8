"""The Mark reminder sweeper (patients.services.reminders_sweep, task patients.tasks.send_due_reminders):
due pending reminders are queued once on WhatsApp in the patient's language, never after a cancel or a
reschedule; the reminder's status follows the outbox. Clocks are injected; one test runs a real worker."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection

from audit.models import AuditEvent
from messaging.models import OutboundMessage
from patients import services, tasks
from patients.models import Appointment, ClinicSettings, Message, Patient, Reminder
from patients.reminder_texts import TEXTS, language_of
from tests.patients.conftest import ACTOR, NOW
from tests.workers import celery_worker, test_database_url, worker_environment

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
START = NOW + 2 * DAY  # both reminders pending when booked at NOW


# Reminders go out outside WhatsApp's 24-hour window, so as the clinic's approved templates (Content SIDs);
# tests/patients/test_whatsapp.py covers a clinic without them (reminders skipped).
REMINDER_TEMPLATES = {
    name: {"en": "HX" + "0" * 31 + str(index)} for index, name in enumerate(("reminder_24h", "reminder_30min"))
}


def make_patient(organization, **fields) -> Patient:
    fields.setdefault("name", "Núria Puig")
    fields.setdefault("phone_number", "+34 612 34 56 78")
    ClinicSettings.objects.get_or_create(organization=organization, defaults={"whatsapp_templates": REMINDER_TEMPLATES})
    return services.patient_create(organization=organization, actor=ACTOR, now=NOW, **fields)


def book(patient, start=START, **fields) -> Appointment:
    return services.appointment_create(patient=patient, start_time=start, duration=30, actor=ACTOR, now=NOW, **fields)


def reminder(appointment, kind="24h") -> Reminder:
    return Reminder.objects.select_related("outbound_message").get(appointment=appointment, kind=kind)


def test_only_due_reminders_are_sent(clinic):
    appointment = book(make_patient(clinic))
    h24 = reminder(appointment)

    assert services.reminders_sweep(now=h24.due_at - MINUTE) == {"sent": 0, "skipped": 0, "not_due": 0, "failed": 0}
    assert reminder(appointment).status == "pending" and not OutboundMessage.objects.exists()

    assert services.reminders_sweep(now=h24.due_at)["sent"] == 1
    sent = reminder(appointment)
    assert sent.status == "sent" and sent.outbound_message.purpose == services.REMINDER_PURPOSE
    assert (sent.outbound_message.channel, sent.outbound_message.recipient) == ("whatsapp", "+34612345678")
    assert reminder(appointment, "30min").status == "pending"  # not due yet


def test_running_the_sweeper_twice_sends_once(clinic):
    appointment = book(make_patient(clinic))
    due = reminder(appointment).due_at
    assert services.reminders_sweep(now=due)["sent"] == 1
    assert services.reminders_sweep(now=due + MINUTE)["sent"] == 0
    assert services.reminder_send(reminder_id=reminder(appointment).pk, now=due + MINUTE) == "not_due"
    assert OutboundMessage.objects.count() == 1
    assert AuditEvent.objects.filter(action="reminder.queued").count() == 1


def test_the_reminder_is_stored_in_the_conversation_and_audited_without_text(clinic):
    patient = make_patient(clinic, preferred_language="es")
    appointment = book(patient)
    due = reminder(appointment).due_at
    services.reminders_sweep(now=due)

    message = Message.objects.get()
    assert message.sender == "system" and message.outbound_message_id == reminder(appointment).outbound_message_id
    assert message.content.startswith("Recordatorio de Clínica Sol")
    patient.refresh_from_db()
    assert patient.last_activity == due
    event = AuditEvent.objects.get(action="reminder.queued")
    assert event.subject_id == appointment.public_id
    assert event.metadata == {"kind": "24h", "outbound_message_id": reminder(appointment).outbound_message.public_id}


@pytest.mark.parametrize(
    ("language", "start"),
    [("es", "Recordatorio"), ("ca", "Recordatori de"), ("en", "Reminder"), ("ar", "تذكير"), ("ar-MA", "تذكير")],
)
def test_the_text_is_in_the_patients_language(clinic, language, start):
    appointment = book(make_patient(clinic, preferred_language=language))
    services.reminders_sweep(now=reminder(appointment).due_at)
    body = reminder(appointment).outbound_message.body
    assert body.startswith(start)
    assert "04/03/2026" in body and "10:00" in body  # START (09:00 UTC) in Europe/Madrid (CET, UTC+1)


def test_an_unknown_language_falls_back_to_english(clinic):
    appointment = book(make_patient(clinic, preferred_language="fr"))
    services.reminders_sweep(now=reminder(appointment).due_at)
    assert reminder(appointment).outbound_message.body.startswith("Reminder from Clínica Sol")
    assert language_of("fr") == "en" and language_of(None) == "en" and language_of("CA-es") == "ca"
    assert all(set(texts) == {"24h", "30min"} for texts in TEXTS.values())


def test_the_time_zone_is_a_setting(clinic, settings):
    settings.MARK_TIME_ZONE = "UTC"
    appointment = book(make_patient(clinic))
    services.reminders_sweep(now=reminder(appointment).due_at)
    assert "09:00" in reminder(appointment).outbound_message.body


def test_a_cancelled_appointments_reminders_are_never_sent(clinic):
    appointment = book(make_patient(clinic))
    services.appointment_cancel(appointment=appointment, actor=ACTOR, now=NOW + MINUTE)
    assert services.reminders_sweep(now=START)["sent"] == 0
    assert set(appointment.reminders.values_list("status", flat=True)) == {"skipped"}
    assert not OutboundMessage.objects.exists()


def test_the_sweeper_rechecks_the_appointment_in_its_transaction(clinic):
    """A cancel that left a reminder pending (a race or a direct write) is still caught by the sweeper."""
    appointment = book(make_patient(clinic))
    Appointment.objects.filter(pk=appointment.pk).update(status="canceled")
    counts = services.reminders_sweep(now=reminder(appointment).due_at)
    assert counts["sent"] == 0 and counts["skipped"] == 1
    assert reminder(appointment).status == "skipped" and not OutboundMessage.objects.exists()
    assert AuditEvent.objects.get(action="reminder.skipped").metadata == {
        "kind": "24h",
        "reason": "appointment_not_active",
    }


def test_a_reminder_whose_due_time_no_longer_matches_the_start_is_skipped(clinic):
    appointment = book(make_patient(clinic))
    old_due = reminder(appointment).due_at
    Appointment.objects.filter(pk=appointment.pk).update(start_time=START + DAY, end_time=START + DAY + 30 * MINUTE)
    services.reminders_sweep(now=old_due)
    assert reminder(appointment).status == "skipped" and not OutboundMessage.objects.exists()


def test_a_rescheduled_appointment_is_reminded_at_the_new_time_only(clinic):
    appointment = book(make_patient(clinic))
    old_due = reminder(appointment).due_at
    services.appointment_update(appointment=appointment, start_time=START + DAY, actor=ACTOR, now=NOW + MINUTE)

    assert services.reminders_sweep(now=old_due)["sent"] == 0  # the old time is gone
    assert not OutboundMessage.objects.exists()
    assert services.reminders_sweep(now=old_due + DAY)["sent"] == 1
    assert "05/03/2026" in reminder(appointment).outbound_message.body


def test_an_opted_out_patient_gets_no_reminder(clinic):
    patient = make_patient(clinic)
    appointment = book(patient)
    services.patient_whatsapp_opt_out(patient=patient, reason="stop_keyword", actor=ACTOR, now=NOW)
    services.reminders_sweep(now=reminder(appointment).due_at)
    assert reminder(appointment).status == "skipped" and not OutboundMessage.objects.exists()
    assert AuditEvent.objects.get(action="reminder.skipped").metadata["reason"] == "whatsapp_opted_out"


def test_a_reminder_found_late_after_the_start_is_skipped(clinic):
    appointment = book(make_patient(clinic))
    services.reminders_sweep(now=START + MINUTE)  # the sweeper was down through both due times
    assert set(appointment.reminders.values_list("status", flat=True)) == {"skipped"}
    assert not OutboundMessage.objects.exists()


def test_the_reminder_status_follows_the_outbox(clinic):
    appointment = book(make_patient(clinic))
    due = reminder(appointment).due_at
    services.reminders_sweep(now=due)
    sent = reminder(appointment)
    assert services.reminder_status(sent) == "sent"

    OutboundMessage.objects.filter(pk=sent.outbound_message_id).update(status="failed")
    sent = reminder(appointment)
    assert services.reminder_status(sent) == "failed"  # read from the outbox before the sweeper writes it
    assert sent.status == "sent"
    assert services.reminders_sweep(now=due + MINUTE)["failed"] == 1
    assert reminder(appointment).status == "failed"


def test_the_task_runs_the_sweeper(clinic, monkeypatch):
    appointment = book(make_patient(clinic))
    monkeypatch.setattr(services, "utc_now", lambda: reminder(appointment).due_at)
    assert tasks.send_due_reminders() == {"sent": 1, "skipped": 0, "not_due": 0, "failed": 0}
    assert tasks.send_due_reminders()["sent"] == 0


# --- PostgreSQL: row locks --------------------------------------------------------------------------------


@pytest.mark.postgres
def test_a_reminder_locked_by_a_cancel_is_left_to_the_next_run(clinic, require_postgres, transactional_db):
    """SKIP LOCKED: while a cancel holds the appointment, the sweeper neither waits nor sends; after the
    cancel commits, the reminder is skipped and never sent."""
    appointment = book(make_patient(clinic))
    due = reminder(appointment).due_at
    locked, release, done = threading.Event(), threading.Event(), threading.Event()

    def cancel_slowly():
        try:
            from django.db import transaction

            with transaction.atomic():
                Appointment.objects.select_for_update().get(pk=appointment.pk)
                locked.set()
                release.wait(10)
                services.appointment_cancel(appointment=appointment, actor=ACTOR, now=NOW + MINUTE)
        finally:
            connection.close()
            done.set()

    thread = threading.Thread(target=cancel_slowly)
    thread.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        counts = services.reminders_sweep(now=due)
        assert time.monotonic() - started < 5  # did not wait for the lock
        assert counts["sent"] == 0 and counts["not_due"] == 1
    finally:
        release.set()
        thread.join(15)
    close_old_connections()
    assert done.is_set()
    assert services.reminders_sweep(now=due)["sent"] == 0
    assert set(appointment.reminders.values_list("status", flat=True)) == {"skipped"}
    assert not OutboundMessage.objects.exists()


# --- a real worker ----------------------------------------------------------------------------------------

TIMEOUT = 40.0


def sweeps_done(log_path) -> int:
    return sum(
        1
        for line in log_path.read_text(errors="replace").splitlines()
        if "patients.tasks.send_due_reminders[" in line and "succeeded" in line
    )


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
def test_a_real_worker_sends_a_due_reminder_exactly_once_and_a_cancelled_one_never(
    clinic, transactional_db, require_postgres, redis_url, tmp_path
):
    """The worker runs the sweeper task (twice, as beat would) and the messaging send it enqueues; it
    reads the real clock, so the appointments start minutes from now, booked with an earlier `now`."""
    import redis
    from celery import Celery

    from core.time import utc_now

    real_now = utc_now()
    booked_at = real_now - timedelta(hours=2)
    start = real_now + 10 * MINUTE  # the 30-min reminder is 20 minutes overdue, still before the start
    due = services.appointment_create(
        patient=make_patient(clinic), start_time=start, duration=30, actor=ACTOR, now=booked_at
    )
    cancelled = services.appointment_create(
        patient=make_patient(clinic, name="Other patient", phone_number="+34 699 11 22 33"),
        start_time=start,
        duration=30,
        actor=ACTOR,
        now=booked_at,
    )
    services.appointment_cancel(appointment=cancelled, actor=ACTOR, now=booked_at + MINUTE)
    assert reminder(due, "30min").status == "pending"

    queue = f"reminders-e2e-{uuid.uuid4().hex}"
    env = worker_environment(
        tmp_path,
        DATABASE_URL=test_database_url(),
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        MESSAGING_BACKEND="console",
    )
    producer = Celery("reminders-e2e-producer", broker=redis_url, set_as_current=False)
    client = redis.Redis.from_url(redis_url)
    log_path = tmp_path / "worker.log"
    try:
        # The worker consumes this test's queue and `messaging` on this test's own Redis database.
        with celery_worker(env, log_path, f"{queue},messaging", loglevel="info", name="reminders-e2e") as worker:
            for _ in range(2):
                producer.send_task("patients.tasks.send_due_reminders", queue=queue)
            deadline = time.monotonic() + TIMEOUT
            outbound = None
            while time.monotonic() < deadline:
                sent = reminder(due, "30min")
                outbound = sent.outbound_message
                if outbound is not None and outbound.status != "queued":
                    break
                if worker.poll() is not None:
                    pytest.fail(f"worker exited with {worker.returncode}:\n{log_path.read_text(errors='replace')}")
                time.sleep(0.2)
            producer.send_task("patients.tasks.send_due_reminders", queue=queue)  # a third run, after the send
            while time.monotonic() < deadline and sweeps_done(log_path) < 3:
                time.sleep(0.2)
    finally:
        producer.close()
        for name in (queue, "messaging"):
            client.delete(name, f"_kombu.binding.{name}")
        client.close()
    log = log_path.read_text(errors="replace")
    assert outbound is not None and outbound.status == "sent", log
    assert OutboundMessage.objects.count() == 1, log  # exactly once, and nothing for the cancelled one
    assert OutboundMessage.objects.get().recipient == "+34612345678"
    assert set(cancelled.reminders.values_list("status", flat=True)) == {"skipped"}
    assert reminder(due, "30min").status == "sent"
    assert sweeps_done(log_path) == 3 and "messaging.tasks.send_message" in log  # run by the worker process
