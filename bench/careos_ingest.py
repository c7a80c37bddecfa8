"""CareOS POST /api/leads/ingest under gunicorn on PostgreSQL: sustained leads/s with unique, valid,
pre-encrypted leads (each a new user: decrypt, hash check, user + lead + payment + welcome SMS queued +
audit event), next to the floor measured in the same run.

Floor (bench/_careos_floor.py): in-process, same database, the same number of processes as load
clients: RSA-OAEP-SHA256 decrypt of the phone (keys parsed once) and one transaction inserting one row
(a CareUser with its encrypted phone and blind index), in a loop. What the endpoint costs above it is
HTTP + middleware, authentication, rate limiting, validation, the idempotency read and the other rows.
Real and floor run interleaved in rounds, so drift on the machine hits both alike.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/co_bench REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/careos_ingest.py

Needs PostgreSQL (skips otherwise); REDIS_URL is the rate limiter's cache (without it each gunicorn
worker counts in its own memory). Use a database of its own: the bench platform "careosbench" and its
leads, payments and users from earlier runs are deleted at the start; the welcome SMS rows this run
queued are deleted at the end. Welcome SMS are published to a throwaway filesystem Celery broker in a
temporary folder (CELERY_BROKER_URL=filesystem://), so nothing is ever sent.

Rate limit: the CareOS policy is 100 requests/min per partner. The benchmark runs with
DJANGO_SETTINGS_MODULE=bench._careos_settings, whose URLconf (bench/_careos_urls.py) gives the ingest
view a policy with the same name, key and window but BENCH_CAREOS_RATE_LIMIT (default 10,000,000) per
minute: every request is still counted in the cache, none is refused.

Knobs: BENCH_CAREOS_LEADS (timed leads per round and variant, 500), BENCH_CAREOS_ROUNDS (3),
BENCH_CAREOS_WORKERS (gunicorn workers, 2), BENCH_CAREOS_WORKER_CLASS (sync, as the Dockerfile),
BENCH_CAREOS_CONCURRENCY (load client processes and floor processes, 2).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from bench._harness import ChildProcesses, Gunicorn, not_run, percentile, report  # noqa: E402

os.environ["DJANGO_SETTINGS_MODULE"] = "bench._careos_settings"
os.environ.setdefault("APP_ENV", "development")
os.environ["DEBUG"] = "false"  # DEBUG keeps every query in memory: not what production runs

LEADS = int(os.environ.get("BENCH_CAREOS_LEADS", "500"))
ROUNDS = int(os.environ.get("BENCH_CAREOS_ROUNDS", "3"))
WORKERS = int(os.environ.get("BENCH_CAREOS_WORKERS", "2"))
WORKER_CLASS = os.environ.get("BENCH_CAREOS_WORKER_CLASS", "sync")
CONCURRENCY = int(os.environ.get("BENCH_CAREOS_CONCURRENCY", "2"))
WARMUP = 5
PLATFORM = "careosbench"
REAL_PHONE_BASE = 1_415_200_0000  # +1 415 2xx xxxx: valid US numbers
FLOOR_PHONE_BASE = 1_628_200_0000
INGEST = "/api/leads/ingest"
TARGET = (">=", 0.5)  # issue 15: leads/s at least half the floor's (RSA decrypt + one insert transaction)


def _ready(answer: dict) -> None:
    if answer.get("bad"):
        raise SystemExit(f"warm-up requests failed: {answer['bad']}")


class Pool(ChildProcesses):
    """CONCURRENCY child processes speaking the line protocol of bench/_careos_load.py / _careos_floor.py."""

    def __init__(self, script: str, env: dict[str, str]):
        super().__init__(Path(__file__).with_name(script), [env] * CONCURRENCY)

    def run(self, messages: list[dict]) -> dict:
        """One message per process (its own file); all timed parts start together after the warm-ups."""
        results = self.run_together(messages, check_ready=_ready)
        bad = [item for r in results for item in r.get("bad", [])]
        if bad:
            raise SystemExit(f"ingest refused leads under load: {bad[:5]}")
        return {
            "latencies": [value for r in results for value in r["latencies"]],
            "seconds": max(r["end"] for r in results) - min(r["start"] for r in results),
        }


def main() -> int:
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://", "pgsql://")):
        print(
            "skipped: needs PostgreSQL, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/co_bench "
            "REDIS_URL=redis://127.0.0.1:6379/0 (a database of its own: bench rows are deleted there)"
        )
        not_run("careos_ingest", *TARGET, reason="needs PostgreSQL: DATABASE_URL")
        return 0

    import django

    django.setup()

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from core.actors import Actor
    from core.time import utc_now
    from leads import crypto
    from leads.models import CareUser, Lead, PartnerPayment, PartnerPlatform, PartnerUser
    from leads.services import platforms
    from messaging.models import OutboundMessage

    load_at_start = os.getloadavg()
    started_at = utc_now()
    call_command("migrate", verbosity=0)
    actor = {"actor": Actor.system("bench")}
    platform = PartnerPlatform.objects.filter(slug=PLATFORM).first()
    if platform is None:
        platform = platforms.platform_create(slug=PLATFORM, name="CareOS bench partner", **actor)
    platforms.platform_reactivate(platform=platform, **actor)
    PartnerPayment.objects.filter(platform=platform).delete()
    Lead.objects.filter(platform=platform).delete()
    PartnerUser.objects.filter(platform=platform).delete()  # the partner's ids protect its users
    CareUser.objects.filter(source_platform=platform).delete()
    issued = platforms.api_key_create(platform=platform, environment="live", **actor)
    if crypto.current_public_pem() is None:
        platforms.keypair_create(**actor)
    public_pem = crypto.current_public_pem()
    public_key = serialization.load_pem_public_key(public_pem.encode())
    key_size = public_key.key_size
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    salt = platform.phone_hash_salt
    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]

    def encrypt(phone: str) -> str:
        return base64.b64encode(public_key.encrypt(phone.encode(), oaep)).decode()

    def lead_body(phone: str, conversation: str) -> dict:
        import hashlib

        return {
            "source_platform": PLATFORM,
            "source_conversation_id": conversation,
            "user_phone_hash": hashlib.sha256((phone + salt).encode()).hexdigest(),
            "user_phone_encrypted": encrypt(phone),
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

    # Pre-encrypt everything before any timed run: one file per round, variant and process.
    tmp = Path(tempfile.mkdtemp(prefix="bench-careos-"))
    seq = {"real": 0, "floor": 0}

    def phones(variant: str, count: int) -> list[str]:
        base = REAL_PHONE_BASE if variant == "real" else FLOOR_PHONE_BASE
        start = seq[variant]
        seq[variant] += count
        return [f"+{base + start + i}" for i in range(count)]

    began = time.perf_counter()
    files: dict[tuple[int, str], list[Path]] = {}
    for round_number in range(ROUNDS):
        for variant in ("real", "floor"):
            for child in range(CONCURRENCY):
                share = LEADS // CONCURRENCY + (1 if child < LEADS % CONCURRENCY else 0)
                path = tmp / f"{variant}-{round_number}-{child}.jsonl"
                with path.open("w") as handle:
                    for phone in phones(variant, WARMUP + share):
                        if variant == "real":
                            row = lead_body(phone, f"bench-{phone[1:]}")
                        else:
                            row = {"ciphertext": encrypt(phone), "phone": phone}
                        handle.write(json.dumps(row, separators=(",", ":")) + "\n")
                files.setdefault((round_number, variant), []).append(path)
    prepared = time.perf_counter() - began

    # In-process: one lead through django.test.Client, its SQL statements counted.
    [probe_phone] = phones("real", 1)
    client = Client()
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            INGEST,
            lead_body(probe_phone, f"bench-{probe_phone[1:]}"),
            content_type="application/json",
            HTTP_X_API_KEY=issued.full_key,
            HTTP_X_PLATFORM=PLATFORM,
        )
    assert response.status_code == 200, response.content[:300]
    ingest_queries = len(queries.captured_queries)

    broker = tmp / "broker"
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_TASK_ALWAYS_EAGER",)}
    env.update(
        PYTHONPATH=str(BASE_DIR),
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        CELERY_BROKER_URL="filesystem://",
        CELERY_BROKER_DIR=str(broker),
        CAREOS_BENCH_API_KEY=issued.full_key,
        CAREOS_BENCH_PLATFORM=PLATFORM,
    )
    server = Gunicorn(env, tmp / "gunicorn.log", workers=WORKERS, worker_class=WORKER_CLASS)
    load = floor = None
    results: dict[str, dict] = {"real": {"latencies": [], "seconds": 0.0}, "floor": {"latencies": [], "seconds": 0.0}}
    try:
        load = Pool("_careos_load.py", env)
        floor = Pool("_careos_floor.py", env)
        for round_number in range(ROUNDS):
            variants = ["real", "floor"] if round_number % 2 == 0 else ["floor", "real"]
            for variant in variants:
                paths = files[(round_number, variant)]
                if variant == "real":
                    outcome = load.run(
                        [{"url": server.base_url + INGEST, "file": str(p), "warmup": WARMUP} for p in paths]
                    )
                else:
                    outcome = floor.run([{"file": str(p), "warmup": WARMUP} for p in paths])
                results[variant]["latencies"] += outcome["latencies"]
                results[variant]["seconds"] += outcome["seconds"]
    except BaseException:
        print(f"gunicorn log (tail):\n{server.log_path.read_text(errors='replace')[-4000:]}", file=sys.stderr)
        raise
    finally:
        for pool in (load, floor):
            if pool is not None:
                pool.close()
        server.stop()

    real_total = ROUNDS * (LEADS + WARMUP * CONCURRENCY) + 1
    leads = Lead.objects.filter(platform=platform).count()
    payments = PartnerPayment.objects.filter(platform=platform).count()
    new_users = Lead.objects.filter(platform=platform, is_new_user=True).count()
    welcome = OutboundMessage.objects.filter(purpose="careos.welcome", created_at__gte=started_at)
    queued = welcome.count()
    welcome.delete()
    shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"\nCareOS POST {INGEST}: unique valid leads (RSA-{key_size} OAEP-SHA256 phone, hash checked), "
        "each a new user: user + lead + pending payment + welcome SMS queued + audit event"
    )
    print(
        f"database {connection.vendor}, cache {cache}; {seq['real'] + seq['floor']:,} leads pre-encrypted in "
        f"{prepared:.1f} s; load average at start {load_at_start[0]:.2f} ({os.cpu_count()} CPUs)"
    )
    print(
        f"gunicorn {WORKERS} {WORKER_CLASS} workers on 127.0.0.1; load: {CONCURRENCY} httpx client processes, "
        f"one request in flight each; floor: {CONCURRENCY} in-process loops on the same database; "
        f"{ROUNDS} rounds of {LEADS} leads per variant, interleaved"
    )
    print("floor: RSA-OAEP decrypt (keys parsed once) + one transaction inserting one CareUser row\n")
    header = f"{'variant':<8}{'leads':>8}{'p50 ms':>9}{'p99 ms':>9}{'leads/s':>10}"
    print(header)
    print("-" * len(header))
    stats = {}
    for variant in ("real", "floor"):
        latencies = results[variant]["latencies"]
        stats[variant] = (
            statistics.median(latencies) * 1000,
            percentile(latencies, 0.99) * 1000,
            len(latencies) / results[variant]["seconds"],
        )
        print(
            f"{variant:<8}{len(latencies):>8}{stats[variant][0]:>9.2f}{stats[variant][1]:>9.2f}{stats[variant][2]:>10.1f}"
        )
    ratios = [stats["real"][i] / stats["floor"][i] for i in range(3)]
    print(f"{'ratio':<8}{'':>8}{ratios[0]:>8.1f}x{ratios[1]:>8.1f}x{ratios[2]:>9.2f}x")
    print(
        "ratio = real / floor (latency: how many times slower; leads/s: fraction of the floor's throughput); "
        f"load average at the end {os.getloadavg()[0]:.2f}"
    )
    print(
        f"\nchecks: {leads} leads (expected {real_total}), {payments} payments, {new_users} new users, "
        f"{queued} welcome SMS queued (deleted); SQL statements for one ingest (in-process): {ingest_queries}"
    )
    print()
    report("careos_ingest", ratios[2], *TARGET)  # leads/s, real over floor
    if (leads, payments, new_users) != (real_total, real_total, real_total):
        print("(!) row counts differ from the leads sent")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
