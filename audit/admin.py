"""Read-only admin for the audit tables, with a CSV export that is itself audited.

Nobody adds, changes or deletes audit rows here, superusers included (the database refuses it anyway on
PostgreSQL). Filters that would need a DISTINCT scan of a table holding years of requests are given fixed
choices instead (API names, actor types, status classes); the date filters run no query. Actors are shown
by name (staff by username, partners and platforms by name, with links), resolved for the whole page at
once; a search term is also matched against those names. "Export CSV" exports exactly the rows the
current filters and search select, all of them, streamed.
"""

from __future__ import annotations

import csv
import json
from datetime import date, datetime, time, timedelta

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, StreamingHttpResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from audit.models import AccessLog, AuditEvent
from audit.selectors import NamedActor, actor_names, actors_named, audit_export_rows, audit_export_snapshot
from audit.services import audit_event_record
from core.actors import ActorType
from core.admin import AuditedViewAdminMixin, ReadOnlyAdminMixin, admin_actor, admin_datetime
from core.apis import FAMILIES
from core.time import iso_utc, utc_now

# A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Changelist parameters that are navigation, not a choice of rows.
NON_FILTER_PARAMS = {"p", "o", "e", "_changelist_filters"}
# Actor types whose ids are the public ids of a row staff can open (their names are protected data).
LINKED_BY_ID = {ActorType.CLIENT: "integration.Client", ActorType.THERAPIST: "integration.Therapist"}


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


class CreatedBetweenFilter(admin.ListFilter):
    """From/to dates (inclusive, in the admin's time zone) on `created_at`: two date inputs, no query."""

    title = "date range"
    template = "admin/audit/date_range_filter.html"
    FROM, TO = "created_from", "created_to"

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        for name in (self.FROM, self.TO):
            value = params.pop(name, [""])[-1].strip()
            if value:
                self.used_parameters[name] = value
        try:
            self.start = self._day(self.FROM)
            self.end = self._day(self.TO)
        except ValueError as error:
            # Refused rather than ignored: a bad date must not widen what a page or an export selects.
            raise IncorrectLookupParameters(error) from None

    def _day(self, name: str) -> date | None:
        value = self.used_parameters.get(name)
        return date.fromisoformat(value) if value else None

    @staticmethod
    def _midnight(day: date) -> datetime:
        return timezone.make_aware(datetime.combine(day, time.min))

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return [self.FROM, self.TO]

    def queryset(self, request, queryset):
        if self.start:
            queryset = queryset.filter(created_at__gte=self._midnight(self.start))
        if self.end:
            queryset = queryset.filter(created_at__lt=self._midnight(self.end + timedelta(days=1)))
        return queryset

    def choices(self, changelist):
        # The form re-sends the other filters and the search as hidden fields; a new range starts at page 1.
        kept = [
            (name, value)
            for name, values in changelist.filter_params.items()
            if name not in self.expected_parameters()
            for value in values
        ]
        yield {
            "hidden": kept,
            "date_from": self.used_parameters.get(self.FROM, ""),
            "date_to": self.used_parameters.get(self.TO, ""),
            "selected": bool(self.used_parameters),
            "clear_query_string": changelist.get_query_string(remove=self.expected_parameters()),
        }


class AuditChangeList(ChangeList):
    """Names the actors of the page's rows in one query per actor type, not one per row."""

    def get_results(self, request):
        super().get_results(request)
        self.result_list = list(self.result_list)
        names = actor_names((row.actor_type, row.actor_id) for row in self.result_list)
        for row in self.result_list:
            row.named_actor = names.get((row.actor_type, row.actor_id))


def _change_url(model_label_or_model, pk) -> str | None:
    """The admin page of that row, when its model has one."""
    model = apps.get_model(model_label_or_model) if isinstance(model_label_or_model, str) else model_label_or_model
    if not admin.site.is_registered(model):
        return None
    try:
        return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[pk])
    except NoReverseMatch:
        return None


def actor_html(actor_type: str, actor_id: str, named: NamedActor | None, organization_id: str = "") -> str:
    """Who acted, as staff read it: a name (linked) for staff, partners and platforms; the public id
    (linked) for clients and therapists; the task's name for the system. Then the kind of actor and the
    organization it acted in, on their own lines."""
    html = _actor_name_html(actor_type, actor_id, named)
    if organization_id:
        html = format_html('{}<br><span class="quiet">{}</span>', html, organization_id)
    return html


def _actor_name_html(actor_type: str, actor_id: str, named: NamedActor | None) -> str:
    kind = actor_type.replace("_", " ") or "unknown"  # short: the filter shows the full labels
    if named is not None:
        shown, url = named.name, _change_url(named.model, named.pk)
    elif actor_type in LINKED_BY_ID and actor_id:
        shown, url = actor_id, _change_url(LINKED_BY_ID[actor_type], actor_id)
    else:
        shown, url = actor_id, None
    if not shown:
        return format_html("{}", kind)
    if url:
        return format_html('<a href="{}">{}</a><br><span class="quiet">{}</span>', url, shown, kind)
    return format_html('{}<br><span class="quiet">{}</span>', shown, kind)


class ReadOnlyAuditAdmin(AuditedViewAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    export_fields: tuple[str, ...] = ()
    actions = ["export_csv"]
    list_per_page = 100
    show_full_result_count = False  # no second COUNT(*) over the whole table
    show_facets = admin.ShowFacets.NEVER  # facet counts would scan the table once per filter
    ordering = ["-created_at", "-pk"]
    change_list_template = "admin/audit/change_list.html"

    def get_changelist(self, request, **kwargs):
        return AuditChangeList

    def get_readonly_fields(self, request, obj=None):
        return ["created", "actor", *(field.name for field in self.model._meta.fields if field.name != "created_at")]

    def get_urls(self):
        opts = self.model._meta
        export = path(
            "export/",
            self.admin_site.admin_view(self.export_view),
            name=f"{opts.app_label}_{opts.model_name}_export",
        )
        return [export, *super().get_urls()]

    def get_search_results(self, request, queryset, search_term):
        """Django's search, or rows whose actor has that name (a partner's or platform's name, a username)."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            results = results | queryset.filter(actors_named(search_term))
        return results, may_have_duplicates

    @admin.display(description="time", ordering="created_at")
    def created(self, obj) -> str:
        return admin_datetime(obj.created_at)

    @admin.display(description="time", ordering="created_at")
    def created_column(self, obj) -> str:
        """admin_datetime on two lines (date, then time and zone): a narrow list column."""
        day, _, clock = admin_datetime(obj.created_at).partition(" ")
        return format_html("{}<br>{}", day, clock)

    @admin.display(description="actor (organization)")
    def actor(self, obj) -> str:
        named = getattr(obj, "named_actor", ...)
        if named is ...:  # a single row's page: not resolved with a list
            named = actor_names([(obj.actor_type, obj.actor_id)]).get((obj.actor_type, obj.actor_id))
        return actor_html(obj.actor_type, obj.actor_id, named, obj.organization_id)

    @admin.action(description="Export CSV (selected rows, or all matching with “select all”)", permissions=["view"])
    def export_csv(self, request, queryset):
        return self._csv_response(request, queryset, all_matching=request.POST.get("select_across") == "1")

    def export_view(self, request):
        """POST (the changelist's "Export CSV" button): every row the page's filters and search select."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            self.message_user(request, "Those filters are not valid; nothing was exported.", messages.ERROR)
            opts = self.model._meta
            return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        return self._csv_response(request, changelist.get_queryset(request), all_matching=True)

    def _csv_response(self, request, queryset, *, all_matching: bool) -> StreamingHttpResponse:
        snapshot = audit_export_snapshot(queryset)
        filters = {
            key: [value[:200] for value in values]
            for key, values in request.GET.lists()
            if key not in NON_FILTER_PARAMS
        }
        with transaction.atomic():
            audit_event_record(
                action="audit.export",
                actor=admin_actor(request),
                metadata={
                    "model": self.model._meta.label_lower,
                    "rows": snapshot.rows,
                    "filters": filters,
                    "all_matching": all_matching,
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


DATE_FILTERS = [CreatedBetweenFilter, ("created_at", admin.DateFieldListFilter)]
NAME_SEARCH_HELP = "a partner's or platform's name (or part of it), a staff username"


@admin.register(AccessLog)
class AccessLogAdmin(ReadOnlyAuditAdmin):
    # Combined cells (method, path and API; actor and organization; status and reason): every column
    # fits at 1,400 px with the navigation open.
    list_display = ["created_column", "actor", "method_and_path", "subjects", "status", "ip"]
    list_filter = [ApiFilter, ActorTypeFilter, StatusFilter, *DATE_FILTERS]
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
        f"part of a subject id; or {NAME_SEARCH_HELP}."
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
        "on_behalf_of",  # after the first columns: those keep their positions
        "reason",
    )

    @admin.display(description="request (API)", ordering="path")
    def method_and_path(self, obj) -> str:
        return format_html('{} {}<br><span class="quiet">{}</span>', obj.method, obj.path, obj.api)

    @admin.display(description="status", ordering="status_code")
    def status(self, obj) -> str:
        """The status, and for a refusal the reason code it was answered with."""
        if obj.reason:
            return format_html('{}<br><span class="quiet">{}</span>', obj.status_code, obj.reason)
        return str(obj.status_code)

    @admin.display(description="subjects")
    def subjects(self, obj) -> str:
        ids = obj.subject_ids or []
        shown = ", ".join(map(str, ids[:3]))
        return f"{shown} (+{len(ids) - 3})" if len(ids) > 3 else shown


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAuditAdmin):
    list_display = ["created_column", "action", "actor", "subject", "request_id"]
    list_filter = ["action", ActorTypeFilter, *DATE_FILTERS]
    search_fields = ["actor_id__exact", "organization_id__exact", "subject_id__exact", "request_id__exact"]
    search_help_text = f"Exact actor id, organization id, subject id or request id; or {NAME_SEARCH_HELP}."
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
