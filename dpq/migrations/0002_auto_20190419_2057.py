# As in django-postgres-queue: priorities may be negative.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dpq", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="job",
            name="priority",
            field=models.IntegerField(
                default=0, help_text="Jobs with higher priority will be processed first."
            ),
        ),
    ]
