"""The broker really delivers between processes: a real `celery worker` subprocess runs a task sent from
this process, for the embedded filesystem broker and for Redis.

Both sides derive their Celery configuration from config/settings.py with the same environment: the
worker by starting normally, this process by evaluating the settings file under that environment
(Django's own settings in this process are already loaded and stay untouched). The task writes a file
and touches no database (the worker gets a throwaway SQLite path anyway, never the developer's).
"""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery import Celery

from tests.workers import celery_worker, worker_environment

pytestmark = pytest.mark.worker

BASE_DIR = Path(__file__).resolve().parents[2]
DELIVERY_TIMEOUT = 20.0


def settings_under(env: dict[str, str], monkeypatch) -> SimpleNamespace:
    """config/settings.py evaluated with exactly `env`: what the worker computes, computed here."""
    for key in set(os.environ) - set(env):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    values = runpy.run_path(str(BASE_DIR / "config" / "settings.py"))
    monkeypatch.undo()
    return SimpleNamespace(**{key: value for key, value in values.items() if key.isupper()})


def producer_for(settings: SimpleNamespace) -> Celery:
    producer = Celery("broker-test-producer", set_as_current=False)
    producer.config_from_object(settings, namespace="CELERY")
    return producer


def wait_for_heartbeat(path: Path, worker: subprocess.Popen, log_path: Path) -> dict:
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if worker.poll() is not None:
            pytest.fail(f"worker exited with {worker.returncode}:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.2)
    pytest.fail(f"worker did not run the task within {DELIVERY_TIMEOUT:.0f}s:\n{log_path.read_text(errors='replace')}")


def send_then_run_worker(tmp_path: Path, env: dict[str, str], settings: SimpleNamespace, queue: str, pending) -> dict:
    """Send the task first, check it waits in the broker (`pending()`), then start a worker and wait
    until it ran the task. Sending first means the message can only reach the worker through the broker."""
    heartbeat = tmp_path / "heartbeat.json"
    token = uuid.uuid4().hex
    log_path = tmp_path / "worker.log"
    producer = producer_for(settings)
    try:
        producer.send_task("core.tasks.record_heartbeat", args=[str(heartbeat), token], queue=queue)
    finally:
        producer.close()
    assert pending() == 1
    assert not heartbeat.exists()

    with celery_worker(env, log_path, queue) as worker:
        beat = wait_for_heartbeat(heartbeat, worker, log_path)
    assert beat["token"] == token
    # Run by the worker process, not in this one (no eager mode, no in-process fallback).
    assert beat["pid"] == worker.pid
    assert beat["pid"] != os.getpid()
    assert pending() == 0  # consumed: not left for another worker
    return beat


def test_embedded_filesystem_broker_delivers_between_processes(tmp_path, monkeypatch):
    env = worker_environment(tmp_path)
    settings = settings_under(env, monkeypatch)
    queue_dir = (tmp_path / "broker" / "queue").resolve()
    assert settings.CELERY_BROKER_URL == "filesystem://"
    assert settings.CELERY_BROKER_DIR == queue_dir.parent  # CELERY_BROKER_DIR moves the folder
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"] == str(queue_dir)

    send_then_run_worker(tmp_path, env, settings, "celery", pending=lambda: len(list(queue_dir.glob("*.celery.msg"))))


@pytest.mark.redis
@pytest.mark.parametrize("variable", ["CELERY_BROKER_URL", "REDIS_URL"])
def test_redis_broker_delivers_between_processes(tmp_path, monkeypatch, redis_url, variable):
    import redis

    queue = f"broker-test-{uuid.uuid4().hex}"  # nothing else consumes it; no other worker sees our task
    env = worker_environment(tmp_path, **{variable: redis_url})
    settings = settings_under(env, monkeypatch)
    assert settings.CELERY_BROKER_URL == redis_url  # explicit, or derived from REDIS_URL

    client = redis.Redis.from_url(redis_url)
    try:
        send_then_run_worker(tmp_path, env, settings, queue, pending=lambda: client.llen(queue))
    finally:
        client.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        client.close()
