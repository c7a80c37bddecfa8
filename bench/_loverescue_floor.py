"""The floor of bench/loverescue_api.py: a partner API view (same middleware, IntegrationTokenAuthentication,
per-key rate limit and access log as the real endpoints) that answers the real endpoint's response body,
precomputed byte for byte, and notes the same client ids for the access log. What the real endpoint
costs above it is its own work: consent check, queries, building and rendering the body.

Bodies come from LR_BENCH_FLOOR_DIR: `<endpoint>.json` (clients, outcomes) and `progress-<client id>.json`,
each {"body": "<the exact response text>", "subjects": [client ids]}, read once per process.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path

from django.http import HttpResponse

from core.context import note_subjects
from integration.api.base import PartnerApiView


@cache
def floor_response(name: str) -> tuple[bytes, tuple[str, ...]]:
    data = json.loads((Path(os.environ["LR_BENCH_FLOOR_DIR"]) / f"{name}.json").read_text())
    return data["body"].encode(), tuple(data["subjects"])


class FloorView(PartnerApiView):
    def get(self, request, endpoint: str, client_id=None):
        body, subjects = floor_response(f"progress-{client_id}" if client_id else endpoint)
        note_subjects(request, "client", subjects)
        return HttpResponse(body, content_type="application/json")
