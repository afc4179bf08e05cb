# The original package's migration, by the same name, so that a database it migrated counts
# this one as applied.

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="LastScheduledFor",
            fields=[
                ("task", models.CharField(max_length=255, primary_key=True, serialize=False)),
                ("execute_at", models.DateTimeField()),
            ],
        ),
    ]
