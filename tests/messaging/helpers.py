from __future__ import annotations

from datetime import timedelta

from django.db import transaction

from core.time import utc_now
from messaging.models import OutboundMessage
from messaging.services import message_queue
from messaging.tasks import send_message
from tests.messaging.conftest import BODY, PHONE


def queue(channel: str = "sms", recipient: str = PHONE, body: str = BODY, **kwargs) -> OutboundMessage:
    kwargs.setdefault("purpose", "tests.messaging")
    with transaction.atomic():
        return message_queue(channel=channel, recipient=recipient, body=body, **kwargs)


def run(message: OutboundMessage) -> str:
    """Run the send task in-process, as a worker would."""
    result = send_message.run(message.pk)
    message.refresh_from_db()
    return result


def make_due(message: OutboundMessage, seconds_ago: int = 1) -> None:
    """Time passes: the message's next attempt is now due."""
    OutboundMessage.objects.filter(pk=message.pk).update(next_attempt_at=utc_now() - timedelta(seconds=seconds_ago))
