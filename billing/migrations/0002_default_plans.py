from __future__ import annotations

from django.db import migrations

PLANS = [
    {
        "slug": "free", "name": "Free", "is_default": True, "daily_images": 3,
        "images_per_request": 1, "max_width": 512, "max_height": 512, "max_steps": 8,
        "requests_per_minute": 5, "lane": "free", "max_jobs_in_flight": 1,
        "max_wait_seconds": 60, "retention_days": 7, "allows_teams": False,
        "price_cents": 0, "sort_order": 0,
    },
    {
        "slug": "pro", "name": "Pro", "is_default": False, "daily_images": 500,
        "images_per_request": 4, "max_width": 1024, "max_height": 1024, "max_steps": 50,
        "requests_per_minute": 60, "lane": "priority", "max_jobs_in_flight": 4,
        "max_wait_seconds": 600, "retention_days": 90, "allows_teams": False,
        "price_cents": 2000, "sort_order": 1,
    },
    {
        "slug": "team", "name": "Team", "is_default": False, "daily_images": 5000,
        "images_per_request": 4, "max_width": 1024, "max_height": 1024, "max_steps": 50,
        "requests_per_minute": 300, "lane": "priority", "max_jobs_in_flight": 16,
        "max_wait_seconds": 600, "retention_days": 365, "allows_teams": True,
        "price_cents": 10000, "sort_order": 2,
    },
]  # fmt: skip


def create_plans(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for fields in PLANS:
        Plan.objects.update_or_create(slug=fields["slug"], defaults=fields)


def remove_plans(apps, schema_editor):
    apps.get_model("billing", "Plan").objects.filter(slug__in=[p["slug"] for p in PLANS]).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(create_plans, remove_plans)]
