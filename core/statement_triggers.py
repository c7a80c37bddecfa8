"""PostgreSQL AFTER ... FOR EACH STATEMENT triggers over a write's transition tables (pgtrigger), for the
mechanisms that keep something in step with a table in the writer's own transaction: the LoveRescue caseload
token (integration.models) and the kept counts (core.kept_counts).

Each function sees the statement's rows as `new_rows` (INSERT, UPDATE) and `old_rows` (UPDATE, DELETE); a
TRUNCATE, which has no rows, gets a function of its own. Functions return NULL (an AFTER trigger's result is
ignored) and are SQL written in model code, never input.
"""

from __future__ import annotations

import pgtrigger

_EVENTS = (
    ("insert", pgtrigger.Insert, pgtrigger.Referencing(new="new_rows")),
    ("update", pgtrigger.Update, pgtrigger.Referencing(old="old_rows", new="new_rows")),
    ("delete", pgtrigger.Delete, pgtrigger.Referencing(old="old_rows")),
)


def statement_triggers(prefix: str, *, insert: str, update: str, delete: str, truncate: str) -> list[pgtrigger.Trigger]:
    """Triggers `<prefix>_insert`, `_update`, `_delete` and `_truncate`, each running its SQL and returning NULL."""
    functions = {"insert": insert, "update": update, "delete": delete}
    return [
        *(
            pgtrigger.Trigger(
                name=f"{prefix}_{event}",
                operation=operation,
                level=pgtrigger.Statement,
                when=pgtrigger.After,
                referencing=referencing,
                func=f"{functions[event]}; RETURN NULL;",
            )
            for event, operation, referencing in _EVENTS
        ),
        pgtrigger.Trigger(
            name=f"{prefix}_truncate",
            operation=pgtrigger.Truncate,
            level=pgtrigger.Statement,
            when=pgtrigger.After,
            func=f"{truncate}; RETURN NULL;",
        ),
    ]
