"""A lead's city, state and subcategory are encrypted at rest like its message (issue 10 finding 7), and
migrations 0002-0004 encrypt the rows already stored and give every (partner, person) pair its own id
(issue 10 finding 4), reversibly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from core.encryption import blind_index, decrypt_str
from leads.models import CareUser, Lead, PartnerUser
from messaging.tasks import send_message
from tests.leads.factories import INGEST, make_platform

PROTECTED = ("location_city", "location_state", "subcategory")
BEFORE = [("leads", "0001_initial")]
AFTER = [("leads", "0004_protected_fields_encrypted")]


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(send_message, "apply_async", lambda *args, **kwargs: None)


def raw_columns(pk: int) -> tuple[str, ...]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(PROTECTED)} FROM leads_lead WHERE id = %s", [pk])
        return tuple(cursor.fetchone())


@pytest.mark.django_db
def test_city_state_and_subcategory_are_stored_encrypted(client):
    setup = make_platform()
    body = setup.lead(user_location_city="San Francisco", user_location_state="CA", subcategory="caregiver_hiring")
    response = client.post(INGEST, json.dumps(body), content_type="application/json", **setup.headers())
    assert response.status_code == 200, response.content
    lead = Lead.objects.get()
    stored = raw_columns(lead.pk)
    for raw, plain in zip(stored, ("San Francisco", "CA", "caregiver_hiring"), strict=True):
        # decrypt_str refuses anything but a token of our keys; a 2-letter state may occur in random base64
        # by chance (about 3% of tokens contain "CA"), so the substring check is for the longer values.
        assert raw != plain and decrypt_str(raw) == plain
        assert len(plain) < 8 or plain not in raw
    assert (lead.location_city, lead.location_state, lead.subcategory) == ("San Francisco", "CA", "caregiver_hiring")
    # An absent optional field is stored as the encryption of "" (its length says nothing either).
    body = setup.lead(phone="+14155550199", source_conversation_id="c-2")
    for name in ("user_location_city", "user_location_state", "subcategory"):
        body.pop(name)
    assert client.post(INGEST, json.dumps(body), content_type="application/json", **setup.headers()).status_code == 200
    empty = Lead.objects.get(source_conversation_id="c-2")
    assert [decrypt_str(raw) for raw in raw_columns(empty.pk)] == ["", "", ""]
    assert (empty.location_city, empty.location_state, empty.subcategory) == ("", "", "")


def _old_rows(apps) -> dict:
    """Leads as 0001 stored them: plaintext fields, every partner answered the person's one id."""
    Platform = apps.get_model("leads", "PartnerPlatform")
    User = apps.get_model("leads", "CareUser")
    Lead_ = apps.get_model("leads", "Lead")
    Payment = apps.get_model("leads", "PartnerPayment")
    a = Platform.objects.create(slug="alpha", name="Alpha", phone_hash_salt="s1")
    b = Platform.objects.create(slug="beta", name="Beta", phone_hash_salt="s2")
    phone = "+14155550123"
    user = User.objects.create(
        public_id="user_historic0000000000000001",
        phone=phone,
        phone_index=blind_index(phone, purpose="leads.user.phone"),
        source="alpha_referral",
        source_platform=a,
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    leads = {}
    for name, platform, day, welcome in (("a-1", a, 0, "msg_1"), ("b-1", b, 1, "msg_2"), ("a-2", a, 2, "")):
        lead = Lead_.objects.create(
            platform=platform,
            source_conversation_id=name,
            user=user,
            is_new_user=name == "a-1",
            language="en",
            location_state="CA",
            location_city="San Francisco",
            source_category="healthcare",
            category="general_healthcare",
            subcategory="caregiver_hiring",
            original_message="help",
            consent_timestamp=start,
            lead_value=Decimal("15.00"),
            will_contact=True,
            welcome_message_id=welcome,
        )
        Lead_.objects.filter(pk=lead.pk).update(created_at=start + timedelta(days=day))
        Payment.objects.create(
            lead=lead, platform=platform, amount=Decimal("15.00"), due_at=start + timedelta(days=day + 30)
        )
        leads[name] = lead.pk
    return {"user": user.pk, "leads": leads, "a": a.pk, "b": b.pk, "start": start}


@pytest.mark.django_db(transaction=True)
def test_the_migrations_encrypt_old_rows_and_give_each_partner_its_own_id():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old = _old_rows(MigrationExecutor(connection).loader.project_state(BEFORE).apps)
        assert raw_columns(old["leads"]["a-1"]) == ("San Francisco", "CA", "caregiver_hiring")

        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        # Then the later leads migrations (schema only): the checks below read through today's models.
        executor = MigrationExecutor(connection)
        executor.migrate([node for node in executor.loader.graph.leaf_nodes() if node[0] == "leads"])

        for pk in old["leads"].values():
            raw = raw_columns(pk)
            assert "San Francisco" not in raw[0] and [decrypt_str(value) for value in raw] == [
                "San Francisco",
                "CA",
                "caregiver_hiring",
            ]
            lead = Lead.objects.get(pk=pk)
            assert (lead.location_city, lead.location_state, lead.subcategory) == (
                "San Francisco",
                "CA",
                "caregiver_hiring",
            )
        user = CareUser.objects.get(pk=old["user"])
        alpha = PartnerUser.objects.get(platform_id=old["a"], user=user)
        beta = PartnerUser.objects.get(platform_id=old["b"], user=user)
        # The first partner keeps the id it was given; the other gets its own from now on.
        assert alpha.public_id == "user_historic0000000000000001" and beta.public_id != alpha.public_id
        assert beta.public_id.startswith("user_") and len(beta.public_id) == len(alpha.public_id)
        assert {Lead.objects.get(pk=pk).partner_user_id for pk in old["leads"].values()} == {alpha.pk, beta.pk}
        assert Lead.objects.get(pk=old["leads"]["b-1"]).partner_user == beta
        # The welcome period holds from the last welcome already sent (b-1's, day 1).
        assert user.welcome_sent_at == old["start"] + timedelta(days=1)

        # Reversible: back to 0001 the columns hold the plaintext again.
        MigrationExecutor(connection).migrate(BEFORE)
        assert raw_columns(old["leads"]["a-2"]) == ("San Francisco", "CA", "caregiver_hiring")
    finally:
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_the_validated_lead_never_shows_the_protected_fields_in_its_repr():
    from leads.services.ingest import LeadInput

    text = repr(
        LeadInput(
            source_conversation_id="c-1",
            user_phone_hash="h",
            user_phone_encrypted="e",
            user_language="en",
            category="healthcare",
            original_message="my message",
            consent_timestamp=datetime(2025, 1, 8, tzinfo=UTC),
            lead_value=Decimal("15.00"),
            location_state="CA",
            location_city="San Francisco",
            subcategory="night_care",
        )
    )
    assert "c-1" in text
    assert "'CA'" not in text and "San Francisco" not in text and "night_care" not in text
