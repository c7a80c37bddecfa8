"""Mark API on PostgreSQL at clinic scale: one clinic with 100,000 patients, 100,000 conversations holding
1,000,000 messages, and 100,000 appointments. Each endpoint is timed next to its floor, in the same run:

- lists (GET /api/v1/patients, ?search=<name>, GET /api/v1/conversations): the same stack (middleware,
  platform-token authentication, organization scoping, rate limits counted, access log written with the
  same subject ids) answering the real response body, precomputed byte for byte. Target p50 <= 2x.
- analytics (GET /api/v1/analytics/conversations, /appointments, /patients over a whole year, by day):
  the same aggregates written by hand as SQL and run through the same connection. Target p50 <= 1.5x.

Requests run in-process (django.test.Client over the WSGI handler, DEBUG off), real and floor interleaved
request by request, so drift on the machine hits both alike; each request comes from its own address and
the credentials rotate over a few clinic members so the Mark rate limits (60/min per IP, 1000/day per
credential) are counted but never reached. SQL queries per request are reported too.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mark_bench .venv/bin/python bench/mark_api.py

Needs PostgreSQL (skips otherwise). Use a database of its own: the data set is made once with
INSERT ... SELECT generate_series (a few seconds; encrypted columns hold one precomputed ciphertext each,
reused) and kept for later runs. Knobs: BENCH_MARK_PATIENTS (100000; messages = 10 per patient),
BENCH_MARK_REQUESTS (timed requests per endpoint and variant, 25).
"""

from __future__ import annotations

import os
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

N_PATIENTS = int(os.environ.get("BENCH_MARK_PATIENTS", "100000"))
MESSAGES_PER_CONVERSATION = 10
REQUESTS = int(os.environ.get("BENCH_MARK_REQUESTS", "25"))
WARMUP = 3
CLINIC_NAME = "Mark bench clinic"
SEARCH_TERM = "garcia"  # one patient in 8 is a García: a name search with many matches
LISTS = ("patients", "patients_search", "conversations")
ANALYTICS = ("analytics_conversations", "analytics_appointments", "analytics_patients")
TARGETS = {**{name: ("<=", 2.0) for name in LISTS}, **{name: ("<=", 1.5) for name in ANALYTICS}}

FIRST_NAMES = ["Ana", "José", "María", "Jordi", "Núria", "Omar", "Fátima", "Lucía", "Pau", "Laia", "Youssef", "Sara"]
LAST_NAMES = ["García", "Martínez", "López", "Puig", "Ferrer", "Benali", "Sánchez", "Vidal"]
LANGUAGES = ["es", "es", "es", "ca", "ca", "en", "ar"]  # by patient number
TYPES = ["follow_up", "follow_up", "follow_up", "initial_consultation", "emergency"]
REASONS = ["Patient unavailable", "Therapist unavailable", "Feeling better", "Other", ""]


# --- The data set ----------------------------------------------------------------------------------------


def _array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join("'" + value.replace("'", "''") + "'" for value in values) + "]"


def _insert(cursor, model, columns: dict[str, str], source: str, params: list) -> None:
    """INSERT INTO <model's table> (columns) SELECT <expressions> <source>; every concrete column but the
    id must be given, so a field added to the model fails here instead of silently taking NULL."""
    expected = {field.column for field in model._meta.concrete_fields if not field.primary_key}
    missing = expected - columns.keys()
    if missing:
        raise SystemExit(f"bench/mark_api.py: {model.__name__} columns not generated: {sorted(missing)}")
    names = ", ".join(f'"{name}"' for name in columns)
    cursor.execute(
        f"INSERT INTO {model._meta.db_table} ({names}) SELECT {', '.join(columns.values())} {source}", params
    )


def bench_data(now: datetime):
    """The bench clinic, made once (or again when its size differs from the knobs)."""
    from django.db import connection, transaction

    from accounts import services as accounts_services
    from accounts.models import Organization
    from core.actors import Actor
    from core.encryption import encrypt_str
    from patients.models import Appointment, ClinicSettings, Conversation, Message, Patient, fold_name

    n_messages = N_PATIENTS * MESSAGES_PER_CONVERSATION
    clinic = Organization.objects.filter(name=CLINIC_NAME).first()
    if clinic is not None:
        have = (
            Patient.objects.filter(organization=clinic).count(),
            Message.objects.filter(organization=clinic).count(),
        )
        if have == (N_PATIENTS, n_messages):
            # Migrations since the set was made may have rewritten rows (clearing the visibility map that
            # index-only scans need): settle it as autovacuum would in production.
            _settle(connection)
            return clinic, {"reused": True, "seconds": 0.0}
        print(f"bench clinic has {have[0]:,} patients / {have[1]:,} messages: making it again", flush=True)
        with connection.cursor() as cursor:
            for model in (Message, Appointment, Conversation, Patient):
                cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE organization_id = %s", [clinic.pk])
    else:
        clinic = accounts_services.organization_create(name=CLINIC_NAME, actor=Actor.system("bench"))
    ClinicSettings.objects.update_or_create(organization=clinic, defaults={"time_zone": "Europe/Madrid"})

    started = time.monotonic()
    full = [f"{first} {last}" for last in LAST_NAMES for first in FIRST_NAMES]  # patient i: full[i % len]
    folded = [fold_name(name) for name in full]
    day = 86400
    year = 365 * day
    with transaction.atomic(), connection.cursor() as cursor:
        # Patients: registered over the last two years, most recently active first by number.
        _insert(
            cursor,
            Patient,
            {
                "public_id": "'pat_' || substr(md5('p' || i), 1, 24)",
                "uuid": "md5('u' || i)::uuid",
                "organization_id": "%s",
                "name": f"({_array(full)})[1 + i %% {len(full)}] || ' ' || i",
                "name_search": f"({_array(folded)})[1 + i %% {len(full)}] || ' ' || i",
                "phone": "%s",
                "phone_index": "encode(sha256(('p' || i)::bytea), 'hex')",
                "email": "NULL",
                "email_index": "NULL",
                "notes": "%s",
                "language": f"({_array(LANGUAGES)})[1 + i %% {len(LANGUAGES)}]",
                "metadata": "'{}'::jsonb",
                "status": "CASE WHEN i %% 10 = 0 THEN 'inactive' ELSE 'active' END",
                "whatsapp_consent": "true",
                "whatsapp_consent_changed_at": "NULL",
                "whatsapp_opt_out_reason": "''",
                "source": "'api'",
                "external_id": "NULL",
                "last_synced_at": "NULL",  # created through the API, never synced from Cliniko
                "archived": "i %% 50 = 0",
                "last_activity": f"%s - make_interval(secs => (i * {year}.0 / {N_PATIENTS}))",
                "last_inbound_at": "NULL",
                "created_at": f"%s - make_interval(secs => ({2 * year} - i * {2 * year}.0 / {N_PATIENTS}))",
                "updated_at": "%s",
            },
            f"FROM generate_series(1, {N_PATIENTS}) AS i",
            [clinic.pk, encrypt_str("+34600000000"), encrypt_str(""), now, now, now],
        )
        # One conversation per patient over the last year, at every hour of the day; 10 messages each.
        _insert(
            cursor,
            Conversation,
            {
                "public_id": "'conv_' || substr(md5('c' || p.id), 1, 24)",
                "organization_id": "p.organization_id",
                "patient_id": "p.id",
                "channel": "'whatsapp'",
                "language": "p.language",
                "status": "'closed'",
                "start_time": f"%s - make_interval(secs => ((p.id * 7919) %% {year}))",
                "end_time": f"%s - make_interval(secs => ((p.id * 7919) %% {year})) + interval '20 minutes'",
                "summary": "NULL",
                "metadata": "NULL",
                "message_count": str(MESSAGES_PER_CONVERSATION),
                "last_message_at": f"%s - make_interval(secs => ((p.id * 7919) %% {year})) + interval '18 minutes'",
            },
            "FROM patients_patient p WHERE p.organization_id = %s",
            [now, now, now, clinic.pk],
        )
        # Messages: patient and assistant in turn, two minutes apart; one ciphertext for every text.
        _insert(
            cursor,
            Message,
            {
                "public_id": "'msg_' || substr(md5('m' || c.id || '-' || k), 1, 24)",
                "organization_id": "c.organization_id",
                "conversation_id": "c.id",
                # Patients write 3 to 5 of the 10 (engagement varies with the conversation).
                "sender": "CASE WHEN k %% 2 = 0 AND k < 6 + (c.id %% 4) THEN 'patient' ELSE 'assistant' END",
                "content_type": "'text'",
                "content": "%s",
                "media": "''",
                "media_format": "''",
                "media_duration": "NULL",
                "transcription": "NULL",
                "external_id": "''",
                "outbound_message_id": "NULL",
                "created_at": "c.start_time + make_interval(mins => 2 * k)",
            },
            f"FROM patients_conversation c CROSS JOIN generate_series(0, {MESSAGES_PER_CONVERSATION - 1}) AS k "
            "WHERE c.organization_id = %s",
            [encrypt_str("Hola, quería cambiar mi cita del jueves, ¿es posible?"), clinic.pk],
        )
        # Appointments: one per patient, from six months ago to six months ahead; one in ten canceled.
        reasons = [encrypt_str(reason) for reason in REASONS]
        from patients.services import cancellation_reason_index_of

        reason_indexes = [cancellation_reason_index_of(reason) for reason in REASONS]
        _insert(
            cursor,
            Appointment,
            {
                "public_id": "'apt_' || substr(md5('a' || p.id), 1, 24)",
                "organization_id": "p.organization_id",
                "patient_id": "p.id",
                "start_time": f"%s + make_interval(secs => ((p.id * 104729) %% {year}) - {year // 2})",
                "duration": "45",
                "end_time": f"%s + make_interval(secs => ((p.id * 104729) %% {year}) - {year // 2} + 2700)",
                "appointment_type": f"({_array(TYPES)})[1 + p.id %% {len(TYPES)}]",
                "status": "CASE WHEN p.id %% 10 = 0 THEN 'canceled' WHEN p.id %% 10 = 1 THEN 'rescheduled' "
                "WHEN (p.id * 104729) %% " + str(year) + " < " + str(year // 2) + " THEN 'completed' "
                "ELSE 'scheduled' END",
                "location": "''",
                "notes": "%s",
                "zoom_link": "''",
                "calendly_link": "''",
                "practitioner": "''",
                "external_id": "NULL",
                "cancelled_at": "CASE WHEN p.id %% 10 = 0 THEN %s ELSE NULL END",
                "cancellation_reason": f"CASE WHEN p.id %% 10 = 0 THEN (%s::text[])[1 + (p.id / 10) %% {len(REASONS)}] "
                "ELSE %s END",
                "cancellation_reason_index": f"CASE WHEN p.id %% 10 = 0 THEN (%s::text[])[1 + (p.id / 10) %% "
                f"{len(REASONS)}] ELSE '' END",
                "did_not_arrive": "false",
                "created_at": "%s",
                "updated_at": "%s",
            },
            "FROM patients_patient p WHERE p.organization_id = %s",
            [now, now, encrypt_str(""), now, reasons, encrypt_str(""), reason_indexes, now, now, clinic.pk],
        )
    _settle(connection)
    return clinic, {"reused": False, "seconds": time.monotonic() - started}


def _settle(connection) -> None:
    """The steady state autovacuum reaches in production: statistics and visibility maps (index-only scans)."""
    from patients.models import Appointment, Conversation, Message, Patient

    with connection.cursor() as cursor:
        tables = ", ".join(model._meta.db_table for model in (Patient, Conversation, Message, Appointment))
        cursor.execute(f"VACUUM (ANALYZE) {tables}")


# --- The floors ------------------------------------------------------------------------------------------


def install_floor_routes() -> None:
    """GET /api/v1/_bench_floor/<name>: a Mark view (same authentication, scoping, rate policy, access log)
    answering a precomputed body and noting the same subject ids. Added to the project's URLs in this
    process only."""
    from django.http import HttpResponse
    from django.urls import clear_url_caches, path

    import config.urls
    from core.context import note_subjects
    from patients.api.views import _MarkView

    class FloorView(_MarkView):
        bodies: dict[str, tuple[bytes, str, list[str]]] = {}

        def get(self, request, name: str):
            body, kind, subjects = self.bodies[name]
            note_subjects(request, kind, subjects)
            return HttpResponse(body, content_type="application/json")

    config.urls.urlpatterns.insert(0, path("api/v1/_bench_floor/<str:name>", FloorView.as_view()))
    clear_url_caches()
    return FloorView


ANALYTICS_SQL = {
    "analytics_conversations": [
        """SELECT date_trunc('day', start_time AT TIME ZONE %(tz)s) AS bucket, count(*), sum(message_count)
           FROM patients_conversation WHERE organization_id = %(org)s AND start_time >= %(start)s
           AND start_time < %(end)s GROUP BY 1""",
        """SELECT language, count(*), sum(message_count) FROM patients_conversation
           WHERE organization_id = %(org)s AND start_time >= %(start)s AND start_time < %(end)s GROUP BY 1""",
        """SELECT extract(hour FROM start_time AT TIME ZONE %(tz)s) AS hour, count(*) FROM patients_conversation
           WHERE organization_id = %(org)s AND start_time >= %(start)s AND start_time < %(end)s GROUP BY 1""",
    ],
    "analytics_appointments": [
        """SELECT date_trunc('day', start_time AT TIME ZONE %(tz)s) AS bucket,
                  count(*) FILTER (WHERE status = 'scheduled'), count(*) FILTER (WHERE status = 'rescheduled'),
                  count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'canceled')
           FROM patients_appointment WHERE organization_id = %(org)s AND start_time >= %(start)s
           AND start_time < %(end)s GROUP BY 1""",
        """SELECT appointment_type, count(*) FROM patients_appointment
           WHERE organization_id = %(org)s AND start_time >= %(start)s AND start_time < %(end)s GROUP BY 1""",
        """SELECT count(*), min(id) FROM patients_appointment WHERE organization_id = %(org)s
           AND start_time >= %(start)s AND start_time < %(end)s AND status = 'canceled'
           GROUP BY cancellation_reason_index ORDER BY 1 DESC, 2""",
        """SELECT id, cancellation_reason FROM patients_appointment WHERE id IN (
             SELECT min(id) FROM patients_appointment WHERE organization_id = %(org)s AND start_time >= %(start)s
             AND start_time < %(end)s AND status = 'canceled' GROUP BY cancellation_reason_index)""",
    ],
    "analytics_patients": [
        """SELECT language, count(*) FROM patients_patient WHERE organization_id = %(org)s AND NOT archived
           AND created_at < %(end)s GROUP BY 1""",
        """SELECT date_trunc('day', created_at AT TIME ZONE %(tz)s) AS bucket, count(*) FROM patients_patient
           WHERE organization_id = %(org)s AND NOT archived AND created_at < %(end)s
           AND created_at >= %(start)s GROUP BY 1""",
        """SELECT count(*) FILTER (WHERE n >= 10), count(*) FILTER (WHERE n >= 3 AND n < 10),
                  count(*) FILTER (WHERE n < 3)
           FROM (SELECT c.patient_id, count(*) AS n FROM patients_message m
                 JOIN patients_conversation c ON c.id = m.conversation_id
                 JOIN patients_patient p ON p.id = c.patient_id
                 WHERE m.organization_id = %(org)s AND m.sender = 'patient' AND m.created_at >= %(start)s
                 AND m.created_at < %(end)s AND NOT p.archived AND p.created_at < %(end)s
                 GROUP BY c.patient_id) AS per_patient""",
    ],
}


# --- Run -------------------------------------------------------------------------------------------------


def main() -> int:
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://", "pgsql://")):
        print(
            "skipped: needs PostgreSQL, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/mark_bench "
            "(a database of its own: the data set stays there)"
        )
        for name, target in TARGETS.items():
            not_run(f"mark_{name}", *target, reason="needs PostgreSQL: DATABASE_URL")
        return 0

    import django

    django.setup()

    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from rest_framework_simplejwt.tokens import AccessToken

    from accounts import services as accounts_services
    from accounts.models import User
    from core.actors import Actor
    from patients import analytics, selectors

    load_at_start = os.getloadavg()
    call_command("migrate", verbosity=0)
    now = datetime.now(UTC).replace(microsecond=0)
    clinic, made = bench_data(now)
    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]

    # A few members (the 1000/day credential limit), each request from its own address (60/min per IP).
    run = f"{int(time.time())}"
    users = []
    for i in range(6):
        user = User.objects.create_user(username=f"mark-bench-{run}-{i}", password=None)
        accounts_services.membership_set(user=user, organization=clinic, role="staff", actor=Actor.system("bench"))
        users.append(user)
    tokens = [f"Bearer {AccessToken.for_user(user)}" for user in users]
    client = Client()
    counter = [0]

    def get(path: str) -> tuple[bytes, int, float]:
        counter[0] += 1
        n = counter[0]
        started = time.perf_counter()
        response = client.get(
            path,
            HTTP_AUTHORIZATION=tokens[n % len(tokens)],
            REMOTE_ADDR=f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}",
        )
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, (path, response.status_code, response.content[:300])
        return response.content, response.status_code, elapsed

    def queries_of(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            get(path)
        return len(captured.captured_queries)

    floor_view = install_floor_routes()
    tz = selectors.clinic_time_zone(organization=clinic)
    today = now.astimezone(tz).date()
    period = analytics.resolve_range(
        start=today - timedelta(days=365), end=today, today=today, time_zone=tz, max_days=366
    )
    year_query = f"start_date={period.first_day.isoformat()}&end_date={period.last_day.isoformat()}&interval=day"
    paths = {
        "patients": "/api/v1/patients",
        "patients_search": f"/api/v1/patients?search={SEARCH_TERM}",
        "conversations": "/api/v1/conversations",
        "analytics_conversations": f"/api/v1/analytics/conversations?{year_query}",
        "analytics_appointments": f"/api/v1/analytics/appointments?{year_query}",
        "analytics_patients": f"/api/v1/analytics/patients?{year_query}",
    }
    sql_params = {"tz": str(tz), "org": clinic.pk, "start": period.start, "end": period.end}
    skipped: dict[str, str] = {}
    sizes: dict[str, int] = {}
    queries: dict[str, dict[str, int]] = {}
    import json

    for name in LISTS:
        try:
            body, _status, _elapsed = get(paths[name])
        except AssertionError as error:
            skipped[name] = f"GET {paths[name]} answered {error.args[0][1]}"
            continue
        data = json.loads(body)
        kind = "conversation" if name == "conversations" else "patient"
        floor_view.bodies[name] = (body, kind, [row["id"] for row in data["data"]])
        sizes[name] = len(body)
        queries[name] = {"real": queries_of(paths[name]), "floor": queries_of(f"/api/v1/_bench_floor/{name}")}
    for name in ANALYTICS:
        body, _status, _elapsed = get(paths[name])
        sizes[name] = len(body)
        queries[name] = {"real": queries_of(paths[name]), "raw SQL": len(ANALYTICS_SQL[name])}

    # Sanity: the endpoint and its hand-written SQL agree on the totals.
    with connection.cursor() as cursor:
        cursor.execute(ANALYTICS_SQL["analytics_conversations"][1], sql_params)
        raw_total = sum(row[1] for row in cursor.fetchall())
    api_total = json.loads(get(paths["analytics_conversations"])[0])["total_conversations"]
    assert raw_total == api_total, (raw_total, api_total)

    def raw(name: str) -> float:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            for sql in ANALYTICS_SQL[name]:
                cursor.execute(sql, sql_params)
                cursor.fetchall()
        return time.perf_counter() - started

    timings: dict[str, dict[str, list[float]]] = {}
    for name in (*LISTS, *ANALYTICS):
        if name in skipped:
            continue
        real = lambda name=name: get(paths[name])[2]  # noqa: E731
        floor = (lambda name=name: get(f"/api/v1/_bench_floor/{name}")[2]) if name in LISTS else (
            lambda name=name: raw(name)
        )  # fmt: skip
        for _ in range(WARMUP):
            real()
            floor()
        slot = timings[name] = {"real": [], "floor": []}
        for i in range(REQUESTS):
            order = ("real", "floor") if i % 2 == 0 else ("floor", "real")
            for variant in order:
                slot[variant].append(real() if variant == "real" else floor())

    counts = {
        "patients": N_PATIENTS,
        "conversations": N_PATIENTS,
        "messages": N_PATIENTS * MESSAGES_PER_CONVERSATION,
        "appointments": N_PATIENTS,
    }
    print(
        f"\nMark API: one clinic, {counts['patients']:,} patients, {counts['conversations']:,} conversations, "
        f"{counts['messages']:,} messages, {counts['appointments']:,} appointments (Europe/Madrid)"
    )
    made_text = "reused the stored set" if made["reused"] else f"generated in {made['seconds']:.1f} s"
    print(
        f"database {connection.vendor} {connection.pg_version}, cache {cache}; data: {made_text}; "
        f"load average at start {load_at_start[0]:.2f} ({os.cpu_count()} CPUs)"
    )
    print(
        f"in-process django.test.Client, DEBUG off; {REQUESTS} timed requests per endpoint and variant after "
        f"{WARMUP} warm-up, real and floor alternating; analytics over {period.first_day} .. {period.last_day} "
        "by day\nfloor: lists = same stack answering the precomputed body; analytics = the same aggregates as "
        "hand-written SQL on the same connection\n"
    )
    header = f"{'endpoint':<58}{'variant':<9}{'body KB':>9}{'p50 ms':>9}{'p90 ms':>9}{'queries':>9}"
    print(header)
    print("-" * len(header))
    p50s: dict[str, tuple[float, float]] = {}
    for name in (*LISTS, *ANALYTICS):
        label = "GET " + paths[name].split("?")[0] + ("?search=" + SEARCH_TERM if name == "patients_search" else "")
        if name in skipped:
            print(f"{label:<58}not run: {skipped[name]}")
            continue
        floor_label = "floor" if name in LISTS else "raw SQL"
        stats = {}
        for variant in ("real", "floor"):
            values = timings[name][variant]
            stats[variant] = (statistics.median(values) * 1000, percentile(values, 0.9) * 1000)
            print(
                f"{label if variant == 'real' else '':<58}{variant if variant == 'real' else floor_label:<9}"
                f"{(sizes[name] / 1024 if variant == 'real' or name in LISTS else 0):>9.1f}"
                f"{stats[variant][0]:>9.2f}{stats[variant][1]:>9.2f}"
                f"{queries[name]['real' if variant == 'real' else ('floor' if name in LISTS else 'raw SQL')]:>9}"
            )
        ratio = stats["real"][0] / stats["floor"][0]
        p50s[name] = (stats["real"][0], stats["floor"][0])
        print(f"{'':<58}{'ratio':<9}{'':>9}{ratio:>8.2f}x")
    print(
        "ratio = real p50 / floor p50; queries = SQL statements per request (real and floor requests include "
        f"authentication, scoping and the access-log INSERT); load average at the end {os.getloadavg()[0]:.2f}\n"
    )
    for name, target in TARGETS.items():
        if name in skipped:
            not_run(f"mark_{name}", *target, reason=skipped[name])
        else:
            real_p50, floor_p50 = p50s[name]
            report(f"mark_{name}", real_p50 / floor_p50, *target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
