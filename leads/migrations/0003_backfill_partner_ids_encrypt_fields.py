"""Issue 10, findings 4 and 7, data part.

- Every (platform, person) pair that has leads gets its `PartnerUser`. All platforms were answered the
  person's internal id until now; the platform whose lead came first keeps it (its records stay valid),
  every other platform gets a fresh unrelated id from now on (a replay of one of its old leads answers
  the new id). Leads point at their pair's row.
- `welcome_sent_at` = the person's last lead that queued a welcome SMS, so the period holds at once.
- `location_state`, `location_city` and `subcategory` are encrypted in place (reversible).
Payments already made are left as they are: the payment rule applies to leads from now on.
"""

from django.db import migrations
from django.db.models import Max

from core.encryption import decrypt_str, encrypt_str
from core.ids import new_public_id

PROTECTED = ("location_state", "location_city", "subcategory")
BATCH = 500


def forward(apps, schema_editor):
    Lead = apps.get_model("leads", "Lead")
    PartnerUser = apps.get_model("leads", "PartnerUser")
    CareUser = apps.get_model("leads", "CareUser")

    links: dict[tuple[int, int], int] = {}
    users_with_a_link: set[int] = set()
    pending = []
    leads = Lead.objects.order_by("created_at", "pk").values_list(
        "pk", "platform_id", "user_id", "user__public_id", "created_at", *PROTECTED
    )
    for pk, platform_id, user_id, user_public_id, created_at, *protected in leads.iterator(chunk_size=BATCH):
        key = (platform_id, user_id)
        if key not in links:
            public_id = user_public_id if user_id not in users_with_a_link else new_public_id("user")
            users_with_a_link.add(user_id)
            links[key] = PartnerUser.objects.create(
                public_id=public_id, platform_id=platform_id, user_id=user_id, created_at=created_at
            ).pk
        values = {name: encrypt_str(value or "") for name, value in zip(PROTECTED, protected, strict=True)}
        pending.append(Lead(pk=pk, partner_user_id=links[key], **values))
        if len(pending) >= BATCH:
            Lead.objects.bulk_update(pending, ["partner_user", *PROTECTED])
            pending = []
    if pending:
        Lead.objects.bulk_update(pending, ["partner_user", *PROTECTED])

    last_welcome = (
        Lead.objects.exclude(welcome_message_id="")
        .values("user_id")
        .annotate(at=Max("created_at"))
        .values_list("user_id", "at")
    )
    for user_id, at in last_welcome.iterator(chunk_size=BATCH):
        CareUser.objects.filter(pk=user_id).update(welcome_sent_at=at)


def backward(apps, schema_editor):
    Lead = apps.get_model("leads", "Lead")
    pending = []
    for pk, *protected in Lead.objects.values_list("pk", *PROTECTED).iterator(chunk_size=BATCH):
        values = {name: decrypt_str(value) if value else "" for name, value in zip(PROTECTED, protected, strict=True)}
        pending.append(Lead(pk=pk, **values))
        if len(pending) >= BATCH:
            Lead.objects.bulk_update(pending, list(PROTECTED))
            pending = []
    if pending:
        Lead.objects.bulk_update(pending, list(PROTECTED))


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0002_partner_ids_and_protected_fields"),
    ]

    operations = [
        migrations.RunPython(forward, backward),
    ]
