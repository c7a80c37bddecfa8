"""When this process started: recorded once, when config/settings.py imports this module (so at start-up
of every web worker, Celery worker or command), for uptime figures (Mark's GET /api/v1/system/status).
Under gunicorn each worker process has its own start (a worker restarted after max-requests starts again)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

STARTED_AT: datetime = datetime.now(UTC)
_STARTED_MONOTONIC = time.monotonic()


def uptime_seconds() -> int:
    """Whole seconds since the process started (monotonic: a wall-clock change does not move it)."""
    return int(time.monotonic() - _STARTED_MONOTONIC)
