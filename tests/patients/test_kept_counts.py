"""The Mark lists' `total` from counts the database keeps (core.kept_counts; Patient's and Conversation's triggers):
after every kind of write, every filter the counts answer gives what COUNT(*) gives, and the list endpoints answer
it without counting the clinic's rows. PostgreSQL only: the triggers live there (elsewhere the lists count).
"""

from __future__ import annotations

import itertools
import threading

import pytest
from django.db import close_old_connections, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework_simplejwt.tokens import AccessToken

from accounts import services as accounts_services
from accounts.models import Organization, User
from core.kept_counts import compact, compact_all, kept_total
from patients import selectors, services
from patients.models import Conversation, ConversationCount, Patient, PatientCount
from tests.patients.conftest import ACTOR, NOW

pytestmark = pytest.mark.usefixtures("require_postgres")

LANGUAGES = ("es", "ca", "en")


def _patient(clinic, name="Núria Puig", **fields) -> Patient:
    return services.patient_create(organization=clinic, name=name, actor=ACTOR, now=NOW, **fields)


def assert_exact(*clinics) -> None:
    """Every filter the kept counts answer, for each clinic, equals COUNT(*) of the rows (and the list selectors'
    own counts)."""
    for clinic in clinics:
        for archived, status, language in itertools.product(
            (None, False, True), (None, "active", "inactive"), (None, *LANGUAGES)
        ):
            equal = {"organization": clinic}
            for name, value in (("archived", archived), ("status", status), ("language", language)):
                if value is not None:
                    equal[name] = value
            assert kept_total(PatientCount, **equal) == Patient.objects.filter(**equal).count(), equal
        for status, language, archived in itertools.product(
            (None, "active", "inactive"), (None, *LANGUAGES), (False, True)
        ):
            filters = {"organization": clinic, "status": status, "language": language, "include_archived": archived}
            assert selectors.patient_list_total(**filters) == selectors.patient_list(**filters).count(), filters
        for language in (None, *LANGUAGES):
            equal = {"organization": clinic, **({"language": language} if language else {})}
            assert kept_total(ConversationCount, **equal) == Conversation.objects.filter(**equal).count(), equal
            listed = selectors.conversation_list(organization=clinic, language=language)
            assert selectors.conversation_list_total(organization=clinic, language=language) == listed.count()


@pytest.fixture
def two_clinics(clinic, other_clinic):
    for index, language in enumerate(LANGUAGES * 2):
        patient = _patient(clinic, name=f"Patient {index}", preferred_language=language)
        Conversation.objects.create(organization=clinic, patient=patient, language=language)
    _patient(other_clinic, name="Elsewhere", preferred_language="en")
    assert_exact(clinic, other_clinic)
    assert kept_total(PatientCount, organization=clinic) == 6  # not vacuous: the rows are there
    return clinic, other_clinic


def _status_saved(clinic, other):
    patient = Patient.objects.filter(organization=clinic).first()
    patient.status = Patient.Status.INACTIVE
    patient.save()


def _updated_in_bulk(clinic, other):
    Patient.objects.filter(organization=clinic, language="es").update(status="inactive", language="ca")


def _archived(clinic, other):
    Patient.objects.filter(organization=clinic, language="en").update(archived=True)


def _moved_to_another_clinic(clinic, other):
    Patient.objects.filter(organization=clinic, language="ca").update(organization=other)
    Conversation.objects.filter(organization=clinic, language="ca").update(organization=other)


def _bulk_created(clinic, other):
    Patient.objects.bulk_create(
        [Patient(organization=clinic, name=f"Bulk {i}", name_search=f"bulk {i}", language="en") for i in range(5)]
    )


def _deleted_one(clinic, other):
    Patient.objects.filter(organization=clinic).first().delete()  # its conversations go with it (CASCADE)


def _deleted_in_bulk(clinic, other):
    Conversation.objects.filter(organization=clinic, language="es").delete()
    Patient.objects.filter(organization=clinic, status="active", language="es").delete()


def _raw_sql(clinic, other):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO patients_patient (public_id, uuid, organization_id, name, name_search, notes, language, "
            "metadata, status, whatsapp_consent, whatsapp_opt_out_reason, source, archived, last_activity, "
            "created_at, updated_at) VALUES ('pat_raw', gen_random_uuid(), %s, 'Raw', 'raw', '', 'ca', '{}', "
            "'inactive', true, '', 'api', false, now(), now(), now())",
            [clinic.pk],
        )
        cursor.execute("UPDATE patients_patient SET language = 'en' WHERE organization_id = %s", [other.pk])


def _truncated(clinic, other):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses pending (deferred) FK checks
        cursor.execute("TRUNCATE patients_patient CASCADE")


WRITES = [
    _status_saved,
    _updated_in_bulk,
    _archived,
    _moved_to_another_clinic,
    _bulk_created,
    _deleted_one,
    _deleted_in_bulk,
    _raw_sql,
    _truncated,
]


@pytest.mark.parametrize("write", WRITES, ids=[write.__name__.strip("_") for write in WRITES])
def test_every_kind_of_write_keeps_every_count_exact(two_clinics, write):
    clinic, other = two_clinics
    before = PatientCount.objects.count()
    write(clinic, other)
    assert PatientCount.objects.count() != before  # the write counted (a part more, or all gone on TRUNCATE)
    assert_exact(clinic, other)
    compact_all()
    combinations = PatientCount.objects.values("organization", "archived", "status", "language").distinct().count()
    assert PatientCount.objects.count() == combinations  # folded: one part per combination
    assert_exact(clinic, other)  # and the same totals


def test_a_rolled_back_write_leaves_the_counts(two_clinics):
    clinic, other = two_clinics
    before = sorted(PatientCount.objects.values_list("organization_id", "archived", "status", "language", "n"))
    assert before
    with pytest.raises(RuntimeError), transaction.atomic():
        _bulk_created(clinic, other)
        _updated_in_bulk(clinic, other)
        raise RuntimeError("roll back")
    assert sorted(PatientCount.objects.values_list("organization_id", "archived", "status", "language", "n")) == before
    assert_exact(clinic, other)


def test_an_update_of_other_columns_adds_no_part(two_clinics):
    """The hot writes (a message bumps the patient's last activity and the conversation's count) change no
    counted column: they add no part."""
    clinic, _other = two_clinics
    parts = PatientCount.objects.count(), ConversationCount.objects.count()
    Patient.objects.filter(organization=clinic).update(last_activity=NOW, name="Renamed")
    Conversation.objects.filter(organization=clinic).update(message_count=3, last_message_at=NOW)
    Patient.objects.filter(organization=clinic, language="es").update(language="ca")  # a counted column: parts
    assert (PatientCount.objects.count(), ConversationCount.objects.count()) == (parts[0] + 2, parts[1])
    assert_exact(clinic)


def test_compaction_folds_the_parts_and_keeps_every_total(two_clinics):
    clinic, other = two_clinics
    _updated_in_bulk(clinic, other)
    _bulk_created(clinic, other)
    parts = PatientCount.objects.count()
    combinations = PatientCount.objects.values("organization", "archived", "status", "language").distinct().count()
    assert parts > combinations  # not vacuous: there is something to fold

    single = PatientCount.objects.get(organization=other)  # the other clinic's one combination, one part
    untouched = PatientCount.objects.extra(select={"v": "xmin::text"}).values_list("v", flat=True).get(pk=single.pk)

    removed = compact(PatientCount)

    # A combination with one part is left as it is (a compaction costs what was written since the last one).
    assert PatientCount.objects.extra(select={"v": "xmin::text"}).values_list("v", flat=True).get(pk=single.pk) == (
        untouched
    )

    assert removed >= parts - combinations
    assert PatientCount.objects.count() == parts - removed
    assert not PatientCount.objects.filter(n=0).exists()  # a combination summing to 0 keeps no part
    assert (
        PatientCount.objects.values("organization", "archived", "status", "language").distinct().count()
        == PatientCount.objects.count()
    )
    assert_exact(clinic, other)
    assert compact(PatientCount) == 0  # idempotent


@pytest.mark.django_db(transaction=True)
def test_a_part_committed_during_a_compaction_is_kept():
    """A writer's part that commits while the compaction runs is not among the parts it folds: the compaction's
    DELETE sees only what was committed when it started, and the writer never waits for it."""
    clinic = Organization.objects.create(name="Compacted clinic")
    Patient.objects.create(organization=clinic, name="A", name_search="a", language="es")
    Patient.objects.create(organization=clinic, name="B", name_search="b", language="es")
    writer_started, compacted = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with transaction.atomic():
                Patient.objects.create(organization=clinic, name="C", name_search="c", language="es")
                writer_started.set()
                assert compacted.wait(timeout=10)  # commits after the compaction
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    assert writer_started.wait(timeout=10)
    compact(PatientCount)  # does not wait for the writer's uncommitted part
    compacted.set()
    thread.join(timeout=30)
    assert errors == []
    assert kept_total(PatientCount, organization=clinic) == 3 == Patient.objects.filter(organization=clinic).count()
    assert PatientCount.objects.filter(organization=clinic).count() == 2  # the folded part and the writer's


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_of_one_clinic_keep_the_count_exact():
    """Writers in their own transactions, on their own connections, creating patients of one clinic and moving
    them between languages at the same time, while the parts are compacted: none waits on another's counts (a
    counter row per combination deadlocked here), and no part is lost."""
    clinic = Organization.objects.create(name="Busy clinic")
    start = threading.Barrier(5)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            start.wait(timeout=10)
            for index in range(10):
                with transaction.atomic():
                    patient = Patient.objects.create(
                        organization=clinic, name=f"W{number} {index}", name_search="w", language=LANGUAGES[index % 3]
                    )
                    Patient.objects.filter(pk=patient.pk).update(language=LANGUAGES[(index + number) % 3])
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    def compactor() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(10):
                compact(PatientCount)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(4)]
    threads.append(threading.Thread(target=compactor))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert kept_total(PatientCount, organization=clinic) == Patient.objects.filter(organization=clinic).count() == 40
    assert_exact(clinic)


@pytest.fixture
def mark_api():
    """A Django test client signed in as the owner of `clinic`, as a Mark partner calls the API."""

    def signed_in(clinic) -> Client:
        owner = User.objects.create_user(username="owner", password="pw-owner-123!")
        accounts_services.membership_set(user=owner, organization=clinic, role="owner", actor=ACTOR)
        return Client(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(owner)}")

    return signed_in


def _counted_rows(captured) -> list[str]:
    return [q["sql"] for q in captured if "COUNT(*)" in q["sql"] and '"patients_' in q["sql"]]


def test_the_lists_answer_their_total_without_counting_the_clinic(two_clinics, mark_api):
    clinic, _other = two_clinics
    api = mark_api(clinic)
    for path, expected in (
        ("/api/v1/patients", 6),
        ("/api/v1/patients?language=es&status=active", 2),
        ("/api/v1/conversations", 6),
        ("/api/v1/conversations?language=ca", 2),
    ):
        with CaptureQueriesContext(connection) as queries:
            body = api.get(path).json()
        assert body["total"] == expected, path
        assert _counted_rows(queries.captured_queries) == [], path
    with CaptureQueriesContext(connection) as queries:
        body = api.get("/api/v1/patients?search=patient%201").json()
    assert body["total"] == 1
    assert len(_counted_rows(queries.captured_queries)) == 1  # a search is counted with its rows


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_the_rows_already_there():
    """Rows written before the triggers existed (migrated back to before them) are counted by the migration."""
    from django.db.migrations.executor import MigrationExecutor

    clinic = Organization.objects.create(name="Migrated clinic")
    try:
        MigrationExecutor(connection).migrate([("patients", "0008_clinic_recent_days")])
        with connection.cursor() as cursor:  # the models' state is ahead of the schema here: plain SQL
            for index, (language, archived) in enumerate((("es", False), ("es", False), ("ca", True))):
                cursor.execute(
                    "INSERT INTO patients_patient (public_id, uuid, organization_id, name, name_search, notes, "
                    "language, metadata, status, whatsapp_consent, whatsapp_opt_out_reason, source, archived, "
                    "last_activity, created_at, updated_at) VALUES (%s, gen_random_uuid(), %s, 'P', 'p', '', %s, "
                    "'{}', 'active', true, '', 'api', %s, now(), now(), now())",
                    [f"pat_migrated_{index}", clinic.pk, language, archived],
                )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert kept_total(PatientCount, organization=clinic) == 3
    assert kept_total(PatientCount, organization=clinic, archived=False, language="es") == 2
    assert_exact(clinic)
