"""Staff sign-in: django-axes lockout on the admin login only, and the audit trail of every staff
sign-in, sign-out and failure (docs/security.md, "Staff access").

- Lockout: after AXES_FAILURE_LIMIT failures within AXES_COOLOFF_TIME, per username and separately per
  client IP, the admin login refuses even the right password until the cool-off has passed (counted from
  the last failure: guessing on keeps it locked). The client IP is core.net's (X-Forwarded-For believed
  only from our trusted proxies), so rotating that header does not spread failures over addresses.
- The platform token endpoint (POST /api/v1/auth/token) also calls authenticate(): axes neither counts
  nor refuses it (AdminOnlyAxesHandler, AXES_ONLY_ADMIN_SITE); core.ratelimit throttles API credentials.
- Audit: `accounts.login`, `accounts.logout`, `accounts.login_failed` (a known user as subject, else a
  keyed hash of the attempted name, never the name or the password), `accounts.login_otp_failed`.
  API credential failures are not repeated here: each already has its access-log row (401).
"""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.shortcuts import render
from django.urls import reverse
from django_otp.forms import otp_verification_failed

from audit.services import audit_event_record
from core import net
from core.actors import Actor
from core.encryption import blind_index

USERNAME_DIGEST_PURPOSE = "accounts.login_failed.username"


def axes_client_ip(request) -> str:
    """AXES_CLIENT_IP_CALLABLE: the platform's one client-IP rule (core.net), looked up at call time."""
    return net.client_ip(request)


class AdminLoginLockoutBackend(AxesStandaloneBackend):
    """Axes' backend (first in AUTHENTICATION_BACKENDS): refuses a locked-out admin sign-in before any
    password is checked. A call without a request (manage.py, the test client's login()) is no web
    sign-in and has no client to count, so it is left to the next backend."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class AdminOnlyAxesHandler(AxesDatabaseHandler):
    """Axes' database handler, counting admin sign-ins only: a failed API token request is neither
    recorded here nor turned into a lockout page (AXES_ONLY_ADMIN_SITE alone would still count it)."""

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is None or not self.is_admin_request(request):
            return None
        return super().user_login_failed(sender, credentials, request, **kwargs)

    def user_logged_in(self, sender, request, user, **kwargs):
        if request is None or not self.is_admin_request(request):
            return None
        return super().user_logged_in(sender, request, user, **kwargs)

    def user_logged_out(self, sender, request, user, **kwargs):
        if request is None or not self.is_admin_request(request):
            return None
        return super().user_logged_out(sender, request, user, **kwargs)


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: a plain admin page saying what happened and when to try again (429)."""
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if cool_off else 0
    context = {
        **admin.site.each_context(request),
        "title": "Sign-in temporarily locked",
        "cooloff_minutes": max(1, (seconds + 59) // 60),
    }
    response = render(request, "accounts/admin_locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    response["Cache-Control"] = "no-store"
    return response


# --- Audit of staff sign-ins -------------------------------------------------------------------------------


def _web_sign_in(request) -> bool:
    """A sign-in through the admin's pages. Not an API credential exchange (each has its access-log row)
    nor a sign-in made in code (the test client's force_login has no path)."""
    return request is not None and request.path.startswith(reverse("admin:index"))


def _client(request) -> dict:
    return {"ip": net.client_ip(request), "user_agent": request.META.get("HTTP_USER_AGENT", "")[:200]}


def _on_logged_in(sender, request, user, **kwargs) -> None:
    if not _web_sign_in(request):
        return
    with transaction.atomic():
        audit_event_record(
            action="accounts.login",
            actor=Actor.user(user),
            subject_type="user",
            subject_id=str(user.pk),
            metadata={**_client(request), "two_factor": getattr(user, "otp_device", None) is not None},
        )


def _on_logged_out(sender, request, user, **kwargs) -> None:
    if user is None or not _web_sign_in(request):
        return  # signing out without a session signs nobody out
    with transaction.atomic():
        audit_event_record(
            action="accounts.logout",
            actor=Actor.user(user),
            subject_type="user",
            subject_id=str(user.pk),
            metadata=_client(request),
        )


def _on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    if not _web_sign_in(request):
        return
    # Django hands receivers the credentials with the password masked; only the username is read, and it
    # is stored only as a user id (someone may type a password into the username field).
    field = get_user_model().USERNAME_FIELD
    username = str(credentials.get(field) or "")
    user_id = get_user_model().objects.filter(**{field: username}).values_list("pk", flat=True).first()
    metadata = {**_client(request), "locked_out": bool(getattr(request, "axes_locked_out", False))}
    if user_id is None:
        metadata["username_digest"] = blind_index(username, purpose=USERNAME_DIGEST_PURPOSE)[:16]
    with transaction.atomic():
        audit_event_record(
            action="accounts.login_failed",
            actor=Actor.anonymous(),
            subject_type="user" if user_id is not None else "",
            subject_id=str(user_id) if user_id is not None else "",
            metadata=metadata,
        )


def _on_otp_failed(sender, user, **kwargs) -> None:
    # The right password and a wrong TOTP code: someone holds this user's password.
    with transaction.atomic():
        audit_event_record(
            action="accounts.login_otp_failed", actor=Actor.anonymous(), subject_type="user", subject_id=str(user.pk)
        )


def connect_signals() -> None:
    user_logged_in.connect(_on_logged_in, dispatch_uid="accounts.audit_login")
    user_logged_out.connect(_on_logged_out, dispatch_uid="accounts.audit_logout")
    user_login_failed.connect(_on_login_failed, dispatch_uid="accounts.audit_login_failed")
    otp_verification_failed.connect(_on_otp_failed, dispatch_uid="accounts.audit_otp_failed")


# --- Lockouts: staff may lift one, audited -----------------------------------------------------------------


@transaction.atomic
def staff_lockout_reset(*, attempt: AccessAttempt, actor: Actor) -> None:
    """Forget one (username, IP) failure count, e.g. after confirming with the staff member that the
    failures were theirs. The attempted username is not copied into the audit trail."""
    audit_event_record(
        action="accounts.login_lockout_reset",
        actor=actor,
        subject_type="login_attempt",
        subject_id=str(attempt.pk),
        metadata={"ip": attempt.ip_address or "", "failures": attempt.failures_since_start},
    )
    attempt.delete()
