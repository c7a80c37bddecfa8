"""What a payout run reports: one `BatchOutcome` per batch it resumed and one `PlatformReport` per
platform, gathered in a `PayoutReport` (printed by the command, returned by the beat task as a dict)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal

from core.time import iso_utc


@dataclass
class BatchOutcome:
    batch_id: str
    platform: str
    amount: str
    payments: int
    status: str  # the batch status after this run, "would_resume" in a dry run, "error"
    error: str = ""


@dataclass
class PlatformReport:
    platform: str
    backend: str
    minimum_payout: str
    due_count: int
    due_amount: str
    # nothing_due | below_minimum | held (platform suspended) | would_pay (dry run) | claimed_elsewhere |
    # paid | awaiting_manual | created (retried next run) | failed | error
    status: str
    batch_id: str = ""
    error: str = ""


@dataclass
class PayoutReport:
    now: datetime
    dry_run: bool
    resumed: list[BatchOutcome] = field(default_factory=list)
    platforms: list[PlatformReport] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "now": iso_utc(self.now),
            "dry_run": self.dry_run,
            "resumed": [asdict(outcome) for outcome in self.resumed],
            "platforms": [asdict(platform) for platform in self.platforms],
        }


def money(value: Decimal | None) -> str:
    """An amount as the reports and audit rows show it: "60.00"."""
    return str((value or Decimal("0")).quantize(Decimal("0.01")))
