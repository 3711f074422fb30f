"""The starting rules (0005) in French: a refusal in French gives a French reason,
suggestion and rewrite."""

from __future__ import annotations

from django.db import migrations

REASON = "Atelier n'imite pas le style d'un artiste vivant sans son accord."
# (term of 0005, traits to describe instead)
ARTISTS = [
    (
        "Greg Rutkowski",
        "un éclairage fantastique spectaculaire, une touche picturale et un souffle épique",
    ),
    (
        "Hayao Miyazaki",
        "des décors doux peints à la main, des couleurs pastorales tendres et des détails "
        "pleins de fantaisie",
    ),
    ("Karla Ortiz", "un éclairage d'art conceptuel sombre et des personnages richement texturés"),
    ("Loish", "des formes fluides, des couleurs chaudes et lumineuses et des personnages stylisés"),
    (
        "Lois van Baarle",
        "des formes fluides, des couleurs chaudes et lumineuses et des personnages stylisés",
    ),
    ("Sam Yang", "un trait net, un ombrage doux en aplats et de grands yeux expressifs"),
    ("Kelly McKernan", "des lignes Art nouveau et des lavis d'aquarelle en demi-teintes"),
    (
        "Sarah Andersen",
        "des bandes dessinées simples en noir et blanc aux personnages ronds et épurés",
    ),
]


def create_translations(apps, schema_editor):
    PolicyRule = apps.get_model("generation", "PolicyRule")
    PolicyRuleTranslation = apps.get_model("generation", "PolicyRuleTranslation")
    for term, traits in ARTISTS:
        rule = PolicyRule.objects.filter(term=term).first()
        if rule is None:  # an operator removed it
            continue
        PolicyRuleTranslation.objects.update_or_create(
            rule=rule,
            language="fr",
            defaults={
                "reason": REASON,
                "suggestion": f"Décrivez plutôt ce qui vous plaît, par exemple : {traits}.",
                "replacement": f"avec {traits}",
            },
        )


def remove_translations(apps, schema_editor):
    apps.get_model("generation", "PolicyRuleTranslation").objects.filter(
        language="fr", rule__term__in=[term for term, _ in ARTISTS]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("generation", "0009_policy_rule_translations")]
    operations = [migrations.RunPython(create_translations, remove_translations)]
