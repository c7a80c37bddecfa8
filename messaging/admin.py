"""Outbox admin: staff see where a message is, never what it says.

The list shows the recipient masked (`+44•••••1234`) and never the body; the change page shows every
field read-only, recipient masked and body/subject as a length only. Search takes a public id, a
provider message id, or a full phone number / email address (matched through the blind index, never
by decrypting rows). "Retry failed messages" goes through `messaging.services.message_retry` (audited)
and is the only write: nobody adds, edits or deletes a message here (the change page is view-only).
"""

from __future__ import annotations

from django.contrib import admin, messages

from core.admin import AuditedViewAdminMixin, admin_actor
from messaging.models import OutboundMessage
from messaging.services import MessagingError, message_retry, normalize_recipient, recipient_index


@admin.register(OutboundMessage)
class OutboundMessageAdmin(AuditedViewAdminMixin, admin.ModelAdmin):
    # Provider, purpose, attempts and the sent/delivered times are filters or on the message's page: the
    # list fits 1,400 px.
    list_display = ("public_id", "channel_status", "masked_recipient", "created_at")
    list_filter = ("status", "channel", "provider", "purpose")
    search_fields = ("=public_id", "=provider_message_id")
    search_help_text = "Public id, provider message id, or a full phone number (+447400000000) or email address."
    ordering = ("-created_at",)
    date_hierarchy = "created_at"
    list_per_page = 100
    show_full_result_count = False
    actions = ["retry_failed"]
    fields = (
        "public_id",
        "channel",
        "status",
        "purpose",
        "masked_recipient",
        "masked_subject",
        "masked_body",
        "provider",
        "provider_message_id",
        "attempts",
        "last_error",
        "next_attempt_at",
        "claimed_until",
        "created_at",
        "sent_at",
        "delivered_at",
        "updated_at",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        # The list never needs the encrypted subject or body: do not even read them.
        return super().get_queryset(request).defer("subject", "body")

    def has_add_permission(self, request):
        return False  # messages are written by services only

    def has_change_permission(self, request, obj=None):
        # Every field is read-only, but saving the change form would still UPDATE the whole row (status,
        # attempts, lease) from what the page loaded, racing the sender: the page is view-only.
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the outbox is the record of what was sent

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("messaging.change_outboundmessage")

    @admin.display(description="status", ordering="status")
    def channel_status(self, obj: OutboundMessage) -> str:
        return f"{obj.get_channel_display()}: {obj.get_status_display()}"

    @admin.display(description="recipient")
    def masked_recipient(self, obj: OutboundMessage) -> str:
        return obj.recipient_masked

    @admin.display(description="subject")
    def masked_subject(self, obj: OutboundMessage) -> str:
        return f"(hidden, {len(obj.subject)} characters)" if obj.subject else "-"

    @admin.display(description="body")
    def masked_body(self, obj: OutboundMessage) -> str:
        return f"(hidden, {len(obj.body or '')} characters)"

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        indexes = []
        for channel in OutboundMessage.Channel.values:
            try:
                indexes.append(recipient_index(channel, normalize_recipient(channel, term)))
            except MessagingError:
                continue
        if indexes:  # a phone number or an email address: exact match through the blind index
            return queryset.filter(recipient_index__in=indexes), False
        return super().get_search_results(request, queryset, term)

    @admin.action(description="Retry failed messages", permissions=["manage"])
    def retry_failed(self, request, queryset):
        retried = skipped = 0
        for message in queryset.filter(status=OutboundMessage.Status.FAILED).only("pk", "public_id", "channel"):
            if message_retry(message=message, actor=admin_actor(request)):
                retried += 1
        skipped = queryset.count() - retried
        self.message_user(request, f"{retried} message(s) queued again.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} message(s) skipped: only failed messages are retried.", messages.WARNING
            )
