"""GET /couples/:id/dynamics: both partners side by side, each side shown only with consent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.db.models import Avg

from core.rounding import round_half_up
from core.serializers import ABSENT
from integration.models import (
    ActivityEntry,
    CheckIn,
    Client,
    Couple,
    CoupleProfile,
    Matchup,
    PermissionLevel,
    Therapist,
    level_allows,
)
from integration.selectors import common
from integration.selectors.common import consented_links
from integration.selectors.consent import ClientNotFound, NoConsent
from integration.selectors.progress import AssessmentScore, assessment_scores

DYNAMICS_DAYS = 30  # activityDays, moodAvg
MAX_MATCHUPS = 10
WITHHELD_REASON = "This partner has not granted consent to this therapist"


@dataclass(frozen=True)
class DynamicsSide:
    """One partner's side. A withheld side has only `withheld` and `reason`; `mood_avg` is ABSENT below
    STANDARD (and None when there is no check-in)."""

    user: Client | Any = ABSENT
    assessment_scores: list[AssessmentScore] | Any = ABSENT
    activity_days: int | Any = ABSENT
    mood_avg: float | None | Any = ABSENT
    withheld: bool | Any = ABSENT
    reason: str | Any = ABSENT


@dataclass(frozen=True)
class CoupleDynamics:
    couple: Couple
    consent_partner1: bool
    consent_partner2: bool
    partner1: DynamicsSide
    partner2: DynamicsSide
    matchups: list[Matchup] = field(default_factory=list)  # empty unless both partners consented
    couple_profile: Any = None  # CoupleProfile.content, None unless both partners consented
    shown_client_ids: list[uuid.UUID] = field(default_factory=list)  # the sides shown, for the access log

    @property
    def consent(self) -> dict[str, bool]:
        return {"partner1": self.consent_partner1, "partner2": self.consent_partner2}


def couple_dynamics(*, therapist: Therapist, couple_id, today: date | None = None) -> CoupleDynamics:
    """A side is shown only when that partner has a consented link to this therapist; matchups and the
    couple profile (both partners' data) only when both have. ClientNotFound("Couple") for an unknown
    couple; NoConsent when neither partner consented."""
    today = today or common.today_utc()
    couple = Couple.objects.select_related("partner1", "partner2").filter(pk=couple_id).first()
    if couple is None:
        raise ClientNotFound("Couple")
    levels = dict(
        consented_links(therapist)
        .filter(client_id__in=[couple.partner1_id, couple.partner2_id])
        .values_list("client_id", "permission_level")
    )
    if not levels:
        raise NoConsent()
    start = today - timedelta(days=DYNAMICS_DAYS - 1)
    shown: list = []

    def side(client: Client) -> DynamicsSide:
        level = levels.get(client.pk)
        if level is None:
            return DynamicsSide(withheld=True, reason=WITHHELD_REASON)
        shown.append(client.pk)
        scores = assessment_scores(client.pk)
        activity_days = (
            ActivityEntry.objects.filter(client=client, date__range=(start, today)).values("date").distinct().count()
        )
        if not level_allows(level, PermissionLevel.STANDARD):
            return DynamicsSide(user=client, assessment_scores=scores, activity_days=activity_days)
        avg = CheckIn.objects.filter(client=client, date__range=(start, today)).aggregate(avg=Avg("mood"))["avg"]
        return DynamicsSide(
            user=client, assessment_scores=scores, activity_days=activity_days, mood_avg=round_half_up(avg, 1)
        )

    both = couple.partner1_id in levels and couple.partner2_id in levels
    matchups: list[Matchup] = []
    profile = None
    if both:
        matchups = list(Matchup.objects.filter(couple=couple).order_by("-generated_at", "-id")[:MAX_MATCHUPS])
        profile = CoupleProfile.objects.filter(couple=couple).values_list("content", flat=True).first()
    partner1, partner2 = side(couple.partner1), side(couple.partner2)
    return CoupleDynamics(
        couple=couple,
        consent_partner1=couple.partner1_id in levels,
        consent_partner2=couple.partner2_id in levels,
        partner1=partner1,
        partner2=partner2,
        matchups=matchups,
        couple_profile=profile,
        shown_client_ids=shown,
    )
