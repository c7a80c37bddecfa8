"""In-process profile of POST /api/leads/ingest for bench/careos_ingest.py's workload: unique, valid,
pre-encrypted leads (each a new user) posted through django.test.Client to the database in
DATABASE_URL (use a database of its own, as for the benchmark: the platform "careosprof" and its rows
are deleted at the start).

Prints every SQL statement of one ingest (after warm-up), the mean wall time per lead, and the top of a
cProfile of BENCH_CAREOS_PROFILE_LEADS (200) leads sorted by cumulative time.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/co_bench REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/_careos_profile.py [--no-profile] [--top N]
"""

from __future__ import annotations

import atexit
import base64
import cProfile
import hashlib
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench._careos_settings"
os.environ.setdefault("APP_ENV", "development")
os.environ["DEBUG"] = "false"
os.environ.setdefault("LOG_LEVEL", "WARNING")
# The welcome SMS go to a throwaway filesystem broker, as in bench/careos_ingest.py: the memory transport costs
# less than half of a real publish and would hide it (CELERY_BROKER_URL=redis://... to profile Redis's).
if "CELERY_BROKER_URL" not in os.environ:
    os.environ["CELERY_BROKER_URL"] = "filesystem://"
    _BROKER_TMP = tempfile.mkdtemp(prefix="bench-careos-profile-")
    os.environ["CELERY_BROKER_DIR"] = str(Path(_BROKER_TMP) / "broker")
    atexit.register(shutil.rmtree, _BROKER_TMP, ignore_errors=True)

PLATFORM = "careosprof"
LEADS = int(os.environ.get("BENCH_CAREOS_PROFILE_LEADS", "200"))
INGEST = "/api/leads/ingest"


SEGMENTS = (
    "django.core.handlers.base:BaseHandler.get_response",
    "rest_framework.views:APIView.dispatch",
    "leads.api.authentication:PlatformApiKeyAuthentication.authenticate",
    "leads.services.platforms:find_api_key",
    "core.api:ApiViewMixin.check_throttles",
    "leads.api.serializers:parse_body",
    "leads.api.serializers:parse_inbound_lead",
    "leads.services.ingest:lead_ingest",
    "leads.selectors:ingest_prelude",
    "leads.crypto:private_keys_from_stored",
    "leads.crypto:decrypt_phone_and_key",
    "leads.services.ingest:verified_phone",
    "leads.services.ingest:_welcome_message",
    "leads.services.ingest:_new_person_lead_insert",
    "leads.services.ingest:_lead_create",
    "leads.services.ingest:_user_insert_or_lock",
    "leads.services.ingest:_rows_insert",
    "messaging.outbox:wake",
    "messaging.services:message_queue",
    "audit.services:audit_event_record",
    "messaging.tasks:enqueue_send",
    "audit.services:access_log_record",
    "audit.middleware:AccessLogMiddleware.__call__",
    "core.api:ApiViewMixin.initial",
    "leads.api.views:LeadIngestView.post",
)


def wrap_segments() -> dict[str, list]:
    """Wall and CPU time spent in each of SEGMENTS (inclusive), by wrapping the functions in place."""
    import functools
    import importlib

    totals: dict[str, list] = {}
    for spec in SEGMENTS:
        module_name, qualname = spec.split(":")
        owner = importlib.import_module(module_name)
        *path, attr = qualname.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        if owner is None or not hasattr(owner, attr):
            continue
        original = getattr(owner, attr)
        totals[spec] = [0.0, 0, 0.0]

        def make(original, slot):
            @functools.wraps(original)
            def timed(*args, **kwargs):
                began, began_cpu = time.perf_counter(), time.process_time()
                try:
                    return original(*args, **kwargs)
                finally:
                    slot[0] += time.perf_counter() - began
                    slot[1] += 1
                    slot[2] += time.process_time() - began_cpu

            return timed

        wrapped = make(original, totals[spec])
        setattr(owner, attr, wrapped)
        if not path:  # also where it was imported by name (`from module import function`)
            for module in list(sys.modules.values()):
                if getattr(module, "__dict__", None) is not None and module.__dict__.get(attr) is original:
                    setattr(module, attr, wrapped)
    return totals


def main() -> int:
    import django

    django.setup()

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from core.actors import Actor
    from leads import crypto
    from leads.models import CareUser, Lead, PartnerPayment, PartnerPlatform, PartnerUser
    from leads.services import platforms

    actor = {"actor": Actor.system("bench")}
    platform = PartnerPlatform.objects.filter(slug=PLATFORM).first()
    if platform is None:
        platform = platforms.platform_create(slug=PLATFORM, name="CareOS profile partner", **actor)
    PartnerPayment.objects.filter(platform=platform).delete()
    Lead.objects.filter(platform=platform).delete()
    PartnerUser.objects.filter(platform=platform).delete()  # the partner's ids protect its users
    CareUser.objects.filter(source_platform=platform).delete()
    issued = platforms.api_key_create(platform=platform, environment="live", **actor)
    if crypto.current_public_pem() is None:
        platforms.keypair_create(**actor)
    public_key = serialization.load_pem_public_key(crypto.current_public_pem().encode())
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    salt = platform.phone_hash_salt
    base = 1_415_300_0000 + int(time.time()) % 100_000 * 10  # fresh numbers on each run (new users)

    def body(i: int) -> dict:
        phone = f"+{base + i}"
        return {
            "source_platform": PLATFORM,
            "source_conversation_id": f"prof-{phone[1:]}",
            "user_phone_hash": hashlib.sha256((phone + salt).encode()).hexdigest(),
            "user_phone_encrypted": base64.b64encode(public_key.encrypt(phone.encode(), oaep)).decode(),
            "user_name": "Bench User",
            "user_language": "en",
            "user_location_state": "CA",
            "user_location_country": "US",
            "user_location_city": "San Francisco",
            "category": "caregiver",
            "subcategory": "caregiver_hiring",
            "original_message": "I need help finding a caregiver for my mom who has mobility issues",
            "ai_extracted_details": {"urgency": "medium", "person_mentioned": "mom", "service_type": "caregiver"},
            "user_consent": True,
            "consent_timestamp": "2025-01-08T12:00:00Z",
            "lead_value_agreed": 15.00,
        }

    bodies = [body(i) for i in range(LEADS + 6)]
    client = Client()
    headers = {"HTTP_X_API_KEY": issued.full_key, "HTTP_X_PLATFORM": PLATFORM}

    def post(data: dict) -> None:
        response = client.post(INGEST, data, content_type="application/json", **headers)
        assert response.status_code == 200 and response.json()["is_new_user"], response.content[:300]

    for data in bodies[:5]:
        post(data)
    with CaptureQueriesContext(connection) as queries:
        post(bodies[5])
    print(f"SQL statements for one ingest: {len(queries.captured_queries)}")
    for number, query in enumerate(queries.captured_queries, 1):
        sql = query["sql"]
        print(f"{number:>3}. {sql[:160]}{'...' if len(sql) > 160 else ''}")

    timed = bodies[6:]
    segments = wrap_segments()
    sql_seconds = [0.0, 0]

    def timing(execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            sql_seconds[0] += time.perf_counter() - began
            sql_seconds[1] += 1

    profiler = None if "--no-profile" in sys.argv else cProfile.Profile()
    began = time.perf_counter()
    began_cpu = time.process_time()
    if profiler:
        profiler.enable()
    with connection.execute_wrapper(timing):
        for data in timed:
            post(data)
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - began_cpu
    print(
        f"\nSQL (ORM statements, BEGIN/COMMIT not included): {sql_seconds[1] / len(timed):.1f} per lead, "
        f"{sql_seconds[0] / len(timed) * 1000:.1f} ms per lead in cursor.execute"
    )
    print(f"\n{len(timed)} leads in {elapsed:.2f} s: {elapsed / len(timed) * 1000:.1f} ms per lead, "
          f"{cpu / len(timed) * 1000:.1f} ms CPU of this process{' (under cProfile)' if profiler else ''}")  # fmt: skip
    for name, (seconds, calls, cpu_seconds) in segments.items():
        print(
            f"  {name:<48}{seconds / len(timed) * 1000:>7.2f} ms per lead, {cpu_seconds / len(timed) * 1000:>6.2f} ms "
            f"CPU ({calls / len(timed):.1f} calls)"
        )
    if profiler:
        top = int(sys.argv[sys.argv.index("--top") + 1]) if "--top" in sys.argv else 60
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        if os.environ.get("PROFILE_DUMP"):
            profiler.dump_stats(os.environ["PROFILE_DUMP"])
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
