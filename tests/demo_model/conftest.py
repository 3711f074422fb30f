from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from generation.model_info import ModelInfo, model_info


@pytest.fixture(scope="session")
def demo_model() -> str:
    """The committed, trained demo model, loaded like any downloaded model."""
    return str(Path(settings.BASE_DIR) / "models" / "atelier-demo")


@pytest.fixture(scope="session")
def demo_info(demo_model: str) -> ModelInfo:
    return model_info(demo_model)
