"""Platform-level Celery tasks for operations and tests: no PHI.

- `core.tasks.ping` proves a worker consumes the queue (`celery -A config call core.tasks.ping`).
- `core.tasks.purge_idempotency_keys` deletes expired Idempotency-Key records (hourly, core/schedules.py).
- `core.tasks.compact_kept_counts` folds the parts of every kept count (core.kept_counts; every 5 minutes).
- `core.tasks.record_heartbeat(path, token)` writes a small JSON file, so a process that cannot see
  the worker's result (results are ignored) can still observe that the worker ran the task: the
  cross-process broker tests use it, and ops can use it to check a worker end to end.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from celery import shared_task

from core.time import iso_utc, utc_now


@shared_task(name="core.tasks.ping", time_limit=30, soft_time_limit=20)
def ping() -> str:
    return "pong"


@shared_task(name="core.tasks.record_heartbeat", time_limit=30, soft_time_limit=20)
def record_heartbeat(path: str, token: str = "") -> dict:
    """Write {"token", "pid", "host", "at"} to `path`, atomically (temp file + rename), so a poller never
    reads a half-written file. Idempotent: running it again rewrites the same file.

    The path comes from whoever can enqueue tasks, who can already run any registered task.
    """
    target = Path(path)
    beat = {"token": token, "pid": os.getpid(), "host": socket.gethostname(), "at": iso_utc(utc_now())}
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(beat), encoding="utf-8")
    os.replace(tmp, target)
    return beat


@shared_task(name="core.tasks.purge_idempotency_keys", time_limit=300, soft_time_limit=240)
def purge_idempotency_keys() -> int:
    from core.idempotency import idempotency_purge

    return idempotency_purge()


@shared_task(name="core.tasks.compact_kept_counts", time_limit=120, soft_time_limit=100)
def compact_kept_counts() -> dict[str, int]:
    """Fold the parts of every kept count (core.kept_counts.compact): sums unchanged, reads stay short.
    Idempotent: a second run finds one part per combination and removes none."""
    from core.kept_counts import compact_all

    return compact_all()
