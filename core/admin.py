from django.contrib import admin

from core.models import KeyRotation


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
