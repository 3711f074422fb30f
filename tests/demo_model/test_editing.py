"""Editing a picture: strong edits follow the new prompt, light ones keep the picture."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from generation import pipeline
from generation.demo_data import Scene, draw_scene, read_image
from generation.model_info import ModelInfo

BLUE_PROMPT = "a blue circle on a gray background"
SEEDS = [11, 12, 13, 14]


@pytest.fixture(scope="module")
def red_circle() -> Image.Image:
    return draw_scene(Scene("red", "circle", "gray"), random.Random(3))


def edits(red_circle: Image.Image, info: ModelInfo, model: str, strength: float) -> list:
    return pipeline.edit(
        red_circle,
        prompt=BLUE_PROMPT,
        strength=strength,
        steps=info.recommended_steps,
        guidance=info.recommended_guidance,
        seeds=SEEDS,
        model=model,
    )


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0 to 255."""
    return float(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).mean())


def test_a_strong_edit_turns_the_red_circle_blue(
    red_circle: Image.Image, demo_model: str, demo_info: ModelInfo
) -> None:
    before = read_image(red_circle)
    assert before.colour == "red"
    results = edits(red_circle, demo_info, demo_model, strength=0.9)
    assert [picture.size for picture in results] == [red_circle.size] * len(SEEDS)
    readings = [read_image(picture) for picture in results]
    assert sum(r.colour == "blue" for r in readings) >= len(SEEDS) - 1, readings
    assert all(r.background == "gray" for r in readings), readings
    for reading in readings:
        if reading.colour_rgb is not None:
            red, _, blue = reading.colour_rgb
            assert blue - red > before.colour_rgb[2] - before.colour_rgb[0], reading


def test_a_light_edit_stays_close_to_the_input(
    red_circle: Image.Image, demo_model: str, demo_info: ModelInfo
) -> None:
    light = edits(red_circle, demo_info, demo_model, strength=0.1)
    strong = edits(red_circle, demo_info, demo_model, strength=0.9)
    for picture in light:
        assert read_image(picture).colour == "red"
    assert min(difference(p, red_circle) for p in strong) > max(
        difference(p, red_circle) for p in light
    )
