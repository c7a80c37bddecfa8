"""Read-only admin for the audit tables, with a CSV export that is itself audited.

Nobody adds, changes or deletes audit rows here, superusers included (the database refuses it anyway on
PostgreSQL). Filters that would need a DISTINCT scan of a table holding years of requests are given fixed
choices instead (API names, actor types, status classes); the date filter runs no query.
"""

from __future__ import annotations

import csv
import json

from django.contrib import admin
from django.db import transaction
from django.http import StreamingHttpResponse

from audit.models import AccessLog, AuditEvent
from audit.selectors import audit_export_rows, audit_export_snapshot
from audit.services import audit_event_record
from core.actors import Actor, ActorType
from core.admin import AuditedViewAdminMixin, ReadOnlyAdminMixin
from core.apis import FAMILIES
from core.time import iso_utc, utc_now

# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Changelist parameters that are navigation, not a choice of rows.
NON_FILTER_PARAMS = {"p", "o", "_changelist_filters"}


def csv_safe(value) -> str | int:
    """A cell as text a spreadsheet shows and never evaluates; numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return value
    if hasattr(value, "tzinfo"):  # datetime
        return iso_utc(value)
    if isinstance(value, list | dict):
        value = " ".join(map(str, value)) if isinstance(value, list) else json.dumps(value, sort_keys=True)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


class _Echo:
    """csv.writer target that hands each written line back instead of buffering it."""

    def write(self, value: str) -> str:
        return value


class ApiFilter(admin.SimpleListFilter):
    title = "API"
    parameter_name = "api"

    def lookups(self, request, model_admin):
        return [(family.name, family.tag) for family in FAMILIES]

    def queryset(self, request, queryset):
        return queryset.filter(api=self.value()) if self.value() else queryset


class ActorTypeFilter(admin.SimpleListFilter):
    title = "actor type"
    parameter_name = "actor_type"

    def lookups(self, request, model_admin):
        return ActorType.choices

    def queryset(self, request, queryset):
        return queryset.filter(actor_type=self.value()) if self.value() else queryset


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"
    CODES = (400, 401, 403, 404, 405, 415, 429, 500)

    def lookups(self, request, model_admin):
        classes = [(f"{n}xx", f"{n}xx") for n in (2, 3, 4, 5)]
        return classes + [(str(code), str(code)) for code in self.CODES]

    def queryset(self, request, queryset):
        value = self.value() or ""
        if len(value) == 3 and value.endswith("xx") and value[0] in "2345":
            low = int(value[0]) * 100
            return queryset.filter(status_code__gte=low, status_code__lt=low + 100)
        if value.isascii() and value.isdigit():
            return queryset.filter(status_code=int(value))
        return queryset


class ReadOnlyAuditAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    export_fields: tuple[str, ...] = ()
    actions = ["export_csv"]
    list_per_page = 100
    show_full_result_count = False  # no second COUNT(*) over the whole table
    ordering = ["-created_at", "-pk"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    @admin.display(description="actor")
    def actor(self, obj) -> str:
        return f"{obj.actor_type}:{obj.actor_id}" if obj.actor_id else obj.actor_type

    @admin.action(description="Export CSV (selected rows, or all matching with “select all”)", permissions=["view"])
    def export_csv(self, request, queryset):
        snapshot = audit_export_snapshot(queryset)
        filters = {
            key: [value[:200] for value in values]
            for key, values in request.GET.lists()
            if key not in NON_FILTER_PARAMS
        }
        with transaction.atomic():
            audit_event_record(
                action="audit.export",
                actor=Actor.user(request.user),
                metadata={
                    "model": self.model._meta.label_lower,
                    "rows": snapshot.rows,
                    "filters": filters,
                    "all_matching": request.POST.get("select_across") == "1",
                },
            )
        writer = csv.writer(_Echo())
        fields = self.export_fields

        def lines():
            yield writer.writerow(fields)
            for row in audit_export_rows(snapshot, fields):
                yield writer.writerow([csv_safe(value) for value in row])

        stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{self.model._meta.model_name}-{stamp}.csv"'
        return response


@admin.register(AccessLog)
class AccessLogAdmin(ReadOnlyAuditAdmin):
    list_display = ["created_at", "api", "actor", "organization_id", "method", "path", "subjects", "status_code"]
    list_filter = [ApiFilter, ActorTypeFilter, StatusFilter, ("created_at", admin.DateFieldListFilter)]
    # Exact matches use the indexes; subject ids match inside "client:<uuid>" entries.
    search_fields = [
        "actor_id__exact",
        "on_behalf_of__exact",
        "organization_id__exact",
        "request_id__exact",
        "path__startswith",
        "subject_ids__icontains",
    ]
    search_help_text = (
        "Exact actor id, on-behalf-of (therapist:<id>), organization id or request id; path prefix; "
        "or part of a subject id."
    )
    export_fields = (
        "created_at",
        "api",
        "actor_type",
        "actor_id",
        "organization_id",
        "method",
        "path",
        "subject_ids",
        "status_code",
        "ip",
        "user_agent",
        "request_id",
        "duration_ms",
        "on_behalf_of",  # last: columns exported before it keep their positions
    )

    @admin.display(description="subjects")
    def subjects(self, obj) -> str:
        ids = obj.subject_ids or []
        shown = ", ".join(map(str, ids[:3]))
        return f"{shown} (+{len(ids) - 3})" if len(ids) > 3 else shown


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAuditAdmin):
    list_display = ["created_at", "action", "actor", "organization_id", "subject", "request_id"]
    list_filter = ["action", ActorTypeFilter, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["actor_id__exact", "organization_id__exact", "subject_id__exact", "request_id__exact"]
    search_help_text = "Exact actor id, organization id, subject id or request id."
    export_fields = (
        "created_at",
        "action",
        "actor_type",
        "actor_id",
        "organization_id",
        "subject_type",
        "subject_id",
        "metadata",
        "request_id",
    )

    @admin.display(description="subject")
    def subject(self, obj) -> str:
        return f"{obj.subject_type}:{obj.subject_id}" if obj.subject_id else ""
