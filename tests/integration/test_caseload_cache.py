"""GET /clients and /outcomes served from the caseload cache (integration.selectors.caseload, core.body_cache):
exact, because the database replaces the therapist's CaseloadGeneration token in the transaction of every write
to what the bodies show (integration.models `_caseload_triggers`). Every answer here is compared with the same
request computed with the cache off. PostgreSQL only: the triggers live there, and elsewhere nothing is cached.
"""

from __future__ import annotations

import pickle
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from audit.models import AccessLog
from core import body_cache
from core.time import utc_now
from integration.models import (
    ActivityEntry,
    Alert,
    AlertRecipient,
    Assessment,
    CaseloadGeneration,
    CheckIn,
    Client,
    Couple,
    CourseProgress,
    Therapist,
    TherapistClientLink,
)
from integration.selectors.caseload import caseload_body_key
from tests.integration.factories import link, make_client, make_partner, make_therapist

pytestmark = pytest.mark.usefixtures("require_postgres")

BASE = "/api/integration"
ENDPOINTS = ("/clients", "/outcomes")
# Tables the cached bodies never read: a served body must not touch them (nor the ones below).
BODY_TABLES = (
    "integration_therapistclientlink",
    "integration_checkin",
    "integration_activityentry",
    "integration_alert",
    "integration_assessment",
    "integration_couple",
    "integration_courseprogress",
)


@pytest.fixture
def world():
    """Therapist T (partner P) with clients basic, standard, full, each with a check-in, an activity, a
    course, an assessment and alerts; standard and full are a couple. Therapist T2 (partner P2) with one client
    of their own."""
    now = utc_now()
    today = now.date()
    therapist = make_therapist()
    other_therapist = make_therapist("Olga", "Other", email="olga@example.com")
    clients = {}
    for level, name in (("BASIC", "Basil"), ("STANDARD", "Stan"), ("FULL", "Fuller")):
        client = make_client(level.title(), name, email=f"{name.lower()}@example.com")
        link(therapist, client, level)
        CheckIn.objects.create(client=client, date=today, mood=6, closeness=5)
        ActivityEntry.objects.create(client=client, date=today - timedelta(days=1), activity="date_night")
        CourseProgress.objects.create(client=client, current_week=3)
        Assessment.objects.create(client=client, type="gottman_ratio", score={"score": 50}, completed_at=now)
        Alert.objects.create(
            client=client,
            alert_type="CRISIS",
            severity="HIGH",
            rule="crisis_checkin",
            episode_key="1",
            required_level="STANDARD",
            message="m",
            created_at=now,
        )
        clients[level] = client
    Couple.objects.create(partner1=clients["STANDARD"], partner2=clients["FULL"])
    theirs = make_client("Theo", "Theirs", email="theo@example.com")
    link(other_therapist, theirs, "FULL")
    CheckIn.objects.create(client=theirs, date=today, mood=4, closeness=4)
    partner = make_partner(therapists=[therapist])
    other_partner = make_partner(therapists=[other_therapist])
    return {
        "therapist": therapist,
        "headers": partner.headers(therapist),
        "other_therapist": other_therapist,
        "other_headers": other_partner.headers(other_therapist),
        "clients": clients,
        "theirs": theirs,
        "today": today,
        "now": now,
    }


def get(client, world, path, headers=None):
    response = client.get(BASE + path, **(headers or world["headers"]))
    assert response.status_code == 200, response.content
    return response


def fresh(client, world, path, settings) -> bytes:
    """The body computed now with the cache off."""
    seconds = settings.BODY_CACHE_SECONDS
    settings.BODY_CACHE_SECONDS = 0
    try:
        return get(client, world, path).content
    finally:
        settings.BODY_CACHE_SECONDS = seconds


def token(therapist) -> str:
    return str(CaseloadGeneration.objects.get(therapist=therapist).token)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_repeat_is_served_byte_for_byte_without_reading_the_body_tables(client, world, settings, path):
    first = get(client, world, path)
    with CaptureQueriesContext(connection) as queries:
        second = get(client, world, path)
    read = [query["sql"] for query in queries.captured_queries]  # before the next request resets the log
    assert any("integration_caseloadgeneration" in sql for sql in read)
    assert not [table for table in BODY_TABLES if table in " ".join(read)]
    with CaptureQueriesContext(connection) as computed:
        computed_body = fresh(client, world, path, settings)
    assert len(read) < len(computed.captured_queries)
    assert second.content == first.content == computed_body
    assert second["Content-Type"] == first["Content-Type"] == "application/json"


@pytest.mark.parametrize("path", ENDPOINTS)
def test_the_access_log_names_the_same_clients_when_served(client, world, path):
    get(client, world, path)
    get(client, world, path)
    first, second = AccessLog.objects.filter(path=BASE + path).order_by("id")
    assert sorted(second.subject_ids) == sorted(first.subject_ids)
    assert sorted(first.subject_ids) == sorted(f"client:{c.pk}" for c in world["clients"].values())


def _consent_revoked(world):
    TherapistClientLink.objects.filter(client=world["clients"]["FULL"]).update(consent_revoked_at=utc_now())


def _level_raised(world):
    row = TherapistClientLink.objects.get(client=world["clients"]["BASIC"])
    row.permission_level = "FULL"
    row.save()


def _new_consented_client(world):
    link(world["therapist"], make_client("New", "Comer", email="new@example.com"), "STANDARD")


def _link_deleted(world):
    TherapistClientLink.objects.filter(client=world["clients"]["BASIC"]).delete()


def _client_renamed(world):
    client = world["clients"]["STANDARD"]
    client.last_name = "Renamed"
    client.save()


def _email_changed(world):
    client = world["clients"]["BASIC"]
    client.email = "changed@example.com"
    client.save(update_fields=["email"])


def _mood_posted(world):
    CheckIn.objects.create(
        client=world["clients"]["FULL"], date=world["today"] + timedelta(days=1), mood=9, closeness=9
    )


def _mood_changed_by_raw_sql(world):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE integration_checkin SET mood = 2 WHERE client_id = %s", [world["clients"]["FULL"].pk])


def _checkins_deleted(world):
    CheckIn.objects.filter(client=world["clients"]["STANDARD"]).delete()


def _activity_logged(world):
    ActivityEntry.objects.create(client=world["clients"]["BASIC"], date=world["today"], activity="talk")


def _course_advanced(world):
    CourseProgress.objects.filter(client=world["clients"]["FULL"]).update(current_week=7, completed_at=utc_now())


def _assessment_taken(world):
    Assessment.objects.create(
        client=world["clients"]["BASIC"], type="love_language", score={"score": 1}, completed_at=utc_now()
    )


def _milestone_alert(world):
    Alert.objects.create(
        client=world["clients"]["BASIC"],
        alert_type="MILESTONE",
        severity="LOW",
        rule="milestone_week",
        episode_key="3",
        required_level="BASIC",
        message="m",
        created_at=utc_now(),
    )


def _alert_read(world):
    alert = Alert.objects.get(client=world["clients"]["FULL"])
    AlertRecipient.objects.create(alert=alert, therapist=world["therapist"], read_at=utc_now())


def _couple_ended(world):
    Couple.objects.update(status=Couple.Status.INACTIVE)


def _client_deleted(world):
    Client.objects.filter(pk=world["clients"]["STANDARD"].pk).delete()


def _checkins_truncated(world):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses pending (deferred) FK checks
        cursor.execute("TRUNCATE integration_checkin")


WRITES = [
    _consent_revoked,
    _level_raised,
    _new_consented_client,
    _link_deleted,
    _client_renamed,
    _email_changed,
    _mood_posted,
    _mood_changed_by_raw_sql,
    _checkins_deleted,
    _activity_logged,
    _course_advanced,
    _assessment_taken,
    _milestone_alert,
    _alert_read,
    _couple_ended,
    _client_deleted,
    _checkins_truncated,
]


@pytest.mark.parametrize("write", WRITES, ids=[w.__name__.strip("_") for w in WRITES])
def test_every_kind_of_write_makes_the_next_read_fresh(client, world, settings, write):
    before = {path: get(client, world, path).content for path in ENDPOINTS}
    assert all(get(client, world, path).content == before[path] for path in ENDPOINTS)  # served
    token_before = token(world["therapist"])
    write(world)
    assert token(world["therapist"]) != token_before
    after = {path: get(client, world, path).content for path in ENDPOINTS}
    assert after == {path: fresh(client, world, path, settings) for path in ENDPOINTS}
    assert after != before  # the write did change what a body shows


def test_a_revoked_client_is_gone_on_the_very_next_request(client, world):
    revoked = str(world["clients"]["FULL"].pk)
    assert revoked in get(client, world, "/clients").content.decode()
    get(client, world, "/clients")  # served from the cache
    TherapistClientLink.objects.filter(client_id=revoked).update(consent_revoked_at=utc_now())
    assert revoked not in get(client, world, "/clients").content.decode()
    assert revoked not in get(client, world, "/outcomes").content.decode()


def test_a_write_for_another_therapists_client_keeps_this_entry(client, world):
    mine, theirs = token(world["therapist"]), token(world["other_therapist"])
    CheckIn.objects.filter(client=world["theirs"]).update(mood=1)
    assert token(world["therapist"]) == mine
    assert token(world["other_therapist"]) != theirs


def test_a_write_that_rolls_back_keeps_the_token(world):
    before = token(world["therapist"])
    with pytest.raises(RuntimeError), transaction.atomic():
        _mood_posted(world)
        assert token(world["therapist"]) != before  # replaced inside the writer's transaction
        raise RuntimeError("roll back")
    assert token(world["therapist"]) == before


def test_each_therapist_gets_a_generation_row_when_made():
    therapists = Therapist.objects.bulk_create([Therapist(first_name="A", last_name="B") for _ in range(3)])
    rows = CaseloadGeneration.objects.filter(therapist__in=therapists)
    assert rows.count() == 3
    assert len({row.token for row in rows}) == 3


def test_no_generation_row_nothing_cached(client, world):
    CaseloadGeneration.objects.filter(therapist=world["therapist"]).delete()
    assert caseload_body_key(world["therapist"], "clients") is None
    first = get(client, world, "/clients")
    with CaptureQueriesContext(connection) as queries:
        second = get(client, world, "/clients")
    assert second.content == first.content
    assert "integration_checkin" in " ".join(query["sql"] for query in queries.captured_queries)


def _stored_entry(world, body: str):
    from django.core.cache import cache

    key = f"body:{body_cache._code_fingerprint()}:{caseload_body_key(world['therapist'], body)}"
    return key, cache.get(key)


def test_the_cached_entry_holds_no_name_or_email_in_clear(client, world):
    get(client, world, "/clients")
    _, entry = _stored_entry(world, "clients")
    assert entry is not None
    raw = pickle.dumps(entry)
    for client_row in world["clients"].values():
        assert client_row.email.encode() not in raw
        assert client_row.last_name.encode() not in raw
        assert str(client_row.pk).encode() not in raw  # nor the subjects' ids


def test_a_tampered_entry_is_a_miss_and_the_body_is_computed_again(client, world, settings):
    from django.core.cache import cache

    get(client, world, "/clients")
    key, (computed_at, valid_until, subjects, sealed) = _stored_entry(world, "clients")
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    cache.set(key, (computed_at, valid_until, subjects, bytes(tampered)))
    with CaptureQueriesContext(connection) as queries:
        answer = get(client, world, "/clients")
    assert "integration_checkin" in " ".join(query["sql"] for query in queries.captured_queries)
    assert answer.content == fresh(client, world, "/clients", settings)


def test_a_deployment_with_other_code_does_not_serve_this_codes_entries(client, world, monkeypatch):
    get(client, world, "/clients")
    monkeypatch.setattr(body_cache, "_code_fingerprint", lambda: "another-build")
    with CaptureQueriesContext(connection) as queries:
        get(client, world, "/clients")
    assert "integration_checkin" in " ".join(query["sql"] for query in queries.captured_queries)


def test_an_entry_is_per_therapist(client, world):
    mine = get(client, world, "/clients").content
    theirs = get(client, world, "/clients", world["other_headers"]).content
    assert str(world["theirs"].pk).encode() in theirs
    assert str(world["theirs"].pk).encode() not in mine
    assert get(client, world, "/clients").content == mine
