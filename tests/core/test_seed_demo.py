"""`manage.py seed_demo`: idempotent demo data, one JSON object with working credentials."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from accounts import demo as accounts_demo
from accounts.models import Membership, Organization, User
from audit.models import AuditEvent
from core import registry
from core.time import utc_now
from tests.fixtures.seeding import shared_first_run

pytestmark = pytest.mark.django_db


def seed(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("seed_demo", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture(scope="class")
def first_run(django_db_setup, django_db_blocker) -> tuple[str, str]:
    """One first `seed_demo --json`, shared by a class's tests: its (stdout, stderr) (tests/fixtures/seeding.py)."""
    yield from shared_first_run(django_db_blocker, lambda: seed("--json"))


def counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "organizations": Organization.objects.count(),
        "memberships": Membership.objects.count(),
        "audit_events": AuditEvent.objects.count(),
    }


class TestAfterAFirstRun:
    """Tests of a first run's output and rows: they share one first run (`first_run`). Each test sees the rows
    that run left, and its own changes are rolled back."""

    def test_json_output_is_one_object_with_the_documented_keys(self, first_run, settings):
        out, err = first_run

        data = json.loads(out)  # the whole of stdout: one JSON document, no progress text
        assert set(data) == {"platform", "admin", "docs", "loverescue", "careos", "mark", "routiq", "therapist"}
        organization = Organization.objects.get(name="Demo Clinic")
        assert data["platform"] == {
            "baseUrl": f"http://localhost:{settings.PORT}",
            "tokenUrl": "/api/v1/auth/token",
            "username": "demo",
            "password": accounts_demo.DEMO_PASSWORD,
            "organizationId": organization.public_id,
        }
        assert data["platform"]["organizationId"].startswith("org_")
        assert data["admin"] == {"url": "/admin/", "username": "admin", "password": accounts_demo.DEMO_PASSWORD}
        assert data["docs"] == "/docs"
        assert "created platform user demo" in err  # progress went to stderr

        # The base URL follows settings.PORT (read on each run).
        settings.PORT = 8123
        out, _ = seed("--json")
        data = json.loads(out)
        assert set(data) == {"platform", "admin", "docs", "loverescue", "careos", "mark", "routiq", "therapist"}
        assert data["platform"] == {
            "baseUrl": "http://localhost:8123",
            "tokenUrl": "/api/v1/auth/token",
            "username": "demo",
            "password": accounts_demo.DEMO_PASSWORD,
            "organizationId": organization.public_id,
        }

    def test_creates_the_demo_rows_with_the_right_roles(self, first_run):
        demo = User.objects.get(username="demo")
        assert not demo.is_staff and not demo.is_superuser
        assert demo.check_password(accounts_demo.DEMO_PASSWORD)
        membership = Membership.objects.get(user=demo)
        assert (membership.organization.name, membership.role) == ("Demo Clinic", Membership.Role.OWNER)
        admin = User.objects.get(username="admin")
        assert admin.is_staff and admin.is_superuser and admin.is_active
        assert admin.check_password(accounts_demo.DEMO_PASSWORD)
        # Demo Clinic, the Mark demo's second clinic (another tenant's ids for trying the 404s), Routiq's three.
        created = AuditEvent.objects.filter(action="accounts.organization_created")
        assert sorted(Organization.objects.get(public_id=e.subject_id).name for e in created) == [
            "Demo Clinic",
            "Other Demo Clinic",
            "Routiq Demo Clinic",
            "Routiq Empty Clinic",
            "Routiq Other Clinic",
        ]

    def test_second_run_creates_and_changes_nothing(self, first_run):
        first, _ = first_run
        before = counts()
        users_before = list(User.objects.order_by("pk").values("pk", "username", "password", "is_staff", "is_active"))

        second, err = seed("--json")

        assert counts() == before
        assert list(User.objects.order_by("pk").values("pk", "username", "password", "is_staff", "is_active")) == (
            users_before
        )
        assert json.loads(second) == json.loads(first)
        assert "nothing changed" in err

    def test_demo_credentials_obtain_a_platform_token(self, first_run, api_client):
        data = json.loads(first_run[0])["platform"]

        response = api_client.post(
            data["tokenUrl"], {"username": data["username"], "password": data["password"]}, format="json"
        )

        assert response.status_code == 200, response.content
        body = response.json()
        assert body["access_token"] and body["token_type"] == "bearer"

    def test_contributors_registry_adds_keys(self, first_run, monkeypatch):
        def extra(ctx):
            return "example", {"organizationId": ctx.organization.public_id}

        registered = registry.demo_contributors()
        monkeypatch.setattr(
            registry, "demo_contributors", lambda: [*registered, registry.DemoContributor(extra, order=900)]
        )
        data = json.loads(seed("--json")[0])
        assert data["example"] == {"organizationId": data["platform"]["organizationId"]}

        monkeypatch.setattr(
            registry,
            "demo_contributors",
            lambda: [*registered, registry.DemoContributor(accounts_demo.docs, order=900)],
        )
        with pytest.raises(CommandError, match="two contributors return the key 'docs'"):
            seed("--json")

    def test_each_app_registers_its_demo_data_in_order(self, first_run):
        """Accounts' base data first, then LoveRescue, then CareOS: the keys of --json in that order."""
        contributors = registry.demo_contributors()

        assert [(c.app_label, c.label) for c in contributors] == [
            ("accounts", "accounts.demo.platform"),
            ("accounts", "accounts.demo.admin"),
            ("accounts", "accounts.demo.docs"),
            ("integration", "integration.demo.seed"),
            ("leads", "leads.demo.seed"),
            ("patients", "patients.demo.seed"),
            ("sync", "sync.demo.seed"),
            ("sessions_analytics", "sessions_analytics.demo.seed"),
        ]
        assert [c.order for c in contributors] == sorted(c.order for c in contributors)
        out, _ = first_run
        assert list(json.loads(out)) == [
            "platform", "admin", "docs", "loverescue", "careos", "mark", "routiq", "therapist"]  # fmt: skip

    def test_mark_demo_ids_belong_to_the_demo_clinic_and_not_to_the_other(self, first_run, api_client, settings):
        """The "mark" key: the demo user reads its patient; the other clinic's user gets 404 for it."""
        data = json.loads(first_run[0])["mark"]
        assert data["patientId"].startswith("pat_") and data["conversationId"].startswith("conv_")
        assert data["appointmentId"].startswith("apt_")
        assert Organization.objects.get(public_id=data["organizationId"]).name == "Demo Clinic"
        # Each clinic has its own WhatsApp number in its settings; inbound messages are routed by it.
        from patients.models import ClinicSettings

        numbers = dict(ClinicSettings.objects.values_list("organization__public_id", "whatsapp_number"))
        assert data["whatsappNumber"] == numbers[data["organizationId"]] == "+34930000001"
        assert set(numbers.values()) == {"+34930000001", "+34930000002"}

        def token(username, password):
            response = api_client.post(
                "/api/v1/auth/token", {"username": username, "password": password}, format="json"
            )
            assert response.status_code == 200, response.content
            return response.json()["access_token"]

        own = token(data["username"], data["password"])
        response = api_client.get(f"/api/v1/patients/{data['patientId']}", HTTP_AUTHORIZATION=f"Bearer {own}")
        assert response.status_code == 200, response.content
        other = token(data["otherUsername"], data["otherPassword"])
        response = api_client.get(f"/api/v1/patients/{data['patientId']}", HTTP_AUTHORIZATION=f"Bearer {other}")
        assert response.status_code == 404
        # A second run creates nothing more.
        from patients.models import Patient

        count = Patient.objects.count()
        seed("--json")
        mark_patients = Patient.objects.filter(organization__name__in=["Demo Clinic", "Other Demo Clinic"]).count()
        assert Patient.objects.count() == count and mark_patients == settings.MARK_DEMO_PATIENTS + 1

    def test_routiq_demo_two_organizations_with_data_and_an_empty_one(self, first_run, api_client):
        """The "routiq" key: each owner reads its organization's patients and is refused the other's; the
        empty organization (owned by the first user) has no data at all; a second run creates nothing."""
        from patients.models import Appointment, Patient

        data = json.loads(first_run[0])["routiq"]
        assert set(data) == {
            "organizationId", "username", "password", "otherOrganizationId", "otherUsername", "otherPassword",
            "emptyOrganizationId",
        }  # fmt: skip
        organization, other, empty = data["organizationId"], data["otherOrganizationId"], data["emptyOrganizationId"]
        assert len({organization, other, empty}) == 3
        assert Patient.objects.filter(organization__public_id=organization).count() > 10
        assert Appointment.objects.filter(organization__public_id=organization, start_time__gt=utc_now()).exists()
        assert Patient.objects.filter(organization__public_id=other).exists()
        assert not Patient.objects.filter(organization__public_id=empty).exists()
        assert Membership.objects.get(user__username=data["username"], organization__public_id=empty).role == "owner"

        def token(username, password):
            response = api_client.post(
                "/api/v1/auth/token", {"username": username, "password": password}, format="json"
            )
            assert response.status_code == 200, response.content
            return {"HTTP_AUTHORIZATION": f"Bearer {response.json()['access_token']}"}

        own = token(data["username"], data["password"])
        other_owner = token(data["otherUsername"], data["otherPassword"])
        status = api_client.get(f"/api/v1/cliniko/status/{organization}", **own)
        assert status.status_code == 200 and status.json()["total_patients"] > 10
        assert api_client.get(f"/api/v1/cliniko/status/{empty}", **own).json()["total_patients"] == 0
        assert api_client.get(f"/api/v1/cliniko/status/{organization}", **other_owner).status_code == 403
        assert api_client.get(f"/api/v1/cliniko/status/{other}", **other_owner).status_code == 200
        before = (Patient.objects.count(), Appointment.objects.count(), Organization.objects.count())
        seed("--json")
        assert (Patient.objects.count(), Appointment.objects.count(), Organization.objects.count()) == before


# A first run on a database that is not empty, or no run at all: each on its own (empty) database.


def test_reuses_an_existing_demo_clinic_and_leaves_an_existing_admin_alone():
    organization = Organization.objects.create(name="Demo Clinic")
    admin = User.objects.create_user(username="admin", password="someone-elses-password")

    out, err = seed("--json")

    assert Organization.objects.filter(name="Demo Clinic").count() == 1
    assert json.loads(out)["platform"]["organizationId"] == organization.public_id
    admin.refresh_from_db()
    assert admin.check_password("someone-elses-password") and not admin.is_staff
    assert "admin user admin exists and was left as is" in err


def test_refuses_to_run_in_production_without_force(settings):
    settings.APP_ENV = "production"

    with pytest.raises(CommandError, match="refused under APP_ENV=production"):
        seed("--json")
    assert counts() == {"users": 0, "organizations": 0, "memberships": 0, "audit_events": 0}

    seed("--json", "--force")
    assert User.objects.filter(username="demo").exists()


def test_without_json_prints_a_readable_summary_on_stdout():
    out, _ = seed()

    assert "DEMO ONLY" in out
    assert "created platform user demo" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_a_contributor_before_the_base_data_gets_a_clear_error(monkeypatch):
    def early(ctx):
        return "early", ctx.organization.public_id

    registered = registry.demo_contributors()
    monkeypatch.setattr(registry, "demo_contributors", lambda: [registry.DemoContributor(early, order=1), *registered])
    with pytest.raises(AttributeError, match="no contributor has provided 'organization' yet"):
        seed("--json")
    assert counts()["organizations"] == 0  # one transaction: nothing stays
