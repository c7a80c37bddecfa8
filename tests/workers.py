"""A real `celery worker` subprocess for tests that must cross a process boundary."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parents[1]
CELERY_BIN = Path(sys.executable).with_name("celery")


@contextmanager
def celery_worker(
    env: dict[str, str], log_path: Path, queue: str, *, loglevel: str = "warning", name: str = "test"
) -> Iterator[subprocess.Popen]:
    """One solo-pool worker consuming only `queue`, logging to `log_path`; stopped (terminate, then
    kill) when the block ends, whatever happened in it."""
    command = [
        str(CELERY_BIN), "-A", "config", "worker", "--pool=solo", "--concurrency=1", "-l", loglevel,
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-Q", queue, "-n", f"{name}-{uuid.uuid4().hex[:8]}@%h",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def test_database_url() -> str:
    """The URL of the database this test process uses, for a worker subprocess to share it."""
    from django.db import connection

    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}@{host}{port}/{db['NAME']}"


test_database_url.__test__ = False  # a helper, not a test
