"""Platform identities: users, the organizations (tenants) they work in, and their role there."""

from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models

from core.ids import public_id_default
from core.scoping import Role


class User(AbstractUser):
    """Custom user from the first migration, so fields can be added later without a table swap."""

    # The id APIs show for a person (the therapist dashboard's therapistId / evaluatorId), never the row id.
    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("usr"), editable=False)

    class Meta:
        db_table = "accounts_user"


class Organization(models.Model):
    public_id = models.CharField(max_length=80, unique=True, default=public_id_default("org"), editable=False)
    # Set when the organization is linked to Clerk: paths and headers may then name it by this id too.
    clerk_organization_id = models.CharField(
        max_length=80,
        unique=True,
        null=True,
        blank=True,
        help_text="Clerk organization id (org_2...), when this organization signs in through Clerk.",
        validators=[RegexValidator(r"^org_[A-Za-z0-9]{1,64}$", "A Clerk organization id looks like org_2xw...")],
    )
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_id})"


class Membership(models.Model):
    Role = Role  # one role vocabulary: core.scoping.Role

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization}: {self.role}"


class ExternalIdentity(models.Model):
    """Links a subject of an external OIDC issuer (e.g. Clerk) to a platform user."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="external_identities")
    issuer = models.CharField(max_length=300)
    subject = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "external identities"
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="uniq_external_identity")]

    def __str__(self) -> str:
        return f"{self.issuer} {self.subject}"
