"""Print or apply the grants of the database roles (core/db_roles.py; docs/operations.md "Database roles").

`migrate` applies them already when DATABASE_APP_ROLE is set; this is for an operator checking or
re-applying them by hand, connected as the owner: `manage.py db_roles --app-role platform_app --apply`.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from core.db_roles import apply_grants, grant_statements, role_problems


class Command(BaseCommand):
    help = "Print (default) or --apply the app/purge role grants; --check the connected role is a safe app role."

    def add_arguments(self, parser):
        parser.add_argument("--app-role", default=settings.DATABASE_APP_ROLE)
        parser.add_argument("--purge-role", default=settings.DATABASE_PURGE_ROLE)
        parser.add_argument("--database", default="default")
        parser.add_argument("--apply", action="store_true", help="run the statements (as the owner)")
        parser.add_argument("--check", action="store_true", help="fail if the connected role is unsafe for the app")

    def handle(self, *args, app_role, purge_role, database, apply, check, **options):
        connection = connections[database]
        if connection.vendor != "postgresql":
            raise CommandError("Database roles apply to PostgreSQL only.")
        if check:
            problems = role_problems(connection)
            for problem in problems:
                self.stderr.write(problem)
            if problems:
                raise CommandError("The connected role is not a safe application role.")
            self.stdout.write("ok: the connected role owns nothing and is not a superuser")
            return
        if not app_role:
            raise CommandError("Name the app role: --app-role or DATABASE_APP_ROLE.")
        if apply:
            statements = apply_grants(connection, app_role=app_role, purge_role=purge_role)
        else:
            statements = grant_statements(connection, app_role=app_role, purge_role=purge_role)
        for statement in statements:
            self.stdout.write(statement + ";")
