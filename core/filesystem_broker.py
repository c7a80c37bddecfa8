"""kombu's filesystem transport (the embedded broker of `make run` without REDIS_URL) with one fix: a
message file appears under its queue name only once it is complete.

kombu 5.x opens `<time>_<uuid>.<queue>.msg` and then writes it; a consumer polling the folder can move and
read it in between (flock does not stop a rename) and die on a half-written body ("Unrecoverable error:
JSONDecodeError"). Here the body is written to a dot-name no consumer matches and renamed into place;
a rename within one folder is atomic, so a consumer sees nothing or the whole message.

`install()` (called by config/celery.py) makes this the transport of every `filesystem://` URL in the
process. An alias, not Celery's `broker_transport` setting: that setting would override the scheme of
any other broker URL set later (a test's private Redis, an operator's switch).
"""

from __future__ import annotations

import os
import uuid

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        # Same name as kombu's: consumers sort on the millisecond prefix (FIFO) and match the queue suffix.
        name = f"{int(round(filesystem.monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".partial-{uuid.uuid4().hex}")
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


def install() -> None:
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
