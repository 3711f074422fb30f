"""A tiny StableDiffusionSafetyChecker with known thresholds, for tests (no weights can be
downloaded here): the real class and architecture, a CLIP vision tower a few layers small,
saved with save_pretrained like a real checker folder."""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers.pipelines.stable_diffusion.safety_checker import (
    StableDiffusionSafetyChecker,
    cosine_distance,
)
from PIL import Image as PILImage
from transformers import CLIPConfig, CLIPImageProcessor


def _embeds(
    checker: StableDiffusionSafetyChecker, processor: CLIPImageProcessor, images: list
) -> torch.Tensor:
    with torch.no_grad():
        pixels = processor(images, return_tensors="pt").pixel_values
        return checker.visual_projection(checker.vision_model(pixels)[1])


def tiny_checker_save(
    folder: Path,
    *,
    unsafe: PILImage.Image,
    safe: list[PILImage.Image] = (),  # type: ignore[assignment]
    borderline: PILImage.Image | None = None,
) -> Path:
    """Save a checker that flags `unsafe` (its concept 0 is that image) and passes `safe`.

    The threshold of concept 0 sits halfway between `unsafe` (similarity 1) and the most
    similar of `safe`. With `borderline`, it sits 0.015 above that image's similarity
    instead (`safe` is then not looked at): passed at the standard level, flagged at strict
    (+0.03). Every other concept and
    special-care concept has a threshold above 1, so none ever matches.
    """
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "vocab_size": 100, "bos_token_id": 0,
                     "eos_token_id": 1, "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    checker = StableDiffusionSafetyChecker(config).eval()
    processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    target = _embeds(checker, processor, [unsafe])[0]
    if borderline is None:
        similar = float(cosine_distance(_embeds(checker, processor, safe), target[None]).max())
        threshold = (1.0 + similar) / 2
    else:
        similar = float(cosine_distance(_embeds(checker, processor, [borderline]), target[None]))
        threshold = similar + 0.015
    assert similar + 0.002 < threshold < 0.998, "test images too alike for this checker"
    with torch.no_grad():
        checker.concept_embeds.copy_(target.expand_as(checker.concept_embeds))
        checker.concept_embeds_weights.fill_(1.5)
        checker.concept_embeds_weights[0] = threshold
        checker.special_care_embeds.copy_(target.expand_as(checker.special_care_embeds))
        checker.special_care_embeds_weights.fill_(1.5)
    checker.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
