# The operators' switches moved from generation to billing (they set plan limits, which
# billing reads); the table stays where generation made it: a change of state only.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_checkout_sessions"),
        ("generation", "0007_operator_switches_to_billing"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="OperatorSwitches",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("free_tier_paused", models.BooleanField(default=False, help_text="Refuse new jobs from workspaces on the default plan.")),
                        ("free_daily_images", models.PositiveIntegerField(blank=True, help_text="Temporary images per window for the default plan (e.g. 1 instead of 3).", null=True)),
                        ("max_queued_jobs", models.PositiveIntegerField(blank=True, help_text="Refuse new free and standard jobs while this many jobs are queued.", null=True)),
                        ("banner", models.CharField(blank=True, help_text="Shown in the app and returned by the API.", max_length=300)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        ("updated_by", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        "verbose_name": "operator switches",
                        "verbose_name_plural": "operator switches",
                        "db_table": "generation_operatorswitches",
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
