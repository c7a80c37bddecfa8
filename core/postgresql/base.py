"""Django's PostgreSQL backend (psycopg 3) with a health check of a reused connection that costs no round trip.

With CONN_MAX_AGE (persistent connections) and CONN_HEALTH_CHECKS, Django checks the connection a request
reuses before its first query, by sending `SELECT 1` and waiting for the answer: one round trip to PostgreSQL
on every request that touches the database, whether or not anything is wrong (issue 15).

Here the check first asks the operating system whether the idle connection has anything to read, without
sending anything (a poll with no timeout). Between two requests the server has nothing to say on a healthy
connection; when it has (a server that restarted, was shut down or terminated the backend sends its FATAL
message and closes; a proxy or the network that cut the connection leaves a reset or an end of file), the
check falls back to Django's `SELECT 1`, which reads what is pending, and the connection is closed and replaced
when that fails, exactly as before. So a connection cut while idle is still replaced before the request uses it
(tests/faults/test_database_restart.py), and a healthy one costs a system call instead of a round trip.

What neither check can see is a peer that vanished without a word (a host powered off, a silent firewall drop):
nothing arrives, the poll finds nothing, and `SELECT 1` would not have answered either (it waits for TCP's
retransmission timeout). The request's query then fails as it would have, the request answers its API's error,
and Django closes the connection at the end of that request (errors_occurred -> is_usable) so the next one
reconnects.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql.base import DatabaseWrapper as PostgresDatabaseWrapper
from django.db.backends.postgresql.operations import DatabaseOperations as PostgresDatabaseOperations
from psycopg.pq import ConnStatus, TransactionStatus

_READABLE = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP if hasattr(select, "poll") else 0


def _idle_socket_is_quiet(raw_connection) -> bool:
    """True when the idle connection's socket has nothing to read and no error or hang-up: nothing has
    happened to it since its last answer. False when anything is pending or the socket cannot be polled."""
    try:
        if raw_connection.closed or raw_connection.broken:
            return False
        pgconn = raw_connection.pgconn
        if pgconn.status != ConnStatus.OK or pgconn.transaction_status != TransactionStatus.IDLE:
            return False
        fd = pgconn.socket
    except Exception:  # noqa: BLE001 (any doubt: let Django's own check decide)
        return False
    if _READABLE:
        poller = select.poll()
        poller.register(fd, _READABLE)
        return not poller.poll(0)
    readable, _, errored = select.select([fd], [], [fd], 0)
    return not readable and not errored


class DatabaseOperations(PostgresDatabaseOperations):
    def last_executed_query(self, cursor, sql, params):
        """The statement for the query log (connection.queries, CaptureQueriesContext, DEBUG logging). Django reads
        it from the client-binding cursor's own copy of the SQL it sent; a cursor that binds on the server and runs
        a prepared statement (audit.services' access row, issue 15) has none, so its SQL is composed with its
        parameters here, as Django does for connections configured with server-side binding."""
        statement = super().last_executed_query(cursor, sql, params)
        if statement is None and params is not None:
            try:
                return self.compose_sql(sql, params)
            except Exception:  # noqa: BLE001 (only the log's text: the statement itself ran)
                return sql
        return statement


class DatabaseWrapper(PostgresDatabaseWrapper):
    ops_class = DatabaseOperations

    def close_if_health_check_failed(self):
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and not self.pool
            and _idle_socket_is_quiet(self.connection)
        ):
            self.health_check_done = True  # healthy as far as can be known without a round trip
            return
        super().close_if_health_check_failed()
