"""Therapist dashboard admin: sessions (list with filters and search, a page with every record inline, the
free text decrypted for staff who may view it, audited), skills, comparisons and evaluations; read-only for
everyone, superusers included; flat list queries; not for non-staff."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from sessions_analytics import admin as sessions_admin
from sessions_analytics.models import (
    Evaluation,
    Milestone,
    ProgressFeedback,
    ProgressMetrics,
    SessionComparison,
    TrainingSession,
)
from tests.sessions_analytics.factories import (
    NOW,
    make_score,
    make_session,
    make_skill,
    make_snapshots,
    make_world,
)

pytestmark = pytest.mark.django_db
FEEDBACK = "Lovely reflective listening, rushed the summary."
COMMENTS = "Work on pacing the close."


@pytest.fixture
def world():
    return make_world()


@pytest.fixture
def superuser(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="root", email="r@example.com", password="x-long-pw-42")
    client.force_login(user)
    return client


def full_session(world, *, start=NOW, client_label="sim-client-1") -> TrainingSession:
    session = make_session(
        world.therapist, world.organization, start=start, status="completed", progress=72.5, client_label=client_label
    )
    session.end_time = start + timedelta(minutes=40)
    session.save(update_fields=["end_time"])
    ProgressMetrics.objects.create(
        session=session,
        total_messages=40,
        therapist_messages=20,
        client_messages=18,
        session_duration=2400,
        active_time=2000,
        response_time=7.5,
        conversation_flow=81,
        updated_at=start,
    )
    make_score(session, make_skill(world.organization, "active-listening", "Active Listening"), 77)
    make_snapshots(session, [20, 45, 72.5])
    Milestone.objects.create(session=session, name="goals-agreed", value=45, achieved_at=start)
    ProgressFeedback.objects.create(session=session, author=world.supervisor, feedback=FEEDBACK, created_at=start)
    Evaluation.objects.create(
        session=session, evaluator=world.supervisor, rating=4, feedback=FEEDBACK, comments=COMMENTS, created_at=start
    )
    return session


def test_session_list_shows_the_columns_filters_and_is_audited(superuser, world):
    session = full_session(world)
    # A second therapist and organization: a filter with one choice is not shown.
    outsider = make_session(world.outsider_therapist, world.other_organization, client_label="c-7")
    url = reverse("admin:sessions_analytics_trainingsession_changelist")

    response = superuser.get(url)

    body = response.content.decode()
    assert response.status_code == 200
    for value in (session.public_id, "72.5"):
        assert value in body
    # Therapist and organization named, with links to their pages (issue 14: names, not ids).
    therapist_url = reverse("admin:accounts_user_change", args=[world.therapist.pk])
    organization_url = reverse("admin:accounts_organization_change", args=[world.organization.pk])
    assert f'<a href="{therapist_url}">{world.therapist.username}</a>' in body
    assert f'<a href="{organization_url}">{world.organization.name}</a>' in body
    assert FEEDBACK not in body  # free text only on a session's own page
    filters = [spec.title for spec in response.context["cl"].filter_specs]
    assert filters == ["therapist", "organization", "status"]
    assert response.context["cl"].date_hierarchy == "start_time"
    event = AuditEvent.objects.get(action="admin.records_listed", subject_type="sessions_analytics.trainingsession")
    assert sorted(event.metadata["ids"]) == sorted([str(session.pk), str(outsider.pk)])


def test_session_list_filters_and_search(superuser, world):
    own = full_session(world)
    other = make_session(world.other_therapist, world.organization, start=NOW - timedelta(days=40), client_label="b-9")
    outsider = make_session(world.outsider_therapist, world.other_organization, client_label="c-7")
    url = reverse("admin:sessions_analytics_trainingsession_changelist")

    def listed(**params) -> set[str]:
        response = superuser.get(url, params)
        assert response.status_code == 200
        return {row.public_id for row in response.context["cl"].result_list}

    assert listed() == {own.public_id, other.public_id, outsider.public_id}
    assert listed(therapist__id__exact=world.other_therapist.pk) == {other.public_id}
    assert listed(organization__id__exact=world.other_organization.pk) == {outsider.public_id}
    assert listed(status__exact="completed") == {own.public_id}
    assert listed(q=own.public_id) == {own.public_id}
    assert listed(q=world.outsider_therapist.username) == {outsider.public_id}
    assert listed(q="b-9") == {other.public_id}
    start = other.start_time
    assert listed(start_time__year=start.year, start_time__month=start.month, start_time__day=start.day) == {
        other.public_id
    }
    # Only therapists with sessions are offered as filter choices, not every user.
    response = superuser.get(url)
    therapist_filter = response.context["cl"].filter_specs[0]
    choices = {label for _, label in therapist_filter.lookup_choices}
    assert world.supervisor.username not in choices and world.therapist.username in choices


def test_session_page_shows_every_record_inline_decrypted_and_is_audited(superuser, world):
    session = full_session(world)

    response = superuser.get(reverse("admin:sessions_analytics_trainingsession_change", args=[session.pk]))

    body = response.content.decode()
    assert response.status_code == 200
    inlines = {type(formset.opts).__name__ for formset in response.context["inline_admin_formsets"]}
    assert inlines == {
        "ProgressMetricsInline", "SkillScoreInline", "SnapshotInline", "MilestoneInline", "ProgressFeedbackInline",
        "EvaluationInline",
    }  # fmt: skip
    for value in ("Active Listening", "goals-agreed", "2400", FEEDBACK, COMMENTS, world.therapist.public_id):
        assert value in body
    assert 'name="_save"' not in body  # read-only: no save button
    event = AuditEvent.objects.get(action="admin.record_viewed", subject_type="sessions_analytics.trainingsession")
    assert event.metadata["public_id"] == session.public_id
    assert FEEDBACK not in str(event.metadata)


def test_session_page_shows_only_the_latest_snapshots(superuser, world, monkeypatch):
    monkeypatch.setattr(sessions_admin, "SNAPSHOTS_SHOWN", 3)
    session = make_session(world.therapist, world.organization)
    make_snapshots(session, [10, 20, 30, 40, 50])

    response = superuser.get(reverse("admin:sessions_analytics_trainingsession_change", args=[session.pk]))

    assert response.status_code == 200
    formset = next(
        f.formset for f in response.context["inline_admin_formsets"] if type(f.opts).__name__ == "SnapshotInline"
    )
    assert [form.instance.value for form in formset.forms] == [50, 40, 30]


def test_sessions_are_read_only_for_superusers(superuser, world):
    session = full_session(world)
    change = reverse("admin:sessions_analytics_trainingsession_change", args=[session.pk])

    superuser.post(change, {"status": "cancelled", "client_label": "edited"})
    session.refresh_from_db()
    assert (session.status, session.client_label) == ("completed", "sim-client-1")
    assert superuser.get(reverse("admin:sessions_analytics_trainingsession_add")).status_code == 403
    delete = reverse("admin:sessions_analytics_trainingsession_delete", args=[session.pk])
    assert superuser.post(delete, {"post": "yes"}).status_code == 403
    assert TrainingSession.objects.filter(pk=session.pk).exists()
    evaluation = session.evaluations.get()
    superuser.post(reverse("admin:sessions_analytics_evaluation_change", args=[evaluation.pk]), {"rating": 1})
    evaluation.refresh_from_db()
    assert evaluation.rating == 4


def test_session_list_queries_are_flat(superuser, world):
    url = reverse("admin:sessions_analytics_trainingsession_changelist")
    for index in range(2):
        make_session(world.therapist, world.organization, start=NOW - timedelta(days=index))
    superuser.get(url)  # warm up (session, content types)
    with CaptureQueriesContext(connection) as few:
        assert superuser.get(url).status_code == 200

    therapists = [world.therapist, world.other_therapist, world.outsider_therapist]
    for index in range(18):
        organization = world.other_organization if index % 3 == 2 else world.organization
        make_session(therapists[index % 3], organization, start=NOW - timedelta(days=10 + index))
    with CaptureQueriesContext(connection) as many:
        response = superuser.get(url)

    assert response.status_code == 200 and len(response.context["cl"].result_list) == 20
    assert len(many.captured_queries) == len(few.captured_queries)


@pytest.mark.parametrize("model", ["skill", "sessioncomparison", "evaluation"])
def test_other_lists_and_pages_load(superuser, world, model):
    session = full_session(world)
    previous = make_session(world.therapist, world.organization, start=NOW - timedelta(days=3), progress=60)
    make_score(previous, make_skill(world.organization, "active-listening", "Active Listening"), 70)
    comparison = SessionComparison.objects.create(
        organization=world.organization,
        therapist=world.therapist,
        current_session=session,
        previous_session=previous,
        improvement_score=64,
        progress_improvement=12.5,
        skill_score_improvement=7,
        response_time_improvement=-1,
        analyzed_at=NOW,
        created_by=world.therapist,
    )
    row = {
        "skill": session.skill_scores.get().skill,
        "sessioncomparison": comparison,
        "evaluation": session.evaluations.get(),
    }[model]

    listing = superuser.get(reverse(f"admin:sessions_analytics_{model}_changelist"), {"q": ""})
    page = superuser.get(reverse(f"admin:sessions_analytics_{model}_change", args=[row.pk]))

    assert listing.status_code == 200 and page.status_code == 200
    assert listing.context["cl"].list_filter  # every list has filters (shown once there are two choices)
    assert [r.pk for r in listing.context["cl"].result_list] == [row.pk]
    assert superuser.get(reverse(f"admin:sessions_analytics_{model}_add")).status_code == 403
    if model == "sessioncomparison":
        assert "improving" in listing.content.decode()  # 12.5 + 7 points
    if model in ("sessioncomparison", "evaluation"):  # the session linked by its id, people by name
        session_url = reverse("admin:sessions_analytics_trainingsession_change", args=[session.pk])
        assert f'<a href="{session_url}">{session.public_id}</a>' in listing.content.decode()
        person = world.therapist if model == "sessioncomparison" else session.evaluations.get().evaluator
        person_url = reverse("admin:accounts_user_change", args=[person.pk])
        assert f'<a href="{person_url}">{person.username}</a>' in listing.content.decode()
    if model == "evaluation":
        assert FEEDBACK in page.content.decode() and COMMENTS in page.content.decode()
        assert FEEDBACK not in listing.content.decode()
        assert AuditEvent.objects.filter(action="admin.record_viewed", subject_type="sessions_analytics.evaluation")


def test_staff_with_view_permission_read_the_decrypted_text(client, world, django_user_model):
    session = full_session(world)
    viewer = django_user_model.objects.create_user(username="reader", password="x-long-pw-42", is_staff=True)
    viewer.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="sessions_analytics",
            codename__in=["view_trainingsession", "view_progressfeedback", "view_evaluation"],
        )
    )
    client.force_login(viewer)
    change = reverse("admin:sessions_analytics_trainingsession_change", args=[session.pk])

    response = client.get(change)

    body = response.content.decode()
    assert response.status_code == 200 and FEEDBACK in body and COMMENTS in body
    assert client.get(reverse("admin:sessions_analytics_skill_changelist")).status_code == 403  # not granted
    client.post(change, {"client_label": "edited"})
    session.refresh_from_db()
    assert session.client_label == "sim-client-1"


def test_not_for_non_staff_or_anonymous(client, world):
    session = full_session(world)
    urls = [
        reverse("admin:sessions_analytics_trainingsession_changelist"),
        reverse("admin:sessions_analytics_trainingsession_change", args=[session.pk]),
        reverse("admin:sessions_analytics_evaluation_changelist"),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]
    client.force_login(world.supervisor)  # a platform user, not staff
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]
        assert FEEDBACK not in response.content.decode()
