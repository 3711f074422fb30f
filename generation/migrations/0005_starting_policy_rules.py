from __future__ import annotations

from django.db import migrations

REASON = "Atelier does not imitate the style of a living artist without their consent."
# (name, traits to describe instead)
ARTISTS = [
    ("Greg Rutkowski", "dramatic fantasy lighting, painterly brushwork and an epic sense of scale"),
    ("Hayao Miyazaki", "soft hand-painted backgrounds, gentle pastoral colours and whimsical detail"),
    ("Karla Ortiz", "moody concept-art lighting and richly textured figures"),
    ("Loish", "flowing shapes, warm glowing colours and expressive stylised characters"),
    ("Lois van Baarle", "flowing shapes, warm glowing colours and expressive stylised characters"),
    ("Sam Yang", "clean line art, soft cel shading and large expressive eyes"),
    ("Kelly McKernan", "art-nouveau linework and muted watercolour washes"),
    ("Sarah Andersen", "simple black-and-white comic strips with round, minimal characters"),
]


def create_rules(apps, schema_editor):
    PolicyRule = apps.get_model("generation", "PolicyRule")
    for name, traits in ARTISTS:
        PolicyRule.objects.update_or_create(
            term=name,
            defaults={
                "reason": REASON,
                "suggestion": f"Describe the traits you like instead, for example: {traits}.",
                "replacement": f"with {traits}",
            },
        )


def remove_rules(apps, schema_editor):
    apps.get_model("generation", "PolicyRule").objects.filter(
        term__in=[name for name, _ in ARTISTS]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("generation", "0004_policy_and_operator_switches")]
    operations = [migrations.RunPython(create_rules, remove_rules)]
