"""Settings for bench/loverescue_api.py (in-process and its gunicorn workers): the project's settings
with a URLconf that adds the floor routes (bench/_loverescue_urls.py)."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench._loverescue_urls"
