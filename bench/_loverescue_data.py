"""Data for bench/loverescue_api.py: a therapist with N consented clients and 90 days of app data each,
written with bulk_create (not through the services: no alert rules, no audit events, no webhooks).

Deterministic (seeded) and dated relative to today (UTC), so the partner API's 90-day windows are full.
Per client: a check-in on ~90% of days, a ratio entry on ~80%, activities on ~70% (1-2 a day, tagged
with the course week), 2-5 assessments (FULL clients with individual responses), the course at week
1-12 with its weekly strategies, 2 therapist tasks, milestone alerts for completed weeks and some
STAGNATION / RISK / CRISIS alerts, ~8 journal entries for FULL clients (one therapist-hidden). Levels:
10% BASIC, 50% STANDARD, 40% FULL; 30% of the clients are in couples with another bench client.

A second therapist ("small") is linked to the first SMALL clients, for query counts at two caseload
sizes. One partner (rate limit 100,000/min, BAA on file) acts for both therapists.

The set is reused while it matches (same N, generated today); otherwise the previous bench therapists,
clients, users and partner are deleted and the set is written again.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from django.db import connection, transaction

from accounts.models import User
from core.actors import Actor
from core.encryption import is_under_primary_key
from core.time import utc_now
from integration.catalogue import COURSE_WEEKS, DAYS_PER_WEEK
from integration.models import (
    ActivityEntry,
    Alert,
    AlertRecipient,
    Assessment,
    CheckIn,
    Client,
    Couple,
    CourseProgress,
    IntegrationPartner,
    JournalEntry,
    PermissionLevel,
    RatioEntry,
    Therapist,
    TherapistClientLink,
    TherapistTask,
    WeeklyStrategy,
)
from integration.services.partners import partner_create

DAYS = 90
SMALL = 10
USERNAME_PREFIX = "lrbench-"
PARTNER_NAME = "LoveRescue bench partner"
PARTNER_RATE_LIMIT = 100_000  # the highest a partner may have: the limiter counts, never refuses
BATCH = 5000
FIRST_NAMES = ["Ava", "Ben", "Cora", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jade", "Kai", "Lena", "Milo", "Nia"]
LAST_NAMES = ["Ashby", "Brook", "Carver", "Dale", "Ellis", "Frost", "Grant", "Hale", "Irwin", "Joyce", "Knox", "Lowe"]
ACTIVITIES = ["love_map_quiz", "gratitude_note", "six_second_kiss", "stress_reducing_talk", "appreciation", "check_in"]


def therapist_id(n_clients: int, which: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"https://bench.loverescue.invalid/{which}/{n_clients}")


@dataclass(frozen=True)
class BenchData:
    therapist: Therapist  # N clients
    small_therapist: Therapist  # SMALL clients (the first SMALL of the N)
    partner: IntegrationPartner
    client_ids: list[uuid.UUID]  # ordered as generated
    levels: dict[uuid.UUID, str]
    reused: bool
    seconds: float
    rows: int


def _existing(n_clients: int, today: date) -> BenchData | None:
    therapist = Therapist.objects.filter(pk=therapist_id(n_clients, "main")).first()
    small = Therapist.objects.filter(pk=therapist_id(n_clients, "small")).first()
    partner = IntegrationPartner.objects.filter(name=PARTNER_NAME).first()
    if therapist is None or small is None or partner is None or therapist.created_at.date() != today:
        return None
    links = list(
        TherapistClientLink.objects.filter(therapist=therapist)
        .order_by("client__user__username")
        .values_list("client_id", "permission_level")
    )
    if len(links) != n_clients or not partner.therapists.filter(pk=therapist.pk).exists():
        return None
    # Written in the current encrypted format under the current primary key (a set made before a format or
    # key change would measure the old format's decryption).
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT email FROM {connection.ops.quote_name(Client._meta.db_table)} "  # noqa: S608
            "WHERE id = %s AND email IS NOT NULL",
            [links[0][0]],
        )
        stored = cursor.fetchone()
    if stored is not None and not is_under_primary_key(stored[0]):
        return None
    return BenchData(therapist, small, partner, [c for c, _ in links], dict(links), True, 0.0, 0)


def _delete_previous() -> None:
    with transaction.atomic():
        Therapist.objects.filter(first_name="Bench", last_name__startswith="Therapist").delete()
        IntegrationPartner.objects.filter(name=PARTNER_NAME).delete()
        User.objects.filter(username__startswith=USERNAME_PREFIX).delete()  # cascades to clients and data


def bench_data(n_clients: int = 1000, *, seed: int = 20260212) -> BenchData:
    """The bench set for `n_clients`, generated now unless today's set is already there."""
    today = utc_now().date()
    existing = _existing(n_clients, today)
    if existing is not None:
        _vacuum_analyze()
        return existing
    _delete_previous()
    started = time.perf_counter()
    rows = _generate(n_clients, today, random.Random(seed))
    _vacuum_analyze()
    data = _existing(n_clients, today)
    assert data is not None, "generated bench data is not found again"
    return BenchData(
        data.therapist,
        data.small_therapist,
        data.partner,
        data.client_ids,
        data.levels,
        False,
        time.perf_counter() - started,
        rows,
    )


def _vacuum_analyze() -> None:
    """Planner statistics and visibility maps, as a database in service has them (autovacuum may lag
    behind a bulk load, and a migration that rewrote rows clears the visibility map): the lists' "latest"
    lookups are index-only scans on a vacuumed table. Outside a transaction (VACUUM refuses one)."""
    with connection.cursor() as cursor:
        for model in (
            User,
            Client,
            TherapistClientLink,
            Couple,
            CheckIn,
            RatioEntry,
            ActivityEntry,
            CourseProgress,
            WeeklyStrategy,
            Assessment,
            JournalEntry,
            TherapistTask,
            Alert,
            AlertRecipient,
        ):
            cursor.execute(f'VACUUM (ANALYZE) "{model._meta.db_table}"')


def _at(day: date, hour: int) -> datetime:
    return datetime.combine(day, dtime(hour=hour), tzinfo=UTC)


def _assessment(type_name: str, rng: random.Random, progress: float) -> dict:
    """A valid score (integration.catalogue) drifting better with `progress` (0..1)."""
    if type_name == "attachment":
        return {
            "style": rng.choice(["secure", "anxious", "avoidant", "fearful"]),
            "anxiety": round(max(1.0, 5.5 - 2 * progress + rng.uniform(-0.5, 0.5)), 1),
            "avoidance": round(max(1.0, 4.5 - 1.5 * progress + rng.uniform(-0.5, 0.5)), 1),
        }
    if type_name == "love_language":
        return {"primary": rng.choice(["words", "acts", "gifts", "time", "touch"]), "secondary": "time"}
    score = {"score": round(min(100.0, 45 + 30 * progress + rng.uniform(-5, 5)), 1)}
    if type_name == "communication":
        score["style"] = rng.choice(["collaborative", "accommodating", "avoiding", "competing"])
    return score


@transaction.atomic
def _generate(n_clients: int, today: date, rng: random.Random) -> int:
    now = utc_now()
    start = today - timedelta(days=DAYS - 1)
    main = Therapist.objects.create(
        id=therapist_id(n_clients, "main"),
        first_name="Bench",
        last_name="Therapist",
        email="bench.therapist@example.com",
        phone="+14155550100",
    )
    small = Therapist.objects.create(
        id=therapist_id(n_clients, "small"),
        first_name="Bench",
        last_name="Therapist (small)",
        email="bench.small@example.com",
    )
    partner_create(
        name=PARTNER_NAME,
        therapists=[main, small],
        baa_signed_at=date(2026, 1, 1),
        baa_signer="Bench Signer",
        rate_limit_per_minute=PARTNER_RATE_LIMIT,
        actor=Actor.system("bench"),
    )

    users = User.objects.bulk_create(
        [User(username=f"{USERNAME_PREFIX}{i:05d}", password="!", is_active=True) for i in range(n_clients)],
        batch_size=BATCH,
    )
    clients = Client.objects.bulk_create(
        [
            Client(
                user=user,
                first_name=rng.choice(FIRST_NAMES),
                last_name=rng.choice(LAST_NAMES),
                email=f"{user.username}@example.com",
            )
            for user in users
        ],
        batch_size=BATCH,
    )
    levels = []
    for _ in clients:
        r = rng.random()
        level = PermissionLevel.BASIC if r < 0.1 else PermissionLevel.STANDARD if r < 0.6 else PermissionLevel.FULL
        levels.append(level)
    granted = now - timedelta(days=DAYS + 10)
    links = [
        TherapistClientLink(therapist=main, client=c, permission_level=lvl, consent_granted_at=granted)
        for c, lvl in zip(clients, levels, strict=True)
    ]
    links += [
        TherapistClientLink(therapist=small, client=c, permission_level=lvl, consent_granted_at=granted)
        for c, lvl in zip(clients[:SMALL], levels[:SMALL], strict=True)
    ]
    rows = len(users) + len(clients) + len(TherapistClientLink.objects.bulk_create(links, batch_size=BATCH))

    in_couples = clients[: int(n_clients * 0.3) // 2 * 2]
    couples = [Couple(partner1=a, partner2=b) for a, b in zip(in_couples[0::2], in_couples[1::2], strict=True)]
    rows += len(Couple.objects.bulk_create(couples, batch_size=BATCH))

    checkins, ratios, activities, courses, strategies, assessments = [], [], [], [], [], []
    journal, tasks, alerts = [], [], []
    for client, level in zip(clients, levels, strict=True):
        base_mood = rng.uniform(4.5, 8)
        active_rate = rng.uniform(0.4, 0.95)
        week = rng.randint(1, 12)
        completed_course = week == 12 and rng.random() < 0.5
        for offset in range(DAYS):
            day = start + timedelta(days=offset)
            if rng.random() < 0.9:
                mood = max(1, min(10, round(rng.gauss(base_mood, 1.2))))
                checkins.append(
                    CheckIn(client=client, date=day, mood=mood, closeness=max(1, min(10, mood + rng.randint(-2, 1))))
                )
            if rng.random() < 0.8:
                ratios.append(
                    RatioEntry(client=client, date=day, positive=rng.randint(1, 12), negative=rng.randint(0, 4))
                )
            if rng.random() < active_rate:
                for _ in range(rng.choice((1, 1, 2))):
                    activities.append(
                        ActivityEntry(client=client, date=day, activity=rng.choice(ACTIVITIES), week_number=week)
                    )
        courses.append(
            CourseProgress(
                client=client,
                current_week=week,
                is_active=not completed_course,
                completed_at=now if completed_course else None,
            )
        )
        for number in range(1, week + 1):
            done = number < week or completed_course
            strategies.append(
                WeeklyStrategy(
                    client=client,
                    week_number=number,
                    theme=COURSE_WEEKS[number],
                    completed_days=DAYS_PER_WEEK if done else rng.randint(0, 6),
                    completed_at=now - timedelta(days=7 * (week - number)) if done else None,
                )
            )
            if done:
                alerts.append(
                    Alert(
                        client=client,
                        alert_type="MILESTONE",
                        severity="LOW",
                        rule="milestone_week",
                        episode_key=f"week-{number}",
                        required_level=PermissionLevel.BASIC,
                        message=f"Completed course week {number}",
                        metadata={"weekNumber": number},
                        created_at=now - timedelta(days=7 * (week - number)),
                    )
                )
        types = rng.sample(
            ["attachment", "relationship_satisfaction", "communication", "conflict_resolution", "love_language"],
            rng.randint(2, 5),
        )
        for i, type_name in enumerate(types):
            completed = _at(start + timedelta(days=rng.randint(0, DAYS - 1)), 9 + i)
            responses = {"q1": rng.randint(1, 7), "q2": rng.randint(1, 7)} if level == PermissionLevel.FULL else None
            assessments.append(
                Assessment(
                    client=client,
                    type=type_name,
                    score=_assessment(type_name, rng, 0.3),
                    responses=responses,
                    completed_at=completed,
                )
            )
        if level == PermissionLevel.FULL:
            for i in range(8):
                journal.append(
                    JournalEntry(
                        client=client,
                        text=f"Bench journal entry {i}: a calm week together.",
                        therapist_hidden=i == 0,
                        created_at=_at(start + timedelta(days=10 * i + 3), 21),
                    )
                )
        for i in range(2):
            tasks.append(
                TherapistTask(
                    therapist=main,
                    client=client,
                    description="Complete the Love Map exercise",
                    module="gottman_love_maps",
                    activities=["love_map_quiz"],
                    status="completed" if i == 0 else "pending",
                    completed_at=now if i == 0 else None,
                )
            )
        r = rng.random()
        if r < 0.05:
            alerts.append(
                Alert(
                    client=client,
                    alert_type="RISK",
                    severity="HIGH",
                    rule="risk_mood",
                    episode_key=(today - timedelta(days=6)).isoformat(),
                    required_level=PermissionLevel.STANDARD,
                    message="Mood has dropped 2+ SD below baseline for 5 consecutive days",
                    metadata={"moodBaseline": 7.2, "currentMood": 3.1, "daysBelow": 5},
                    created_at=now - timedelta(days=1),
                )
            )
        elif r < 0.07:
            alerts.append(
                Alert(
                    client=client,
                    alert_type="CRISIS",
                    severity="CRITICAL",
                    rule="crisis_checkin",
                    episode_key=(today - timedelta(days=3)).isoformat(),
                    required_level=PermissionLevel.STANDARD,
                    message="Crisis pathway triggered — safety plan activation recommended",
                    metadata={"source": "checkin"},
                    created_at=now - timedelta(days=3),
                )
            )
        elif r < 0.15:
            alerts.append(
                Alert(
                    client=client,
                    alert_type="STAGNATION",
                    severity="MEDIUM",
                    rule="stagnation",
                    episode_key=(today - timedelta(days=40)).isoformat(),
                    required_level=PermissionLevel.BASIC,
                    message="No activity for 7 days",
                    metadata={"daysInactive": 7},
                    created_at=now - timedelta(days=33),
                    resolved_at=now - timedelta(days=30),
                )
            )

    for model, objects in (
        (CheckIn, checkins),
        (RatioEntry, ratios),
        (ActivityEntry, activities),
        (CourseProgress, courses),
        (WeeklyStrategy, strategies),
        (Assessment, assessments),
        (JournalEntry, journal),
        (TherapistTask, tasks),
        (Alert, alerts),
    ):
        rows += len(model.objects.bulk_create(objects, batch_size=BATCH))
    # The main therapist has read about half of the alerts.
    read = [AlertRecipient(alert=a, therapist=main, read_at=now, notified_at=now) for a in alerts[::2]]
    rows += len(AlertRecipient.objects.bulk_create(read, batch_size=BATCH))
    return rows
