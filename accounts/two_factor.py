"""Staff TOTP devices (django-otp): enrol, confirm, remove; each change audited in its transaction.

A device is usable for sign-in only once confirmed with a code from the app, so a half-finished enrolment
(or someone who glimpsed the QR code) adds nothing. The device key never goes to the audit trail, the
admin (OTP_ADMIN_HIDE_SENSITIVE_DATA) or a log; it is shown once, on the enrolment page or the command's
output.
"""

from __future__ import annotations

from base64 import b32encode

import segno
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.services import audit_event_record
from core.actors import Actor
from core.domain import Invalid

DEFAULT_NAME = "Authenticator app"
TOKEN_DIGITS = 6


def _audit(action: str, device: TOTPDevice, actor: Actor) -> None:
    audit_event_record(
        action=action,
        actor=actor,
        subject_type="user",
        subject_id=str(device.user_id),
        metadata={"device_id": device.pk, "confirmed": device.confirmed},
    )


def confirmed_devices(user):
    return TOTPDevice.objects.devices_for_user(user, confirmed=True)


@transaction.atomic
def totp_device_pending(*, user, actor: Actor) -> TOTPDevice:
    """The user's unconfirmed device (its key shown until confirmed), created if there is none."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=DEFAULT_NAME, confirmed=False)
        _audit("accounts.totp_device_created", device, actor)
    return device


def clean_token(token) -> str:
    """Six ASCII digits (spaces allowed, as apps show "123 456"), else Invalid."""
    text = str(token or "").replace(" ", "")
    if len(text) != TOKEN_DIGITS or not (text.isascii() and text.isdigit()):
        raise Invalid(f"Enter the {TOKEN_DIGITS}-digit code your authenticator app shows.")
    return text


@transaction.atomic
def totp_device_confirm(*, device: TOTPDevice, token: str, actor: Actor) -> bool:
    """Confirm an enrolment with a current code from the app. False for a wrong code (returned, not
    raised, so django-otp's failure count on the device commits and throttles repeated guesses);
    Invalid for a malformed code, a throttled or an already confirmed device."""
    code = clean_token(token)
    device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
    if device.confirmed:
        raise Invalid("This device is already confirmed.")
    allowed, _ = device.verify_is_allowed()
    if not allowed:
        raise Invalid("Too many wrong codes: wait a minute and try again.")
    if not device.verify_token(code):
        return False
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    _audit("accounts.totp_device_confirmed", device, actor)
    return True


@transaction.atomic
def totp_device_enrol_confirmed(*, user, name: str, actor: Actor) -> TOTPDevice:
    """A confirmed device made by an operator (manage.py staff_totp_enrol), who hands the key over out
    of band: how the first staff user of a production site (ADMIN_REQUIRE_2FA) gets one."""
    device = TOTPDevice.objects.create(user=user, name=(name or DEFAULT_NAME)[:64], confirmed=True)
    _audit("accounts.totp_device_created", device, actor)
    return device


@transaction.atomic
def totp_device_remove(*, device: TOTPDevice, actor: Actor) -> None:
    """Remove a lost or replaced device; with 2FA required its user enrols again through an operator."""
    _audit("accounts.totp_device_removed", device, actor)
    device.delete()


def provisioning(device: TOTPDevice) -> dict[str, str]:
    """What an authenticator app needs: the otpauth:// URL, its QR code (inline SVG) and the key in base32
    for typing by hand."""
    url = device.config_url
    return {
        "url": url,
        "qr_svg": segno.make(url, error="m").svg_inline(scale=4),
        "secret": b32encode(device.bin_key).decode(),
    }
