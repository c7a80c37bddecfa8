"""Load-generator process for bench/careos_ingest.py (no Django here): one httpx.Client (keep-alive when
the server allows it) posting one lead at a time, each body unique and pre-encrypted.

Protocol on stdin/stdout, one JSON object per line:
  parent -> {"url": u, "file": path, "warmup": W}   child: reads the JSON-lines bodies in `path`, posts the
                                                    first W, then prints {"ready": true}
  parent -> {"go": true}                            child: posts the rest, then prints {"latencies": [s...],
                                                    "start": t0, "end": t1, "bad": [[status, body]...]}
  parent -> {"quit": true} or EOF                   child exits
X-API-Key and X-Platform come from CAREOS_BENCH_API_KEY and CAREOS_BENCH_PLATFORM.
"""

from __future__ import annotations

import json
import os
import sys
import time

import httpx


def _ok(response: httpx.Response) -> bool:
    if response.status_code != 200:
        return False
    body = response.json()
    return body.get("success") is True and body.get("is_new_user") is True


def main() -> None:
    headers = {
        "Content-Type": "application/json",
        "X-API-Key": os.environ["CAREOS_BENCH_API_KEY"],
        "X-Platform": os.environ["CAREOS_BENCH_PLATFORM"],
    }
    with httpx.Client(headers=headers, timeout=60.0) as client:
        for line in sys.stdin:
            command = json.loads(line)
            if command.get("quit"):
                return
            with open(command["file"], "rb") as handle:
                bodies = handle.read().splitlines()
            url, warmup = command["url"], command["warmup"]
            bad = []
            for body in bodies[:warmup]:
                response = client.post(url, content=body)
                if not _ok(response):
                    bad.append([response.status_code, response.text[:200]])
            print(json.dumps({"ready": True, "bad": bad[:5]}), flush=True)
            if not json.loads(sys.stdin.readline()).get("go"):
                return
            latencies = []
            start = time.time()
            for body in bodies[warmup:]:
                began = time.perf_counter()
                response = client.post(url, content=body)
                latencies.append(time.perf_counter() - began)
                if not _ok(response):
                    bad.append([response.status_code, response.text[:200]])
            end = time.time()
            print(json.dumps({"latencies": latencies, "start": start, "end": end, "bad": bad[:20]}), flush=True)


if __name__ == "__main__":
    main()
