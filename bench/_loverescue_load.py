"""Load-generator process for bench/loverescue_api.py (no Django here): one httpx.Client (keep-alive when
the server allows it) issuing one request at a time.

Protocol on stdin/stdout, one JSON object per line:
  parent -> {"urls": [...], "warmup": W, "requests": N}   child: W warm-up GETs, then prints {"ready": true}
  parent -> {"go": true}                                    child: N timed GETs cycling over `urls`, then
                                                            prints {"latencies": [s...], "start": t0, "end": t1,
                                                            "bytes": [sizes seen], "bad": [non-200 statuses]}
  parent -> {"quit": true} or EOF                           child exits
The Authorization header comes from the LR_BENCH_TOKEN environment variable.
"""

from __future__ import annotations

import json
import os
import sys
import time

import httpx


def main() -> None:
    headers = {"Authorization": f"Bearer {os.environ['LR_BENCH_TOKEN']}"}
    offset = int(os.environ.get("LR_BENCH_OFFSET", "0"))
    with httpx.Client(headers=headers, timeout=60.0) as client:
        for line in sys.stdin:
            command = json.loads(line)
            if command.get("quit"):
                return
            urls = command["urls"]
            for i in range(command["warmup"]):
                client.get(urls[(offset + i) % len(urls)])
            print(json.dumps({"ready": True}), flush=True)
            if not json.loads(sys.stdin.readline()).get("go"):
                return
            latencies, sizes, bad = [], set(), []
            start = time.time()
            for i in range(command["requests"]):
                began = time.perf_counter()
                response = client.get(urls[(offset + i) % len(urls)])
                latencies.append(time.perf_counter() - began)
                sizes.add(len(response.content))
                if response.status_code != 200:
                    bad.append(response.status_code)
            end = time.time()
            print(
                json.dumps(
                    {"latencies": latencies, "start": start, "end": end, "bytes": sorted(sizes), "bad": bad[:20]}
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
