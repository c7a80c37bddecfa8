from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html

from core.actors import Actor
from core.auditing import audit_event
from core.models import KeyRotation

_SHOWN_ONCE = """{% extends "admin/base_site.html" %}
{% block content %}
<p><strong>Copy these values now: they are shown once and cannot be displayed again.</strong></p>
<p><a href="{{ back_url }}">Back to {{ back_label }}</a></p>
{% endblock %}"""


def adopt_saved(obj, saved) -> None:
    """After a service wrote the row, make the admin's form instance that row (Django's change message and
    redirect read `obj`): its primary key, no longer "adding", fields as stored."""
    obj.pk = saved.pk
    obj._state.adding = False
    obj.refresh_from_db()


def admin_datetime(value) -> str:
    """A timestamp as staff read it in messages and read-only fields: local time to the second, with the
    zone ("2026-11-30 14:17:29 UTC"), never Python's "+00:00.468527"."""
    if value is None:
        return "-"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


# Narrow list cells, so lists fit a 1,400 px window beside the filters: the full value is on hover or on
# the row's page (and is what search takes).
SHORT_ID_CHARS = 12
SHORT_TEXT_CHARS = 14


def admin_date(value) -> str:
    """The day of a timestamp (staff's zone) for narrow list columns; `admin_datetime` on the row's page."""
    return admin_datetime(value)[:10] if value is not None else "-"


def admin_minute(value) -> str:
    """A timestamp to the minute, without the zone, for narrow list columns."""
    return admin_datetime(value)[:16] if value is not None else "-"


def short_text(text, length: int = SHORT_TEXT_CHARS) -> str:
    """`text` cut to `length` characters with the full text on hover (left whole if barely longer)."""
    text = str(text)
    if len(text) <= length + 1:
        return text
    return format_html('<span title="{}">{}…</span>', text, text[:length])


def short_id(public_id: str) -> str:
    """`lead_01J9ZK…` with the full id on hover."""
    return short_text(public_id, SHORT_ID_CHARS)


def admin_link(obj, text: str | None = None) -> str:
    """`obj` named (its `name`, a user's username, else str()) and linked to its admin page; "-" for none."""
    if obj is None:
        return "-"
    text = text or getattr(obj, "name", None) or getattr(obj, "username", None) or str(obj)
    opts = obj._meta
    try:
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    except NoReverseMatch:  # a model without an admin page
        return text
    return format_html('<a href="{}">{}</a>', url, text)


def admin_actor(request) -> Actor:
    """The `actor` of a service call made by a staff user in the admin."""
    return Actor.user(request.user)


def shown_once_response(admin_site, request, *, title: str, back_url_name: str, back_label: str) -> HttpResponse:
    """Render the queued messages (a new secret, an API key) on this very response, consuming them,
    instead of redirecting: a redirect would keep the secret in the session or a cookie until the next
    page. `no-store` keeps it out of caches and the back button."""
    template = engines["django"].from_string(_SHOWN_ONCE)
    context = {
        **admin_site.each_context(request),
        "title": title,
        "back_url": reverse(back_url_name),
        "back_label": back_label,
    }
    response = HttpResponse(template.render(context, request))
    response["Cache-Control"] = "no-store"
    return response


def audit_admin_view(request, model, objects, *, view: str, **metadata) -> None:
    """Record that the staff user was shown these rows of `model` (one event, in its own transaction).
    Ids and flags only: never field values, never the search term (it may be a phone number)."""
    ids = [str(obj.pk) for obj in objects]
    single = view in ("change", "history")  # one record's page; else a list (list, autocomplete)
    if single:
        public_id = getattr(objects[0], "public_id", None)
        if public_id:
            metadata["public_id"] = str(public_id)
    else:
        metadata["ids"] = ids
    with transaction.atomic():
        audit_event(
            action="admin.record_viewed" if single else "admin.records_listed",
            actor=admin_actor(request),
            subject_type=model._meta.label_lower,
            subject_id=ids[0] if single else "",
            metadata={"view": view, "method": request.method, **metadata},
        )


@dataclass(frozen=True)
class ConfirmItem:
    """One row an action is about to change, and what stops working (and for whom) once it has."""

    label: str
    consequences: tuple[str, ...] = ()


def confirm_action(
    modeladmin,
    request,
    objects: Iterable,
    *,
    title: str,
    question: str,
    items: Iterable[ConfirmItem],
    confirm_label: str,
    perform: Callable[[], HttpResponse | None],
    typed_confirmation: str | None = None,
    typed_label: str = "",
    warning: str = "",
    form_action: str = "",
    action: str | None = None,
):
    """The confirmation step of an irreversible or partner-breaking admin action (Django's
    delete_selected pattern): the first POST (from the action menu or an object page's button) renders a
    page listing each row and its consequences; only its own "yes" POST (`post=yes`) runs `perform`.
    With `typed_confirmation`, staff must also type that exact text (a fingerprint, a name); a wrong text
    shows the page again and changes nothing. Returns `perform()`'s result or the page.

    `form_action`: where the page posts back ("" = the same URL, i.e. the changelist for an action);
    `action`: the action's name to post back (defaults to the request's own)."""
    objects = list(objects)
    typed_error = ""
    if request.method == "POST" and request.POST.get("post") == "yes":
        typed = request.POST.get("confirmation", "").strip()
        if typed_confirmation is None or typed == typed_confirmation:
            return perform()
        typed_error = "That does not match, so nothing was changed. Type it exactly as shown."
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": opts,
        "title": title,
        "question": question,
        "warning": warning,
        "items": list(items),
        "confirm_label": confirm_label,
        "selected": [obj.pk for obj in objects],
        "action": action if action is not None else request.POST.get("action", ""),
        "form_action": form_action,
        "typed_label": typed_label if typed_confirmation is not None else "",
        "typed_error": typed_error,
        "back_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
    }
    request.current_app = modeladmin.admin_site.name
    return TemplateResponse(request, "admin/confirm_action.html", context)


class AuditedViewAdminMixin:
    """For admins of records holding protected data (decrypted text, phones, clinical reports, consent,
    partner credentials): every page that shows such records is on the audit trail, who (the staff
    user), what (model and ids) and when, written before the page leaves; if the row cannot be written
    the page is not shown. `admin.record_viewed`: a change/detail page (GET, or a form shown again) and
    its history page; `admin.records_listed`: a list page (or a raw-id popup), with the ids it shows.
    Custom views call `audit_admin_view` themselves."""

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        response = super().render_change_form(request, context, add=add, change=change, form_url=form_url, obj=obj)
        if obj is not None and not add:  # an add page shows no stored record
            audit_admin_view(request, self.model, [obj], view="change")
        return response

    def history_view(self, request, object_id, extra_context=None):
        response = super().history_view(request, object_id, extra_context)
        obj = getattr(response, "context_data", {}).get("object")
        if obj is not None:
            audit_admin_view(request, self.model, [obj], view="history")
        return response

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", None) and response.context_data.get("cl")
        if changelist is not None:  # not an action's own response or a redirect
            # The page's rows: evaluating the page's queryset here fills the cache the template reads.
            rows = list(changelist.result_list)
            audit_admin_view(request, self.model, rows, view="list", searched=bool(changelist.query))
        return response


class ActionsWithoutSelectionMixin:
    """Actions named in `actions_without_selection` do not act on rows (run payouts now, create a key
    pair): they run with nothing ticked, where Django would answer "Items must be selected". The action
    gets an empty queryset; its response is returned, else the list is shown again. Each action's own
    `permissions` still apply (get_actions filters them)."""

    actions_without_selection: tuple[str, ...] = ()

    def changelist_view(self, request, extra_context=None):
        action = request.POST.get("action", "") if request.method == "POST" else ""
        if action in self.actions_without_selection and not request.POST.getlist(ACTION_CHECKBOX_NAME):
            actions = self.get_actions(request)
            if action in actions:
                response = actions[action][0](self, request, self.get_queryset(request).none())
                if isinstance(response, HttpResponseBase):
                    return response
                return HttpResponseRedirect(request.get_full_path())
        return super().changelist_view(request, extra_context)


class ReadOnlyAdminMixin:
    """For rows only code may write (audit, rotation records): nobody adds, changes or deletes them
    in the admin, superusers included; the change page shows every field read-only."""

    def has_add_permission(self, request, obj=None):  # obj: inlines pass the parent
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(KeyRotation)
class KeyRotationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: rows are written only by `manage.py rotate_encryption_keys`."""

    list_display = ("id", "primary_key_fingerprint", "started_at", "completed_at", "rows_rotated")
    list_filter = (("completed_at", admin.EmptyFieldListFilter),)
    search_fields = ("primary_key_fingerprint",)
    readonly_fields = ("primary_key_fingerprint", "started_at", "completed_at", "rows_rotated", "progress")
    ordering = ("-started_at",)
