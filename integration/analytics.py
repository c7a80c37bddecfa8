"""Pure computations behind LoveRescue's alert rules, session-prep reports and couple analysis.

No ORM and no clock here: callers pass plain values (dates, numbers, score dicts) and get plain values
back, so every rule can be tested at its boundaries. The rules and thresholds are documented in
docs/loverescue.md ("Alert rules", "Session prep reports", "Couple analysis"); keep both in step.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from core.rounding import percentage, round_half_up
from core.rounding import ratio as rounded_ratio
from integration.catalogue import ATTACHMENT_STYLES

# --- Mood baseline and low-mood runs (RISK) ---------------------------------------------------------

BASELINE_DAYS = 30  # the baseline of a run starting on day S: check-ins dated S-30 .. S-1
BASELINE_MIN_CHECKINS = 7
MIN_SD = 0.5  # floor on the baseline SD (a flat baseline would otherwise make any dip "2 SD below")
SD_BELOW = 2.0
RISK_RUN_DAYS = 5
_EPSILON = 1e-9  # "at or below" must not be lost to float rounding (mean - 2*SD)


@dataclass(frozen=True)
class Baseline:
    mean: float
    sd: float  # population SD of the baseline check-ins (before the MIN_SD floor)
    count: int

    @property
    def threshold(self) -> float:
        """A mood at or below this is "2+ SD below baseline"."""
        return self.mean - SD_BELOW * max(self.sd, MIN_SD)

    def is_below(self, mood: float) -> bool:
        return mood <= self.threshold + _EPSILON


def baseline(values: Sequence[float]) -> Baseline | None:
    """Mean and population SD of the baseline moods; None with fewer than BASELINE_MIN_CHECKINS."""
    return _baseline_from_sums(len(values), sum(values), sum(v * v for v in values))


def _baseline_from_sums(n: int, total: float, squares: float) -> Baseline | None:
    if n < BASELINE_MIN_CHECKINS:
        return None
    # Variance from the sums: exact for integer moods (n * squares - total**2 is an integer).
    variance = max(n * squares - total * total, 0) / (n * n)
    return Baseline(mean=total / n, sd=math.sqrt(variance), count=n)


@dataclass(frozen=True)
class MoodRun:
    """Consecutive calendar days, each with a check-in at or below the threshold of the baseline taken
    before the run's first day."""

    start: date
    end: date
    baseline: Baseline
    moods: tuple[int, ...]

    @property
    def length(self) -> int:
        return len(self.moods)

    @property
    def latest_mood(self) -> int:
        return self.moods[-1]

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end


def mood_runs(checkins: Iterable[tuple[date, int]]) -> list[MoodRun]:
    """Every low-mood run in the check-ins (one per date), scanning forward in date order.

    A day not in a run starts one when its baseline (the check-ins of the BASELINE_DAYS days before it)
    exists and its mood is at or below that baseline's threshold. The run then continues on each next
    calendar day that has a check-in at or below the *same* threshold (the run never pollutes its own
    baseline); it ends at the first day without a check-in or with one above the threshold. That day is
    then considered as a possible start again under its own baseline.
    """
    by_day = dict(sorted(checkins))
    days = list(by_day)
    # Prefix sums of mood and mood squared: any baseline window's sums in O(1).
    sums, squares = [0], [0]
    for d in days:
        sums.append(sums[-1] + by_day[d])
        squares.append(squares[-1] + by_day[d] * by_day[d])
    runs: list[MoodRun] = []
    i = 0
    while i < len(days):
        start = days[i]
        window_start = start - timedelta(days=BASELINE_DAYS)
        lo = bisect_left(days, window_start)
        base = _baseline_from_sums(i - lo, sums[i] - sums[lo], squares[i] - squares[lo])
        if base is None or not base.is_below(by_day[start]):
            i += 1
            continue
        moods = [by_day[start]]
        j = i + 1
        while j < len(days) and days[j] == days[j - 1] + timedelta(days=1) and base.is_below(by_day[days[j]]):
            moods.append(by_day[days[j]])
            j += 1
        runs.append(MoodRun(start=start, end=days[j - 1], baseline=base, moods=tuple(moods)))
        i = j
    return runs


# --- Activity streaks (MILESTONE) and inactivity (STAGNATION) ---------------------------------------

STREAK_MILESTONES = (7, 30, 90)
STAGNATION_DAYS = 7


def streak_containing(days: Iterable[date], day: date) -> tuple[date, date] | None:
    """(first, last) day of the run of consecutive calendar days in `days` that contains `day`."""
    present = set(days)
    if day not in present:
        return None
    first = last = day
    while first - timedelta(days=1) in present:
        first -= timedelta(days=1)
    while last + timedelta(days=1) in present:
        last += timedelta(days=1)
    return first, last


def days_inactive(reference: date, today: date) -> int:
    """Whole days since the last activity (or the start, when there was none)."""
    return (today - reference).days


# --- Trends (session prep) ------------------------------------------------------------------------

TREND_STABLE_SLOPE = 0.1  # mood points per day; |slope| below this is "stable"


def least_squares_slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Slope of the least-squares line through (x, y) points; None with fewer than two distinct x."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in points)
    return sxy / sxx


def trend(slope: float | None) -> str | None:
    if slope is None:
        return None
    if abs(slope) < TREND_STABLE_SLOPE:
        return "stable"
    return "improving" if slope > 0 else "declining"


def mood_trend(moods: Sequence[tuple[date, int]]) -> str | None:
    """improving / declining / stable from the slope of mood over days; None below two check-in days."""
    if not moods:
        return None
    origin = min(d for d, _ in moods)
    return trend(least_squares_slope([((d - origin).days, m) for d, m in moods]))


def ratio(entries: Sequence[tuple[int, int]]) -> float | None:
    """Gottman's positive:negative ratio over a period, 1 decimal half up (core.rounding.ratio): total
    positive / total negative (a period with no negative interactions divides by 1). None without entries."""
    if not entries:
        return None
    positive = sum(p for p, _ in entries)
    negative = sum(n for _, n in entries)
    return rounded_ratio(positive, max(negative, 1))


# --- Couple analysis ----------------------------------------------------------------------------------

RULES_VERSION = 1  # part of the inputs fingerprint: changing a rule below must bump it

_STYLE_ORDER = {style: n for n, style in enumerate(ATTACHMENT_STYLES)}

ATTACHMENT_DYNAMICS: dict[str, tuple[int, str]] = {
    # pattern: (points of 30, description)
    "secure-secure": (
        30,
        "Both partners are securely attached: they can usually ask for closeness and give "
        "each other room without feeling threatened.",
    ),
    "secure-anxious": (
        20,
        "One partner is secure and one anxious: the secure partner's consistency can calm the "
        "anxious partner's worry when reassurance is offered openly.",
    ),
    "secure-avoidant": (
        20,
        "One partner is secure and one avoidant: the secure partner can offer closeness "
        "without pressure while the avoidant partner practises staying engaged.",
    ),
    "secure-fearful": (
        15,
        "One partner is secure and one fearful: the fearful partner both seeks and fears "
        "closeness; the secure partner's predictability is a resource.",
    ),
    "anxious-anxious": (
        12,
        "Both partners are anxiously attached: each may look to the other for reassurance at "
        "the same time, so stress can escalate quickly.",
    ),
    "anxious-avoidant": (
        5,
        "Anxious-avoidant (pursue-withdraw) pattern: one partner seeks closeness when stressed "
        "while the other withdraws, and each reaction intensifies the other's.",
    ),
    "anxious-fearful": (
        8,
        "One partner is anxious and one fearful: both feel threatened by distance, and the "
        "fearful partner may also retreat from closeness.",
    ),
    "avoidant-avoidant": (
        12,
        "Both partners are avoidant: conflict is rare but so is emotional disclosure; distance can grow unnoticed.",
    ),
    "avoidant-fearful": (
        8,
        "One partner is avoidant and one fearful: both tend to protect themselves by "
        "withdrawing, which can leave needs unspoken.",
    ),
    "fearful-fearful": (
        8,
        "Both partners are fearful: each wants closeness and fears it, so connection can be inconsistent.",
    ),
}

# Communication styles (unordered pair) -> points of 25.
_COMMUNICATION_POINTS: dict[frozenset[str], int] = {
    frozenset({"collaborative"}): 25,
    frozenset({"collaborative", "accommodating"}): 20,
    frozenset({"accommodating"}): 15,
    frozenset({"collaborative", "competing"}): 12,
    frozenset({"collaborative", "avoiding"}): 12,
    frozenset({"accommodating", "avoiding"}): 10,
    frozenset({"accommodating", "competing"}): 8,
    frozenset({"avoiding"}): 8,
    frozenset({"competing"}): 5,
    frozenset({"competing", "avoiding"}): 5,
}

WEIGHTS = {
    "attachment": 30,
    "communication": 25,
    "love_language": 15,
    "relationship_satisfaction": 15,
    "conflict_resolution": 15,
}
COMPATIBLE_AT = 0.5  # a dimension earning at least half its weight is "compatible", below is a "miss"

LOVE_LANGUAGE_NAMES = {
    "words": "words of affirmation",
    "acts": "acts of service",
    "gifts": "receiving gifts",
    "time": "quality time",
    "touch": "physical touch",
}


def attachment_pattern(style1: str, style2: str) -> str:
    """ "anxious-avoidant", "secure-secure"...: both styles in catalogue order, whoever is partner1."""
    first, second = sorted((style1, style2), key=_STYLE_ORDER.__getitem__)
    return f"{first}-{second}"


def communication_pattern(style1: str, style2: str) -> str:
    return "-".join(sorted((style1, style2)))


@dataclass(frozen=True)
class Dimension:
    area: str
    points: int
    weight: int
    detail: str

    @property
    def compatible(self) -> bool:
        return self.points >= COMPATIBLE_AT * self.weight


def _attachment(a: Mapping, b: Mapping) -> Dimension:
    pattern = attachment_pattern(a["style"], b["style"])
    points, _ = ATTACHMENT_DYNAMICS[pattern]
    if pattern == "secure-secure":
        detail = "Both partners are securely attached"
    elif pattern == "anxious-avoidant":
        detail = "Anxious-avoidant pairing (pursue-withdraw risk)"
    else:
        detail = f"Attachment pattern {pattern}"
    return Dimension("attachment", points, WEIGHTS["attachment"], detail)


def _communication(a: Mapping, b: Mapping) -> Dimension | None:
    if "style" not in a or "style" not in b:
        return None
    pair = frozenset({a["style"], b["style"]})
    points = _COMMUNICATION_POINTS[pair]
    if len(pair) == 1:
        detail = f"Both partners communicate in a {a['style']} style"
    else:
        detail = f"Communication styles {communication_pattern(a['style'], b['style'])}"
    if pair == frozenset({"competing", "avoiding"}):
        detail += " (demand-withdraw risk)"
    return Dimension("communication", points, WEIGHTS["communication"], detail)


def _love_language(a: Mapping, b: Mapping) -> Dimension:
    weight = WEIGHTS["love_language"]
    if a["primary"] == b["primary"]:
        return Dimension(
            "love_language",
            weight,
            weight,
            f"Same primary love language ({LOVE_LANGUAGE_NAMES[a['primary']]})",
        )
    if a.get("secondary") == b["primary"] or b.get("secondary") == a["primary"]:
        return Dimension("love_language", 10, weight, "One partner's primary love language is the other's secondary")
    return Dimension("love_language", 3, weight, "Different love languages")


def _satisfaction(a: Mapping, b: Mapping) -> Dimension:
    weight = WEIGHTS["relationship_satisfaction"]
    low, high = sorted((a["score"], b["score"]))
    if low >= 70:
        return Dimension("relationship_satisfaction", weight, weight, "Both partners report high satisfaction (70+)")
    if high - low <= 15:
        return Dimension("relationship_satisfaction", 10, weight, "Partners report similar satisfaction")
    return Dimension("relationship_satisfaction", 4, weight, "Partners' satisfaction differs by more than 15 points")


def _conflict(a: Mapping, b: Mapping) -> Dimension:
    weight = WEIGHTS["conflict_resolution"]
    mean = (a["score"] + b["score"]) / 2
    points = int(round_half_up(weight * mean / 100, 0))
    if mean >= 50:
        detail = f"Conflict resolution skills average {round_half_up(mean, 1):g}/100"
    else:
        detail = f"Conflict resolution skills average only {round_half_up(mean, 1):g}/100"
    return Dimension("conflict_resolution", points, weight, detail)


_RULES = {
    "attachment": _attachment,
    "communication": _communication,
    "love_language": _love_language,
    "relationship_satisfaction": _satisfaction,
    "conflict_resolution": _conflict,
}


def matchup_dimensions(scores1: Mapping[str, Mapping], scores2: Mapping[str, Mapping]) -> list[Dimension]:
    """The dimensions both partners have a (latest) assessment for, in a fixed order."""
    result = []
    for area, rule in _RULES.items():
        if area in scores1 and area in scores2:
            dimension = rule(scores1[area], scores2[area])
            if dimension is not None:
                result.append(dimension)
    return result


def matchup(scores1: Mapping[str, Mapping], scores2: Mapping[str, Mapping]) -> tuple[int, dict] | None:
    """(score 0-100, {"compatible": [...], "misses": [...]}), or None when no dimension is shared.
    Score = points earned / weights of the shared dimensions, rounded half up."""
    dimensions = matchup_dimensions(scores1, scores2)
    if not dimensions:
        return None
    earned = sum(d.points for d in dimensions)
    possible = sum(d.weight for d in dimensions)
    score = percentage(earned, possible)
    alignments = {
        "compatible": [{"area": d.area, "detail": d.detail} for d in dimensions if d.compatible],
        "misses": [{"area": d.area, "detail": d.detail} for d in dimensions if not d.compatible],
    }
    return score, alignments


_COMMUNICATION_DESCRIPTIONS = {
    "collaborative": "looks for solutions that work for both",
    "accommodating": "tends to give way to keep the peace",
    "avoiding": "tends to sidestep difficult conversations",
    "competing": "tends to argue to win",
}


def couple_profile(scores1: Mapping[str, Mapping], scores2: Mapping[str, Mapping]) -> dict:
    """CoupleProfile.content: attachmentDynamic, communicationStyle, strengths, growthEdges. Generated
    text only (no names, nothing the clients wrote)."""
    if "attachment" in scores1 and "attachment" in scores2:
        pattern = attachment_pattern(scores1["attachment"]["style"], scores2["attachment"]["style"])
        attachment = {"pattern": pattern, "description": ATTACHMENT_DYNAMICS[pattern][1]}
    else:
        attachment = {
            "pattern": None,
            "description": "Both partners need an attachment assessment to describe their dynamic.",
        }

    style1 = scores1.get("communication", {}).get("style")
    style2 = scores2.get("communication", {}).get("style")
    if style1 and style2:
        if style1 == style2:
            description = f"Both partners {_COMMUNICATION_DESCRIPTIONS[style1]}."
        else:
            description = (
                f"One partner {_COMMUNICATION_DESCRIPTIONS[style1]}; the other {_COMMUNICATION_DESCRIPTIONS[style2]}."
            )
        communication = {
            "partner1": style1,
            "partner2": style2,
            "pattern": communication_pattern(style1, style2),
            "description": description,
        }
    else:
        communication = {
            "partner1": style1,
            "partner2": style2,
            "pattern": None,
            "description": "Both partners need a communication assessment with a style to compare styles.",
        }

    dimensions = matchup_dimensions(scores1, scores2)
    strengths = [d.detail for d in dimensions if d.compatible]
    growth_edges = [d.detail for d in dimensions if not d.compatible]
    if attachment["pattern"] == "anxious-avoidant":
        growth_edges.append("Name the pursue-withdraw cycle together and agree on a time-out that ends in reconnection")
    for area, label in (("relationship_satisfaction", "satisfaction"), ("conflict_resolution", "conflict resolution")):
        if area in scores1 and area in scores2 and min(scores1[area]["score"], scores2[area]["score"]) < 40:
            growth_edges.append(f"At least one partner scores below 40 on {label}")
    return {
        "attachmentDynamic": attachment,
        "communicationStyle": communication,
        "strengths": strengths,
        "growthEdges": growth_edges,
    }
