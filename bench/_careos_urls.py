"""The project's URLs, with the ingest view's rate policy raised for bench/careos_ingest.py.

The CareOS policy (core.apis.CAREOS_RATES) allows 100 requests/min per partner; the benchmark posts
thousands a minute from one partner. The view's `rate_policy` hook (core.api.ApiViewMixin) is set to a
policy with the same name, key and window but a limit of BENCH_CAREOS_RATE_LIMIT (default 10,000,000)
per minute: every request is still counted in the cache exactly as in production, and never refused.
"""

import os

from django.urls import include, path

from core.apis import CAREOS_RATES, MINUTE
from core.ratelimit import Rate, RatePolicy
from leads.api.views import LeadIngestView

BENCH_LIMIT = int(os.environ.get("BENCH_CAREOS_RATE_LIMIT", "10000000"))
LeadIngestView.rate_policy = RatePolicy(
    CAREOS_RATES.name,
    tuple(Rate(rate.name, BENCH_LIMIT, MINUTE, rate.key, rate.stage) for rate in CAREOS_RATES.rates),
)

urlpatterns = [path("", include("config.urls"))]
