"""In-process profile of the LoveRescue caseload endpoints (GET /clients, /outcomes, /clients/:id/progress)
on bench/loverescue_api.py's data set (run the benchmark once first, the same day, on the same database).

Prints, per endpoint, the median CPU (time.process_time) and wall time per request through
django.test.Client (statements per request: bench/loverescue_api.py), and with --profile the top of a cProfile sorted by
cumulative and by internal time.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/lr_bench REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/_loverescue_profile.py [--profile] [--top N] [--only clients]
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BASE_DIR))
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
os.environ.setdefault("APP_ENV", "development")
os.environ["DEBUG"] = "false"
os.environ.setdefault("LOG_LEVEL", "WARNING")

REQUESTS = int(os.environ.get("BENCH_LR_PROFILE_REQUESTS", "30"))


def main() -> int:
    import django

    django.setup()
    from django.test import Client

    from bench._loverescue_data import bench_data
    from core.actors import Actor
    from integration.services.partners import partner_credential_create

    args = sys.argv[1:]
    top = int(args[args.index("--top") + 1]) if "--top" in args else 30
    only = args[args.index("--only") + 1] if "--only" in args else None
    data = bench_data(int(os.environ.get("BENCH_LR_CLIENTS", "1000")))
    issued = partner_credential_create(partner=data.partner, actor=Actor.system("bench-profile"))
    client = Client()
    answer = client.post(
        "/api/integration/auth",
        {"apiKey": issued.api_key, "apiSecret": issued.api_secret, "therapistId": str(data.therapist.pk)},
        content_type="application/json",
    )
    token = answer.json()["token"]
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    sample = data.client_ids[:: max(1, len(data.client_ids) // 20)][:20]
    endpoints = {
        "clients": ["/api/integration/clients"],
        "outcomes": ["/api/integration/outcomes"],
        "progress": [f"/api/integration/clients/{c}/progress" for c in sample],
    }
    for name, paths in endpoints.items():
        if only and name != only:
            continue
        for path in paths[:3]:  # warm-up
            assert client.get(path, **headers).status_code == 200
        cpu, wall = [], []
        for i in range(REQUESTS):
            path = paths[i % len(paths)]
            c0, w0 = time.process_time(), time.perf_counter()
            response = client.get(path, **headers)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
            assert response.status_code == 200
        print(
            f"{name:<9} cpu median {statistics.median(cpu) * 1000:7.2f} ms  wall median "
            f"{statistics.median(wall) * 1000:7.2f} ms  "
            f"body {len(response.content)} B"
        )
        if "--profile" in args:
            profiler = cProfile.Profile()
            profiler.enable()
            for i in range(REQUESTS):
                client.get(paths[i % len(paths)], **headers)
            profiler.disable()
            for order in ("cumulative", "tottime"):
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(top)
                print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
