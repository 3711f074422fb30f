"""The scorer reads drawn pictures correctly, so that its numbers about the model mean something."""

from __future__ import annotations

import random

from PIL import Image

from generation.demo_data import (
    ALL_SCENES,
    BACKGROUNDS,
    COLOURS,
    HELD_OUT,
    SHAPES,
    TRAINING,
    Scene,
    draw_scene,
    parse_prompt,
    read_image,
    score,
)


def test_the_scorer_reads_background_colour_and_shape_of_drawn_pictures() -> None:
    rng = random.Random(1)
    pairs = [(scene, draw_scene(scene, rng)) for scene in ALL_SCENES for _ in range(4)]
    result = score(pairs)
    assert result.background == 1.0
    assert result.colour == 1.0
    assert result.shape >= 0.98


def test_the_scorer_reads_a_larger_picture_too() -> None:
    scene = Scene("blue", "square", "white")
    reading = read_image(draw_scene(scene, random.Random(2), size=128))
    assert (reading.background, reading.colour, reading.shape) == ("white", "blue", "square")


def test_a_blank_picture_has_a_background_and_no_shape() -> None:
    reading = read_image(Image.new("RGB", (32, 32), BACKGROUNDS["gray"]))
    assert reading.background == "gray"
    assert reading.colour is None and reading.shape is None


def test_held_out_combinations_are_never_trained_on_but_their_parts_are() -> None:
    assert len(HELD_OUT) == 18
    assert not set(HELD_OUT) & set(TRAINING)
    for scene in HELD_OUT:
        assert any(t.colour == scene.colour and t.shape == scene.shape for t in TRAINING)
        assert any(t.colour == scene.colour and t.background == scene.background for t in TRAINING)
        assert any(t.shape == scene.shape and t.background == scene.background for t in TRAINING)
    assert {t.colour for t in TRAINING} == set(COLOURS)
    assert {t.shape for t in TRAINING} == set(SHAPES)


def test_a_prompt_names_its_scene() -> None:
    assert parse_prompt("A Red circle on a gray background") == Scene("red", "circle", "gray")
    assert parse_prompt("a cat") is None
