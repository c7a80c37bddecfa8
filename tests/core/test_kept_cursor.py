"""core.kept_cursor: `%s` statements numbered for the raw server-binding cursor, and run on it."""

from __future__ import annotations

import pytest
from django.db import connection

from core.kept_cursor import fetch_all, fetch_one, server_placeholders


def test_placeholders_are_numbered_in_order():
    converted = server_placeholders("INSERT INTO t (a, b, c) VALUES (%s, %s, %s)")
    assert converted == "INSERT INTO t (a, b, c) VALUES ($1, $2, $3)"


def test_a_doubled_percent_is_a_literal_percent_and_not_counted():
    assert server_placeholders("SELECT %s WHERE x LIKE 'a%%' AND y = %s") == "SELECT $1 WHERE x LIKE 'a%' AND y = $2"


def test_more_than_fifty_placeholders():
    # psycopg's own conversion cache stops at 50 parameters: the lead's INSERT has about 100.
    converted = server_placeholders(", ".join(["%s"] * 120))
    assert converted == ", ".join(f"${number}" for number in range(1, 121))


@pytest.mark.parametrize("sql", ["SELECT %(name)s", "SELECT %b", "SELECT %d"])
def test_other_placeholders_are_refused(sql):
    with pytest.raises(ValueError, match="only %s placeholders"):
        server_placeholders(sql)


@pytest.mark.django_db
def test_fetch_one_runs_a_percent_s_statement_on_any_database():
    assert fetch_one(connection, "SELECT %s, %s || '%%'", [7, "x"]) == (7, "x%")


@pytest.mark.django_db
def test_fetch_all_returns_every_row_on_any_database():
    rows = fetch_all(connection, "SELECT %s UNION ALL SELECT %s ORDER BY 1", [2, 1])
    assert [tuple(row) for row in rows] == [(1,), (2,)]
    assert fetch_all(connection, "SELECT 1 WHERE 1 = %s", [0]) == []
