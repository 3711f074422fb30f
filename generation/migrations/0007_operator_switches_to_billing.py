# The operators' switches moved to billing (billing/migrations/0005); the table stays.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0006_job_started_at_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="OperatorSwitches")],
            database_operations=[],
        ),
    ]
