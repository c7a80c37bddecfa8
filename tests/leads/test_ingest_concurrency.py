"""Concurrent duplicates on PostgreSQL: exactly one lead per conversation and one user per phone, by the
database's unique constraints (not by the read-before-write, which the tests disable for the first
pass of each request so every request reaches the INSERT)."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest
from django.db import connection
from django.test import Client

from leads import selectors
from leads.models import CareUser, Lead, PartnerPayment, PartnerUser
from leads.services import ingest
from messaging.models import OutboundMessage
from messaging.tasks import send_message
from tests.leads.factories import INGEST, make_platform

pytestmark = pytest.mark.postgres

PHONE = "+14155550123"
THREADS = 6


@pytest.fixture(autouse=True)
def enqueued(monkeypatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(send_message, "apply_async", lambda args=None, **options: calls.append(args[0]))
    return calls


@pytest.fixture
def blind_first_reads(monkeypatch):
    """Each request's replay read finds no lead, as if every request had read before any other committed
    (the user has no read before its INSERT at all): the unique constraints alone must then settle the
    race. Counts the reads after a conflict: the lead re-read after a unique violation, and the person's
    locking read after the user INSERT stood down on a taken phone."""
    seen = threading.local()
    rereads = {"lead": 0, "user": 0}
    lock = threading.Lock()

    real_prelude = selectors.ingest_prelude

    def blind_prelude(**kwargs):
        prelude = real_prelude(**kwargs)
        if getattr(seen, "lead", False):
            return prelude
        seen.lead = True
        return dataclasses.replace(prelude, lead_id=None)

    def counted(real, name):
        def lookup(**kwargs):
            with lock:
                rereads[name] += 1
            return real(**kwargs)

        return lookup

    monkeypatch.setattr(ingest.selectors, "ingest_prelude", blind_prelude)
    monkeypatch.setattr(ingest.selectors, "lead_for_conversation", counted(selectors.lead_for_conversation, "lead"))
    monkeypatch.setattr(ingest.selectors, "user_by_phone_index", counted(selectors.user_by_phone_index, "user"))
    return rereads


def post_at_once(setup, bodies: list[dict], *, senders: list | None = None) -> list[tuple[int, dict]]:
    """POST every body from its own thread (own client, own database connection), released together;
    body i as `senders[i]` (a platform setup) if given, else as `setup`."""
    barrier = threading.Barrier(len(bodies))
    results: list[tuple[int, dict] | BaseException] = [None] * len(bodies)  # type: ignore[list-item]

    def run(index: int, body: dict) -> None:
        try:
            barrier.wait(timeout=30)
            headers = (senders[index] if senders else setup).headers()
            response = Client().post(INGEST, json.dumps(body), content_type="application/json", **headers)
            results[index] = (response.status_code, response.json())
        except BaseException as exc:  # reported by the assertion below
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, body)) for i, body in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert not [r for r in results if isinstance(r, BaseException)], results
    return results  # type: ignore[return-value]


def test_the_same_conversation_at_once_makes_one_lead_and_one_user(
    transactional_db, require_postgres, blind_first_reads, enqueued
):
    setup = make_platform()
    body = setup.lead(phone=PHONE)
    results = post_at_once(setup, [body] * THREADS)

    assert [status for status, _ in results] == [200] * THREADS
    answers = {json.dumps(answer, sort_keys=True) for _, answer in results}
    assert len(answers) == 1  # every request got the one lead's answer
    answer = results[0][1]
    assert answer["is_new_user"] is True and answer["careos_will_contact"] is True
    assert Lead.objects.count() == 1 and CareUser.objects.count() == 1
    assert PartnerPayment.objects.count() == 1 and OutboundMessage.objects.count() == 1
    lead = Lead.objects.get()
    assert (lead.public_id, lead.partner_user.public_id) == (answer["careos_lead_id"], answer["careos_user_id"])
    assert lead.welcome_message_id == OutboundMessage.objects.get().public_id
    # Only the committed SMS was handed to the broker (the losers' rows and hooks were rolled back).
    assert enqueued == [OutboundMessage.objects.get().pk]
    # Every loser reached the INSERT and was stopped by the constraints, then re-read the winner's rows.
    assert blind_first_reads == {"lead": THREADS - 1, "user": THREADS - 1}


def test_one_phone_in_many_conversations_at_once_makes_one_user(transactional_db, require_postgres, blind_first_reads):
    setup = make_platform()
    bodies = [setup.lead(phone=PHONE, source_conversation_id=f"conv-{i}") for i in range(THREADS)]
    results = post_at_once(setup, bodies)

    assert [status for status, _ in results] == [200] * THREADS
    assert CareUser.objects.count() == 1 and Lead.objects.count() == THREADS
    # One person within the period: one welcome SMS and one paid lead, however the requests interleave.
    assert PartnerPayment.objects.count() == 1 and OutboundMessage.objects.count() == 1
    assert Lead.objects.filter(duplicate_of__isnull=True).count() == 1
    assert all(answer["careos_will_contact"] for _, answer in results)
    [partner_user] = PartnerUser.objects.all()
    assert {answer["careos_user_id"] for _, answer in results} == {partner_user.public_id}
    assert sorted(answer["is_new_user"] for _, answer in results) == [False] * (THREADS - 1) + [True]
    assert Lead.objects.filter(is_new_user=True).count() == 1
    assert blind_first_reads == {"lead": 0, "user": THREADS - 1}


def test_one_new_person_from_many_partners_at_once(transactional_db, require_postgres, blind_first_reads):
    """Every partner is told "new" with its own id; the person gets one SMS and one payment."""
    senders = [make_platform(f"partner{i}") for i in range(THREADS)]
    results = post_at_once(None, [sender.lead(phone=PHONE) for sender in senders], senders=senders)

    assert [status for status, _ in results] == [200] * THREADS
    assert all(answer["is_new_user"] and answer["careos_will_contact"] for _, answer in results)
    assert len({answer["careos_user_id"] for _, answer in results}) == THREADS
    assert CareUser.objects.count() == 1 and PartnerUser.objects.count() == THREADS
    assert PartnerPayment.objects.count() == 1 and OutboundMessage.objects.count() == 1
    assert blind_first_reads == {"lead": 0, "user": THREADS - 1}


def test_without_blinding_the_race_still_ends_with_one_lead(transactional_db, require_postgres):
    """The ordinary path (read first, then insert) under the same simultaneous start."""
    setup = make_platform()
    results = post_at_once(setup, [setup.lead(phone=PHONE)] * THREADS)
    assert {answer["careos_lead_id"] for _, answer in results} == {Lead.objects.get().public_id}
    assert CareUser.objects.count() == 1 and PartnerPayment.objects.count() == 1


def _person(phone_index: str, platform) -> CareUser:
    return CareUser(phone="+14155550999", phone_index=phone_index, language="en", source="t", source_platform=platform)


def test_a_gated_statement_writes_nothing_when_its_first_row_stands_down(transactional_db, require_postgres):
    """`_rows_insert(..., unless_first_conflicts_on=...)`: the person's INSERT stands down on a known phone
    index, and no other row of the statement is inserted (each selects FROM the person's RETURNING)."""
    setup = make_platform()
    taken = _person("a" * 64, setup.platform)
    taken.save()
    person = _person("a" * 64, setup.platform)
    partner_user = PartnerUser(platform=setup.platform, user=person)
    assert (
        ingest._rows_insert([(person, {}), (partner_user, {"user_id": 0})], unless_first_conflicts_on="phone_index")
        is False
    )
    assert person.pk is None and partner_user.pk is None
    assert CareUser.objects.count() == 1 and PartnerUser.objects.count() == 0

    fresh = _person("b" * 64, setup.platform)
    partner_user = PartnerUser(platform=setup.platform, user=fresh)
    assert (
        ingest._rows_insert([(fresh, {}), (partner_user, {"user_id": 0})], unless_first_conflicts_on="phone_index")
        is True
    )
    assert PartnerUser.objects.get().user_id == fresh.pk == partner_user.user.pk


def test_a_gated_insert_still_refuses_an_overlong_value(transactional_db, require_postgres):
    """The gated INSERTs cast their parameters to the column's type without its modifier: a value too long for
    its column is refused by the column on assignment (as VALUES would be), never truncated by the cast."""
    from django.db import DataError

    setup = make_platform()
    person = _person("c" * 64, setup.platform)
    partner_user = PartnerUser(platform=setup.platform, user=person, public_id="pu_" + "x" * 60)  # the column: 40
    with pytest.raises(DataError):
        ingest._rows_insert([(person, {}), (partner_user, {"user_id": 0})], unless_first_conflicts_on="phone_index")
    assert CareUser.objects.filter(phone_index="c" * 64).count() == 0  # one statement: the person is not kept either
