"""Real processes for tests that must cross a process boundary: a `celery worker` subprocess
(`celery_worker`, consuming the queues named), and a private `redis-server` on a spare port
(`RedisServer`) that a test may kill and restart without touching the Redis the test runner uses."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parents[1]
CELERY_BIN = Path(sys.executable).with_name("celery")
# Variables that choose the broker or could make a worker run tasks in-process: tests set them.
BROKER_VARIABLES = ("CELERY_BROKER_URL", "REDIS_URL", "CELERY_BROKER_DIR", "CELERY_TASK_ALWAYS_EAGER")


def worker_environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    """This process's environment minus the broker choice, in test mode, with a throwaway filesystem
    broker folder and SQLite path (never the developer's); `variables` override anything."""
    env = {key: value for key, value in os.environ.items() if key not in BROKER_VARIABLES}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        APP_ENV="test",
        CELERY_BROKER_DIR=str(tmp_path / "broker"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'worker.sqlite3'}",
        PYTHONUNBUFFERED="1",
    )
    env.update(variables)
    return env


@contextmanager
def celery_worker(
    env: dict[str, str], log_path: Path, queue: str, *, loglevel: str = "warning", name: str = "test"
) -> Iterator[subprocess.Popen]:
    """One solo-pool worker consuming only `queue` (or several: "critical,messaging"), logging to
    `log_path`; stopped (terminate, then kill) when the block ends, whatever happened in it."""
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A private `redis-server` on 127.0.0.1:<spare port>, for fault tests: `kill()` crashes it (SIGKILL),
    `start()` brings it back on the same port. `persistent=True` keeps its data across a crash in `data_dir`
    (append-only file, fsync on every write), like a production Redis; otherwise it starts empty."""

    def __init__(self, data_dir: Path, *, persistent: bool = False):
        self.binary = shutil.which("redis-server")
        self.port = free_port()
        self.data_dir = data_dir
        self.persistent = persistent
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        import redis

        self.data_dir.mkdir(parents=True, exist_ok=True)
        durability = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no",
                   "--dir", str(self.data_dir), *durability]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.RedisError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.kill()
