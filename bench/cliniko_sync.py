"""Cliniko sync (issue 12): comprehensive syncs against the Cliniko stand-in (tests/cliniko_stub.py on 127.0.0.1,
50 ms latency per request, Cliniko's 200 requests per minute per key with 429 + X-RateLimit-Reset), each next
to its floor measured in the same run:

- full_small: 651 patients / 296 appointments; full_large: 10,000 patients / 30,000 appointments (a first,
  full run). The engine runs as the `sync` worker would: sync.services.sync_run_chunk in a loop, a
  deferred chunk waiting its countdown, imports into PostgreSQL. Floor = the larger of
  (a) the requests a minimal reader needs divided by the rate limit (200/min), and
  (b) a bare httpx loop fetching those same pages (same collections, first page then the rest by page
      number with CLINIKO_CONCURRENCY threads, waiting for X-RateLimit-Reset on a 429), storing nothing.
  Target: the engine within 1.1x of the floor.
- incremental: 1% of the large account's patients and appointments change in Cliniko, then the next run
  (incremental). Measure: its requests / the requests of the bare reader of the same filtered collections.
  Target <= 1.1 (a handful of requests: the lookups, one page per collection and the changed pages).

Each reader uses its own Cliniko account filled identically (same seed), so rate-limit windows never mix.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cliniko_bench REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/cliniko_sync.py

Needs PostgreSQL (skips otherwise); bench organizations are created per run (named "Cliniko bench ...")
and deleted at the end. Knobs: BENCH_CLINIKO_LARGE ("10000,30000": patients,appointments),
BENCH_CLINIKO_LATENCY (0.05 s), BENCH_CLINIKO_RATE (200 per 60 s). The large run takes about two rate-limit
minutes for the engine and two for the bare loop.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from bench._harness import not_run, report  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("APP_ENV", "development")
os.environ["DEBUG"] = "false"
os.environ["OUTBOUND_ALLOW_LOOPBACK"] = "true"  # the stand-in is plain http on 127.0.0.1

TARGETS = {
    "cliniko_sync_full_small": ("<=", 1.1),
    "cliniko_sync_full_large": ("<=", 1.1),
    "cliniko_sync_incremental": ("<=", 1.1),
}
LARGE = tuple(int(value) for value in os.environ.get("BENCH_CLINIKO_LARGE", "10000,30000").split(","))
LATENCY = float(os.environ.get("BENCH_CLINIKO_LATENCY", "0.05"))
RATE = int(os.environ.get("BENCH_CLINIKO_RATE", "200"))
WINDOW = 60.0
USER_AGENT = "Routiq bench (bench@example.com)"
CHANGED = 0.01


def bare_read(stub, key: str, urls: list[tuple[str, str]], concurrency: int) -> dict:
    """The floor reader: each collection's first page, then its other pages by number, `concurrency` at a
    time, a 429 waited out until X-RateLimit-Reset. Returns requests made, pages and seconds."""
    import httpx

    from sync.clients import _per_page, _with_page

    client = httpx.Client(auth=(key, ""), headers={"User-Agent": USER_AGENT, "Accept": "application/json"}, timeout=60)
    lock = threading.Lock()
    counts = {"requests": 0, "pages": 0}

    def get(url: str) -> dict:
        while True:
            response = client.get(url)
            with lock:
                counts["requests"] += 1
            if response.status_code == 429:
                time.sleep(max(0.0, float(response.headers["X-RateLimit-Reset"]) - time.time()))
                continue
            response.raise_for_status()
            with lock:
                counts["pages"] += 1
            return response.json()

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for url, resource_key in urls:
            first = get(url)
            pages = max(1, math.ceil(int(first["total_entries"]) / _per_page(url)))
            list(pool.map(get, [_with_page(url, number) for number in range(2, pages + 1)]))
    seconds = time.perf_counter() - started
    client.close()
    return {**counts, "seconds": seconds}


def collection_urls(stub, key: str, run) -> list[tuple[str, str]]:
    from sync import services
    from sync.clients import ClinikoClient

    client = ClinikoClient(api_key=key, base_url=stub.base_url, user_agent=USER_AGENT)
    urls = []
    for step in run.cursor["steps"]:
        for path, resource_key, _ in services.COLLECTIONS[step]:
            since = run.updated_since if (run.incremental and step in services.INCREMENTAL_STEPS) else None
            urls.append((client.url(path, updated_since=since), resource_key))
    return urls


def engine_run(stub, organization, key: str) -> tuple[object, dict]:
    from core.actors import Actor
    from sync import services
    from sync.models import SyncRun

    before = _requests_of(stub, key)
    started = time.perf_counter()
    run, created = services.sync_run_start(
        organization=organization, mode="comprehensive", trigger="command", actor=Actor.system("bench")
    )
    assert created
    chunks = deferred = 0
    while True:
        run.refresh_from_db()
        result = services.sync_run_chunk(run_id=run.pk, seq=run.cursor["seq"])
        chunks += 1
        if result["result"] == "finished":
            break
        if result["result"] == "deferred":
            deferred += 1
            time.sleep(result["countdown"])  # the countdown the next task would be queued with
        elif result["result"] != "continued":
            raise SystemExit(f"unexpected chunk result {result}")
    seconds = time.perf_counter() - started
    run = SyncRun.objects.get(pk=run.pk)
    if run.status != "completed":
        raise SystemExit(f"bench run ended {run.status}: {run.errors}")
    requests = _requests_of(stub, key) - before
    rate_limited = sum(1 for request in stub.requests if request.api_key == key and request.status == 429)
    return run, {"seconds": seconds, "requests": requests, "chunks": chunks, "deferred": deferred, "429s": rate_limited}


def _requests_of(stub, key: str) -> int:
    with stub._lock:
        return sum(1 for request in stub.requests if request.api_key == key)


def main() -> int:
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://", "pgsql://")):
        print("skipped: needs PostgreSQL, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/cliniko_bench")
        for name, target in TARGETS.items():
            not_run(name, *target, reason="needs PostgreSQL: DATABASE_URL")
        return 0

    import django

    django.setup()

    from django.conf import settings
    from django.core.management import call_command

    from accounts import services as accounts_services
    from accounts.models import Organization
    from core.actors import Actor
    from patients.models import Appointment, Patient, Reminder
    from sync import services
    from sync.models import ClinikoAppointmentType, ClinikoPractitioner, SyncRun
    from tests.cliniko_stub import ClinikoStub

    settings.CLINIKO_USER_AGENT = USER_AGENT
    settings.CLINIKO_REQUESTS_PER_MINUTE = RATE
    services._enqueue_chunk = lambda *args, **kwargs: None  # chunks run here, in a loop: no broker
    call_command("migrate", verbosity=0)
    load_at_start = os.getloadavg()
    concurrency = settings.CLINIKO_CONCURRENCY
    reference = datetime.now(UTC)
    tag = uuid.uuid4().hex[:6]
    organizations = []
    results = {}

    def new_key() -> str:
        return f"MS0xbench{uuid.uuid4().hex}-au2"

    print(
        f"Cliniko stand-in: {LATENCY * 1000:.0f} ms per request, {RATE} requests / {WINDOW:.0f} s per key; "
        f"engine: CLINIKO_CONCURRENCY={concurrency}, CLINIKO_CHUNK_PAGES={settings.CLINIKO_CHUNK_PAGES}, "
        f"budget {settings.CLINIKO_REQUESTS_PER_MINUTE}/61 s (Redis: {bool(settings.REDIS_URL)})"
    )
    with ClinikoStub(latency=LATENCY, rate_limit=RATE, rate_window=WINDOW) as stub:
        try:
            for name, (n_patients, n_appointments) in (
                ("full_small", (651, 296)),
                ("full_large", LARGE),
            ):
                engine_key, bare_key = stub.add_account(new_key()), stub.add_account(new_key())
                for key in (engine_key, bare_key):
                    stub.generate(key, patients=n_patients, appointments=n_appointments, reference=reference)
                organization = accounts_services.organization_create(
                    name=f"Cliniko bench {tag} {name}", actor=Actor.system("bench")
                )
                organizations.append(organization)
                services.cliniko_connect(
                    organization=organization, api_key=engine_key, base_url=stub.base_url, actor=Actor.system("bench")
                )
                run, engine = engine_run(stub, organization, engine_key)
                bare = bare_read(stub, bare_key, collection_urls(stub, bare_key, run), concurrency)
                rate_floor = bare["pages"] / (RATE / WINDOW)
                floor = max(rate_floor, bare["seconds"])
                stored = (
                    Patient.objects.filter(organization=organization).count(),
                    Appointment.objects.filter(organization=organization).count(),
                )
                results[name] = (engine["seconds"] / floor, engine, bare, rate_floor, stored, run)

                if name == "full_large":
                    # 1% of the records change in Cliniko (both accounts alike), then the next (incremental) run.
                    ids = {"patients": list(stub.account(engine_key).patients)}
                    ids["appointments"] = list(stub.account(engine_key).appointments)
                    step_p = max(1, int(1 / CHANGED))
                    for key in (engine_key, bare_key):
                        for index, patient_id in enumerate(ids["patients"][::step_p]):
                            stub.edit_patient(key, patient_id, first_name=f"Changed{index}")
                        for index, appointment_id in enumerate(ids["appointments"][::step_p]):
                            stub.edit_appointment(key, appointment_id, notes=f"changed {index}")
                    incremental_run, incremental = engine_run(stub, organization, engine_key)
                    assert incremental_run.incremental
                    bare_incremental = bare_read(
                        stub, bare_key, collection_urls(stub, bare_key, incremental_run), concurrency
                    )
                    results["incremental"] = (
                        incremental["requests"] / bare_incremental["pages"],
                        incremental,
                        bare_incremental,
                        bare_incremental["pages"] / (RATE / WINDOW),
                        None,
                        incremental_run,
                    )
        finally:
            for organization in organizations:
                runs = SyncRun.objects.filter(organization=organization)
                Reminder.objects.filter(appointment__organization=organization).delete()
                Appointment.objects.filter(organization=organization).delete()
                Patient.objects.filter(organization=organization).delete()
                ClinikoAppointmentType.objects.filter(organization=organization).delete()
                ClinikoPractitioner.objects.filter(organization=organization).delete()
                runs.delete()
                Organization.objects.filter(pk=organization.pk).delete()

    print()
    print(f"{'measure':26} {'engine s':>9} {'requests':>9} {'chunks':>7} {'deferred':>8} {'429s':>5} "
          f"{'bare s':>8} {'bare req':>9} {'req/rate s':>10} {'ratio':>6}  stored")  # fmt: skip
    for name, (ratio, engine, bare, rate_floor, stored, run) in results.items():
        print(
            f"{name:26} {engine['seconds']:9.1f} {engine['requests']:9d} {engine['chunks']:7d} "
            f"{engine['deferred']:8d} {engine['429s']:5d} {bare['seconds']:8.1f} {bare['requests']:9d} "
            f"{rate_floor:10.1f} {ratio:6.2f}  "
            + (f"{stored[0]} patients, {stored[1]} appointments" if stored else f"{run.records_processed} records")
        )
    print(f"load average: {load_at_start} at start, {os.getloadavg()} at end")
    print("full_*: ratio = engine seconds / max(bare seconds, requests / rate); incremental: engine requests / "
          "bare requests")  # fmt: skip
    for name, (ratio, *_rest) in results.items():
        report(f"cliniko_sync_{name}", ratio, *TARGETS[f"cliniko_sync_{name}"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
