"""Indexes only (bench/mark_api.py at 100,000 patients): the patient list's default filter (archived
hidden) as a partial index that also carries `name_search`, so the list's page, its exact `total` COUNT
and a name search are index-only scans instead of reading every patient row."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0002_clinic_settings_voice_counts"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="patient",
            index=models.Index(
                condition=models.Q(("archived", False)),
                fields=["organization", "-last_activity", "-id"],
                include=("name_search",),
                name="patients_pat_org_live",
            ),
        ),
    ]
