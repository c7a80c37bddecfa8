"""Therapist dashboard API on PostgreSQL: GET /api/session/skills?therapistId=<self> and
GET /api/session/analytics?sessionId=<latest> (derived: analytics never posted; timeRange=1y and all time)
for a therapist with 1,000 sessions, each next to its floor measured in the same run. Derived analytics are
served from the body cache (core.body_cache) while nothing was written and the range dropped no row; the same
two reads are also measured with the cache off (`*_uncached`: the cost of the first read after a write).

Floor: the same stack (middleware, platform-token authentication, organization scoping, the therapist API's
per-user rate limits counted, access log written with the same session ids) answering the real endpoint's
response body, precomputed byte for byte. What the real endpoint costs above it is its own work: resolving
the session or therapist, the aggregate queries, building and rendering the body. Target p50 <= 2x.

Requests run in-process (django.test.Client over the WSGI handler, DEBUG off), real and floor alternating
request by request, so drift on the machine hits both alike. The per-user limits (100/min, 1000/h) are
raised in this process only so the run is never refused: every request is still counted in the cache.
SQL queries per request are reported for the 1,000-session therapist and a 10-session one (equal: the
reads cost the same number of queries however many sessions there are).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/td_bench REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/therapist_api.py

Needs PostgreSQL (skips otherwise). Use a database of its own: the data set (per session ~5 skill scores,
3 progress snapshots, progress metrics and a milestone; ~11k rows, bulk_create) is made once a day and kept.
Knobs: BENCH_TD_SESSIONS (1000), BENCH_TD_REQUESTS (timed requests per endpoint and variant, 60).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from bench._harness import not_run, percentile, report  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("APP_ENV", "development")
os.environ["DEBUG"] = "false"  # DEBUG keeps every query in memory: not what production runs

N_SESSIONS = int(os.environ.get("BENCH_TD_SESSIONS", "1000"))
SMALL_SESSIONS = 10
REQUESTS = int(os.environ.get("BENCH_TD_REQUESTS", "60"))
WARMUP = 5
SPAN_DAYS = 540  # sessions spread over ~18 months: 1y covers about two thirds of them
SKILLS = ["Active Listening", "Empathy", "Reflection", "Open Questions", "Summarizing", "Risk Assessment",
          "Validation", "Clarification"]  # fmt: skip
SKILLS_PER_SESSION = 5
SNAPSHOTS_PER_SESSION = 3
ORGANIZATION_PREFIX = "Therapist dashboard bench"
ENDPOINTS = ("skills", "analytics_1y", "analytics_all", "analytics_1y_uncached", "analytics_all_uncached")
# The *_uncached variants run with the body cache off (BODY_CACHE_SECONDS=0): every request derives the body,
# as the first read after a write does. Same target, reported apart so the cache never hides that cost.
UNCACHED = {"analytics_1y_uncached": "analytics_1y", "analytics_all_uncached": "analytics_all"}
TARGETS = {name: ("<=", 2.0) for name in ENDPOINTS}  # issue 13: p50 within 2x of the floor


# --- The data set ----------------------------------------------------------------------------------------


def _make_sessions(organization, therapist, skills, n: int, now: datetime, rng: random.Random) -> None:
    from sessions_analytics.models import (
        Milestone,
        ProgressMetrics,
        ProgressSnapshot,
        SessionSkillScore,
        TrainingSession,
    )

    statuses = ["completed"] * 7 + ["cancelled", "paused", "active"]
    sessions = TrainingSession.objects.bulk_create(
        TrainingSession(
            organization=organization,
            therapist=therapist,
            client_label=f"sim-client-{i % 40}",
            start_time=(start := now - timedelta(seconds=int(SPAN_DAYS * 86400 * (i + 0.5) / n))),
            end_time=start + timedelta(minutes=50),
            status=statuses[i % len(statuses)],
            progress=round(rng.uniform(20, 100), 1),
        )
        for i in range(n)
    )
    ProgressMetrics.objects.bulk_create(
        ProgressMetrics(
            session=s,
            total_messages=60,
            therapist_messages=30,
            client_messages=30,
            session_duration=3000,
            active_time=2400,
            response_time=round(rng.uniform(1, 6), 2),
            conversation_flow=round(rng.uniform(40, 95), 1),
            updated_at=s.start_time + timedelta(minutes=50),
        )
        for s in sessions
    )
    SessionSkillScore.objects.bulk_create(
        SessionSkillScore(
            session=s,
            skill=skill,
            therapist=therapist,
            session_start=s.start_time,
            score=round(rng.uniform(30, 100), 1),
            created_at=s.start_time + timedelta(minutes=45),
            recorded_at=s.start_time + timedelta(minutes=45),
        )
        for s in sessions
        for skill in rng.sample(skills, SKILLS_PER_SESSION)
    )
    ProgressSnapshot.objects.bulk_create(
        ProgressSnapshot(session=s, timestamp=s.start_time + timedelta(minutes=15 * (k + 1)), value=25.0 * (k + 1))
        for s in sessions
        for k in range(SNAPSHOTS_PER_SESSION)
    )
    Milestone.objects.bulk_create(
        Milestone(
            session=s,
            name="rapport-established",
            value=50.0,
            achieved_at=s.start_time + timedelta(minutes=20),
            metadata={"totalMessages": 20, "sessionDuration": 1200},
        )
        for s in sessions
    )


def _new_generations(organization, *therapists) -> None:
    """The rows were bulk-loaded, not written by the services: start each therapist's derived-analytics
    generation as a bulk load must (sessions_analytics.services.analytics_changed), so no body cached by an
    earlier run (Redis outlives it) is served and this run's bodies are cacheable."""
    from sessions_analytics.services import analytics_changed

    for therapist in therapists:
        analytics_changed(organization_id=organization.pk, therapist_id=therapist.pk)


def bench_data(now: datetime) -> dict:
    """Today's bench organization with its two therapists, made once a day (sessions are dated from now)."""
    from django.db import connection, transaction

    from accounts import services as accounts_services
    from accounts.models import Organization, User
    from core.actors import Actor
    from core.scoping import Role
    from sessions_analytics.models import Skill, TrainingSession

    name = f"{ORGANIZATION_PREFIX} {now.date().isoformat()} {N_SESSIONS}"
    organization = Organization.objects.filter(name=name).first()
    usernames = (f"td-bench-{now.date().isoformat()}-{N_SESSIONS}", f"td-bench-small-{now.date().isoformat()}")
    if organization is not None:
        big, small = (User.objects.get(username=u) for u in usernames)
        if TrainingSession.objects.filter(therapist=big).count() == N_SESSIONS:
            _new_generations(organization, big, small)
            return {"organization": organization, "therapist": big, "small": small, "reused": True, "seconds": 0.0}
    started = time.monotonic()
    actor = Actor.system("bench")
    rng = random.Random(13)
    with transaction.atomic():
        if organization is None:
            organization = accounts_services.organization_create(name=name, actor=actor)
        users = []
        for username in usernames:
            user = User.objects.filter(username=username).first() or User.objects.create_user(username=username)
            accounts_services.membership_set(user=user, organization=organization, role=Role.THERAPIST, actor=actor)
            TrainingSession.objects.filter(therapist=user).delete()
            users.append(user)
        big, small = users
        skills = []
        for skill_name in SKILLS:
            from sessions_analytics.analytics import skill_category, skill_slug

            slug = skill_slug(skill_name)
            skill, _ = Skill.objects.get_or_create(
                organization=organization,
                skill_id=slug,
                defaults={"name": skill_name, "category": skill_category(slug)},
            )
            skills.append(skill)
        _make_sessions(organization, big, skills, N_SESSIONS, now, rng)
        _make_sessions(organization, small, skills, SMALL_SESSIONS, now, rng)
    with connection.cursor() as cursor:
        cursor.execute(
            "ANALYZE sessions_analytics_trainingsession, sessions_analytics_sessionskillscore, "
            "sessions_analytics_progresssnapshot, sessions_analytics_milestone, sessions_analytics_progressmetrics"
        )
    _new_generations(organization, big, small)
    return {
        "organization": organization,
        "therapist": big,
        "small": small,
        "reused": False,
        "seconds": time.monotonic() - started,
    }


# --- The floor ---------------------------------------------------------------------------------------------


def install_floor_route():
    """GET /api/session/_bench_floor/<name>: a therapist API view (same authentication, organization scoping,
    rate policy, access log) answering a precomputed body and noting the same session ids. Added to the
    project's URLs in this process only."""
    from django.http import HttpResponse
    from django.urls import clear_url_caches, path

    import config.urls
    from core.context import note_subjects
    from sessions_analytics.api.views import SUBJECT, TherapistView

    class FloorView(TherapistView):
        bodies: dict[str, tuple[bytes, list[str]]] = {}

        def get(self, request, name: str):
            body, subjects = self.bodies[name]
            if subjects:
                note_subjects(request, SUBJECT, subjects)
            return HttpResponse(body, content_type="application/json")

    config.urls.urlpatterns.insert(0, path("api/session/_bench_floor/<str:name>", FloorView.as_view()))
    clear_url_caches()
    return FloorView


def _raise_rate_ceilings() -> None:
    """The therapist API's per-user limits, raised in this process: still counted, never reached."""
    from core.apis import THERAPIST_RATES

    for rate in THERAPIST_RATES.rates:
        object.__setattr__(rate, "limit", 10**9)


# --- Run -------------------------------------------------------------------------------------------------


def main() -> int:
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://", "pgsql://")):
        print(
            "skipped: needs PostgreSQL, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/td_bench "
            "REDIS_URL=redis://127.0.0.1:6379/0 (a database of its own: the data set stays there)"
        )
        for name, target in TARGETS.items():
            not_run(f"therapist_{name}", *target, reason="needs PostgreSQL: DATABASE_URL")
        return 0

    import django

    django.setup()

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings
    from rest_framework_simplejwt.tokens import AccessToken

    from sessions_analytics.models import TrainingSession

    load_at_start = os.getloadavg()
    call_command("migrate", verbosity=0)
    now = datetime.now(UTC)
    data = bench_data(now)
    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    _raise_rate_ceilings()
    floor_view = install_floor_route()

    client = Client()
    tokens = {user.pk: f"Bearer {AccessToken.for_user(user)}" for user in (data["therapist"], data["small"])}

    def get(path: str, user=None, *, cache_on: bool = True) -> tuple[bytes, float]:
        user = user or data["therapist"]
        with override_settings(BODY_CACHE_SECONDS=settings.BODY_CACHE_SECONDS if cache_on else 0):
            started = time.perf_counter()
            response = client.get(path, HTTP_AUTHORIZATION=tokens[user.pk])
            elapsed = time.perf_counter() - started
        assert response.status_code == 200, (path, response.status_code, response.content[:300])
        return response.content, elapsed

    def queries_of(path: str, user=None, *, cache_on: bool = True) -> int:
        get(path, user, cache_on=cache_on)  # with the cache on: counts a served body, as the timed requests are
        with CaptureQueriesContext(connection) as captured:
            get(path, user, cache_on=cache_on)
        return len(captured.captured_queries)

    def paths_for(user) -> dict[str, str]:
        latest = TrainingSession.objects.filter(therapist=user).order_by("-start_time").first().public_id
        paths = {
            "skills": f"/api/session/skills?therapistId={user.public_id}",
            "analytics_1y": f"/api/session/analytics?sessionId={latest}&timeRange=1y",
            "analytics_all": f"/api/session/analytics?sessionId={latest}",
        }
        return {**paths, **{name: paths[cached] for name, cached in UNCACHED.items()}}

    paths, small_paths = paths_for(data["therapist"]), paths_for(data["small"])
    sizes: dict[str, int] = {}
    queries: dict[str, dict[str, int]] = {}
    summary: dict[str, str] = {}
    for name in ENDPOINTS:
        cache_on = name not in UNCACHED
        body, _elapsed = get(paths[name], cache_on=cache_on)
        if not cache_on:  # the cached body is the one derived now, byte for byte
            assert body == get(paths[name])[0], name
        parsed = json.loads(body)
        if name == "skills":
            subjects = []
            summary[name] = f"{len(parsed['skills'])} skills"
        else:
            subjects = [parsed["sessionId"]]
            analytics = parsed["analyticsData"]
            assert analytics["source"] == "derived", analytics["source"]
            total = next(s["value"] for s in analytics["summaryStats"] if s["label"] == "Total Sessions")
            summary[name] = f"{total} sessions in range, {len(analytics['sessionMetrics'])} days"
        floor_view.bodies[name] = (body, subjects)
        sizes[name] = len(body)
        queries[name] = {
            f"{N_SESSIONS} sessions": queries_of(paths[name], cache_on=cache_on),
            f"{SMALL_SESSIONS} sessions": queries_of(small_paths[name], data["small"], cache_on=cache_on),
            "floor": queries_of(f"/api/session/_bench_floor/{name}"),
        }

    timings: dict[str, dict[str, list[float]]] = {}
    for name in ENDPOINTS:
        real = lambda name=name: get(paths[name], cache_on=name not in UNCACHED)[1]  # noqa: E731
        floor = lambda name=name: get(f"/api/session/_bench_floor/{name}")[1]  # noqa: E731
        for _ in range(WARMUP):
            real()
            floor()
        slot = timings[name] = {"real": [], "floor": []}
        for i in range(REQUESTS):
            for variant in ("real", "floor") if i % 2 == 0 else ("floor", "real"):
                slot[variant].append(real() if variant == "real" else floor())

    print(
        f"\nTherapist dashboard API: one therapist with {N_SESSIONS:,} sessions over {SPAN_DAYS} days "
        f"({SKILLS_PER_SESSION} skill scores of {len(SKILLS)} skills, {SNAPSHOTS_PER_SESSION} snapshots, "
        "progress metrics and a milestone each); analytics never posted (derived)"
    )
    made = "reused today's set" if data["reused"] else f"generated in {data['seconds']:.1f} s"
    print(
        f"database {connection.vendor} {connection.pg_version}, cache {cache}; data: {made}; "
        f"load average at start {load_at_start[0]:.2f} ({os.cpu_count()} CPUs)"
    )
    print(
        f"in-process django.test.Client, DEBUG off; {REQUESTS} timed requests per endpoint and variant after "
        f"{WARMUP} warm-up, real and floor alternating\nfloor: same stack (auth, scoping, rate limits counted, "
        "access log with the same session ids) answering the real body, precomputed\n"
    )
    header = f"{'endpoint':<60}{'variant':<9}{'body KB':>9}{'p50 ms':>9}{'p95 ms':>9}{'queries':>9}"
    print(header)
    print("-" * len(header))
    p50s: dict[str, tuple[float, float]] = {}
    for name in ENDPOINTS:
        label = "GET " + paths[name].replace(paths[name].split("=")[1].split("&")[0], "<id>")
        label += " (cache off)" if name in UNCACHED else ""
        stats = {}
        for variant in ("real", "floor"):
            values = timings[name][variant]
            stats[variant] = (statistics.median(values) * 1000, percentile(values, 0.95) * 1000)
            count = queries[name][f"{N_SESSIONS} sessions" if variant == "real" else "floor"]
            print(
                f"{label if variant == 'real' else '':<60}{variant:<9}{sizes[name] / 1024:>9.1f}"
                f"{stats[variant][0]:>9.2f}{stats[variant][1]:>9.2f}{count:>9}"
            )
        ratio = stats["real"][0] / stats["floor"][0]
        p50s[name] = (stats["real"][0], stats["floor"][0])
        print(f"{'':<60}{'ratio':<9}{'':>9}{ratio:>8.2f}x{stats['real'][1] / stats['floor'][1]:>8.2f}x")
    print(
        "ratio = real / floor; queries = SQL statements per request (both include authentication, scoping and "
        f"the access-log INSERT); load average at the end {os.getloadavg()[0]:.2f}\n"
    )
    print("SQL queries per request by caseload (the same at both sizes):")
    for name in ENDPOINTS:
        row = "   ".join(f"{key}: {value}" for key, value in queries[name].items())
        print(f"  {name:<14} {row}   ({summary[name]})")
    print()
    for name, target in TARGETS.items():
        real_p50, floor_p50 = p50s[name]
        report(f"therapist_{name}", real_p50 / floor_p50, *target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
