"""Two bookings for one patient at the same time on PostgreSQL: the second waits for the first's lock on
the patient row, then sees its appointment and is refused (Conflict), instead of both passing the
overlap check before either commits."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction

from accounts import services as accounts_services
from core.domain import Conflict
from core.time import utc_now
from patients import services
from patients.models import Appointment
from tests.patients.conftest import ACTOR

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def waiting_on_a_lock_or_done(thread: threading.Thread, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            return True
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.02)
    return False


def test_concurrent_overlapping_bookings_one_wins(require_postgres):
    clinic = accounts_services.organization_create(name="Clinic", actor=ACTOR)
    patient = services.patient_create(organization=clinic, name="Ana", actor=ACTOR)
    start = utc_now() + timedelta(days=2)
    first_booked = threading.Event()
    release_first = threading.Event()
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            with transaction.atomic():
                services.appointment_create(patient=patient, start_time=start, duration=60, actor=ACTOR)
                first_booked.set()  # booked, lock held, not committed
                release_first.wait(30)
        finally:
            connections.close_all()

    def second() -> None:
        try:
            services.appointment_create(patient=patient, start_time=start, duration=30, actor=ACTOR)
            outcome["second"] = "booked"
        except Conflict:
            outcome["second"] = "conflict"
        finally:
            connections.close_all()

    one = threading.Thread(target=first)
    one.start()
    assert first_booked.wait(30)
    two = threading.Thread(target=second)
    two.start()
    # Release the first only once the second is waiting on a row lock (or has finished: without the
    # lock it would not wait, would see no committed overlap, and would book).
    assert waiting_on_a_lock_or_done(two)
    release_first.set()
    one.join(30)
    two.join(30)
    assert outcome == {"second": "conflict"}
    assert Appointment.objects.count() == 1
