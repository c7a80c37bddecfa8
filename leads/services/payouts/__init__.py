"""Partner payouts and payment status transitions (docs/careos.md, "Payouts"), one module per job:

- `run`: a payout run over every platform (`payouts_process`);
- `batches`: a batch's life: create, pay through its backend (`leads.payout_backends`), resume, complete,
  fail, note a retry, and staff's mark-paid / cancel of manual batches;
- `transitions`: a payment's dispute / cancel / reinstate;
- `reports`: what a run reports.

The public names are re-exported here: `from leads.services import payouts; payouts.payouts_process(...)`.
"""

from leads.services.payouts.batches import (
    CURRENCY,
    IN_FLIGHT,
    MAX_REFERENCE,
    PayoutBatchError,
    due_payments,
    payout_batch_cancel_manual,
    payout_batch_mark_paid,
    payout_batches_export_record,
    payout_batches_resume,
)
from leads.services.payouts.reports import BatchOutcome, PayoutReport, PlatformReport
from leads.services.payouts.run import payouts_process
from leads.services.payouts.transitions import (
    MAX_REASON,
    TRANSITIONS,
    PaymentTransitionError,
    payment_cancel,
    payment_dispute,
    payment_reinstate,
)

__all__ = [
    "CURRENCY",
    "IN_FLIGHT",
    "MAX_REASON",
    "MAX_REFERENCE",
    "TRANSITIONS",
    "BatchOutcome",
    "PaymentTransitionError",
    "PayoutBatchError",
    "PayoutReport",
    "PlatformReport",
    "due_payments",
    "payment_cancel",
    "payment_dispute",
    "payment_reinstate",
    "payout_batch_cancel_manual",
    "payout_batch_mark_paid",
    "payout_batches_export_record",
    "payout_batches_resume",
    "payouts_process",
]
