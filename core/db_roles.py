"""PostgreSQL roles: who may do what to which table (docs/operations.md, "Database roles").

Three roles, so that nothing the application process can do empties the audit trail:
- the OWNER owns the schema and every table and runs migrations (MIGRATION credentials, used by the
  one-shot migrate step only);
- the APP role (DATABASE_URL of web and workers) owns nothing: SELECT/INSERT/UPDATE/DELETE on ordinary
  tables, only SELECT/INSERT on append-only tables. Without ownership it cannot TRUNCATE, ALTER TABLE ...
  DISABLE TRIGGER or DROP, and without superuser it cannot SET session_replication_role;
- the PURGE role (AUDIT_PURGE_DATABASE_URL, the retention purge only) may SELECT and DELETE the
  append-only tables; their triggers still refuse any row younger than six years.

`grant_statements` is the single source of the grants. The audit app applies them after every `migrate`
(post_migrate), so a table added by a later migration is covered the moment it exists; the `db_roles`
command prints them or applies them by hand.
"""

from __future__ import annotations

from django.apps import apps
from django.db.backends.base.base import BaseDatabaseWrapper


def append_only_tables() -> list[str]:
    """Tables of models that declare `APPEND_ONLY = True` (the audit trail)."""
    return sorted(m._meta.db_table for m in apps.get_models() if getattr(m, "APPEND_ONLY", False))


def grant_statements(connection: BaseDatabaseWrapper, *, app_role: str, purge_role: str = "") -> list[str]:
    """Idempotent GRANT/REVOKE statements for the schema as it is now; run by the owner (or a superuser)."""
    quote = connection.ops.quote_name
    app = quote(app_role)
    protected = [quote(table) for table in append_only_tables()]
    statements = [
        # Only the owner creates objects: nobody else may add a table (or a trigger function) to the schema.
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA public TO {app}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app}",
        # TRUNCATE, REFERENCES and TRIGGER are never granted to the app on any table.
        f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM {app}",
    ]
    if protected:
        statements.append(f"REVOKE UPDATE, DELETE ON {', '.join(protected)} FROM {app}")
    if purge_role:
        purge = quote(purge_role)
        statements.append(f"GRANT USAGE ON SCHEMA public TO {purge}")
        if protected:
            statements.append(f"GRANT SELECT, DELETE ON {', '.join(protected)} TO {purge}")
        # Nothing else: the purge's own audit event is written by the app role (audit.services).
    return statements


def apply_grants(connection: BaseDatabaseWrapper, *, app_role: str, purge_role: str = "") -> list[str]:
    statements = grant_statements(connection, app_role=app_role, purge_role=purge_role)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    return statements


def role_problems(connection: BaseDatabaseWrapper) -> list[str]:
    """Why the connected role is not a safe app role: a superuser, or the owner of any table."""
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolbypassrls, "
            "(SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user) "
            "FROM pg_roles WHERE rolname = current_user"
        )
        superuser, bypass_rls, owned = cursor.fetchone()
    problems = []
    if superuser:
        problems.append("the application connects as a PostgreSQL superuser")
    if bypass_rls:
        problems.append("the application role bypasses row-level security")
    if owned:
        problems.append(f"the application role owns {owned} table(s): it could TRUNCATE or disable triggers")
    return problems
