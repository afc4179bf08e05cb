from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("testapp", "0002_child_counter")]

    operations = [
        migrations.CreateModel(
            name="Run",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("job_id", models.BigIntegerField(db_index=True)),
                ("worker", models.CharField(max_length=50)),
            ],
        ),
    ]
