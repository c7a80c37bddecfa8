"""LoveRescue partner API under gunicorn on PostgreSQL: GET /api/integration/clients,
/clients/<id>/progress and /outcomes for a therapist with 1,000 consented clients and 90 days of data
each, next to the floor measured in the same run. /clients and /outcomes are served from the caseload cache
(docs/loverescue.md, "Speed"); they are also measured with the cache off (`*_uncached`: what the first read
after a write costs), reported apart.

Floor: the same stack (gunicorn, middleware, IntegrationTokenAuthentication, per-key rate limit, access
log with the same client ids) answering the real endpoint's response body, precomputed byte for byte
(bench/_loverescue_floor.py, mounted by bench/_loverescue_urls.py). Real and floor run interleaved in
rounds, so drift on the machine hits both alike. SQL queries per request are counted in-process
(django.test.Client + CaptureQueriesContext) at two caseload sizes, to show they do not grow with it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lr_bench REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/loverescue_api.py

Needs PostgreSQL (skips otherwise); REDIS_URL is the rate limiter's cache (without it each gunicorn
worker counts in its own memory). Use a database of its own: the data set (~300k rows, made with
bulk_create by bench/_loverescue_data.py) stays there and is reused by later runs the same day.
Knobs: BENCH_LR_CLIENTS (1000), BENCH_LR_ROUNDS (3), BENCH_LR_REQUESTS (list endpoints' timed requests
per round and variant; progress makes 5x as many), BENCH_LR_WORKERS (gunicorn workers, 2),
BENCH_LR_WORKER_CLASS (sync, as the Dockerfile; or gthread for keep-alive), BENCH_LR_CONCURRENCY
(client processes, one request in flight each; default = workers).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))

from bench._harness import ChildProcesses, Gunicorn, not_run, percentile, report  # noqa: E402

os.environ["DJANGO_SETTINGS_MODULE"] = "bench._loverescue_settings"
os.environ.setdefault("APP_ENV", "development")
os.environ["DEBUG"] = "false"  # DEBUG keeps every query in memory: not what production runs

N_CLIENTS = int(os.environ.get("BENCH_LR_CLIENTS", "1000"))
ROUNDS = int(os.environ.get("BENCH_LR_ROUNDS", "3"))
LIST_REQUESTS = int(os.environ.get("BENCH_LR_REQUESTS", "60"))
WORKERS = int(os.environ.get("BENCH_LR_WORKERS", "2"))
WORKER_CLASS = os.environ.get("BENCH_LR_WORKER_CLASS", "sync")
CONCURRENCY = int(os.environ.get("BENCH_LR_CONCURRENCY", str(WORKERS)))
PROGRESS_SAMPLE = 100  # progress requests cycle over this many clients (every level)
WARMUP = 5
# issue 15: p50 latency at most 2x the floor's (the same stack returning the precomputed body), per endpoint.
# The *_uncached variants are the real views with the body cache off: every request computes the body, as
# the first read after a write does. Same floor and target, reported apart so the cache never hides that cost.
TARGETS = {
    "clients": ("<=", 2.0),
    "progress": ("<=", 2.0),
    "outcomes": ("<=", 2.0),
    "clients_uncached": ("<=", 2.0),
    "outcomes_uncached": ("<=", 2.0),
}


def workers_cpu_seconds(master_pid: int) -> float:
    """User + system CPU time so far of gunicorn's workers (the master's children), from /proc: the
    server's own work per request, which a busy machine stretches far less than it stretches latency."""
    total = 0.0
    try:
        children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
        for pid in children:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, ValueError, IndexError):
        return float("nan")  # not Linux /proc: the column shows nan
    return total


def _ready(answer: dict) -> None:
    if not answer.get("ready"):
        raise SystemExit(f"load client not ready: {answer}")


class LoadClients(ChildProcesses):
    """CONCURRENCY load-generator processes (bench/_loverescue_load.py), each with its own connection."""

    def __init__(self, token: str):
        super().__init__(
            Path(__file__).with_name("_loverescue_load.py"),
            [dict(os.environ, LR_BENCH_TOKEN=token, LR_BENCH_OFFSET=str(i * 7)) for i in range(CONCURRENCY)],
        )

    def run(self, urls: list[str], total: int) -> dict:
        """`total` timed GETs split over the clients, all started together after their warm-up."""
        n = len(self.processes)
        shares = [total // n + (1 if i < total % n else 0) for i in range(n)]
        results = self.run_together(
            [{"urls": urls, "warmup": WARMUP, "requests": share} for share in shares], check_ready=_ready
        )
        bad = [status for r in results for status in r["bad"]]
        if bad:
            raise SystemExit(f"non-200 answers under load: {bad[:10]} (urls like {urls[0]})")
        return {
            "latencies": [value for r in results for value in r["latencies"]],
            "seconds": max(r["end"] for r in results) - min(r["start"] for r in results),
            "bytes": sorted({size for r in results for size in r["bytes"]}),
        }


def main() -> int:
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://", "pgsql://")):
        print(
            "skipped: needs PostgreSQL, e.g. DATABASE_URL=postgres://postgres@127.0.0.1:5432/lr_bench "
            "REDIS_URL=redis://127.0.0.1:6379/0 (a database of its own: the data set stays there)"
        )
        for name, target in TARGETS.items():
            not_run(f"loverescue_{name}", *target, reason="needs PostgreSQL: DATABASE_URL")
        return 0

    import django

    django.setup()

    import httpx
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench._loverescue_data import bench_data
    from core.actors import Actor
    from integration import tokens
    from integration.models import PermissionLevel
    from integration.services.partners import partner_credential_create

    load_at_start = os.getloadavg()
    call_command("migrate", verbosity=0)
    data = bench_data(N_CLIENTS)
    issued = partner_credential_create(partner=data.partner, actor=Actor.system("bench"))
    cache = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]

    tmp = Path(tempfile.mkdtemp(prefix="bench-loverescue-"))
    floor_dir = tmp / "floor"
    floor_dir.mkdir()
    os.environ["LR_BENCH_FLOOR_DIR"] = str(floor_dir)  # the in-process floor requests read it too
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_TASK_ALWAYS_EAGER",)}
    env.update(PYTHONPATH=str(BASE_DIR), LR_BENCH_FLOOR_DIR=str(floor_dir), LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    server = Gunicorn(env, tmp / "gunicorn.log", workers=WORKERS, worker_class=WORKER_CLASS)
    load = None
    try:
        # A partner's first call, through the server: the token exchange.
        answer = httpx.post(
            f"{server.base_url}/api/integration/auth",
            timeout=30,
            json={"apiKey": issued.api_key, "apiSecret": issued.api_secret, "therapistId": str(data.therapist.pk)},
        )
        answer.raise_for_status()
        token = answer.json()["token"]

        # In-process: the real bodies (become the floor's) and SQL queries per request.
        small_token = tokens.issue_token(
            partner_id=data.partner.pk, credential_id=issued.credential.pk, therapist_id=data.small_therapist.pk
        )
        client = Client()

        def get(path: str, bearer: str = token) -> tuple[bytes, int]:
            with CaptureQueriesContext(connection) as queries:
                response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {bearer}")
            assert response.status_code == 200, (path, response.status_code, response.content[:300])
            return response.content, len(queries.captured_queries)

        sample = data.client_ids[:: max(1, N_CLIENTS // PROGRESS_SAMPLE)][:PROGRESS_SAMPLE]
        endpoints = {
            "clients": {"real": ["/api/integration/clients"], "floor": ["/api/integration/_floor/clients"]},
            "progress": {"real": [f"/api/integration/clients/{c}/progress" for c in sample],
                         "floor": [f"/api/integration/_floor/clients/{c}/progress" for c in sample]},
            "outcomes": {"real": ["/api/integration/outcomes"], "floor": ["/api/integration/_floor/outcomes"]},
            "clients_uncached": {"real": ["/api/integration/_uncached/clients"],
                                 "floor": ["/api/integration/_floor/clients"]},
            "outcomes_uncached": {"real": ["/api/integration/_uncached/outcomes"],
                                  "floor": ["/api/integration/_floor/outcomes"]},
        }  # fmt: skip
        small_links = data.small_therapist.links.count()
        sizes: dict[str, list[int]] = {}
        queries: dict[str, dict[str, int]] = {name: {} for name in endpoints}
        for name in ("clients", "outcomes"):
            body, count = get(f"/api/integration/{name}")
            subjects = [
                row.get("id") or row.get("clientId")
                for row in (
                    json.loads(body)["clients"] if name == "clients" else json.loads(body)["outcomes"]["clients"]
                )
            ]
            assert len(subjects) == N_CLIENTS, (name, len(subjects))
            (floor_dir / f"{name}.json").write_text(json.dumps({"body": body.decode(), "subjects": subjects}))
            sizes[name] = [len(body)]
            queries[name][f"{N_CLIENTS} clients"] = count
            queries[name][f"{small_links} clients"] = get(f"/api/integration/{name}", small_token)[1]
        sizes["progress"] = []
        for client_id in sample:
            body, count = get(f"/api/integration/clients/{client_id}/progress")
            (floor_dir / f"progress-{client_id}.json").write_text(
                json.dumps({"body": body.decode(), "subjects": [str(client_id)]})
            )
            sizes["progress"].append(len(body))
            queries["progress"].setdefault(data.levels[client_id], set()).add(count)
        for name in ("clients", "outcomes"):
            # Served from the cache (the reads above stored the bodies), and computed with the cache off.
            served, queries[name][f"{N_CLIENTS} clients, served"] = get(f"/api/integration/{name}")
            computed, count = get(f"/api/integration/_uncached/{name}")
            assert served == computed, f"{name}: the served body differs from the computed one"
            queries[f"{name}_uncached"] = {f"{N_CLIENTS} clients": count}
            sizes[f"{name}_uncached"] = sizes[name]
        for name, paths in endpoints.items():
            queries[name]["floor"] = get(paths["floor"][0])[1]
        # One client seen by either therapist: the same count at 10 and 1,000 clients.
        first = data.client_ids[0]
        queries["progress"][f"{data.levels[first]} client via the {small_links}-client therapist"] = get(
            f"/api/integration/clients/{first}/progress", small_token
        )[1]

        load = LoadClients(token)
        results: dict[tuple[str, str], dict] = {}
        for round_number in range(ROUNDS):
            for name, paths in endpoints.items():
                total = LIST_REQUESTS * (5 if name == "progress" else 1)
                variants = ["real", "floor"] if round_number % 2 == 0 else ["floor", "real"]
                for variant in variants:
                    urls = [server.base_url + path for path in paths[variant]]
                    cpu_before = workers_cpu_seconds(server.process.pid)
                    outcome = load.run(urls, total)
                    cpu = workers_cpu_seconds(server.process.pid) - cpu_before
                    slot = results.setdefault(
                        (name, variant), {"latencies": [], "seconds": 0.0, "bytes": set(), "cpu": 0.0}
                    )
                    slot["latencies"] += outcome["latencies"]
                    slot["seconds"] += outcome["seconds"]
                    slot["bytes"].update(outcome["bytes"])
                    # Includes the warm-up requests (a few per client process).
                    slot["cpu"] += cpu / (total + WARMUP * CONCURRENCY)
    except BaseException:
        print(f"gunicorn log (tail):\n{server.log_path.read_text(errors='replace')[-4000:]}", file=sys.stderr)
        raise
    finally:
        if load is not None:
            load.close()
        server.stop()
    shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"\nLoveRescue partner API: one therapist, {N_CLIENTS} consented clients "
        f"({sum(1 for v in data.levels.values() if v == PermissionLevel.BASIC)} BASIC, "
        f"{sum(1 for v in data.levels.values() if v == PermissionLevel.STANDARD)} STANDARD, "
        f"{sum(1 for v in data.levels.values() if v == PermissionLevel.FULL)} FULL), 90 days of data each"
    )
    made = "reused today's set" if data.reused else f"generated {data.rows:,} rows in {data.seconds:.1f} s"
    print(
        f"database {connection.vendor}, cache {cache}; data: {made}; "
        f"load average at start {load_at_start[0]:.2f} ({os.cpu_count()} CPUs)"
    )
    print(
        f"gunicorn {WORKERS} {WORKER_CLASS} workers on 127.0.0.1; load: {CONCURRENCY} httpx client processes, "
        f"one request in flight each; {ROUNDS} rounds, real and floor interleaved; progress cycles over "
        f"{len(sample)} clients of every level"
    )
    print(
        "floor: same stack and auth (rate limit counted, access log written with the same client ids) "
        "returning the real body, precomputed\n"
    )
    p50s: dict[str, tuple[float, float]] = {}  # endpoint -> (real, floor) p50 ms, for the summary lines
    header = (
        f"{'endpoint':<44}{'variant':<8}{'requests':>9}{'body KB':>9}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}"
        f"{'cpu ms':>9}"
    )
    print(header)
    print("-" * len(header))
    for name, label in (
        ("clients", "GET /api/integration/clients"),
        ("clients_uncached", "  the same, cache off"),
        ("progress", "GET /api/integration/clients/:id/progress"),
        ("outcomes", "GET /api/integration/outcomes"),
        ("outcomes_uncached", "  the same, cache off"),
    ):
        stats = {}
        for variant in ("real", "floor"):
            slot = results[(name, variant)]
            latencies = slot["latencies"]
            stats[variant] = (
                statistics.median(latencies) * 1000,
                percentile(latencies, 0.99) * 1000,
                len(latencies) / slot["seconds"],
                slot["cpu"] / ROUNDS * 1000,
            )
            body_kb = statistics.mean(sizes[name]) / 1024
            print(
                f"{label if variant == 'real' else '':<44}{variant:<8}{len(latencies):>9}{body_kb:>9.1f}"
                f"{stats[variant][0]:>9.2f}{stats[variant][1]:>9.2f}{stats[variant][2]:>9.1f}{stats[variant][3]:>9.2f}"
            )
        ratios = [stats["real"][i] / stats["floor"][i] if stats["floor"][i] else float("nan") for i in range(4)]
        p50s[name] = (stats["real"][0], stats["floor"][0])
        print(
            f"{'':<44}{'ratio':<8}{'':>9}{'':>9}{ratios[0]:>8.1f}x{ratios[1]:>8.1f}x{ratios[2]:>8.2f}x"
            f"{ratios[3]:>8.1f}x"
        )
        if results[(name, "real")]["bytes"] != results[(name, "floor")]["bytes"]:
            print(
                f"{'':<52}(!) body sizes differ: real {sorted(results[(name, 'real')]['bytes'])[:3]}..., "
                f"floor {sorted(results[(name, 'floor')]['bytes'])[:3]}..."
            )
    print(
        "ratio = real / floor (latency: how many times slower; req/s: fraction of the floor's throughput); "
        "cpu ms = gunicorn workers' CPU per request (user + system, /proc; not the database's): on a busy "
        f"machine steadier than latency; load average at the end {os.getloadavg()[0]:.2f}"
    )

    print(
        "\nSQL queries per request (in-process django.test.Client, CaptureQueriesContext; includes the 2 "
        "auth queries and the access-log INSERT):"
    )
    for name in endpoints:
        row = "   ".join(
            f"{key}: {'/'.join(str(v) for v in sorted(value)) if isinstance(value, set) else value}"
            for key, value in sorted(queries[name].items(), key=lambda item: item[0] == "floor")
        )
        print(f"  {name:<9} {row}")
    print()
    for name, (real_p50, floor_p50) in p50s.items():
        report(f"loverescue_{name}", real_p50 / floor_p50, *TARGETS[name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
