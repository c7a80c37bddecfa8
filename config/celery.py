"""Celery app. Broker from settings: Redis in production, a filesystem queue in the embedded default.

Two things beyond configuration live here (docs/operations.md, "Workers"; docs/decisions.md):
- `route_urgent_messages`, the router that sends a message with an urgent purpose to the `critical` queue;
- a guard around kombu's Redis restore of unacknowledged messages, without which a worker that loses Redis
  while it holds such messages exits for good (issue 10, finding 8).
"""

from __future__ import annotations

import logging
import os

from celery import Celery

from core import filesystem_broker

filesystem_broker.install()  # filesystem:// writes each message atomically (core/filesystem_broker.py)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger("config.celery")

SEND_MESSAGE_TASK = "messaging.tasks.send_message"
URGENT_QUEUE = "critical"


def route_urgent_messages(name, args, kwargs, options, task=None, **kw):
    """Celery router (first in CELERY_TASK_ROUTES): `messaging.tasks.send_message` for a message whose
    purpose is urgent goes to `critical`; anything else falls through to the static routes (None).

    Every publish of the task passes here (the first enqueue after commit, a retry's countdown, the sweeper),
    so all of them reach the same queue. The publisher usually knows the purpose (it just wrote or read the
    row) and says whether it is urgent in the publish's own header (messaging.tasks.URGENT_HEADER): routed
    from it, with no database read (issue 15: the after-commit publish of every welcome SMS read its row
    back). A publish without the header (the sweeper's batch, a retry) has its purpose read from the row (one
    primary-key query); if the row cannot be read, the message goes to `critical` rather than waiting
    behind bulk messages: sending it there is only a little less efficient, never wrong."""
    if name != SEND_MESSAGE_TASK:
        return None
    from messaging.tasks import URGENT_HEADER

    headers = (options or {}).get("headers") or {}
    if URGENT_HEADER in headers:
        return {"queue": URGENT_QUEUE} if headers[URGENT_HEADER] else None
    message_id = args[0] if args else (kwargs or {}).get("message_id")
    try:
        from messaging.models import OutboundMessage
        from messaging.outbox import is_urgent

        purpose = OutboundMessage.objects.filter(pk=message_id).values_list("purpose", flat=True).first()
    except Exception:  # the database is down or the id is bad: publish anyway, on the safe side
        logger.warning("could not read message %s's purpose; routing it to %s", message_id, URGENT_QUEUE)
        return {"queue": URGENT_QUEUE}
    if purpose is not None and is_urgent(purpose):
        return {"queue": URGENT_QUEUE}
    return None


def guard_redis_restore_unacked() -> None:
    """Work around a kombu 5.7 / celery 5.7 crash (reproduced by tests/faults/test_broker_outage.py).

    When a worker loses Redis, Celery's consumer first `collect()`s the connection, which detaches its
    transport (`transport.client = None`), then closes it again. The Redis channel's first close fails on the
    dead socket before it is marked closed, so the second close restores the unacknowledged messages through
    the detached transport: `AttributeError: 'NoneType' object has no attribute 'hostname'`, which Celery
    treats as unrecoverable and the worker exits. With this guard the restore is skipped when the transport
    is detached (Redis is unreachable then anyway): the messages stay in Redis's unacked set, where
    `restore_visible` delivers them again after `visibility_timeout`, the same path kombu takes when a
    restore fails on a dead connection. Remove when kombu's `QoS.restore_unacked` handles this itself.
    """
    from kombu.transport import redis as redis_transport

    original = redis_transport.QoS.restore_unacked
    if getattr(original, "platform_guard", False):
        return

    def restore_unacked(self, client=None):
        if client is None and getattr(self.channel.connection, "client", None) is None:
            logger.warning(
                "broker connection already closed: %d unacknowledged message(s) stay in Redis and are "
                "delivered again after the visibility timeout",
                len(self._delivered),
            )
            self._delivered.clear()
            return None
        return original(self, client)

    restore_unacked.platform_guard = True
    redis_transport.QoS.restore_unacked = restore_unacked


guard_redis_restore_unacked()

app = Celery("platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()  # every installed app's tasks.py; core.tasks.ping checks a worker end to end
