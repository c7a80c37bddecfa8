"""Issue 10, findings 4 and 7, schema part: per-partner user ids (`PartnerUser`), the welcome-SMS and
payment period columns, and the three lead fields that become encrypted (here plain text; 0003 encrypts
the rows, 0004 declares them encrypted). Split in three so no ALTER TABLE runs in the transaction that
rewrote the rows (PostgreSQL refuses it while deferred foreign-key checks are pending)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import core.ids


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="careuser",
            name="welcome_sent_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="PartnerUser",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "public_id",
                    models.CharField(
                        default=core.ids._PublicIdFactory("user"), editable=False, max_length=40, unique=True
                    ),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "platform",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="partner_users",
                        to="leads.partnerplatform",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="partner_ids", to="leads.careuser"
                    ),
                ),
            ],
            options={
                "ordering": ["created_at"],
                "constraints": [
                    models.UniqueConstraint(fields=("platform", "user"), name="leads_one_id_per_partner_person")
                ],
            },
        ),
        migrations.AddField(
            model_name="lead",
            name="partner_user",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="leads", to="leads.partneruser"
            ),
        ),
        migrations.AddField(
            model_name="lead",
            name="duplicate_of",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="leads.lead",
                verbose_name="unpaid duplicate of",
            ),
        ),
        migrations.AlterField(
            model_name="lead",
            name="is_new_user",
            field=models.BooleanField(verbose_name="new to this partner"),
        ),
        migrations.AlterField(
            model_name="lead",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AddIndex(
            model_name="lead",
            index=models.Index(fields=["user", "created_at"], name="leads_lead_user_created"),
        ),
        # Plain text for now (a Fernet token is longer than the old varchar limits); see 0003 and 0004.
        migrations.AlterField(
            model_name="lead",
            name="location_state",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AlterField(
            model_name="lead",
            name="location_city",
            field=models.TextField(blank=True, default=""),
        ),
        migrations.AlterField(
            model_name="lead",
            name="subcategory",
            field=models.TextField(blank=True, default=""),
        ),
    ]
