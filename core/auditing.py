"""Domain audit events from core's own mechanisms (key rotation, ...), without core importing audit.

The recorder is the one named by the setting `AUDIT_EVENT_RECORDER` (audit.services.audit_event_record):
one implementation plugged in by settings, as Django does with AUTH_USER_MODEL. Same contract as the
recorder: call it inside the transaction of the change it records.
"""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string

from core.actors import Actor


@lru_cache(maxsize=4)
def _recorder(path: str):
    return import_string(path)


def audit_event(*, action: str, actor: Actor, **fields):
    return _recorder(settings.AUDIT_EVENT_RECORDER)(action=action, actor=actor, **fields)
