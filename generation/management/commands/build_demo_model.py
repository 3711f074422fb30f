from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Write the small demo Stable Diffusion pipeline (random weights) with save_pretrained."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--path", default=settings.GENERATION_MODEL)
        parser.add_argument("--if-missing", action="store_true", help="Do nothing if it exists.")

    def handle(self, *args: Any, path: str, if_missing: bool, **options: Any) -> None:
        target = Path(path)
        if if_missing and (target / "model_index.json").exists():
            self.stdout.write(f"Demo model already at {target}")
            return
        from generation.pipeline import build_demo_model

        build_demo_model(target)
        self.stdout.write(self.style.SUCCESS(f"Demo model written to {target}"))
