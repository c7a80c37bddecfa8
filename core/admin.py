from django.contrib import admin
from django.http import HttpResponse
from django.template import engines
from django.urls import reverse

from core.actors import Actor
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
