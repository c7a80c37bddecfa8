"""Couple analysis (docs/loverescue.md "Couple analysis"): matchup score and alignments, couple profile,
and refreshes that write only when the inputs change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from integration import analytics
from integration.models import Assessment, CoupleProfile, Matchup
from integration.services.reports import couple_analysis_refresh, inputs_fingerprint, latest_scores
from tests.integration.factories import make_client, make_couple

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 2, 1, 12, tzinfo=UTC)
_minutes = iter(range(1, 10**6))


def assess(client, type_name, score):
    return Assessment.objects.create(
        client=client, type=type_name, score=score, completed_at=T0 + timedelta(minutes=next(_minutes))
    )


@pytest.fixture
def couple():
    return make_couple(make_client("Jane", "Doe"), make_client("John", "Doe"))


def give(couple, scores1: dict, scores2: dict) -> None:
    for client, scores in ((couple.partner1, scores1), (couple.partner2, scores2)):
        for type_name, score in scores.items():
            assess(client, type_name, score)


FULL_1 = {
    "attachment": {"style": "secure", "anxiety": 2.0, "avoidance": 2.0},
    "love_language": {"primary": "time"},
    "communication": {"score": 70.0, "style": "collaborative"},
    "relationship_satisfaction": {"score": 80.0},
    "conflict_resolution": {"score": 60.0},
}
FULL_2 = {
    "attachment": {"style": "secure", "anxiety": 2.5, "avoidance": 1.5},
    "love_language": {"primary": "time", "secondary": "touch"},
    "communication": {"score": 50.0, "style": "competing"},
    "relationship_satisfaction": {"score": 60.0},
    "conflict_resolution": {"score": 40.0},
}


def test_none_until_both_partners_have_assessments(couple):
    assert couple_analysis_refresh(couple=couple, now=T0) == (None, None)
    assess(couple.partner1, "attachment", FULL_1["attachment"])
    assert couple_analysis_refresh(couple=couple, now=T0) == (None, None)
    assert not Matchup.objects.exists() and not CoupleProfile.objects.exists()


def test_score_and_alignments_follow_the_documented_rules(couple):
    give(couple, FULL_1, FULL_2)

    matchup, profile = couple_analysis_refresh(couple=couple, now=T0)

    # attachment 30/30 + love language 15/15 + communication 12/25 + satisfaction 4/15 + conflict 8/15 = 69
    assert matchup.score == 69
    assert matchup.alignments == {
        "compatible": [
            {"area": "attachment", "detail": "Both partners are securely attached"},
            {"area": "love_language", "detail": "Same primary love language (quality time)"},
            {"area": "conflict_resolution", "detail": "Conflict resolution skills average 50/100"},
        ],
        "misses": [
            {"area": "communication", "detail": "Communication styles collaborative-competing"},
            {"area": "relationship_satisfaction", "detail": "Partners' satisfaction differs by more than 15 points"},
        ],
    }
    assert matchup.generated_at == T0 and matchup.inputs_fingerprint == profile.inputs_fingerprint
    assert profile.content["attachmentDynamic"]["pattern"] == "secure-secure"
    assert profile.content["communicationStyle"] == {
        "partner1": "collaborative",
        "partner2": "competing",
        "pattern": "collaborative-competing",
        "description": "One partner looks for solutions that work for both; the other tends to argue to win.",
    }
    assert profile.content["strengths"] == [d["detail"] for d in matchup.alignments["compatible"]]
    assert profile.content["growthEdges"] == [d["detail"] for d in matchup.alignments["misses"]]
    assert "Jane" not in str(profile.content) and "John" not in str(profile.content)


def test_anxious_avoidant_is_a_miss_and_named_whoever_is_partner1(couple):
    give(
        couple,
        {"attachment": {"style": "avoidant", "anxiety": 2.0, "avoidance": 5.5}},
        {"attachment": {"style": "anxious", "anxiety": 5.5, "avoidance": 2.0}},
    )
    matchup, profile = couple_analysis_refresh(couple=couple, now=T0)
    assert matchup.score == 17  # 5/30
    assert matchup.alignments["compatible"] == []
    assert matchup.alignments["misses"] == [
        {"area": "attachment", "detail": "Anxious-avoidant pairing (pursue-withdraw risk)"}
    ]
    assert profile.content["attachmentDynamic"]["pattern"] == "anxious-avoidant"
    assert "pursue-withdraw" in profile.content["attachmentDynamic"]["description"]
    assert analytics.attachment_pattern("avoidant", "anxious") == analytics.attachment_pattern("anxious", "avoidant")


def test_refresh_is_idempotent_and_writes_only_on_change(couple):
    give(couple, FULL_1, FULL_2)
    first, profile = couple_analysis_refresh(couple=couple, now=T0)

    again, same_profile = couple_analysis_refresh(couple=couple, now=T0 + timedelta(hours=1))
    assert again.pk == first.pk and Matchup.objects.count() == 1
    assert same_profile.pk == profile.pk and same_profile.generated_at == T0

    # Retaking an assessment with the same score changes nothing either.
    assess(couple.partner2, "love_language", FULL_2["love_language"])
    assert couple_analysis_refresh(couple=couple, now=T0 + timedelta(hours=2))[0].pk == first.pk

    # A changed score: a new matchup row, the profile updated in place.
    assess(couple.partner2, "attachment", {"style": "anxious", "anxiety": 5.0, "avoidance": 2.0})
    changed, updated = couple_analysis_refresh(couple=couple, now=T0 + timedelta(hours=3))
    assert changed.pk != first.pk and Matchup.objects.count() == 2
    assert changed.score == 59  # attachment secure-anxious 20/30 instead of 30/30
    assert updated.pk == profile.pk and CoupleProfile.objects.count() == 1
    assert updated.content["attachmentDynamic"]["pattern"] == "secure-anxious"
    assert updated.generated_at == T0 + timedelta(hours=3)

    # Back to the first inputs: the first row is reused and becomes the latest again.
    assess(couple.partner2, "attachment", FULL_2["attachment"])
    back, back_profile = couple_analysis_refresh(couple=couple, now=T0 + timedelta(hours=4))
    assert back.pk == first.pk and Matchup.objects.count() == 2
    assert Matchup.objects.filter(couple=couple).first().pk == first.pk  # ordered by -generated_at
    assert back_profile.content["attachmentDynamic"]["pattern"] == "secure-secure"


def test_fingerprint_is_of_the_latest_scores(couple):
    give(couple, FULL_1, FULL_2)
    scores1, scores2 = latest_scores(couple.partner1_id), latest_scores(couple.partner2_id)
    assert scores1 == FULL_1 and scores2 == FULL_2
    assert inputs_fingerprint(scores1, scores2) == inputs_fingerprint(dict(reversed(scores1.items())), scores2)
    assert inputs_fingerprint(scores1, scores2) != inputs_fingerprint(scores2, scores1)
    assert len(inputs_fingerprint(scores1, scores2)) == 64


def test_no_common_assessment_type_gives_a_profile_without_matchup(couple):
    give(couple, {"love_language": {"primary": "gifts"}}, {"conflict_resolution": {"score": 30.0}})
    matchup, profile = couple_analysis_refresh(couple=couple, now=T0)
    assert matchup is None and not Matchup.objects.exists()
    assert profile.content["attachmentDynamic"]["pattern"] is None
    assert profile.content["strengths"] == [] and profile.content["growthEdges"] == []


@pytest.mark.parametrize(
    ("s1", "s2", "points"),
    [
        ("secure", "secure", 30),
        ("secure", "fearful", 15),
        ("anxious", "anxious", 12),
        ("avoidant", "anxious", 5),
        ("fearful", "avoidant", 8),
    ],
)
def test_attachment_points(s1, s2, points):
    [dimension] = analytics.matchup_dimensions(
        {"attachment": {"style": s1, "anxiety": 3.0, "avoidance": 3.0}},
        {"attachment": {"style": s2, "anxiety": 3.0, "avoidance": 3.0}},
    )
    assert dimension.points == points and dimension.compatible is (points >= 15)


def test_love_language_secondary_match_is_compatible():
    [dimension] = analytics.matchup_dimensions(
        {"love_language": {"primary": "words", "secondary": "touch"}}, {"love_language": {"primary": "touch"}}
    )
    assert (dimension.points, dimension.compatible) == (10, True)
    [different] = analytics.matchup_dimensions(
        {"love_language": {"primary": "words"}}, {"love_language": {"primary": "gifts"}}
    )
    assert (different.points, different.compatible) == (3, False)
