"""Settings for bench/careos_ingest.py (in-process, its floor processes and its gunicorn workers): the
project's settings with a URLconf that raises the CareOS partner rate limit (bench/_careos_urls.py)."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench._careos_urls"
