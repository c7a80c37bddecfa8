"""manage.py create_integration_partner: partner + credential, key and secret printed once."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from integration.models import IntegrationPartner, PartnerCredential
from tests.integration.factories import make_therapist

pytestmark = pytest.mark.django_db

AUTH = "/api/integration/auth"


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_integration_partner", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_json_output_works_for_the_token_exchange(client):
    tess, olga = make_therapist(), make_therapist("Olga", "Other")
    out, _ = run(
        "SuperTool",
        "--therapist",
        str(tess.pk),
        "--therapist",
        str(olga.pk),
        "--baa-signed",
        "--baa-signer",
        "Pat Partner",
        "--allow-ip",
        "127.0.0.1",
        "--allow-ip",
        "2001:db8::/32",
        "--rate-limit",
        "250",
        "--json",
    )
    body = json.loads(out)
    assert set(body) == {"partnerId", "apiKey", "apiSecret", "therapists"}
    assert body["therapists"] == [str(tess.pk), str(olga.pk)]
    assert body["apiKey"].startswith("lr_int_") and body["apiSecret"].startswith("sk_live_")
    partner = IntegrationPartner.objects.get(pk=body["partnerId"])
    assert partner.has_baa and partner.baa_signer == "Pat Partner"
    assert partner.allowed_ips == ["127.0.0.1/32", "2001:db8::/32"] and partner.rate_limit_per_minute == 250
    assert body["apiSecret"] not in PartnerCredential.objects.get(partner=partner).secret_hash
    assert {"integration.partner_created", "integration.credential_created"} <= set(
        AuditEvent.objects.values_list("action", flat=True)
    )

    response = client.post(
        AUTH,
        {"apiKey": body["apiKey"], "apiSecret": body["apiSecret"], "therapistId": str(olga.pk)},
        content_type="application/json",
        REMOTE_ADDR="127.0.0.1",
    )
    assert response.status_code == 200, response.content


def test_plain_output_and_missing_baa_warning():
    tess = make_therapist()
    out, err = run("SuperTool", "--therapist", str(tess.pk))
    assert "API key:    lr_int_" in out and "API secret: sk_live_" in out and "shown only once" in out
    assert "NOT_CONFIGURED" in err
    assert not IntegrationPartner.objects.get().has_baa


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--therapist", "00000000-0000-0000-0000-000000000000"], "Unknown therapist"),
        (["--therapist", "not-a-uuid"], "is not a UUID"),
        (["--allow-ip", "10.0.0.1/8"], "not a valid IPv4 or IPv6 network"),
        (["--allow-ip", "banana"], "not a valid IPv4 or IPv6 network"),
        (["--rate-limit", "0"], "between 1 and"),
        (["--rate-limit", "lots"], "whole number"),
    ],
)
def test_errors_create_nothing(extra, message):
    tess = make_therapist()
    with pytest.raises(CommandError, match=message):
        run("SuperTool", "--therapist", str(tess.pk), *extra)
    assert not IntegrationPartner.objects.exists() and not PartnerCredential.objects.exists()
    assert not AuditEvent.objects.exists()


def test_inactive_therapist_and_duplicate_name():
    inactive = make_therapist(active=False)
    with pytest.raises(CommandError, match="inactive"):
        run("SuperTool", "--therapist", str(inactive.pk))
    tess = make_therapist()
    run("SuperTool", "--therapist", str(tess.pk))
    with pytest.raises(CommandError, match="already exists"):
        run("SuperTool", "--therapist", str(tess.pk))
    assert IntegrationPartner.objects.count() == 1 and PartnerCredential.objects.count() == 1


def test_therapist_is_required():
    with pytest.raises(CommandError, match="--therapist"):
        run("SuperTool")
