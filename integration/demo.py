"""LoveRescue demo data for `manage.py seed_demo` (key "loverescue").

DEMO ONLY. The API key and secret below are public constants (like seed_demo's DEMO_PASSWORD), shaped
exactly like real ones so a partner's engineer can try the whole flow locally; seed_demo refuses to run
in production. The credential row stores them as a real one would be (key digest + bcrypt hash).

What it makes, each only when missing (a second run creates and changes nothing, and prints the same):
- therapist "Dana Demo" (fixed id) with an email and phone for alert notifications;
- partner "SuperTool (demo)" with a BAA on file, acting for that therapist, and the demo credential;
- four clients linked to the therapist at BASIC, STANDARD and FULL, and one who revoked consent; the
  full and standard clients are a couple (both consented);
- about 90 days of app data (dates relative to the day of the first run, from a fixed random seed),
  recorded through integration.services.client_data so the alert rules run as in production: daily
  check-ins and ratios, course activities (weeks complete and the course advances), assessments with
  a breakthrough, journal entries including a therapist-hidden one, tasks, and a low-mood run over the
  last days of the standard client, which leaves an open RISK alert. The basic client stopped doing
  activities 9 days ago, so the daily evaluation finds STAGNATION.

`clientLogin` is the full client's app login (POST /api/v1/auth/token, then /api/app/...).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, time, timedelta

from accounts.models import User
from audit.services import audit_event_record
from core.actors import Actor
from core.apikeys import hash_secret, key_digest, verify_secret
from core.time import utc_now
from integration.models import (
    CheckIn,
    Client,
    Couple,
    CourseProgress,
    IntegrationPartner,
    PartnerCredential,
    PermissionLevel,
    Therapist,
    TherapistClientLink,
)
from integration.services import alerts, client_data, partners
from integration.services.assignments import task_assign
from integration.services.auth import API_KEY_PREFIX

# DEMO ONLY: public by design (this file is public), refused in production by seed_demo.
DEMO_KEY_ID = "demosupertl1"
DEMO_API_KEY = f"{API_KEY_PREFIX}_{DEMO_KEY_ID}_DemoOnlyPublicKeyNeverUseInProduction001"
DEMO_API_SECRET = "sk_live_DemoOnlyPublicSecretNeverUseInProductn01"
PARTNER_NAME = "SuperTool (demo)"
ACTOR = Actor.system("seed_demo")

_NAMESPACE = uuid.UUID("6096e6e6-ca14-4c5a-b821-d1fa22d9a49a")


def _id(name: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"loverescue-demo:{name}")


THERAPIST_ID = _id("therapist")
COUPLE_ID = _id("couple")
DAYS = 90
SEED = 20260212

# key -> (first, last, username, level, revoked)
CLIENTS = {
    "basic": ("Bea", "Basic", "lr-demo-basic", PermissionLevel.BASIC, False),
    "standard": ("John", "Doe", "lr-demo-standard", PermissionLevel.STANDARD, False),
    "full": ("Jane", "Doe", "lr-demo-full", PermissionLevel.FULL, False),
    "revoked": ("Rory", "Revoked", "lr-demo-revoked", PermissionLevel.STANDARD, True),
}

WEEK_ACTIVITIES = {
    1: "love_map_questions",
    2: "fondness_admiration_list",
    3: "attachment_reflection",
    4: "bids_for_connection_log",
    5: "soft_startup_practice",
    6: "four_horsemen_spotting",
    7: "repair_attempt_practice",
    8: "turning_toward_log",
    9: "secure_base_check_in",
    10: "shared_meaning_conversation",
    11: "ritual_of_connection",
    12: "relationship_plan",
}
EXTRA_ACTIVITIES = ("gratitude_note", "six_second_kiss", "stress_reducing_conversation", "appreciation_text")

JOURNAL_TEXTS = (
    "We talked after dinner without phones. It felt like old times.",
    "Tried the soft start-up today. Still got defensive, but we recovered faster.",
    "Noticed I keep checking my phone for replies. Anxious again.",
    "Sunday walk together. Laughed about the wedding photos.",
    "Argued about money. Used a repair attempt and it actually worked.",
    "Feeling more settled this week. Less need for reassurance.",
)
HIDDEN_TEXT = "Not ready to share this with anyone yet, not even in therapy: I am scared he will leave."


def seed(ctx) -> tuple[str, object]:
    """The "loverescue" key of seed_demo --json; creates what is missing (see the module docstring)."""
    therapist = _therapist(ctx)
    partner = _partner(ctx, therapist)
    _credential(ctx, partner)
    clients = {key: _client(ctx, key, spec, therapist) for key, spec in CLIENTS.items()}
    couple = _couple(ctx, clients["full"], clients["standard"])

    if not CheckIn.objects.filter(client__in=list(clients.values())).exists():
        _generate(ctx, therapist, partner, clients)

    return "loverescue", {
        "apiKey": DEMO_API_KEY,
        "apiSecret": DEMO_API_SECRET,
        "therapistId": str(therapist.pk),
        "clients": {key: str(client.pk) for key, client in clients.items()},
        "coupleId": str(couple.pk),
        "clientLogin": {"username": clients["full"].user.username, "password": ctx.password},
    }


# --- Who ---------------------------------------------------------------------------------------------


def _therapist(ctx) -> Therapist:
    therapist = Therapist.objects.filter(pk=THERAPIST_ID).first()
    if therapist is None:
        therapist = Therapist.objects.create(
            id=THERAPIST_ID,
            first_name="Dana",
            last_name="Demo",
            email="dana.demo@example.com",
            phone="+15555550142",
        )
        ctx.changed(f"created LoveRescue demo therapist {therapist.pk}")
    elif not therapist.is_active:
        therapist.is_active = True
        therapist.save(update_fields=["is_active"])
        ctx.changed("reactivated the LoveRescue demo therapist")
    return therapist


def _partner(ctx, therapist: Therapist) -> IntegrationPartner:
    partner = IntegrationPartner.objects.filter(name=PARTNER_NAME).first()
    if partner is None:
        partner = partners.partner_create(
            name=PARTNER_NAME,
            therapists=[therapist],
            baa_signed_at=utc_now().date(),
            baa_signer="Demo Signer",
            actor=ACTOR,
        )
        ctx.changed(f"created integration partner {PARTNER_NAME}")
        return partner
    # Repair what would stop the printed credentials from working.
    if not partner.is_active:
        partners.partner_reactivate(partner=partner, actor=ACTOR)
        ctx.changed(f"reactivated {PARTNER_NAME}")
    changes = {}
    if not partner.has_baa:
        changes.update(baa_signed_at=utc_now().date(), baa_signer="Demo Signer")
    if partner.allowed_ips:
        changes["allowed_ips"] = []
    if not partner.therapists.filter(pk=therapist.pk).exists():
        changes["therapists"] = [*partner.therapists.all(), therapist]
    if changes:
        partner = partners.partner_update(partner=partner, **changes, actor=ACTOR)
        ctx.changed(f"repaired {PARTNER_NAME} ({', '.join(sorted(changes))})")
    return partner


def _credential(ctx, partner: IntegrationPartner) -> PartnerCredential:
    credential = PartnerCredential.objects.filter(key_id=DEMO_KEY_ID).first()
    if credential is None:
        credential = PartnerCredential.objects.create(
            partner=partner,
            key_id=DEMO_KEY_ID,
            key_digest=key_digest(DEMO_API_KEY),
            key_hint=f"{API_KEY_PREFIX}_{DEMO_KEY_ID}…",
            secret_hash=hash_secret(DEMO_API_SECRET),
        )
        audit_event_record(
            action="integration.credential_created",
            subject_type="integration_partner",
            subject_id=str(partner.pk),
            metadata={"partner": partner.name, "key_id": DEMO_KEY_ID, "demo": True},
            actor=ACTOR,
        )
        ctx.changed(f"created the demo API key of {PARTNER_NAME}")
        return credential
    fields = []
    if credential.partner_id != partner.pk:
        credential.partner = partner
        fields.append("partner")
    if credential.revoked_at is not None:
        credential.revoked_at = None
        fields.append("revoked_at")
    if not verify_secret(DEMO_API_SECRET, credential.secret_hash):
        credential.secret_hash = hash_secret(DEMO_API_SECRET)
        credential.previous_secret_hash = ""
        credential.previous_secret_expires_at = None
        fields += ["secret_hash", "previous_secret_hash", "previous_secret_expires_at"]
    if fields:
        credential.save(update_fields=fields)
        audit_event_record(
            action="integration.credential_reset",
            subject_type="integration_partner",
            subject_id=str(partner.pk),
            metadata={"partner": partner.name, "key_id": DEMO_KEY_ID, "demo": True, "fields": fields},
            actor=ACTOR,
        )
        ctx.changed(f"reset the demo API key of {PARTNER_NAME} ({', '.join(fields)})")
    return credential


def _client(ctx, key: str, spec, therapist: Therapist) -> Client:
    first, last, username, level, revoked = spec
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User.objects.create_user(username=username, password=ctx.password)
        audit_event_record(
            action="accounts.user_created",
            subject_type="user",
            subject_id=str(user.pk),
            metadata={"source": "seed_demo", "is_staff": False},
            actor=ACTOR,
        )
        ctx.changed(f"created platform user {username} (LoveRescue {key} client)")
    elif not user.is_active or not user.check_password(ctx.password):
        user.is_active = True
        user.set_password(ctx.password)
        user.save(update_fields=["is_active", "password"])
        ctx.changed(f"reset platform user {username} (inactive or password changed)")

    client = Client.objects.filter(pk=_id(f"client:{key}")).first()
    if client is None:
        client = Client.objects.create(
            id=_id(f"client:{key}"), user=user, first_name=first, last_name=last, email=f"{username}@example.com"
        )
        ctx.changed(f"created LoveRescue {key} client {client.pk}")

    if not TherapistClientLink.objects.filter(therapist=therapist, client=client).exists():
        granted_at = utc_now() - timedelta(days=DAYS)
        # Demo clients consented when they were linked (in the app, the client grants it).
        link = client_data.link_create(
            therapist=therapist, client=client, permission_level=level, consent_granted_at=granted_at, actor=ACTOR
        )
        if revoked:
            client_data.link_update(
                client=client, link_id=link.pk, consent=client_data.CONSENT_REVOKED, actor=Actor.client(client.pk)
            )
        ctx.changed(f"linked the {key} client to the demo therapist")
    return client


def _couple(ctx, first: Client, second: Client) -> Couple:
    couple = Couple.objects.filter(pk=COUPLE_ID).first()
    if couple is None:
        couple = Couple.objects.create(id=COUPLE_ID, partner1=first, partner2=second)
        ctx.changed(f"created LoveRescue demo couple {couple.pk}")
    return couple


# --- What their app recorded ---------------------------------------------------------------------------


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    """That day at that time (UTC), but never later than a minute ago."""
    return min(datetime.combine(day, time(hour, minute), tzinfo=UTC), utc_now() - timedelta(minutes=1))


# Per client: how often each thing happens, and the shape of their story.
PROFILES = {
    "full": {"checkin": 0.95, "ratio": 0.8, "course": 0.9, "extra": 0.35, "journal_every": 6, "low_days": 0},
    "standard": {"checkin": 0.9, "ratio": 0.6, "course": 0.75, "extra": 0.2, "journal_every": 12, "low_days": 6},
    "basic": {"checkin": 0.8, "ratio": 0.4, "course": 0.7, "extra": 0.1, "journal_every": 0, "low_days": 0},
    "revoked": {"checkin": 0.7, "ratio": 0.3, "course": 0.6, "extra": 0.1, "journal_every": 20, "low_days": 0},
}
STOPPED_DAYS_AGO = {"basic": 9}  # no activities after this (STAGNATION)

ASSESSMENTS = {
    # key -> [(days ago, type, score, responses?)]
    "full": [
        (86, "attachment", {"style": "anxious", "anxiety": 5.4, "avoidance": 2.3}),
        (86, "relationship_satisfaction", {"score": 48}),
        (85, "communication", {"score": 52, "style": "accommodating"}),
        (85, "conflict_resolution", {"score": 45}),
        (84, "love_language", {"primary": "words", "secondary": "time"}),
        (45, "relationship_satisfaction", {"score": 58}),
        (44, "conflict_resolution", {"score": 55}),
        (8, "attachment", {"style": "anxious", "anxiety": 4.1, "avoidance": 2.0}),
        (8, "relationship_satisfaction", {"score": 74}),
    ],
    "standard": [
        (84, "attachment", {"style": "avoidant", "anxiety": 2.2, "avoidance": 5.1}),
        (84, "relationship_satisfaction", {"score": 55}),
        (83, "communication", {"score": 47, "style": "avoiding"}),
        (83, "conflict_resolution", {"score": 50}),
        (82, "love_language", {"primary": "acts", "secondary": "touch"}),
        (40, "relationship_satisfaction", {"score": 60}),
        (3, "relationship_satisfaction", {"score": 49}),
    ],
    "basic": [
        (80, "attachment", {"style": "secure", "anxiety": 2.0, "avoidance": 2.2}),
        (80, "relationship_satisfaction", {"score": 66}),
        (30, "relationship_satisfaction", {"score": 70}),
    ],
    "revoked": [
        (70, "attachment", {"style": "fearful", "anxiety": 4.8, "avoidance": 4.6}),
        (70, "relationship_satisfaction", {"score": 41}),
    ],
}


def _generate(ctx, therapist: Therapist, partner: IntegrationPartner, clients: dict[str, Client]) -> None:
    today = utc_now().date()
    start = today - timedelta(days=DAYS - 1)
    rng = random.Random(SEED)  # noqa: S311 - demo data, not security
    for key, client in clients.items():
        as_client = Actor.client(client.pk)  # what their app would record, as they would
        profile = PROFILES[key]
        assessments = sorted(ASSESSMENTS[key], key=lambda item: -item[0])
        journal_count = 0
        for offset in range(DAYS):
            day = start + timedelta(days=offset)
            days_ago = (today - day).days
            low = days_ago < profile["low_days"]
            if low or rng.random() < profile["checkin"]:
                mood = rng.choice((2, 3, 3)) if low else rng.choice((6, 7, 7, 8, 8, 7))
                closeness = max(1, min(10, mood + rng.choice((-1, 0, 0, 1))))
                client_data.checkin_record(
                    client=client, date=day, mood=mood, closeness=closeness, today=today, actor=as_client
                )
            if rng.random() < profile["ratio"]:
                positive = rng.randint(1, 4) if low else rng.randint(4, 12)
                negative = rng.randint(2, 5) if low else rng.randint(0, 3)
                client_data.ratio_record(
                    client=client, date=day, positive=positive, negative=negative, today=today, actor=as_client
                )
            stopped = days_ago < STOPPED_DAYS_AGO.get(key, 0)
            if not stopped and not low and rng.random() < profile["course"]:
                course = CourseProgress.objects.filter(client=client).first()
                if course is None or course.is_active:
                    week = course.current_week if course else 1
                    client_data.activity_record(
                        client=client,
                        date=day,
                        activity=WEEK_ACTIVITIES[week],
                        week_number=week,
                        today=today,
                        actor=as_client,
                    )
            if not stopped and rng.random() < profile["extra"]:
                client_data.activity_record(
                    client=client, date=day, activity=rng.choice(EXTRA_ACTIVITIES), today=today, actor=as_client
                )
            while assessments and assessments[0][0] == days_ago:
                _, assessment_type, score = assessments.pop(0)
                responses = {f"q{i}": rng.randint(1, 7) for i in range(1, 11)} if key == "full" else None
                client_data.assessment_record(
                    client=client,
                    type=assessment_type,
                    score=score,
                    responses=responses,
                    completed_at=_at(day, 19, 30),
                    actor=as_client,
                )
            every = profile["journal_every"]
            if every and offset % every == every - 1:
                text = JOURNAL_TEXTS[journal_count % len(JOURNAL_TEXTS)]
                journal_count += 1
                client_data.journal_record(
                    client=client, text=text, therapist_hidden=False, created_at=_at(day, 21), actor=as_client
                )
            if key == "full" and days_ago == 12:
                client_data.journal_record(
                    client=client, text=HIDDEN_TEXT, therapist_hidden=True, created_at=_at(day, 22), actor=as_client
                )

    full = clients["full"]
    task_assign(
        therapist=therapist,
        client=full,
        partner=partner,
        description="Complete the Gottman Love Map exercise",
        module="gottman_love_maps",
        activities=["love_map_quiz", "open_ended_questions"],
        notes="Focus on curiosity about your partner's inner world",
        due_date=today + timedelta(days=7),
        priority="high",
        actor=Actor.integration_partner(partner.pk),
    )
    done = task_assign(
        therapist=therapist,
        client=full,
        partner=partner,
        description="Practise one soft start-up this week",
        module="soft_startup",
        activities=["soft_startup_practice"],
        priority="medium",
        actor=Actor.integration_partner(partner.pk),
    )
    client_data.task_complete(client=full, task_id=done.pk, actor=Actor.client(full.pk))
    created = alerts.alerts_evaluate_daily(today=today)
    ctx.changed(
        f"recorded {DAYS} days of LoveRescue app data for {len(clients)} demo clients "
        f"({created} time-based alert(s)); course weeks: "
        + ", ".join(
            f"{key} {getattr(CourseProgress.objects.filter(client=c).first(), 'current_week', '-')}"
            for key, c in clients.items()
        )
    )
