"""CareOS POST /api/leads/ingest under gunicorn on PostgreSQL: sustained leads/s with unique, valid,
pre-encrypted leads (each a new user: decrypt, hash check, user + lead + payment + welcome SMS queued +
audit event), next to the floor measured in the same run.

Floor (bench/_careos_floor.py): the issue's "RSA decrypt + one insert transaction", measured under
the real path's own conditions. The same gunicorn workers (same count and class) serve it at
/bench/careos-floor beside the real endpoint; the same httpx load-client processes (same concurrency,
one request in flight each, keep-alive) post it the same kind of lead body, pre-encrypted to the same
RSA-3072 key pair (the key ring the real path reads, PEMs parsed once per process in both); it decrypts
the phone (a real private-key operation on every request, nothing cached per ciphertext) and inserts one
CareUser (Fernet-encrypted phone + blind index) in one transaction committed with the same durability as
the lead's (synchronous commit, the database's setting for both), and answers a fixed JSON body. What the
endpoint costs above it is Django + middleware (access log, rate limiting), authentication, validation,
the idempotency read and the other rows of the lead's write, and the after-commit publish.
Real and floor run interleaved in rounds, so drift on the machine hits both alike.

An earlier floor ran in-process loops (no HTTP, no gunicorn, no load clients, so the machine's two cores
went to decrypt + insert alone while the real path shared them with 2 workers and 2 clients): it measured
321/s in one run and 1,099/s in another and was not a floor of the same work. Both variants are also
counted in CPU (the gunicorn workers, the load clients and the PostgreSQL backends of this database, from
/proc), which the machine's other load does not move the way it moves wall-clock rates.

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
# The welcome SMS of the in-process probe and of the gunicorn workers go to a throwaway filesystem broker.
os.environ["CELERY_BROKER_URL"] = "filesystem://"

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
FLOOR_PATH = "/bench/careos-floor"  # served by bench/_careos_floor.py (its FLOOR_PATH)
TARGET = (">=", 0.5)  # issue 15: leads/s at least half the floor's (RSA decrypt + one insert transaction)


def _commits(statements: list[str]) -> int:
    """Transactions committed by these statements: each COMMIT, and each write sent outside BEGIN ... COMMIT
    (an autocommit statement commits on its own)."""
    commits, open_transaction = 0, False
    for sql in statements:
        head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if head == "BEGIN":
            open_transaction = True
        elif head in ("COMMIT", "ROLLBACK"):
            commits += head == "COMMIT"
            open_transaction = False
        elif not open_transaction and head in ("INSERT", "UPDATE", "DELETE", "WITH"):
            commits += 1
    return commits


def _cpu_seconds(pids) -> dict[int, float]:
    """user + system CPU seconds of each live process in `pids` (Linux /proc; others are left out)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return found


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _ready(answer: dict) -> None:
    if answer.get("bad"):
        raise SystemExit(f"warm-up requests failed: {answer['bad']}")


class Pool(ChildProcesses):
    """CONCURRENCY child processes speaking the line protocol of bench/_careos_load.py / _careos_floor.py."""

    def __init__(self, script: str, env: dict[str, str]):
        super().__init__(Path(__file__).with_name(script), [env] * CONCURRENCY)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def run(self, messages: list[dict], before_go=None) -> dict:
        """One message per process (its own file); all timed parts start together after the warm-ups.
        `before_go()` runs once every process is warm, just before the timed part."""
        ready = []

        def check_ready(answer: dict) -> None:
            _ready(answer)
            ready.append(answer)
            if len(ready) == len(self.processes) and before_go is not None:
                before_go()

        results = self.run_together(messages, check_ready=check_ready)
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

    # A throwaway filesystem broker, for this process (the probe) and the gunicorn workers alike.
    tmp = Path(tempfile.mkdtemp(prefix="bench-careos-"))
    broker = tmp / "broker"
    os.environ["CELERY_BROKER_DIR"] = str(broker)

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
                        row = lead_body(phone, f"bench-{phone[1:]}")
                        handle.write(json.dumps(row, separators=(",", ":")) + "\n")
                files.setdefault((round_number, variant), []).append(path)
    prepared = time.perf_counter() - began

    # In-process: one lead through django.test.Client (after one warm-up lead), its round trips counted:
    # SQL statements (BEGIN and COMMIT included), Redis commands sent (a pipeline counts once), broker
    # publishes.
    from kombu.messaging import Producer
    from redis.connection import AbstractConnection

    counted = {"redis": 0, "publish": 0}

    def counting(owner, attr, key):
        original = getattr(owner, attr)

        def wrapper(*args, **kwargs):
            counted[key] += 1
            return original(*args, **kwargs)

        return original, wrapper

    client = Client()
    probe_headers = {"HTTP_X_API_KEY": issued.full_key, "HTTP_X_PLATFORM": PLATFORM}
    for probe in range(2):
        [probe_phone] = phones("real", 1)
        patches = [(AbstractConnection, "send_packed_command", "redis"), (Producer, "publish", "publish")]
        originals = []
        for owner, attr, key in patches:
            original, wrapper = counting(owner, attr, key)
            originals.append((owner, attr, original))
            setattr(owner, attr, wrapper)
        counted.update(redis=0, publish=0)
        try:
            with CaptureQueriesContext(connection) as queries:
                response = client.post(
                    INGEST,
                    lead_body(probe_phone, f"bench-{probe_phone[1:]}"),
                    content_type="application/json",
                    **probe_headers,
                )
        finally:
            for owner, attr, original in originals:
                setattr(owner, attr, original)
        assert response.status_code == 200, response.content[:300]
    ingest_queries = len(queries.captured_queries)
    ingest_commits = _commits([query["sql"] for query in queries.captured_queries])
    ingest_redis, ingest_publishes = counted["redis"], counted["publish"]

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
    server = Gunicorn(
        env, tmp / "gunicorn.log", workers=WORKERS, worker_class=WORKER_CLASS, app="bench._careos_floor:application"
    )
    load = None
    results: dict[str, dict] = {
        variant: {"latencies": [], "seconds": 0.0, "rates": [], "cpu": {"app": 0.0, "client": 0.0, "database": 0.0}}
        for variant in ("real", "floor")
    }
    urls = {"real": server.base_url + INGEST, "floor": server.base_url + FLOOR_PATH}

    def backend_pids() -> list[int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return [row[0] for row in cursor.fetchall()]

    try:
        load = Pool("_careos_load.py", env)  # one set of client processes for both variants
        for round_number in range(ROUNDS):
            variants = ["real", "floor"] if round_number % 2 == 0 else ["floor", "real"]
            for variant in variants:
                paths = files[(round_number, variant)]
                messages = [{"url": urls[variant], "file": str(p), "warmup": WARMUP} for p in paths]
                # CPU of each part over the timed leads: read once every client is warm, just before the
                # timed part starts, and again when it has ended.
                groups = {"app": _children(server.process.pid), "client": load.pids}
                before = {}

                def snapshot():
                    groups["database"] = backend_pids()
                    before.update({name: _cpu_seconds(pids) for name, pids in groups.items()})

                outcome = load.run(messages, before_go=snapshot)
                groups["database"] = sorted(set(groups["database"]) | set(backend_pids()))
                for name, pids in groups.items():
                    after = _cpu_seconds(pids)
                    results[variant]["cpu"][name] += sum(cpu - before[name].get(pid, 0.0) for pid, cpu in after.items())
                results[variant]["latencies"] += outcome["latencies"]
                results[variant]["seconds"] += outcome["seconds"]
                results[variant]["rates"].append(len(outcome["latencies"]) / outcome["seconds"])
    except BaseException:
        print(f"gunicorn log (tail):\n{server.log_path.read_text(errors='replace')[-4000:]}", file=sys.stderr)
        raise
    finally:
        if load is not None:
            load.close()
        server.stop()

    real_total = ROUNDS * (LEADS + WARMUP * CONCURRENCY) + 2
    floor_total = ROUNDS * (LEADS + WARMUP * CONCURRENCY)
    floor_users = CareUser.objects.filter(source_platform=platform, source=f"{PLATFORM}_floor").count()
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
        f"one request in flight each, for both variants; {ROUNDS} rounds of {LEADS} leads per variant, interleaved"
    )
    print(
        f"floor: POST {FLOOR_PATH} on the same workers, same clients, same bodies: JSON parse + RSA-{key_size} "
        "OAEP decrypt (keys parsed once) + one durable transaction inserting one CareUser row\n"
    )
    header = f"{'variant':<8}{'leads':>8}{'p50 ms':>9}{'p99 ms':>9}{'leads/s':>10}  {'rounds leads/s':<22}"
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
        rounds = " ".join(f"{rate:.0f}" for rate in results[variant]["rates"])
        print(
            f"{variant:<8}{len(latencies):>8}{stats[variant][0]:>9.2f}{stats[variant][1]:>9.2f}{stats[variant][2]:>10.1f}"
            f"  {rounds}"
        )
    ratios = [stats["real"][i] / stats["floor"][i] for i in range(3)]
    print(f"{'ratio':<8}{'':>8}{ratios[0]:>8.1f}x{ratios[1]:>8.1f}x{ratios[2]:>9.2f}x")
    per_lead = ROUNDS * LEADS
    print(f"\nCPU ms per timed lead{'':<14}{'app':>8}{'client':>8}{'database':>10}{'total':>8}")
    cpu_total = {}
    for variant in ("real", "floor"):
        cpu = {name: seconds * 1000 / per_lead for name, seconds in results[variant]["cpu"].items()}
        cpu_total[variant] = sum(cpu.values())
        print(f"{variant:<35}{cpu['app']:>8.2f}{cpu['client']:>8.2f}{cpu['database']:>10.2f}{cpu_total[variant]:>8.2f}")
    print(f"{'CPU ratio floor / real (leads per CPU second)':<45}{cpu_total['floor'] / cpu_total['real']:>6.2f}x")
    print(
        "ratio = real / floor (latency: how many times slower; leads/s: fraction of the floor's throughput); "
        f"load average at the end {os.getloadavg()[0]:.2f}"
    )
    print(
        f"\nchecks: {leads} leads (expected {real_total}), {payments} payments, {new_users} new users, "
        f"{queued} welcome SMS queued (deleted), {floor_users} floor users (expected {floor_total})"
    )
    print(
        f"round trips for one ingest (in-process, after one warm-up): {ingest_queries} SQL statements (BEGIN and "
        f"COMMIT included), {ingest_commits} commit(s) (a COMMIT, or a statement in autocommit that can write: "
        f"the welcome SMS's look at the wake-up flag writes, and flushes, only when it takes the flag), "
        f"{ingest_redis} Redis commands, {ingest_publishes} broker publish"
    )
    print()
    report("careos_ingest", ratios[2], *TARGET)  # leads/s, real over floor
    if (leads, payments, new_users, floor_users) != (real_total, real_total, real_total, floor_total):
        print("(!) row counts differ from the leads sent")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
