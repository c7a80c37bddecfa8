"""The admin site (`admin.site`, installed by accounts.apps.PlatformAdminConfig).

With ADMIN_REQUIRE_2FA on (the default in production) it is django-otp's OTPAdminSite: the login asks for
a code from a confirmed TOTP device, and a session not verified by one is treated as not staff. Off, it
behaves as Django's own site. Either way signed-in staff enrol a device on the "Two-factor" page.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django_otp import login as otp_login
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite

from core.actors import Actor
from core.domain import Invalid


class TokenForm(forms.Form):
    token = forms.CharField(
        label="Code from the app",
        max_length=16,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class StaffOnlyMixin:
    """A right password for a user who may not use the admin (inactive, not staff) is refused with the
    same message as a wrong one, and counted and audited as a failure too: otherwise the lockout would
    arrive one attempt later for a right guess, telling the guesser which password was right."""

    def confirm_login_allowed(self, user):
        if not (user.is_active and user.is_staff):
            credentials = {get_user_model().USERNAME_FIELD: user.get_username()}
            user_login_failed.send(sender=type(self), credentials=credentials, request=self.request)
        super().confirm_login_allowed(user)


class StaffLoginForm(StaffOnlyMixin, AdminAuthenticationForm):
    pass


class StaffOTPLoginForm(StaffOnlyMixin, OTPAdminAuthenticationForm):
    pass


class AuditedAutocompleteJsonView(AutocompleteJsonView):
    """The admin's autocomplete search (e.g. therapists on the partner form) lists records like a list
    page does: audited the same way when the searched model's admin audits its pages."""

    def get(self, request, *args, **kwargs):
        from core.admin import AuditedViewAdminMixin, audit_admin_view  # core.admin registers on this site

        response = super().get(request, *args, **kwargs)
        if isinstance(self.model_admin, AuditedViewAdminMixin):
            rows = [SimpleNamespace(pk=row["id"]) for row in json.loads(response.content)["results"]]
            audit_admin_view(request, self.model_admin.model, rows, view="autocomplete", searched=bool(self.term))
        return response


class PlatformAdminSite(OTPAdminSite):
    index_template = "accounts/admin/index.html"
    # Staff should see which system they are in, not "Django administration".
    site_header = "Healthcare integration platform: staff admin"
    site_title = "Platform admin"
    index_title = "Partners, clinics and audit"

    def __init__(self, name="admin"):
        super().__init__(name)

    # Read per request, so the setting decides (tests switch it).
    @property
    def login_form(self):
        return StaffOTPLoginForm if settings.ADMIN_REQUIRE_2FA else StaffLoginForm

    @property
    def login_template(self):
        return "otp/admin111/login.html" if settings.ADMIN_REQUIRE_2FA else None

    def has_permission(self, request):
        if not AdminSite.has_permission(self, request):
            return False
        return request.user.is_verified() if settings.ADMIN_REQUIRE_2FA else True

    def each_context(self, request):
        context = super().each_context(request)
        context["admin_require_2fa"] = settings.ADMIN_REQUIRE_2FA
        return context

    def autocomplete_view(self, request):
        return AuditedAutocompleteJsonView.as_view(admin_site=self)(request)

    def get_urls(self):
        return [
            path("two-factor/", self.admin_view(self.totp_enrol_view), name="staff_totp_enrol"),
            *super().get_urls(),
        ]

    def totp_enrol_view(self, request):
        """Enrol an authenticator app for the signed-in staff user: scan the QR code (or type the key),
        confirm with a code. The page shows a secret, so nothing caches it."""
        from accounts import two_factor  # the models are ready by the time a request comes

        actor = Actor.user(request.user)
        device = two_factor.totp_device_pending(user=request.user, actor=actor)
        form = TokenForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                confirmed = two_factor.totp_device_confirm(device=device, token=form.cleaned_data["token"], actor=actor)
            except Invalid as exc:
                form.add_error("token", exc.message)
            else:
                if confirmed:
                    device.refresh_from_db()
                    otp_login(request, device)  # this session is now verified by the new device
                    messages.success(request, "Two-factor device confirmed: sign-ins now ask for its code.")
                    return redirect("admin:index")
                form.add_error("token", "That code is not valid. Check the time on your phone and enter a new code.")
        context = {
            **self.each_context(request),
            "title": "Two-factor authentication",
            "form": form,
            "devices": list(two_factor.confirmed_devices(request.user)),
            **two_factor.provisioning(device),
        }
        response = TemplateResponse(request, "accounts/admin/totp_enrol.html", context)
        response["Cache-Control"] = "no-store"
        return response
