"""What the platform knows about the configured model, read without torch.

A model folder may carry `atelier.json` (the demo model does): its native size, the steps and
guidance it was made for, the words it knows. The API defaults come from here; a model without
the file (a hub id, a downloaded Stable Diffusion) gets the general defaults below.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

METADATA_FILE = "atelier.json"


@dataclass(frozen=True)
class ModelInfo:
    native_size: int = 512
    recommended_steps: int = 4
    recommended_guidance: float = 3.0
    vocabulary: dict[str, list[str]] = field(default_factory=dict)
    example_prompt: str = ""

    @property
    def min_size(self) -> int:
        """The smallest side the API accepts: 64, or the native size when that is smaller."""
        return min(64, self.native_size)


@cache
def model_info(model: str) -> ModelInfo:
    """The metadata of `model` (a folder or hub id); defaults when it has none."""
    path = Path(model) / METADATA_FILE
    if not path.is_file():
        return ModelInfo()
    data = json.loads(path.read_text())
    return ModelInfo(
        native_size=int(data["native_size"]),
        recommended_steps=int(data["recommended_steps"]),
        recommended_guidance=float(data["recommended_guidance"]),
        vocabulary={key: list(words) for key, words in data.get("vocabulary", {}).items()},
        example_prompt=str(data.get("example_prompt", "")),
    )
