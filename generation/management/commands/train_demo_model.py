from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

DEFAULT_PATH = Path(settings.BASE_DIR) / "models" / "atelier-demo"


class Command(BaseCommand):
    help = (
        "Train the demo model (autoencoder, text encoder, UNet) on the CPU on pictures of "
        "coloured shapes, save it with save_pretrained and score it on held-out prompts."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        from generation.demo_training import TrainingPlan

        parser.add_argument("--path", default=str(DEFAULT_PATH))
        # One thread: on cores shared with other work (and under `nice`) two threads spend most
        # of their time waiting for each other, four times slower than one.
        parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
        parser.add_argument("--full-precision", action="store_true", help="save float32")
        parser.add_argument("--no-evaluate", action="store_true", help="skip the score")
        parser.add_argument("--grid", help="also write a PNG grid of what it draws here")
        parser.add_argument(
            "--skip-training", action="store_true", help="score (and grid) the model at --path"
        )
        # Fixed step counts, not wall-clock limits: the same work on every machine. Smaller
        # counts make a quick (and poor) model for trying the command out.
        for field in fields(TrainingPlan):
            if field.type in ("int", "float"):
                parser.add_argument(
                    f"--{field.name.replace('_', '-')}",
                    type=int if field.type == "int" else float,
                    default=field.default,
                )

    def handle(self, *args: Any, **options: Any) -> None:
        import torch

        from generation.demo_training import TrainingPlan, draw_grid, evaluate, train

        torch.set_num_threads(options["threads"])
        plan = TrainingPlan(**{f.name: options[f.name] for f in fields(TrainingPlan)})
        path = Path(options["path"])
        if not options["skip_training"]:
            started = time.monotonic()
            train(path, plan, half=not options["full_precision"], log=self.stdout.write)
            minutes = (time.monotonic() - started) / 60
            self.stdout.write(self.style.SUCCESS(f"Trained in {minutes:.1f} min, saved to {path}"))
        if not options["no_evaluate"]:
            self.stdout.write(f"Held-out prompts: {evaluate(path, plan)}")
        if options["grid"]:
            draw_grid(path, plan, Path(options["grid"]))
            self.stdout.write(f"Grid written to {options['grid']}")
