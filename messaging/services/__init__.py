"""Every write of the messaging outbox, one module per job:

- `queueing`: `message_queue` (what other apps call, inside their own transaction: validates and
  normalizes the recipient, writes the encrypted row and its audit event, enqueues the send task after
  commit), `message_new` (the same rows validated and unsaved, for a service that inserts them with its own
  in one statement, then calls `inserted()`) and `message_retry` (staff re-queue a failed message);
- `sending`: `message_send` (what the task calls: claim, send outside any transaction, record),
  `messages_drain` (a wake-up's run over the ordinary messages due, messaging.outbox),
  `messages_sweep` (the beat sweeper);
- `status`: `message_status_record` (provider delivery reports);
- `withdrawing`: `messages_withdraw` (queued messages whose conversation or patient is gone).

Errors raised here never quote the recipient or the body.
"""

from __future__ import annotations

from messaging.services.queueing import (
    InvalidChannelError,
    InvalidMessageError,
    InvalidRecipientError,
    MessagingError,
    PendingMessage,
    message_new,
    message_queue,
    message_retry,
    normalize_recipient,
    recipient_index,
)
from messaging.services.sending import (
    DrainOutcome,
    SendOutcome,
    message_claim,
    message_send,
    messages_drain,
    messages_sweep,
    retry_delay,
)
from messaging.services.status import message_status_record
from messaging.services.withdrawing import messages_withdraw

__all__ = [
    "DrainOutcome",
    "InvalidChannelError",
    "InvalidMessageError",
    "InvalidRecipientError",
    "MessagingError",
    "PendingMessage",
    "SendOutcome",
    "message_claim",
    "message_new",
    "message_queue",
    "message_retry",
    "message_send",
    "message_status_record",
    "messages_drain",
    "messages_sweep",
    "messages_withdraw",
    "normalize_recipient",
    "recipient_index",
    "retry_delay",
]
