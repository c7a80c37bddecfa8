"""What an operator reads in the admin (issue 14, "small things"): the platform's name, not Django's; plural
names in English; BAA labels in capitals; the partner rate limit says what empty means."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import ExternalIdentity
from integration.models import IntegrationPartner
from leads.models import PayoutBatch

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("labels-admin", "labels@example.com", "pw-labels-admin-1!")
    client.force_login(user)
    return client


def test_the_admin_names_the_platform_not_django(staff):
    page = staff.get(reverse("admin:index")).content.decode()
    assert "Healthcare integration platform: staff admin" in page
    assert "Django administration" not in page
    assert "Django site admin" not in page


@pytest.mark.parametrize(
    ("model", "plural"), [(ExternalIdentity, "external identities"), (PayoutBatch, "payout batches")]
)
def test_plural_names_are_english(staff, model, plural):
    assert model._meta.verbose_name_plural == plural
    page = staff.get(reverse("admin:index")).content.decode()
    assert plural.capitalize() in page
    assert plural.replace("ies", "ys").replace("batches", "batchs").capitalize() not in page


def test_partner_form_labels_say_baa_and_the_rate_limit_default(staff):
    page = staff.get(reverse("admin:integration_integrationpartner_add")).content.decode()
    assert "BAA signed on" in page and "Baa signed at" not in page
    assert "BAA document" in page
    assert "Empty: the default, 100." in page
    assert IntegrationPartner._meta.get_field("rate_limit_per_minute").help_text
