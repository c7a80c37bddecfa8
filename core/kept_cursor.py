"""One kept server-binding psycopg cursor per database connection, for the hottest statements (issue 15).

Django's `connection.cursor()` builds a new client-binding psycopg cursor for every statement and quotes each
parameter into the SQL text in Python: for a statement with many parameters (the access row's 15, a lead's
one-statement INSERT of ~100) that is about half of its CPU in this process. A kept cursor sends the parameters
as they are, bound by the server, and with `prepare` as a prepared statement: PostgreSQL parses and plans it once
per connection (about half of such an INSERT's server CPU). It is still Django's cursor wrapper around it, so the
connection's health check, reconnection, execute_wrappers, query log and error translation (and the
connection's replacement after an error) are as for any query. A new connection gets new cursors (prepared: the
first execution of each statement on it costs one more round trip).

Prepared statements need a direct connection or a pooler that keeps protocol-level prepared statements
(PgBouncer >= 1.21 with `max_prepared_statements`); settings.DB_PREPARED_STATEMENTS turns them off.
Only for statements whose parameters the server can type from context (INSERT ... VALUES, a column compared
with a parameter): the server infers a text parameter's type from its column, as the SQL literal would be read.
Used for the access row, the lead's replay read and INSERTs, and every core.compiled_query read. PostgreSQL only.

Callers write `%s` placeholders as for any Django cursor. The kept cursor is a psycopg raw cursor (`$1`
placeholders, the query text sent as given): the `%s` -> `$n` rewrite is done once per statement text here
(`server_placeholders`, cached), not by psycopg on each execution, which it does for a statement of more than 50
parameters (its own cache stops there): about 0.4 ms of CPU on every lead's INSERT (issue 15).
"""

from __future__ import annotations

import functools
import re

from django.conf import settings

# psycopg prepares a statement after this many executions unless told to: never, in practice; prepare=True now.
_NEVER_AUTOMATICALLY = 2**31 - 1
_CURSOR_CLASS = None


def kept_cursor(conn, *, prepare: bool | None = None):
    """The connection's kept cursor, wrapped by Django for this use. `prepare`: each statement prepared on its
    first execution; None: as settings.DB_PREPARED_STATEMENTS says (read on each call, so a test can switch it)."""
    if prepare is None:
        prepare = settings.DB_PREPARED_STATEMENTS
    conn.close_if_health_check_failed()
    conn.ensure_connection()
    raw = conn.connection
    kept = conn.__dict__.setdefault("_kept_cursors", {})
    entry = kept.get(prepare)
    if entry is None or entry[0] is not raw:
        entry = kept[prepare] = (raw, _cursor_class()(raw, prepare=prepare))
    return conn._prepare_cursor(entry[1])


def fetch_one(conn, sql: str, params: list):
    """Run a hot statement and return its first row (None if it returned none): on PostgreSQL on the kept cursor,
    elsewhere (SQLite, the embedded default) on a cursor of its own. Never closes the kept cursor."""
    return _fetch(conn, sql, params, lambda cursor: cursor.fetchone())


def fetch_all(conn, sql: str, params: list) -> list:
    """`fetch_one`, every row."""
    return _fetch(conn, sql, params, lambda cursor: cursor.fetchall())


def _fetch(conn, sql: str, params: list, read):
    if conn.vendor == "postgresql":
        cursor = kept_cursor(conn)
        cursor.execute(sql, params)
        return read(cursor)
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return read(cursor)


_PERCENT = re.compile(r"%(.)", re.DOTALL)


@functools.lru_cache(maxsize=256)
def server_placeholders(sql: str) -> str:
    """`sql` with psycopg's `%s` placeholders numbered as PostgreSQL's own (`$1`, `$2`...) and `%%` as `%`.
    Anything else after a `%` (a named or typed placeholder) is refused: the kept cursor takes `%s` only."""
    count = 0

    def number(match: re.Match) -> str:
        nonlocal count
        if match.group(1) == "%":
            return "%"
        if match.group(1) == "s":
            count += 1
            return f"${count}"
        raise ValueError(f"kept cursor: only %s placeholders are supported, not %{match.group(1)}")

    return _PERCENT.sub(number, sql)


def _cursor_class():
    global _CURSOR_CLASS  # noqa: PLW0603 (built once, on first use: psycopg only with PostgreSQL)
    if _CURSOR_CLASS is None:
        import psycopg

        class KeptCursor(psycopg.RawCursor):
            """Server-side binding of `%s` placeholders (numbered once per statement text: module docstring);
            with `prepare`, each statement prepared on its first execution. Django
            connects with psycopg's preparation off (prepare_threshold None, under which psycopg ignores even
            an explicit prepare=True); it is switched on for this cursor's statements only, so Django's own
            queries on the connection are neither counted nor prepared."""

            def __init__(self, connection, *, prepare: bool):
                super().__init__(connection)
                self.prepare_statements = prepare

            def execute(self, query, params=None, *, prepare=None, binary=None):
                query = server_placeholders(query)
                if not (self.prepare_statements if prepare is None else prepare):
                    return super().execute(query, params, binary=binary)
                conn = self.connection
                threshold = conn.prepare_threshold
                conn.prepare_threshold = _NEVER_AUTOMATICALLY
                try:
                    return super().execute(query, params, prepare=True, binary=binary)
                finally:
                    conn.prepare_threshold = threshold

        _CURSOR_CLASS = KeptCursor
    return _CURSOR_CLASS
