"""Issue 10, finding 3: the admin sign-in is locked out per account and per IP (django-axes), every staff
sign-in, sign-out and failure is audited (never the password), and staff TOTP two-factor is required
when ADMIN_REQUIRE_2FA is on. API credentials (the platform token) are never locked by axes."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.db.models import F
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-admin-password-42"
WRONG = "not-the-password-0000"
LOGIN = "/admin/login/"
TOKEN_URL = "/api/v1/auth/token"
LIMIT = settings.AXES_FAILURE_LIMIT


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_superuser(username="admin", email="a@example.com", password=PASSWORD)


@pytest.fixture
def other_staff(django_user_model):
    return django_user_model.objects.create_user(username="clerk", password=PASSWORD, is_staff=True)


def sign_in(client, username: str, password: str, ip: str = "203.0.113.10", otp: dict | None = None, **headers):
    data = {"username": username, "password": password, "next": "/admin/", **(otp or {})}
    return client.post(LOGIN, data, REMOTE_ADDR=ip, **headers)


def otp_fields(device: TOTPDevice, token: str) -> dict:
    return {"otp_device": device.persistent_id, "otp_token": token}


def signed_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def locked(response) -> bool:
    return response.status_code == 429 and "Too many failed sign-in attempts" in response.content.decode()


def events(action: str):
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def cool_off_passes():
    """Age every recorded failure past the cool-off (no waiting on the clock)."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))


def current_code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift):06d}"


# --- Lockout --------------------------------------------------------------------------------------------------


def test_forty_wrong_passwords_from_one_ip_lock_the_account_until_the_cool_off(client, staff_user):
    responses = [sign_in(client, "admin", WRONG) for _ in range(40)]
    assert all(r.status_code == 200 for r in responses[: LIMIT - 1])  # the form again, with its error
    assert all(locked(r) for r in responses[LIMIT - 1 :])
    assert responses[-1]["Retry-After"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds()))

    refused = sign_in(client, "admin", PASSWORD)  # the right password, still refused
    assert locked(refused)
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302  # not signed in

    cool_off_passes()
    assert signed_in(sign_in(client, "admin", PASSWORD))


def test_failures_on_one_account_from_many_addresses_lock_that_account(client, staff_user, other_staff):
    for n in range(LIMIT):
        sign_in(client, "admin", WRONG, ip=f"198.51.100.{n + 1}")
    assert locked(sign_in(client, "admin", PASSWORD, ip="192.0.2.200"))  # a fresh address does not help
    assert signed_in(sign_in(client, "clerk", PASSWORD, ip="192.0.2.201"))  # other accounts are unaffected


def test_failures_over_many_accounts_from_one_address_lock_that_address(client, staff_user):
    for n in range(LIMIT):
        sign_in(client, f"guess{n}", WRONG, ip="203.0.113.66")
    assert locked(sign_in(client, "admin", PASSWORD, ip="203.0.113.66"))
    assert signed_in(sign_in(client, "admin", PASSWORD, ip="203.0.113.67"))


def test_rotating_x_forwarded_for_from_an_untrusted_peer_counts_against_the_peer(client, staff_user, settings):
    # A proxy is configured, but this peer is not it: its X-Forwarded-For is the client's own invention.
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    for n in range(LIMIT):
        sign_in(client, f"guess{n}", WRONG, ip="198.51.100.9", HTTP_X_FORWARDED_FOR=f"192.0.2.{n + 1}")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.9"}
    assert locked(sign_in(client, "admin", PASSWORD, ip="198.51.100.9", HTTP_X_FORWARDED_FOR="192.0.2.250"))


def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(client, staff_user, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    for n in range(LIMIT):
        sign_in(client, f"guess{n}", WRONG, ip="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.80")
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.80"}
    # Another client behind the same proxy is not locked out by the first one's failures.
    assert signed_in(sign_in(client, "admin", PASSWORD, ip="10.0.0.5", HTTP_X_FORWARDED_FOR="203.0.113.81"))


def test_the_platform_token_endpoint_is_never_locked_by_axes(client, staff_user):
    for _ in range(40):
        response = client.post(TOKEN_URL, {"username": "admin", "password": WRONG}, content_type="application/json")
        assert response.status_code in (401, 429)
        assert response["Content-Type"].startswith("application/json")  # the API's body, not axes' page
    assert not AccessAttempt.objects.exists()  # not counted against the admin sign-in either
    assert signed_in(sign_in(client, "admin", PASSWORD))


def test_an_admin_lockout_does_not_lock_the_api_credential(client, staff_user):
    for _ in range(LIMIT):
        sign_in(client, "admin", WRONG, ip="127.0.0.1")
    assert locked(sign_in(client, "admin", PASSWORD, ip="127.0.0.1"))
    response = client.post(
        TOKEN_URL, {"username": "admin", "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["access_token"]


def test_staff_unlock_a_lockout_through_an_audited_action(client, staff_user, other_staff):
    for _ in range(LIMIT):
        sign_in(client, "clerk", WRONG, ip="198.51.100.40")
    attempt = AccessAttempt.objects.get()
    client.force_login(staff_user)
    page = client.get(reverse("admin:axes_accessattempt_changelist"))
    assert page.status_code == 200 and "198.51.100.40" in page.content.decode()
    response = client.post(
        reverse("admin:axes_accessattempt_changelist"), {"action": "unlock", "_selected_action": [str(attempt.pk)]}
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    [event] = events("accounts.login_lockout_reset")
    assert event.actor_id == str(staff_user.pk)
    assert event.metadata == {"ip": "198.51.100.40", "failures": LIMIT}
    client.logout()
    assert signed_in(sign_in(client, "clerk", PASSWORD, ip="198.51.100.40"))


# --- Audit of sign-ins ----------------------------------------------------------------------------------------


def test_sign_in_sign_out_and_failures_are_audited_without_the_password(client, staff_user):
    sign_in(client, "admin", WRONG, HTTP_USER_AGENT="curl/8")
    sign_in(client, "nobody-here", WRONG)
    assert signed_in(sign_in(client, "admin", PASSWORD))
    assert client.post("/admin/logout/").status_code == 200

    known, unknown = events("accounts.login_failed")
    assert (known.subject_type, known.subject_id) == ("user", str(staff_user.pk))
    assert known.actor_type == "anonymous"
    assert known.metadata == {"ip": "203.0.113.10", "user_agent": "curl/8", "locked_out": False}
    assert (unknown.subject_type, unknown.subject_id) == ("", "")
    assert len(unknown.metadata["username_digest"]) == 16
    [login] = events("accounts.login")
    assert (login.actor_type, login.actor_id) == ("user", str(staff_user.pk))
    assert login.metadata["ip"] == "203.0.113.10" and login.metadata["two_factor"] is False
    [logout] = events("accounts.logout")
    assert logout.actor_id == str(staff_user.pk)

    everything = str(list(AuditEvent.objects.values_list("subject_id", "metadata")))
    assert WRONG not in everything and PASSWORD not in everything and "nobody-here" not in everything


def test_a_right_password_of_a_non_staff_user_counts_as_a_failure(client, django_user_model):
    user = django_user_model.objects.create_user(username="clinic-integration", password=PASSWORD)
    response = sign_in(client, "clinic-integration", PASSWORD)
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    # Counted like a wrong password, so the lockout's timing does not tell a right guess from a wrong one.
    assert AccessAttempt.objects.get().failures_since_start == 1
    [event] = events("accounts.login_failed")
    assert event.subject_id == str(user.pk)


def test_the_failure_that_locks_is_recorded_as_locked_out(client, staff_user):
    for _ in range(LIMIT):
        sign_in(client, "admin", WRONG)
    flags = [event.metadata["locked_out"] for event in events("accounts.login_failed")]
    assert flags == [False] * (LIMIT - 1) + [True]


def test_api_token_failures_are_left_to_the_access_log(client, staff_user):
    client.post(TOKEN_URL, {"username": "admin", "password": WRONG}, content_type="application/json")
    assert events("accounts.login_failed") == []


# --- Two-factor -----------------------------------------------------------------------------------------------


@pytest.fixture
def require_2fa(settings):
    settings.ADMIN_REQUIRE_2FA = True


@pytest.fixture
def device(staff_user):
    return TOTPDevice.objects.create(user=staff_user, name="Phone", confirmed=True)


def test_without_2fa_required_a_password_session_is_enough(client, staff_user, settings):
    settings.ADMIN_REQUIRE_2FA = False
    assert signed_in(sign_in(client, "admin", PASSWORD))
    assert client.get("/admin/").status_code == 200


def test_with_2fa_required_a_password_alone_does_not_open_the_admin(client, staff_user, device, require_2fa):
    response = sign_in(client, "admin", PASSWORD)
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    client.force_login(staff_user)  # a password-only session (e.g. from before the setting was on)
    assert client.get("/admin/").status_code == 302


def test_with_2fa_required_the_right_code_opens_the_admin(client, staff_user, device, require_2fa):
    response = sign_in(client, "admin", PASSWORD, otp=otp_fields(device, current_code(device)))
    assert signed_in(response)
    assert client.get("/admin/").status_code == 200
    [login] = events("accounts.login")
    assert login.metadata["two_factor"] is True


def test_with_2fa_required_a_wrong_code_is_refused_and_audited(client, staff_user, device, require_2fa):
    wrong = f"{(int(current_code(device)) + 500_000) % 1_000_000:06d}"
    response = sign_in(client, "admin", PASSWORD, otp=otp_fields(device, wrong))
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    [event] = events("accounts.login_otp_failed")
    assert event.subject_id == str(staff_user.pk)
    assert wrong not in str(event.metadata)


def test_staff_enrol_a_device_in_the_admin(client, staff_user):
    client.force_login(staff_user)
    url = reverse("admin:staff_totp_enrol")
    page = client.get(url)
    assert page.status_code == 200 and "<svg" in page.content.decode()
    assert "no-store" in page["Cache-Control"]
    device = TOTPDevice.objects.get(user=staff_user)
    assert not device.confirmed

    bad = client.post(url, {"token": "12ab56"})
    assert bad.status_code == 200 and "6-digit code" in bad.content.decode()
    wrong = client.post(url, {"token": f"{(int(current_code(device)) + 1) % 1_000_000:06d}"})
    assert wrong.status_code == 200 and "not valid" in wrong.content.decode()
    device.refresh_from_db()
    assert not device.confirmed and device.throttling_failure_count == 1  # the guess was counted

    device.throttle_reset()
    assert client.post(url, {"token": current_code(device)}).status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    assert [e.action for e in AuditEvent.objects.filter(action__startswith="accounts.totp").order_by("pk")] == [
        "accounts.totp_device_created",
        "accounts.totp_device_confirmed",
    ]
    assert device.key not in str(list(AuditEvent.objects.values_list("metadata", flat=True)))


def test_the_device_admin_never_shows_the_key_and_removal_is_audited(client, staff_user, device):
    client.force_login(staff_user)
    page = client.get(reverse("admin:otp_totp_totpdevice_change", args=[device.pk]))
    assert page.status_code == 200 and device.key not in page.content.decode()
    response = client.post(
        reverse("admin:otp_totp_totpdevice_changelist"),
        {"action": "remove_devices", "_selected_action": [str(device.pk)], "post": "yes"},  # its confirmation
    )
    assert response.status_code == 302 and not TOTPDevice.objects.exists()
    [event] = events("accounts.totp_device_removed")
    assert event.actor_id == str(staff_user.pk) and event.subject_id == str(staff_user.pk)


def test_the_enrol_command_gives_a_confirmed_device_that_signs_in(client, staff_user, require_2fa):
    out = io.StringIO()
    call_command("staff_totp_enrol", "admin", "--no-qr", stdout=out)
    device = TOTPDevice.objects.get(user=staff_user)
    assert device.confirmed and "otpauth://totp/" in out.getvalue()
    response = sign_in(client, "admin", PASSWORD, otp=otp_fields(device, current_code(device)))
    assert signed_in(response)


def test_the_enrol_command_refuses_a_non_staff_user(django_user_model):
    django_user_model.objects.create_user(username="patient", password=PASSWORD)
    with pytest.raises(Exception, match="No active staff user"):
        call_command("staff_totp_enrol", "patient", "--no-qr", stdout=io.StringIO())
