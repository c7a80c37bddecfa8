"""CareOS admin, the money side: partner payments and payout batches.

Rows are read-only forms: every change goes through leads.services.payouts with the staff user as actor
(core.admin.admin_actor), so each is audited and checked (an invalid transition shows an error message,
never a 500):

- payments: dispute / cancel (with the reason typed in the action bar) / reinstate; "Process due payouts
  now" runs a payout run immediately (it needs no selection: it covers every platform);
- batches: their payments inline (read-only); "Mark paid (manual)" with the reference typed in the action
  bar; "Cancel" with the reason typed there, after a confirmation page saying which payments return to
  pending; "Export CSV" streams the selected batches' payments (batch, platform, payee, lead, amount,
  status, reference, dates), formula-injection safe, and is audited.
"""

from __future__ import annotations

import csv

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME, ActionForm
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from audit.admin import _Echo, csv_safe
from core.admin import (
    ActionsWithoutSelectionMixin,
    ConfirmItem,
    ReadOnlyAdminMixin,
    admin_actor,
    admin_date,
    confirm_action,
    short_id,
    short_text,
)
from core.time import utc_now
from leads import selectors
from leads.models import PartnerPayment, PartnerPlatform, PayoutBatch
from leads.services import payouts

EXPORT_HEADER = (
    "batch",
    "platform",
    "payee",
    "lead_id",
    "amount",
    "currency",
    "status",
    "batch_status",
    "reference",
    "created",
    "due",
    "paid",
)


class PaymentActionForm(ActionForm):
    reason = forms.CharField(
        required=False,
        max_length=payouts.MAX_REASON,
        label="Reason",
        help_text="Required to dispute or cancel.",
    )


class BatchActionForm(ActionForm):
    reference = forms.CharField(
        required=False,
        max_length=payouts.MAX_REFERENCE,
        label="Reference / reason",
        help_text="For “Mark paid (manual)”: the bank transfer id or cheque number; for “Cancel”: why.",
    )


@admin.register(PartnerPayment)
class PartnerPaymentAdmin(ActionsWithoutSelectionMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # Fits 1,400 px with the filter sidebar: ids cut short, the currency with the amount, dates only.
    list_display = ("lead_short", "platform_short", "amount_display", "status", "due_date", "batch_short", "paid_date")
    list_filter = ("status", "platform", ("due_at", admin.DateFieldListFilter))
    list_select_related = ("lead", "platform", "batch")
    search_fields = ("lead__public_id__exact", "batch__public_id__exact")
    search_help_text = "Exact lead id (lead_...) or payout batch id (payout_...)."
    ordering = ("-created_at", "-pk")
    fields = (
        "lead_id_display",
        "platform",
        "amount",
        "currency",
        "status",
        "status_reason",
        "due_at",
        "batch_display",
        "paid_at",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields
    action_form = PaymentActionForm
    actions = ("dispute_payments", "cancel_payments", "reinstate_payments", "process_due_payouts")
    # Actions that run without a selection (they do not act on rows).
    actions_without_selection = ("process_due_payouts",)

    @admin.display(description="lead", ordering="lead__public_id")
    def lead_id_display(self, obj: PartnerPayment) -> str:
        return obj.lead.public_id

    @admin.display(description="batch", ordering="batch__public_id")
    def batch_display(self, obj: PartnerPayment) -> str:
        return obj.batch.public_id if obj.batch_id else ""

    @admin.display(description="lead", ordering="lead__public_id")
    def lead_short(self, obj: PartnerPayment) -> str:
        return short_id(obj.lead.public_id)

    @admin.display(description="batch", ordering="batch__public_id")
    def batch_short(self, obj: PartnerPayment) -> str:
        return short_id(obj.batch.public_id) if obj.batch_id else ""

    @admin.display(description="platform", ordering="platform__slug")
    def platform_short(self, obj: PartnerPayment) -> str:
        return short_text(obj.platform.slug)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj: PartnerPayment) -> str:
        return f"{obj.amount} {obj.currency}"

    @admin.display(description="due", ordering="due_at")
    def due_date(self, obj: PartnerPayment) -> str:
        return admin_date(obj.due_at)

    @admin.display(description="paid", ordering="paid_at")
    def paid_date(self, obj: PartnerPayment) -> str:
        return admin_date(obj.paid_at)

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("leads.change_partnerpayment")

    def _transition(self, request, queryset, service, done: str) -> None:
        reason = request.POST.get("reason", "")
        changed, errors = 0, []
        for payment in queryset.select_related("lead"):
            try:
                service(payment=payment, reason=reason, actor=admin_actor(request))
                changed += 1
            except payouts.PaymentTransitionError as exc:
                errors.append(str(exc))
        if changed:
            self.message_user(request, f"{done} {changed} payment(s).", messages.SUCCESS)
        for error in errors[:10]:
            self.message_user(request, error, messages.ERROR)
        if len(errors) > 10:
            self.message_user(request, f"…and {len(errors) - 10} more payment(s) not changed.", messages.ERROR)

    @admin.action(description="Dispute selected payments (reason required)", permissions=["manage"])
    def dispute_payments(self, request, queryset):
        self._transition(request, queryset, payouts.payment_dispute, "Disputed")

    @admin.action(description="Cancel selected payments (reason required)", permissions=["manage"])
    def cancel_payments(self, request, queryset):
        self._transition(request, queryset, payouts.payment_cancel, "Cancelled")

    @admin.action(description="Reinstate selected payments (back to pending)", permissions=["manage"])
    def reinstate_payments(self, request, queryset):
        self._transition(request, queryset, payouts.payment_reinstate, "Reinstated")

    @admin.action(description="Process due payouts now (all platforms; no selection needed)", permissions=["manage"])
    def process_due_payouts(self, request, queryset):
        report = payouts.payouts_process(actor=admin_actor(request))
        for outcome in report.resumed:
            level = messages.ERROR if outcome.status in ("failed", "error", "created") else messages.SUCCESS
            text = f"Unfinished batch {outcome.batch_id} ({outcome.platform}, {outcome.amount}): {outcome.status}"
            self.message_user(request, text + (f" - {outcome.error}" if outcome.error else ""), level)
        for item in report.platforms:
            if item.status == "nothing_due":
                continue
            level = messages.ERROR if item.status in ("failed", "error", "created") else messages.INFO
            text = f"{item.platform}: {item.due_count} due, {item.due_amount} USD -> {item.status}"
            if item.batch_id:
                text += f" ({item.batch_id})"
            self.message_user(request, text + (f" - {item.error}" if item.error else ""), level)
        if not report.resumed and all(item.status == "nothing_due" for item in report.platforms):
            self.message_user(request, "No payments are due.", messages.INFO)


class PartnerPaymentInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = PartnerPayment
    fk_name = "batch"
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("lead_id_display", "amount", "currency", "status", "due_at", "paid_at", "created_at")
    readonly_fields = fields
    ordering = ("pk",)

    @admin.display(description="lead")
    def lead_id_display(self, obj: PartnerPayment) -> str:
        return obj.lead.public_id

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("lead")


@admin.register(PayoutBatch)
class PayoutBatchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "public_id",
        "platform",
        "amount",
        "currency",
        "backend",
        "status",
        "payment_count",
        "provider_reference",
        "created_at",
        "paid_at",
    )
    list_filter = ("status", "backend", "platform")
    list_select_related = ("platform",)
    search_fields = ("public_id__exact", "provider_reference__exact")
    search_help_text = "Exact payout id (payout_...) or provider reference."
    ordering = ("-created_at", "-pk")
    fields = (
        "public_id",
        "platform",
        "amount",
        "currency",
        "backend",
        "status",
        "idempotency_key",
        "provider_reference",
        "error",
        "created_at",
        "paid_at",
    )
    readonly_fields = fields
    inlines = (PartnerPaymentInline,)
    action_form = BatchActionForm
    actions = ("mark_paid_manual", "cancel_manual", "export_csv")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_payment_count=Count("payments"))

    @admin.display(description="payments", ordering="_payment_count")
    def payment_count(self, obj: PayoutBatch) -> int:
        return obj._payment_count

    def has_manage_permission(self, request) -> bool:
        return request.user.has_perm("leads.change_payoutbatch")

    @admin.action(description="Mark paid (manual) with the reference typed above", permissions=["manage"])
    def mark_paid_manual(self, request, queryset):
        reference = request.POST.get("reference", "")
        for batch in queryset:
            try:
                payouts.payout_batch_mark_paid(batch=batch, reference=reference, actor=admin_actor(request))
            except payouts.PayoutBatchError as exc:
                self.message_user(request, f"{batch.public_id}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{batch.public_id} marked paid ({reference.strip()}).", messages.SUCCESS)

    @admin.action(
        description="Cancel (manual, not paid) with the reason typed above: its payments become due again",
        permissions=["manage"],
    )
    def cancel_manual(self, request, queryset):
        reason = request.POST.get("reference", "").strip()
        if not reason:
            self.message_user(request, "Type the reason for cancelling in the box above, then cancel.", messages.ERROR)
            return None
        return self._cancel_confirmed(request, queryset, reason)

    def get_urls(self):
        cancel = path("cancel/", self.admin_site.admin_view(self.cancel_view), name="leads_payoutbatch_cancel")
        return [cancel, *super().get_urls()]

    def cancel_view(self, request):
        """Where the cancel confirmation page posts (the reason rides in its query string: the page's form
        carries only the selection, and the list would read an unknown parameter as a filter)."""
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:leads_payoutbatch_changelist"))
        if not self.has_manage_permission(request):
            raise PermissionDenied
        reason = request.GET.get("reference", "").strip()
        if not reason:
            self.message_user(request, "Type the reason for cancelling, then cancel.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:leads_payoutbatch_changelist"))
        queryset = self.get_queryset(request).filter(pk__in=request.POST.getlist(ACTION_CHECKBOX_NAME))
        return self._cancel_confirmed(request, queryset, reason)

    def _cancel_confirmed(self, request, queryset, reason: str):
        batches = list(queryset.select_related("platform").order_by("created_at", "pk"))
        held = selectors.payout_batch_payments(batch_pks=[batch.pk for batch in batches])
        items = []
        for batch in batches:
            count, total = held.get(batch.pk, (0, 0))
            label = f"{batch.public_id}: {batch.platform.name} ({batch.platform.slug}), {batch.amount} {batch.currency}"
            if batch.status != PayoutBatch.Status.AWAITING_MANUAL:
                consequences = (
                    f"Not changed: it is {batch.get_status_display().lower()}; only a batch awaiting manual payment "
                    "can be cancelled.",
                )
            else:
                consequences = (
                    f"{count} payment(s) ({total} {batch.currency}) leave the batch and return to pending, "
                    "unbatched: the next payout run pays them again.",
                    f"The batch becomes failed with the reason “{reason}”: do not pay it by hand after this.",
                )
            items.append(ConfirmItem(label, consequences))

        def perform():
            for batch in batches:
                try:
                    payouts.payout_batch_cancel_manual(batch=batch, reason=reason, actor=admin_actor(request))
                except payouts.PayoutBatchError as exc:
                    self.message_user(request, f"{batch.public_id}: {exc}", messages.ERROR)
                else:
                    self.message_user(request, f"{batch.public_id} cancelled; its payments are pending again.")
            return HttpResponseRedirect(reverse("admin:leads_payoutbatch_changelist"))

        return confirm_action(
            self,
            request,
            batches,
            title="Cancel payout batches",
            question=f"Cancel {len(batches)} payout batch(es)? The partner is not paid by them.",
            items=items,
            confirm_label="Yes, cancel these batches",
            perform=perform,
            form_action=f"{reverse('admin:leads_payoutbatch_cancel')}?{urlencode({'reference': reason})}",
        )

    @admin.action(description="Export CSV of the selected batches' payments", permissions=["view"])
    def export_csv(self, request, queryset):
        batch_ids = list(queryset.order_by("created_at", "pk").values_list("pk", "public_id"))
        payouts.payout_batches_export_record(
            batch_public_ids=[public_id for _, public_id in batch_ids], actor=admin_actor(request)
        )
        rows = selectors.payout_export_rows(batch_pks=[pk for pk, _ in batch_ids])
        writer = csv.writer(_Echo())

        def lines():
            yield writer.writerow(EXPORT_HEADER)
            for row in rows.iterator(chunk_size=1000):
                yield writer.writerow([csv_safe(value) for value in export_row(row)])

        stamp = utc_now().strftime("%Y%m%dT%H%M%SZ")
        name = batch_ids[0][1] if len(batch_ids) == 1 else f"payouts-{stamp}"
        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response


def export_row(row: tuple) -> tuple:
    """One CSV row (EXPORT_HEADER) of a `selectors.payout_export_rows` tuple. The payee is who receives
    the money: the platform's name, and its Stripe account for a Stripe batch."""
    (batch, platform, name, backend, account, lead, amount, currency, status, batch_status, reference) = row[:11]
    created, due, paid = row[11:]
    payee = f"{name} ({account})" if backend == PartnerPlatform.PayoutBackend.STRIPE and account else name
    return (batch, platform, payee, lead, amount, currency, status, batch_status, reference, created, due, paid)
