"""Give a staff user a confirmed TOTP device from the shell: how the first administrator of a site that
requires two-factor (ADMIN_REQUIRE_2FA) signs in, or a staff member who lost their phone gets back in.
Prints the key once (QR code in the terminal, otpauth:// URL, base32 key); hand it over in person."""

from __future__ import annotations

import io

import segno
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts import two_factor
from core.actors import Actor


class Command(BaseCommand):
    help = "Create a confirmed TOTP two-factor device for a staff user and print its key once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default=two_factor.DEFAULT_NAME, help="Device name shown at sign-in.")
        parser.add_argument("--no-qr", action="store_true", help="Print the URL and key only.")

    def handle(self, *args, username: str, name: str, no_qr: bool, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None or not user.is_active or not user.is_staff:
            raise CommandError(f"No active staff user {username!r}.")
        device = two_factor.totp_device_enrol_confirmed(
            user=user, name=name, actor=Actor.system("manage.py staff_totp_enrol")
        )
        details = two_factor.provisioning(device)
        if not no_qr:
            out = io.StringIO()
            segno.make(details["url"], error="m").terminal(out=out, compact=True)
            self.stdout.write(out.getvalue())
        self.stdout.write(f"otpauth URL: {details['url']}")
        self.stdout.write(f"Key (base32): {details['secret']}")
        self.stdout.write(f"Device {device.pk} ({device.name}) confirmed for {user.username}: key not shown again.")
