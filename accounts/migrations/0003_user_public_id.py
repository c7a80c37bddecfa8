"""Users get a public id (usr_...): added nullable, filled row by row (a callable default would give every
existing row the same value), then made unique and required."""

from django.db import migrations, models

import core.ids


def fill_public_ids(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    for user in User.objects.filter(public_id__isnull=True).only("pk").iterator():
        User.objects.filter(pk=user.pk).update(public_id=core.ids.new_public_id("usr"))


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_organization_clerk_id")]

    operations = [
        migrations.AddField(
            model_name="user",
            name="public_id",
            field=models.CharField(editable=False, max_length=40, null=True),
        ),
        migrations.RunPython(fill_public_ids, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="user",
            name="public_id",
            field=models.CharField(
                default=core.ids._PublicIdFactory("usr"), editable=False, max_length=40, unique=True
            ),
        ),
    ]
