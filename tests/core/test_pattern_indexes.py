"""The indexes a lead's write paid for and no query used are gone (issue 15, core.pattern_indexes), and every
foreign key is still the first column of some index (a delete of the row it points at, or a lookup by it, never
scans the table)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from core.pattern_indexes import DropPatternIndexes

# The tables a CareOS lead (and every audited request) appends to.
HOT_TABLES = (
    "audit_accesslog",
    "audit_auditevent",
    "leads_careuser",
    "leads_lead",
    "leads_partnerpayment",
    "leads_partneruser",
    "messaging_outboundmessage",
)
DROPPED_FOREIGN_KEY_INDEXES = {
    "leads_lead_platform_id_3cf212c0",
    "leads_lead_user_id_bed2f947",
    "leads_partnerpayment_platform_id_2cf1acf9",
    "leads_partneruser_platform_id_f49925e4",
}
LAST_BEFORE = [("leads", "0006_lead_key_pair"), ("messaging", "0003_send_wakeup"), ("audit", "0004_access_log_reason")]


def _indexes(tables) -> dict[str, tuple[str, str]]:
    """index name -> (table, definition) on PostgreSQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, tablename, indexdef FROM pg_indexes WHERE tablename = ANY(%s)", [list(tables)]
        )
        return {name: (table, definition) for name, table, definition in cursor.fetchall()}


def _leading_columns() -> set[tuple[str, str]]:
    """(table, first column) of every index in the database, whatever its vendor."""
    leading = set()
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            for details in connection.introspection.get_constraints(cursor, table).values():
                if details["index"] or details["unique"] or details["primary_key"]:
                    if details["columns"]:
                        leading.add((table, details["columns"][0]))
    return leading


def test_the_hot_tables_have_no_pattern_index_and_no_redundant_foreign_key_index(require_postgres):
    indexes = _indexes(HOT_TABLES)
    assert [name for name, (_table, definition) in indexes.items() if "pattern_ops" in definition] == []
    assert DROPPED_FOREIGN_KEY_INDEXES.isdisjoint(indexes)
    # What serves those lookups now: a composite or unique index with the same first column.
    assert {"leads_one_per_conversation", "leads_lead_user_created", "leads_payment_due"} <= set(indexes)
    assert "leads_one_id_per_partner_person" in indexes


@pytest.mark.django_db
def test_every_foreign_key_is_the_first_column_of_an_index():
    leading = _leading_columns()
    unindexed = [
        f"{model._meta.label}.{field.name}"
        for model in apps.get_models()
        if model._meta.managed and not model._meta.proxy
        for field in model._meta.concrete_fields
        if field.is_relation and (model._meta.db_table, field.column) not in leading
    ]
    assert unindexed == []


@pytest.mark.django_db(transaction=True)
def test_the_migrations_drop_the_indexes_and_give_them_back_when_reversed(require_postgres):
    def pattern_indexes() -> set[str]:
        return {name for name, (_t, definition) in _indexes(HOT_TABLES).items() if "pattern_ops" in definition}

    try:
        MigrationExecutor(connection).migrate(LAST_BEFORE)
        restored = _indexes(HOT_TABLES)
        assert DROPPED_FOREIGN_KEY_INDEXES <= set(restored)
        assert pattern_indexes() == {
            "audit_accesslog_actor_id_0f94aef1_like",
            "audit_accesslog_api_5cae7e1a_like",
            "audit_accesslog_organization_id_8ba4dc37_like",
            "audit_auditevent_action_2131bb77_like",
            "audit_auditevent_actor_id_270bb4b7_like",
            "audit_auditevent_organization_id_4b1fe3b9_like",
            "audit_auditevent_subject_id_1173988d_like",
            "leads_careuser_phone_index_023fc1ae_like",
            "leads_careuser_public_id_f4ad7b65_like",
            "leads_lead_public_id_7e324f9e_like",
            "leads_partneruser_public_id_7679f02c_like",
            "messaging_outboundmessage_provider_message_id_26bd4f86_like",
            "messaging_outboundmessage_public_id_e762cb23_like",
            "messaging_outboundmessage_purpose_8d3c0298_like",
            "messaging_outboundmessage_recipient_index_3ec4449a_like",
        }
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert pattern_indexes() == set()
    assert DROPPED_FOREIGN_KEY_INDEXES.isdisjoint(_indexes(HOT_TABLES))


def test_a_field_without_an_index_is_refused():
    from django.db.migrations.state import ProjectState

    class Editor:
        connection = type("C", (), {"vendor": "postgresql"})()

    operation = DropPatternIndexes(model_name="lead", fields=["source_conversation_id"])
    state = ProjectState.from_apps(apps)
    with pytest.raises(ValueError, match="no index"):
        operation.database_forwards("leads", Editor(), state, state)


def test_elsewhere_than_postgresql_it_does_nothing():
    class Editor:
        connection = type("C", (), {"vendor": "sqlite"})()

        def execute(self, statement):
            raise AssertionError(statement)

    DropPatternIndexes(model_name="lead", fields=["public_id"]).database_forwards("leads", Editor(), None, None)
