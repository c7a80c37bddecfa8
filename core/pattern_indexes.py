"""A migration operation that drops the `_like` indexes Django adds on PostgreSQL, for columns nothing searches by
prefix.

On PostgreSQL, Django gives every indexed or unique `CharField`/`TextField` (and a foreign key to one) a second
B-tree, `<index>_like`, with the `varchar_pattern_ops`/`text_pattern_ops` operator class: it serves only
`LIKE 'abc%'` (`__startswith`, `__contains` cannot use it) outside the C locale. Equality, ordering and `IN` use
the plain index. On the tables a request appends to (audit events, the access log, outbox messages, a lead's
rows) each such index is one more index entry and its WAL on every INSERT, for a query that is never made
(issue 15, docs/decisions.md "Indexes a write pays for and no query uses").

The operation changes no model state: Django's state has no notion of these indexes (it derives them from the
field), so `makemigrations` stays clean. A later `AlterField` that makes a column unique or indexed again may
bring its `_like` index back; drop it again then. Elsewhere than PostgreSQL there are no such indexes and the
operation does nothing. Reversing it creates each index again, as Django would.
"""

from __future__ import annotations

from django.db import migrations


class DropPatternIndexes(migrations.operations.base.Operation):
    """Drop the `_like` index of each of `fields` (names) of the model `model_name` of this migration's app."""

    reduces_to_sql = True

    def __init__(self, model_name: str, fields: list[str]) -> None:
        self.model_name = model_name
        self.fields = list(fields)

    def deconstruct(self):
        return self.__class__.__qualname__, [], {"model_name": self.model_name, "fields": self.fields}

    def state_forwards(self, app_label, state):
        pass  # no model state: Django's state derives `_like` indexes from the fields

    def _statements(self, app_label, schema_editor, from_state, *, create: bool) -> list[str]:
        # The schema editor's own (private) naming and DDL, so the names are exactly Django's; Django is pinned
        # and tests/core/test_pattern_indexes.py checks every name both ways.
        if schema_editor.connection.vendor != "postgresql":
            return []
        model = from_state.apps.get_model(app_label, self.model_name)
        statements = []
        for name in self.fields:
            field = model._meta.get_field(name)
            if not (field.db_index or field.unique):
                raise ValueError(f"{self.model_name}.{name} has no index, so no _like index to drop.")
            if create:
                statement = schema_editor._create_like_index_sql(model, field)
                if statement is not None:
                    statements.append(str(statement))
            else:
                index = schema_editor._create_index_name(model._meta.db_table, [field.column], suffix="_like")
                statements.append(f"DROP INDEX IF EXISTS {schema_editor.quote_name(index)}")
        return statements

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        for statement in self._statements(app_label, schema_editor, from_state, create=False):
            schema_editor.execute(statement)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        for statement in self._statements(app_label, schema_editor, to_state, create=True):
            schema_editor.execute(statement)

    def describe(self):
        return f"Drop the _like (pattern) indexes of {self.model_name}: {', '.join(self.fields)}"

    @property
    def migration_name_fragment(self):
        return f"drop_pattern_indexes_{self.model_name.lower()}"
