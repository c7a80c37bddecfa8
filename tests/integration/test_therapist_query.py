"""integration.selectors.common.TherapistQuery: the caseload lists' queries, compiled once per process, give
exactly the rows the ORM gives for the same definition (ids, decrypted emails, dates, NULLs, every consent
state), for any therapist, and refuse a definition that depends on anything but the therapist."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from integration.models import Assessment, TherapistClientLink
from integration.selectors import clients as clients_selectors
from integration.selectors import outcomes as outcomes_selectors
from integration.selectors import progress as progress_selectors
from integration.selectors.common import TherapistQuery, consented_links, utc_now
from tests.integration import partner_world
from tests.integration.factories import link, make_client, make_couple, make_therapist
from tests.integration.partner_world import build_world, make_alert

pytestmark = pytest.mark.django_db

now = partner_world.now  # the shared fixture, made visible to this module's tests

QUERIES = {
    "clients.links": clients_selectors._LINKS,
    "clients.unread": clients_selectors._UNREAD_ALERT_COUNTS,
    "clients.couples": clients_selectors._COUPLES,
    "outcomes.links": outcomes_selectors._LINKS,
    "outcomes.assessment_types": outcomes_selectors._ASSESSMENT_TYPES,
}


@pytest.fixture
def varied(now):
    """Two therapists over the partner world's clients (every consent state and level), plus clients with
    no email, no data at all, couples with consented and non-consented members, and alerts."""
    world = build_world(now.date())
    therapist, other = world.therapist, world.other_therapist
    bare = make_client("Bare", "Nodata")  # no email, no activity, no course
    bare.email = None
    bare.save(update_fields=["email"])
    link(therapist, bare, "BASIC")
    same_name = make_client("Basic", "Client", email="twin@example.com")  # same names as the BASIC client
    link(therapist, same_name, "FULL")
    link(other, same_name, "BASIC")
    make_couple(world.clients["STANDARD"], world.clients["unconsented"])
    make_couple(world.clients["FULL"], same_name)
    make_alert(same_name, "CRISIS")
    make_alert(bare, "MILESTONE")
    Assessment.objects.filter(client=world.clients["FULL"]).update(completed_at=now - timedelta(days=1))
    return world


@pytest.mark.parametrize("name", list(QUERIES))
def test_rows_are_the_orms_rows_for_every_therapist(varied, name):
    query = QUERIES[name]
    for therapist in (varied.therapist, varied.other_therapist, make_therapist("No", "Clients", email="n@e.com")):
        expected = [tuple(row) for row in query.therapist_build(therapist)]
        assert query.rows(therapist) == expected
    assert query.rows(varied.therapist)  # the data set exercises the query
    assert query.rows(varied.therapist) != query.rows(varied.other_therapist)


def test_the_same_sql_as_the_orm_one_statement(varied):
    query = QUERIES["clients.links"]
    with CaptureQueriesContext(connection) as orm:
        list(query.therapist_build(varied.therapist))
    with CaptureQueriesContext(connection) as compiled:
        query.rows(varied.therapist)
    assert [q["sql"] for q in compiled.captured_queries] == [q["sql"] for q in orm.captured_queries]


def test_emails_are_decrypted_and_null_stays_null(varied):
    rows = {str(row[1]): row[4] for row in QUERIES["clients.links"].rows(varied.therapist)}
    links = TherapistClientLink.objects.filter(therapist=varied.therapist)
    emails = {str(client_id): email for client_id, email in links.values_list("client_id", "client__email")}
    assert None in rows.values()
    assert all(email is None or "@" in email for email in rows.values())
    assert rows == {client_id: emails[client_id] for client_id in rows}


def test_consent_is_read_at_every_call(varied):
    client = varied.clients["FULL"]
    before = {str(row[1]) for row in QUERIES["clients.links"].rows(varied.therapist)}
    assert str(client.pk) in before
    TherapistClientLink.objects.filter(therapist=varied.therapist, client=client).update(consent_revoked_at=utc_now())
    after = {str(row[1]) for row in QUERIES["clients.links"].rows(varied.therapist)}
    assert after == before - {str(client.pk)}


def test_a_definition_depending_on_more_than_the_therapist_is_refused(db):
    therapist = make_therapist()
    link(therapist, make_client(), "BASIC")
    counter = iter(range(100))
    with pytest.raises(ValueError, match="more than its arguments"):
        TherapistQuery(
            lambda t: consented_links(t).filter(permission_level__gte=str(next(counter))).values_list("pk")
        ).rows(therapist)
    with pytest.raises(ValueError, match="more than its arguments"):
        TherapistQuery(lambda t: consented_links(t).filter(created_at__lte=utc_now()).values_list("pk")).rows(therapist)
    with pytest.raises(ValueError, match="does not depend on therapist_id"):
        TherapistQuery(lambda t: TherapistClientLink.objects.values_list("pk")).rows(therapist)


PROGRESS_QUERIES = {
    name: getattr(progress_selectors, name)
    for name in (
        "_ASSESSMENTS",
        "_ACTIVE_DAYS",
        "_TASK_COUNTS",
        "_COURSE",
        "_STRATEGIES",
        "_CHECKINS",
        "_RATIOS",
        "_ANSWERED",
        "_JOURNAL",
    )
}


@pytest.mark.parametrize("name", list(PROGRESS_QUERIES))
def test_progress_rows_are_the_orms_rows(varied, now, name):
    query = PROGRESS_QUERIES[name]
    today = now.date()
    seen = []
    for client in [*varied.clients.values(), make_client("Empty", "Client")]:
        values = {"client_id": client.pk, "therapist_id": varied.therapist.pk}
        values |= {"today": today, "start": today - timedelta(days=89), "since": today - timedelta(days=30)}
        arguments = {key: values[key] for key in query.uuids + query.dates}
        rows = query.rows(**arguments)
        assert rows == [tuple(row) for row in query.build(**arguments)]
        seen += rows
    assert seen  # the world has data for every query
