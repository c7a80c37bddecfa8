from django.db import migrations, models
from django.db.models import F, Q


def mark_existing_crises_handled(apps, schema_editor):
    # Flagged entries written before this migration already raised their alert at write time.
    JournalEntry = apps.get_model("integration", "JournalEntry")
    JournalEntry.objects.filter(crisis=True).update(crisis_handled_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("integration", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="journalentry",
            name="crisis_handled_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="journalentry",
            index=models.Index(
                condition=Q(crisis=True, crisis_handled_at__isnull=True),
                fields=["created_at"],
                name="lr_journal_crisis_pending",
            ),
        ),
        migrations.RunPython(mark_existing_crises_handled, migrations.RunPython.noop),
    ]
