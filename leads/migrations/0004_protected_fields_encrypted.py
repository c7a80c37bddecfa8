"""Issue 10, findings 4 and 7, final part: every lead has its partner id; the three fields rewritten by
0003 are declared encrypted (same `text` column, no table rewrite)."""

import django.db.models.deletion
from django.db import migrations, models

import core.encryption


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0003_backfill_partner_ids_encrypt_fields"),
    ]

    operations = [
        migrations.AlterField(
            model_name="lead",
            name="partner_user",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="leads", to="leads.partneruser"
            ),
        ),
        migrations.AlterField(
            model_name="lead",
            name="location_state",
            field=core.encryption.EncryptedTextField(blank=True, default=""),
        ),
        migrations.AlterField(
            model_name="lead",
            name="location_city",
            field=core.encryption.EncryptedTextField(blank=True, default=""),
        ),
        migrations.AlterField(
            model_name="lead",
            name="subcategory",
            field=core.encryption.EncryptedTextField(blank=True, default=""),
        ),
    ]
