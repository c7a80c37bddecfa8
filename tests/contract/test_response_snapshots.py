"""Golden response snapshots of the LoveRescue and CareOS APIs on the demo data (`seed_demo --json`).

Every operation of both APIs, with good and bad input, in a fixed order (tests/contract/helpers.py).
Each exchange is recorded as method, path, status, the headers that matter and the JSON body, with only
generated values replaced by placeholders, and compared with snapshots/<api>.json. UPDATE_SNAPSHOTS=1
rewrites the golden files (do that only at a commit whose behaviour is the reference).
"""

from __future__ import annotations

from django.utils import timezone

from tests.contract.helpers import (
    Api,
    Normaliser,
    careos_scenario,
    check_snapshot,
    known_ids,
    loverescue_scenario,
    snapshot_entries,
)


def _normaliser(demo) -> Normaliser:
    now = timezone.now()
    return Normaliser(today=now.date(), now=now, known=known_ids(demo))


def test_loverescue_responses_match_the_golden_file(demo):
    api = Api()
    loverescue_scenario(api, demo)
    check_snapshot("loverescue", snapshot_entries(api.log, _normaliser(demo)))


def test_careos_responses_match_the_golden_file(demo):
    api = Api()
    careos_scenario(api, demo)
    check_snapshot("careos", snapshot_entries(api.log, _normaliser(demo)))
