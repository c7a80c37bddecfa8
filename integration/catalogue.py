"""What the LoveRescue app may record: assessment types with their score shapes, and the course's weeks.

Each assessment type declares how to validate a score and how to compare two scores of the same type
(`improvement(before, after)`: positive is better, in the type's own units) so alert rules, session
prep and couple analysis share one definition. Rules are documented in docs/loverescue.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ATTACHMENT_STYLES = ("secure", "anxious", "avoidant", "fearful")
COMMUNICATION_STYLES = ("collaborative", "accommodating", "avoiding", "competing")
LOVE_LANGUAGES = ("words", "acts", "gifts", "time", "touch")


class ScoreInvalid(ValueError):
    """The message says which part of the score is wrong."""


def _number(score: dict, name: str, low: float, high: float) -> float:
    value = score.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScoreInvalid(f"score.{name} must be a number from {low:g} to {high:g}")
    if not (low <= value <= high):
        raise ScoreInvalid(f"score.{name} must be from {low:g} to {high:g}")
    return float(value)


def _choice(score: dict, name: str, choices: tuple[str, ...]) -> str:
    value = score.get(name)
    if value not in choices:
        raise ScoreInvalid(f"score.{name} must be one of {', '.join(choices)}")
    return value


def _only(score: dict, names: set[str]) -> None:
    extra = sorted(set(score) - names)
    if extra:
        raise ScoreInvalid(f"unknown score field(s): {', '.join(extra)}")


@dataclass(frozen=True)
class AssessmentType:
    name: str
    fields: tuple[str, ...]
    validate: Callable[[dict], dict]  # returns the normalized score or raises ScoreInvalid
    # before, after -> how much better `after` is (None when the type has no "better").
    improvement: Callable[[dict, dict], float | None]
    # An improvement of at least this much is a breakthrough (milestone alert).
    breakthrough_at: float | None


def _validate_attachment(score: dict) -> dict:
    _only(score, {"style", "anxiety", "avoidance"})
    return {
        "style": _choice(score, "style", ATTACHMENT_STYLES),
        "anxiety": _number(score, "anxiety", 1, 7),
        "avoidance": _number(score, "avoidance", 1, 7),
    }


def _attachment_improvement(before: dict, after: dict) -> float:
    # Lower anxiety and avoidance are better (ECR-R, 1-7 scales).
    return (before["anxiety"] - after["anxiety"]) + (before["avoidance"] - after["avoidance"])


def _validate_scored(extra: dict[str, tuple[str, ...]] | None = None) -> Callable[[dict], dict]:
    extra = extra or {}

    def validate(score: dict) -> dict:
        _only(score, {"score", *extra})
        normalized = {"score": _number(score, "score", 0, 100)}
        for name, choices in extra.items():
            if name in score:
                normalized[name] = _choice(score, name, choices)
        return normalized

    return validate


def _score_improvement(before: dict, after: dict) -> float:
    return after["score"] - before["score"]


def _validate_love_language(score: dict) -> dict:
    _only(score, {"primary", "secondary"})
    normalized = {"primary": _choice(score, "primary", LOVE_LANGUAGES)}
    if "secondary" in score:
        normalized["secondary"] = _choice(score, "secondary", LOVE_LANGUAGES)
    return normalized


ASSESSMENT_TYPES: dict[str, AssessmentType] = {
    t.name: t
    for t in (
        AssessmentType(
            "attachment", ("style", "anxiety", "avoidance"), _validate_attachment, _attachment_improvement, 1.0
        ),
        AssessmentType("relationship_satisfaction", ("score",), _validate_scored(), _score_improvement, 15.0),
        AssessmentType(
            "communication",
            ("score", "style"),
            _validate_scored({"style": COMMUNICATION_STYLES}),
            _score_improvement,
            15.0,
        ),
        AssessmentType("conflict_resolution", ("score",), _validate_scored(), _score_improvement, 15.0),
        AssessmentType("love_language", ("primary", "secondary"), _validate_love_language, lambda b, a: None, None),
    )
}


def validate_assessment(type_name: str, score) -> dict:
    """The normalized score, or ScoreInvalid naming the problem."""
    assessment_type = ASSESSMENT_TYPES.get(type_name)
    if assessment_type is None:
        raise ScoreInvalid(f"type must be one of {', '.join(ASSESSMENT_TYPES)}")
    if not isinstance(score, dict):
        raise ScoreInvalid("score must be an object")
    return assessment_type.validate(score)


# The 12-week course: each week's strategy theme. A week is completed after activities on
# DAYS_PER_WEEK distinct days tagged with that week (docs/loverescue.md).
DAYS_PER_WEEK = 7
COURSE_WEEKS: dict[int, str] = {
    1: "Gottman — Love Maps",
    2: "Gottman — Fondness and Admiration",
    3: "Attachment — Understanding Your Style",
    4: "Gottman — Bids for Connection",
    5: "Communication — Soft Start-Up",
    6: "Gottman — The Four Horsemen",
    7: "Conflict — Repair Attempts",
    8: "Gottman — Turning Toward",
    9: "Attachment — Secure Base Behaviours",
    10: "Gottman — Shared Meaning",
    11: "Intimacy — Rituals of Connection",
    12: "Integration — Your Relationship Plan",
}
COURSE_LENGTH_WEEKS = len(COURSE_WEEKS)
