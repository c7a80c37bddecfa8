"""Therapist dashboard selectors: who reads which session (a therapist their own, reviewers the whole
organization, nobody another organization's: all 404 alike), therapistId resolution, the session list's
filters and order, the record reads, timeRange parsing and its boundary, and query counts that stay flat
as rows grow."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.domain import Invalid, NotFound, PermissionDenied
from core.pagination import PageRequest
from core.scoping import OrganizationScope, Role
from sessions_analytics import selectors
from sessions_analytics.models import Evaluation, Milestone, ProgressFeedback, ProgressMetrics
from tests.sessions_analytics.factories import (
    NOW,
    make_member,
    make_score,
    make_session,
    make_skill,
    make_snapshots,
    make_world,
)

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
PAGE = PageRequest(page=1, limit=20)


@pytest.fixture
def world():
    return make_world()


def access(world, user, role: str, organization=None) -> selectors.Access:
    organization = organization or world.organization
    scope = OrganizationScope(organization=organization, public_id=organization.public_id, role=role)
    return selectors.access_for(scope, user)


def as_therapist(world, user=None) -> selectors.Access:
    return access(world, user or world.therapist, Role.THERAPIST)


def as_supervisor(world) -> selectors.Access:
    return access(world, world.supervisor, Role.SUPERVISOR)


def ids(rows) -> list[str]:
    return [row.public_id for row in rows]


# --- Access -----------------------------------------------------------------------------------------------


def test_access_carries_the_scope_and_knows_the_reviewers(world):
    scope = OrganizationScope(organization=world.organization, public_id=world.organization.public_id, role="owner")
    owner = selectors.access_for(scope, world.owner)
    assert (owner.organization, owner.user, owner.role) == (world.organization, world.owner, "owner")
    assert {role for role in Role.values if access(world, world.owner, role).is_reviewer} == {
        "supervisor",
        "owner",
        "admin",
    }
    assert selectors.DASHBOARD_ROLES == {"therapist", "supervisor", "owner", "admin"}


# --- session_get ----------------------------------------------------------------------------------------


def test_a_therapist_reads_their_own_session_with_therapist_and_organization_joined(world, django_assert_num_queries):
    session = make_session(world.therapist, world.organization)
    with django_assert_num_queries(1):
        found = selectors.session_get(as_therapist(world), session.public_id)
        assert (found.therapist.public_id, found.organization.public_id) == (
            world.therapist.public_id,
            world.organization.public_id,
        )
    assert found.pk == session.pk


def test_unknown_foreign_and_other_therapists_sessions_are_the_same_404(world):
    others = make_session(world.other_therapist, world.organization)
    foreign = make_session(world.outsider_therapist, world.other_organization)
    cases = [others.public_id, foreign.public_id, "ses_unknown123", "pat_abc", "ses_", "", None, 42]
    for session_id in cases:
        with pytest.raises(NotFound) as caught:
            selectors.session_get(as_therapist(world), session_id)
        assert (caught.value.message, caught.value.code) == ("Session not found", "SESSION_NOT_FOUND")
    # A reviewer of this organization does not reach the other organization's session either.
    with pytest.raises(NotFound):
        selectors.session_get(as_supervisor(world), foreign.public_id)


def test_reviewers_read_every_session_of_their_organization(world):
    sessions = [
        make_session(world.therapist, world.organization),
        make_session(world.other_therapist, world.organization),
    ]
    for user, role in ((world.supervisor, Role.SUPERVISOR), (world.owner, Role.OWNER), (world.admin, Role.ADMIN)):
        for session in sessions:
            assert selectors.session_get(access(world, user, role), session.public_id).pk == session.pk


def test_roles_outside_the_dashboard_read_nothing(world):
    own = make_session(world.staff, world.organization)  # even a session naming them
    for role in (Role.STAFF, Role.VIEWER):
        with pytest.raises(NotFound):
            selectors.session_get(access(world, world.staff, role), own.public_id)
        assert selectors.sessions_readable(access(world, world.staff, role)).count() == 0


# --- therapist_resolve ----------------------------------------------------------------------------------


def test_therapist_resolve_names_the_caller_by_default_and_by_their_own_id(world):
    for caller in (as_therapist(world), as_supervisor(world)):
        assert selectors.therapist_resolve(caller, None) == caller.user
        assert selectors.therapist_resolve(caller, "") == caller.user
        assert selectors.therapist_resolve(caller, caller.user.public_id) == caller.user


def test_a_therapist_may_not_name_anyone_else(world):
    for other in (world.other_therapist, world.supervisor, world.outsider_therapist):
        with pytest.raises(PermissionDenied) as caught:
            selectors.therapist_resolve(as_therapist(world), other.public_id)
        assert (caught.value.message, caught.value.code) == ("You may only act for yourself", "FORBIDDEN")
    with pytest.raises(PermissionDenied):
        selectors.therapist_resolve(as_therapist(world), "usr_doesnotexist")


def test_a_reviewer_names_any_member_of_the_organization_and_nobody_else(world):
    supervisor = as_supervisor(world)
    for member in (world.therapist, world.other_therapist, world.staff, world.owner):
        assert selectors.therapist_resolve(supervisor, member.public_id) == member
    no_member = make_member(None, Role.THERAPIST)
    for therapist_id in (world.outsider_therapist.public_id, no_member.public_id, "usr_doesnotexist", "x"):
        with pytest.raises(NotFound) as caught:
            selectors.therapist_resolve(supervisor, therapist_id)
        assert (caught.value.message, caught.value.code) == ("Therapist not found", "THERAPIST_NOT_FOUND")


# --- sessions_page --------------------------------------------------------------------------------------


def test_a_therapist_lists_their_own_sessions_newest_first(world):
    older = make_session(world.therapist, world.organization, start=NOW - DAY)
    newer = make_session(world.therapist, world.organization, start=NOW)
    make_session(world.other_therapist, world.organization, start=NOW + HOUR)
    make_session(world.outsider_therapist, world.other_organization, start=NOW + HOUR)
    page = selectors.sessions_page(as_therapist(world), therapist=None, status=None, since=None, page=PAGE)
    assert (page.total, ids(page.items)) == (2, [newer.public_id, older.public_id])


def test_a_reviewer_lists_the_organization_or_one_therapist(world):
    mine = make_session(world.therapist, world.organization, start=NOW - DAY)
    theirs = make_session(world.other_therapist, world.organization, start=NOW)
    make_session(world.outsider_therapist, world.other_organization)
    supervisor = as_supervisor(world)
    everyone = selectors.sessions_page(supervisor, therapist=None, status=None, since=None, page=PAGE)
    assert ids(everyone.items) == [theirs.public_id, mine.public_id]
    one = selectors.sessions_page(supervisor, therapist=world.therapist, status=None, since=None, page=PAGE)
    assert ids(one.items) == [mine.public_id]


def test_the_list_filters_by_status_and_start(world):
    active = make_session(world.therapist, world.organization, start=NOW)
    completed = make_session(world.therapist, world.organization, start=NOW - 10 * DAY, status="completed")
    caller = as_therapist(world)
    by_status = selectors.sessions_page(caller, therapist=None, status="completed", since=None, page=PAGE)
    assert ids(by_status.items) == [completed.public_id]
    recent = selectors.sessions_page(caller, therapist=None, status=None, since=NOW - 7 * DAY, page=PAGE)
    assert ids(recent.items) == [active.public_id]
    with pytest.raises(Invalid) as caught:
        selectors.sessions_page(caller, therapist=None, status="done", since=None, page=PAGE)
    assert set(caught.value.details) == {"status"}


def test_the_list_pages(world):
    for hour in range(5):
        make_session(world.therapist, world.organization, start=NOW - hour * HOUR)
    page = selectors.sessions_page(
        as_therapist(world), therapist=None, status=None, since=None, page=PageRequest(page=2, limit=2)
    )
    assert (page.total, page.page, page.limit, [s.start_time for s in page.items]) == (
        5,
        2,
        2,
        [NOW - 2 * HOUR, NOW - 3 * HOUR],
    )


@pytest.mark.parametrize("rows", [1, 20])
def test_the_list_costs_two_queries_however_many_rows(world, rows, django_assert_num_queries):
    for index in range(rows):
        therapist = world.therapist if index % 2 == 0 else world.other_therapist
        make_session(therapist, world.organization, start=NOW - index * HOUR)
    with django_assert_num_queries(2):
        page = selectors.sessions_page(as_supervisor(world), therapist=None, status=None, since=None, page=PAGE)
        therapist_ids = {session.therapist.public_id for session in page.items}
    assert len(page.items) == rows
    assert world.therapist.public_id in therapist_ids


# --- session_detail and the record reads ----------------------------------------------------------------


def _session_with_records(world, snapshots: int):
    session = make_session(world.therapist, world.organization)
    make_snapshots(session, [min(100, 10 + i) for i in range(snapshots)])
    for index in range(snapshots):
        skill = make_skill(world.organization, f"skill-{index}", f"Skill {index}")
        make_score(session, skill, 50 + index % 50)
        Milestone.objects.create(session=session, name=f"m-{index}", achieved_at=NOW + index * HOUR, value=index)
    ProgressMetrics.objects.create(
        session=session,
        total_messages=10,
        therapist_messages=5,
        client_messages=5,
        session_duration=600,
        active_time=500,
        response_time=2.5,
        conversation_flow=80,
        updated_at=NOW,
    )
    return session


@pytest.mark.parametrize("rows", [1, 20])
def test_session_detail_costs_the_same_queries_however_many_records(world, rows, django_assert_num_queries):
    session = _session_with_records(world, rows)
    with django_assert_num_queries(4):  # session + metrics joined; scores (+skill), milestones, snapshots
        detail = selectors.session_detail(as_therapist(world), session.public_id)
        names = [score.skill.name for score in detail.skill_scores]
    assert detail.session.pk == session.pk
    assert detail.metrics.total_messages == 10
    assert len(names) == len(detail.milestones) == len(detail.snapshots) == rows
    assert [s.timestamp for s in detail.snapshots] == sorted(s.timestamp for s in detail.snapshots)
    assert detail.analytics is None


def test_session_detail_of_a_bare_session_and_its_404s(world):
    session = make_session(world.therapist, world.organization)
    detail = selectors.session_detail(as_therapist(world), session.public_id)
    assert (detail.metrics, detail.skill_scores, detail.milestones, detail.snapshots) == (None, [], [], [])
    with pytest.raises(NotFound) as caught:
        selectors.session_detail(as_therapist(world, world.other_therapist), session.public_id)
    assert caught.value.code == "SESSION_NOT_FOUND"


def test_session_detail_includes_posted_analytics(world):
    session = make_session(world.therapist, world.organization, analytics_posted_at=NOW)
    make_snapshots(session, [40, 45])
    detail = selectors.session_detail(as_supervisor(world), session.public_id, now=NOW)
    assert detail.analytics.source == "posted"
    assert [s.value for s in detail.analytics.progress_snapshots] == [40, 45]


def test_progress_read_with_and_without_feedback(world):
    session = _session_with_records(world, 2)
    ProgressFeedback.objects.create(session=session, author=world.supervisor, feedback="later", created_at=NOW + HOUR)
    ProgressFeedback.objects.create(session=session, author=world.therapist, feedback="first", created_at=NOW)
    read = selectors.progress_read(session, include_feedback=True)
    assert read.metrics.conversation_flow == 80
    assert [s.skill.name for s in read.skill_scores] == ["Skill 0", "Skill 1"]
    assert [m.name for m in read.milestones] == ["m-0", "m-1"]
    assert [(f.author.public_id, f.feedback) for f in read.feedback] == [
        (world.therapist.public_id, "first"),
        (world.supervisor.public_id, "later"),
    ]
    assert selectors.progress_read(session, include_feedback=False).feedback is None
    bare = selectors.progress_read(make_session(world.therapist, world.organization), include_feedback=True)
    assert (bare.metrics, bare.skill_scores, bare.milestones, bare.feedback) == (None, [], [], [])


def test_snapshots_read_orders_by_time(world):
    session = make_session(world.therapist, world.organization)
    make_snapshots(session, [30], start=NOW + HOUR)
    make_snapshots(session, [10], start=NOW)
    Milestone.objects.create(session=session, name="second", achieved_at=NOW + HOUR)
    Milestone.objects.create(session=session, name="first", achieved_at=NOW)
    read = selectors.snapshots_read(session)
    assert [s.value for s in read.snapshots] == [10, 30]
    assert [m.name for m in read.milestones] == ["first", "second"]


def test_evaluations_read_oldest_first_with_the_evaluator_joined(world, django_assert_num_queries):
    session = make_session(world.therapist, world.organization)
    for offset, evaluator in ((HOUR, world.owner), (0 * HOUR, world.supervisor)):
        Evaluation.objects.create(session=session, evaluator=evaluator, rating=4, feedback="f", created_at=NOW + offset)
    with django_assert_num_queries(1):
        evaluations = selectors.evaluations_read(session)
        evaluators = [e.evaluator.public_id for e in evaluations]
    assert evaluators == [world.supervisor.public_id, world.owner.public_id]


# --- timeRange -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "days"), [("7d", 7), ("30d", 30), ("90d", 90), ("1y", 365)])
def test_time_ranges(value, days):
    assert selectors.time_range_since(value, NOW) == NOW - timedelta(days=days)


def test_no_time_range_is_all_time():
    assert selectors.time_range_since(None, NOW) is None


@pytest.mark.parametrize("value", ["", "7", "7D", "1w", "365d", " 7d", "all"])
def test_other_time_ranges_are_invalid(value):
    with pytest.raises(Invalid) as caught:
        selectors.time_range_since(value, NOW)
    assert caught.value.code == "INVALID_TIME_RANGE"
    assert caught.value.details == {"timeRange": "must be one of 7d, 30d, 90d, 1y"}


def test_the_range_boundary_is_inclusive(world):
    since = selectors.time_range_since("7d", NOW)
    at_boundary = make_session(world.therapist, world.organization, start=NOW - 7 * DAY)
    make_session(world.therapist, world.organization, start=NOW - 7 * DAY - timedelta(microseconds=1))
    page = selectors.sessions_page(as_therapist(world), therapist=None, status=None, since=since, page=PAGE)
    assert ids(page.items) == [at_boundary.public_id]


def test_session_of_therapist_refuses_another_therapists_session_naming_therapist_id(world):
    session = make_session(world.therapist, world.organization)
    selectors.session_of_therapist(session, None)
    selectors.session_of_therapist(session, world.therapist)
    with pytest.raises(Invalid) as refused:
        selectors.session_of_therapist(session, world.other_therapist)
    assert refused.value.details == {"therapistId": "is not this session's therapist"}


def test_evaluator_is_always_the_caller(world):
    reviewer = as_supervisor(world)
    assert selectors.evaluator_resolve(reviewer, None) == world.supervisor
    assert selectors.evaluator_resolve(reviewer, world.supervisor.public_id) == world.supervisor
    with pytest.raises(PermissionDenied) as refused:
        selectors.evaluator_resolve(reviewer, world.therapist.public_id)
    assert refused.value.code == "FORBIDDEN"
