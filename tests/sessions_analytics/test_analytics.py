"""The dashboard's pure functions at their boundaries: skill ids, comparison trends, skill summaries and the
analytics derived from plain rows (no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sessions_analytics.analytics import (
    SUMMARY_STATS,
    DayRow,
    SkillAggregateRow,
    SkillScoreRow,
    Snapshot,
    comparison_trend,
    derived_analytics,
    period_label,
    session_metrics,
    skill_category,
    skill_progress,
    skill_slug,
    skill_summaries,
    summary_stats,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_skill_slug_and_category():
    assert skill_slug("Active Listening") == "active-listening"
    assert skill_slug("  Empatía!! ") == "empatia"
    assert skill_slug("!!!") == ""
    assert skill_category("active-listening") == "therapeutic"
    assert skill_category("risk-assessment") == "assessment"
    assert skill_category("juggling") == "general"


@pytest.mark.parametrize(
    ("progress", "skill", "trend"),
    [
        (2.0, 0.0, "improving"),
        (1.0, 1.0, "improving"),
        (1.1, 0.9, "improving"),  # 1.1 + 0.9 is 2 points, not 1.9999999999999998
        (1.99, 0.0, "stable"),
        (0.0, 0.0, "stable"),
        (-1.99, 0.0, "stable"),
        (-2.0, 0.0, "declining"),
        (5.0, -7.5, "declining"),
        (10.0, -8.0, "improving"),
    ],
)
def test_comparison_trend_thresholds(progress, skill, trend):
    assert comparison_trend(progress, skill) == trend


def test_skill_summaries_sorted_by_name():
    at = NOW
    rows = [
        SkillAggregateRow("empathy", "general", 70, 2, at, at - timedelta(days=3)),
        SkillAggregateRow("Active Listening", "therapeutic", 80, 5, at, at - timedelta(days=9)),
        SkillAggregateRow("Empathy", "therapeutic", 60, 1, at, at),
    ]

    summaries = skill_summaries(rows)

    assert [s.skill_name for s in summaries] == ["Active Listening", "Empathy", "empathy"]
    first = summaries[0]
    assert (first.current_score, first.practice_sessions, first.last_practiced, first.created_at) == (
        80,
        5,
        at,
        at - timedelta(days=9),
    )


def _scores(skill: str, values: list[float], name: str | None = None) -> list[SkillScoreRow]:
    """Every score of a skill in session order, ranked as the aggregate read ranks them."""
    n = len(values)
    return [
        SkillScoreRow(skill, name or skill.title(), "general", v, from_latest=n - i, from_first=i + 1, practiced=n)
        for i, v in enumerate(values)
    ]


@pytest.mark.parametrize(
    ("values", "trend"),
    [
        ([50, 52], "up"),
        ([80.1, 82.1], "up"),  # exactly 2 points despite float subtraction
        ([50, 51.99], "stable"),
        ([50, 48.01], "stable"),
        ([50, 48], "down"),
        ([90, 10, 12], "up"),  # only the latest two count
        ([70], "stable"),
    ],
)
def test_skill_trend(values, trend):
    [progress] = skill_progress(_scores("empathy", values))
    assert progress.trend == trend


def test_skill_progress_score_count_and_average_improvement():
    rows = _scores("empathy", [50, 60, 55, 71]) + _scores("active-listening", [40], "Active Listening")
    # The aggregate read passes only the first, the latest and the one before it: the same answer.
    reduced = [r for r in rows if r.from_latest <= 2 or r.from_first == 1]

    listening, empathy = skill_progress(rows)

    assert skill_progress(reduced) == [listening, empathy]
    assert (empathy.skill, empathy.skill_id, empathy.score, empathy.sessions_practiced) == ("Empathy", "empathy", 71, 4)
    assert empathy.average_improvement == 7.0  # (71 - 50) / 3
    assert empathy.trend == "up"
    assert (listening.sessions_practiced, listening.average_improvement, listening.trend) == (1, 0.0, "stable")
    [rounded] = skill_progress(_scores("x", [50, 60, 60.5]))
    assert rounded.average_improvement == 5.3  # 5.25 half up


def day(
    d: int, *, in_range=True, sessions=1, completed=0, progress=0.0, with_metrics=0, rt=0.0, milestones=0, latest=None
):
    return DayRow(
        day=date(2026, 3, d),
        in_range=in_range,
        sessions=sessions,
        completed=completed,
        progress_sum=progress,
        with_metrics=with_metrics,
        response_time_sum=rt,
        milestones=milestones,
        latest_session_id=latest,
    )


def test_session_metrics_one_entry_per_day_ascending():
    rows = [
        day(2, sessions=1, completed=1, progress=90, with_metrics=1, rt=3, latest="ses_c"),
        day(1, sessions=3, completed=2, progress=200.5, with_metrics=2, rt=5.005, milestones=4, latest="ses_b"),
        day(1, in_range=False, sessions=5, progress=500, milestones=9),  # previous period: not a day of the range
    ]

    first, second = session_metrics(rows, therapist_id="usr_1")

    assert first.date == date(2026, 3, 1)
    assert (first.sessions, first.therapist_sessions, first.milestones_achieved) == (3, 2, 4)
    assert first.average_session_progress == 66.8  # 200.5 / 3 = 66.83
    assert first.average_response_time == 2.5  # 5.005 / 2 = 2.5025, 2 places
    assert (first.session_id, first.therapist_id) == ("ses_b", "usr_1")
    assert (second.date, second.average_session_progress, second.average_response_time) == (date(2026, 3, 2), 90, 3)


def test_session_metrics_response_time_zero_without_metrics():
    [metric] = session_metrics([day(1, sessions=2, progress=10)], therapist_id=None)
    assert (metric.average_response_time, metric.average_session_progress) == (0, 5)


def test_a_day_split_by_the_range_start_counts_only_its_in_range_part():
    rows = [day(1, sessions=2, progress=100, latest="ses_in"), day(1, in_range=False, sessions=4, progress=40)]
    [metric] = session_metrics(rows, therapist_id=None)
    assert (metric.sessions, metric.average_session_progress, metric.session_id) == (2, 50, "ses_in")


def test_summary_stats_trend_against_the_previous_period():
    since = NOW - timedelta(days=7)
    rows = [
        day(1, sessions=3, completed=2, progress=210, milestones=1),
        day(2, sessions=1, completed=1, progress=45, milestones=2),
        day(1, in_range=False, sessions=4, completed=2, progress=260, milestones=3),
    ]

    stats = summary_stats(rows, therapist_id="usr_1", since=since, now=NOW)

    assert [(s.label, s.color) for s in stats] == list(SUMMARY_STATS)
    by_label = {s.label: s for s in stats}
    assert by_label["Total Sessions"].value == 4
    assert (by_label["Total Sessions"].trend.value, by_label["Total Sessions"].trend.direction) == (0, "stable")
    assert by_label["Completed Sessions"].value == 3
    assert (by_label["Completed Sessions"].trend.value, by_label["Completed Sessions"].trend.direction) == (1, "up")
    assert by_label["Average Progress"].value == 63.8  # 255 / 4 = 63.75 half up
    assert by_label["Average Progress"].trend.value == -1.2  # 63.8 - 65.0
    assert by_label["Average Progress"].trend.direction == "down"
    assert (by_label["Milestones Reached"].value, by_label["Milestones Reached"].trend.value) == (3, 0)
    assert {s.trend.period for s in stats} == {"previous 7d"}
    assert {s.therapist_id for s in stats} == {"usr_1"}


def test_summary_stats_without_sessions_are_zero():
    stats = summary_stats([], therapist_id=None, since=NOW - timedelta(days=30), now=NOW)
    assert [(s.value, s.trend.value, s.trend.direction) for s in stats] == [(0, 0, "stable")] * 4


def test_summary_stats_all_time_have_no_previous_period():
    stats = summary_stats([day(1, sessions=2, progress=100)], therapist_id=None, since=None, now=NOW)
    assert [s.value for s in stats] == [2, 0, 50, 0]
    assert {(s.trend.value, s.trend.direction, s.trend.period) for s in stats} == {(0, "stable", "all time")}


@pytest.mark.parametrize(
    ("days", "label"), [(7, "previous 7d"), (30, "previous 30d"), (90, "previous 90d"), (365, "previous 1y")]
)
def test_period_labels(days, label):
    assert period_label(NOW - timedelta(days=days), NOW) == label


def test_period_label_of_other_lengths_and_all_time():
    assert period_label(NOW - timedelta(days=14), NOW) == "previous 14 days"
    assert period_label(None, NOW) == "all time"


def test_derived_analytics_puts_it_together():
    snapshots = [Snapshot(NOW, 40.0)]

    data = derived_analytics(
        [day(1, sessions=2, progress=100, latest="ses_x")],
        _scores("empathy", [60, 64]),
        therapist_id="usr_1",
        since=NOW - timedelta(days=30),
        now=NOW,
        snapshots=snapshots,
    )

    assert data.source == "derived"
    assert [m.session_id for m in data.session_metrics] == ["ses_x"]
    assert [(p.skill_id, p.trend) for p in data.skill_progress] == [("empathy", "up")]
    assert [s.trend.period for s in data.summary_stats] == ["previous 30d"] * 4
    assert data.progress_snapshots == snapshots


def test_fast_half_up_rounding_equals_core_rounding():
    # analytics._round_half_up skips Decimal where it can: it must answer exactly what core.rounding does,
    # ties in the shortest repr (20.15, 2.675, -1.25), float noise (0.1 + 0.2) and averages alike.
    import random

    from core.rounding import round_half_up
    from sessions_analytics.analytics import _round_half_up

    rng = random.Random(13)
    values = [20.15, 2.675, -1.25, 0.05, 0.15, 1.005, 0.1 + 0.2, 40.300000000000004 / 2, -0.04, 0.0, 1e-7, 123456.75]
    values += [rng.uniform(-100, 100) for _ in range(2000)]
    values += [round(rng.uniform(0, 100), 1) for _ in range(500)]
    values += [sum(round(rng.uniform(0, 100), 1) for _ in range(n)) / n for n in range(2, 400)]
    values += [k / 200 for k in range(-2000, 2000)]  # every tie at 1 and 2 places
    for value in values:
        for places in (0, 1, 2):
            assert _round_half_up(value, places) == round_half_up(value, places), (value, places)
            assert str(_round_half_up(value, places)) == str(round_half_up(value, places)), (value, places)
