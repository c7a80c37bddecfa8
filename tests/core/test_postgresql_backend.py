"""Issue 15: the health check of a reused PostgreSQL connection (CONN_HEALTH_CHECKS, core/postgresql/base.py)
polls the idle socket instead of sending `SELECT 1` on every request; a connection the server closed or that was
cut while idle is still found out and replaced before the request's first query."""

from __future__ import annotations

import socket
import struct

import psycopg
import pytest
from django.conf import settings
from django.db import connection, connections

from core.postgresql.base import DatabaseWrapper, _idle_socket_is_quiet

pytestmark = [pytest.mark.postgres]


def test_production_settings_use_the_backend_with_health_checks():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no persistent connection to check")
    assert settings.DATABASES["default"]["ENGINE"] == "core.postgresql"
    assert isinstance(connections["default"], DatabaseWrapper)
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] > 0


@pytest.fixture
def probe(require_postgres):
    """A second, persistent connection to the test database with health checks on, as a web worker holds."""
    settings_dict = {**connection.settings_dict, "CONN_MAX_AGE": 600, "CONN_HEALTH_CHECKS": True}
    wrapper = DatabaseWrapper(settings_dict, alias="health_probe")
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


class _Counted:
    """Counts the round trips (psycopg waits) and Django's `SELECT 1` checks of one connection wrapper."""

    def __init__(self, wrapper, monkeypatch):
        self.round_trips = 0
        self.select_one_checks = 0
        original_wait = psycopg.Connection.wait
        original_is_usable = wrapper.is_usable

        def wait(conn, *args, **kwargs):
            if conn is wrapper.connection:
                self.round_trips += 1
            return original_wait(conn, *args, **kwargs)

        def is_usable():
            self.select_one_checks += 1
            return original_is_usable()

        monkeypatch.setattr(psycopg.Connection, "wait", wait)
        monkeypatch.setattr(wrapper, "is_usable", is_usable)


def _backend_pid(wrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _next_request(wrapper) -> int:
    """What Django does between two requests (request_started/finished: close_old_connections), then the
    request's first query; the backend pid that answered it."""
    wrapper.close_if_unusable_or_obsolete()
    return _backend_pid(wrapper)


def test_a_healthy_reused_connection_costs_no_extra_round_trip(probe, monkeypatch):
    pid = _backend_pid(probe)
    counted = _Counted(probe, monkeypatch)
    for _ in range(3):
        assert _next_request(probe) == pid  # the same connection, reused
    assert counted.select_one_checks == 0
    assert counted.round_trips == 3  # the three queries alone


def test_a_connection_the_server_terminated_is_replaced_before_the_request_uses_it(probe, monkeypatch):
    pid = _backend_pid(probe)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])  # waits until that backend is gone
        assert cursor.fetchone()[0] is True
    counted = _Counted(probe, monkeypatch)
    new_pid = _next_request(probe)  # no error reaches the request
    assert new_pid != pid
    assert counted.select_one_checks == 1  # the socket had the server's goodbye: Django's check confirmed it


def test_a_connection_reset_while_idle_is_not_quiet(require_postgres):
    """The socket check itself on a connection reset under it (a proxy or the network cut it: RST)."""
    raw = psycopg.connect(
        **{k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
    )
    try:
        raw.autocommit = True
        raw.execute("SELECT 1")
        assert _idle_socket_is_quiet(raw) is True
        # Reset our end as a broken path would: the next poll sees the error, not silence.
        sock = socket.socket(fileno=raw.pgconn.socket)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
            assert _idle_socket_is_quiet(raw) is False
        finally:
            sock.detach()
    finally:
        raw.close()


def test_a_connection_in_a_transaction_falls_back_to_select_one(probe, monkeypatch):
    """Only an idle connection is judged by its socket; anything else gets Django's own check."""
    probe.connection.autocommit = False
    probe.connection.execute("SELECT 1")  # opens a transaction
    counted = _Counted(probe, monkeypatch)
    probe.health_check_done = False
    probe.close_if_health_check_failed()
    assert counted.select_one_checks == 1
    probe.connection.rollback()
    probe.connection.autocommit = True
