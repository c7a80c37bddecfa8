"""Pure functions of the therapist dashboard: skill names to stable ids, comparison trends and the analytics
derived from stored sessions. No ORM, no clock: callers pass rows and `now` (like integration/analytics.py).
The thresholds are module constants, documented in docs/therapist-dashboard.md."""

from __future__ import annotations

import re
import unicodedata

SKILL_ID_MAX = 100
_NON_ALNUM = re.compile(r"[^a-z0-9]+")

# Known skills' categories; any other skill is "general".
SKILL_CATEGORIES = {
    "active-listening": "therapeutic",
    "empathy": "therapeutic",
    "reflection": "therapeutic",
    "validation": "therapeutic",
    "rapport-building": "therapeutic",
    "questioning": "communication",
    "open-questions": "communication",
    "summarizing": "communication",
    "clarification": "communication",
    "risk-assessment": "assessment",
    "safety-planning": "assessment",
    "crisis-intervention": "assessment",
}
DEFAULT_SKILL_CATEGORY = "general"


def skill_slug(name: str) -> str:
    """The stable id of a skill name: "Active Listening" -> "active-listening", "Empatía" -> "empatia".
    Accents dropped, lowercase, every run of other characters one "-", trimmed; "" when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode("ascii")
    return _NON_ALNUM.sub("-", ascii_text.lower()).strip("-")[:SKILL_ID_MAX].strip("-")


def skill_category(slug: str) -> str:
    return SKILL_CATEGORIES.get(slug, DEFAULT_SKILL_CATEGORY)
