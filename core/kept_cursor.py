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
Only for statements whose parameters the server can type from context (INSERT ... VALUES): the server infers
a text parameter's type from its column, as the SQL literal would be read. PostgreSQL only.
"""

from __future__ import annotations

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
    if conn.vendor == "postgresql":
        cursor = kept_cursor(conn)
        cursor.execute(sql, params)
        return cursor.fetchone()
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _cursor_class():
    global _CURSOR_CLASS  # noqa: PLW0603 (built once, on first use: psycopg only with PostgreSQL)
    if _CURSOR_CLASS is None:
        import psycopg

        class KeptCursor(psycopg.Cursor):
            """Server-side binding; with `prepare`, each statement prepared on its first execution. Django
            connects with psycopg's preparation off (prepare_threshold None, under which psycopg ignores even
            an explicit prepare=True); it is switched on for this cursor's statements only, so Django's own
            queries on the connection are neither counted nor prepared."""

            def __init__(self, connection, *, prepare: bool):
                super().__init__(connection)
                self.prepare_statements = prepare

            def execute(self, query, params=None, *, prepare=None, binary=None):
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
