"""The embedded broker writes each message atomically: a consumer never sees a half-written file
(kombu's own transport opened the final name first; a worker polling then died on a JSONDecodeError)."""

from __future__ import annotations

import json
import os

from django.conf import settings
from kombu import Connection
from kombu.transport import filesystem

from core import filesystem_broker


def _connection(tmp_path) -> Connection:
    filesystem_broker.install()
    folder = tmp_path / "queue"
    folder.mkdir()
    return Connection(
        "filesystem://",
        transport_options={
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(tmp_path),
            "store_processed": False,
        },
    )


def test_no_message_file_is_visible_while_its_body_is_written(tmp_path, monkeypatch):
    incomplete_while_writing: list[str] = []
    real_dumps = filesystem_broker.dumps

    def dumps_and_look(payload):  # called while the message is being written
        # What a consumer polling now would find: every listed message must already be whole.
        for name in os.listdir(tmp_path / "queue"):
            if name.endswith(".msg"):
                try:
                    json.loads((tmp_path / "queue" / name).read_bytes())
                except ValueError:
                    incomplete_while_writing.append(name)
        return real_dumps(payload)

    # Both modules' `dumps`: the test also catches kombu's own channel (it fails with `Channel =
    # filesystem.Channel`: the empty first file is listed while the second is written).
    monkeypatch.setattr(filesystem_broker, "dumps", dumps_and_look)
    monkeypatch.setattr(filesystem, "dumps", dumps_and_look)
    with _connection(tmp_path) as connection:
        queue = connection.SimpleQueue("jobs")
        queue.put({"n": 1})
        queue.put({"n": 2})
        assert incomplete_while_writing == []  # kombu's own _put lists the file before writing it
        # Both arrive whole (order within one millisecond is kombu's: by the name's random part).
        assert sorted(queue.get(timeout=1).payload["n"] for _ in range(2)) == [1, 2]
        queue.close()
    assert not [n for n in os.listdir(tmp_path / "queue") if n.startswith(".partial-")]


def test_filesystem_urls_use_the_atomic_transport_and_other_urls_keep_theirs():
    import config.celery  # noqa: F401  (installs the alias, as every process that has the app does)

    assert Connection("filesystem://").transport_cls == "filesystem"
    assert Connection("filesystem://").get_transport_cls() is filesystem_broker.Transport
    # No Celery broker_transport override: a broker URL set later (a private Redis) keeps its own scheme.
    assert not hasattr(settings, "CELERY_BROKER_TRANSPORT")
    assert Connection("redis://127.0.0.1:1/0").get_transport_cls().__module__ == "kombu.transport.redis"
