# The job table as django-postgres-queue 0.4 created it. Kept identical, so that a project
# moving from that package (which recorded dpq.0001_initial and dpq.0002 as applied) carries on
# with 0003, which adds what dpq needs.

from django.db import migrations, models
import django.utils.timezone


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Job",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("execute_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "priority",
                    models.PositiveIntegerField(
                        default=0, help_text="Jobs with higher priority will be processed first."
                    ),
                ),
                ("task", models.CharField(max_length=255)),
                ("args", models.JSONField()),
            ],
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["-priority", "created_at"], name="dpq_job_priorit_aa4927_idx"),
        ),
    ]
