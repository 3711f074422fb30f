"""The demo model's world: pictures of coloured shapes drawn with Pillow, and a scorer.

Torch-free, so that tests, the web process and the training command share it. Prompts read
"a red circle on a gray background". Some (colour, shape, background) combinations are held
out of training entirely; the tests ask the trained model for exactly those.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import product

import numpy as np
from PIL import Image, ImageDraw

NATIVE_SIZE = 32

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (35, 70, 225),
    "yellow": (240, 215, 30),
    "purple": (140, 45, 180),
    "orange": (245, 130, 20),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
    "black": (15, 15, 15),
    "pink": (250, 185, 200),
}
SHAPES = ("circle", "square", "triangle")
VOCABULARY = ("a", "an", "on", "background", *COLOURS, *SHAPES, *BACKGROUNDS)


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    background: str

    @property
    def prompt(self) -> str:
        return f"a {self.colour} {self.shape} on a {self.background} background"


ALL_SCENES = tuple(Scene(*combo) for combo in product(COLOURS, SHAPES, BACKGROUNDS))


def _is_held_out(scene: Scene) -> bool:
    # One combination in four, spread so that every colour, shape and background (and every
    # pair of them) still appears in training.
    c = list(COLOURS).index(scene.colour)
    s = SHAPES.index(scene.shape)
    b = list(BACKGROUNDS).index(scene.background)
    return (c + 2 * s + b) % 4 == 0


HELD_OUT = tuple(scene for scene in ALL_SCENES if _is_held_out(scene))
TRAINING = tuple(scene for scene in ALL_SCENES if not _is_held_out(scene))


def parse_prompt(prompt: str) -> Scene | None:
    """The scene a prompt asks for, or None when it does not name one of each."""
    words = prompt.lower().replace(",", " ").split()
    colours = [w for w in words if w in COLOURS]
    shapes = [w for w in words if w in SHAPES]
    backgrounds = [w for w in words if w in BACKGROUNDS]
    if not (colours and shapes and backgrounds):
        return None
    return Scene(colours[0], shapes[0], backgrounds[-1])


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    return tuple(min(255, max(0, v + rng.randint(-amount, amount))) for v in rgb)  # type: ignore[return-value]


def draw_shape(
    shape: str,
    fill: tuple[int, int, int],
    background: tuple[int, int, int],
    rng: random.Random,
    size: int = NATIVE_SIZE,
) -> Image.Image:
    """One shape of random size and position; drawn 4x larger and reduced, for smooth edges."""
    scale = 4
    canvas = size * scale
    side = rng.uniform(0.4, 0.7) * canvas
    left = rng.uniform(0.06 * canvas, canvas * 0.94 - side)
    top = rng.uniform(0.06 * canvas, canvas * 0.94 - side)
    picture = Image.new("RGB", (canvas, canvas), background)
    pen = ImageDraw.Draw(picture)
    box = (left, top, left + side, top + side)
    if shape == "circle":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    elif shape == "triangle":
        pen.polygon(
            [(left + side / 2, top), (left + side, top + side), (left, top + side)], fill=fill
        )
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return picture.resize((size, size), Image.Resampling.LANCZOS)


def draw_scene(scene: Scene, rng: random.Random, size: int = NATIVE_SIZE) -> Image.Image:
    """A picture of `scene` with some variation in colour, position and size."""
    return draw_shape(
        scene.shape,
        _jitter(COLOURS[scene.colour], rng, 12),
        _jitter(BACKGROUNDS[scene.background], rng, 8),
        rng,
        size,
    )


def draw_random_shape(rng: random.Random, size: int = NATIVE_SIZE) -> Image.Image:
    """A shape in random colours: what the autoencoder learns from, so it knows every colour."""

    def colour() -> tuple[int, int, int]:
        return (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))

    return draw_shape(rng.choice(SHAPES), colour(), colour(), rng, size)


@dataclass(frozen=True)
class Reading:
    """What the scorer sees in a picture."""

    background: str
    colour: str | None
    shape: str | None
    background_rgb: tuple[float, float, float]
    colour_rgb: tuple[float, float, float] | None


def _nearest(rgb: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    """The palette name nearest to `rgb`, judging hue and saturation over brightness, as
    eyes do: a dim white is still white, not pink."""

    def distance(name: str) -> float:
        reference = np.array(palette[name], dtype=float)
        chroma = (rgb - rgb.mean()) - (reference - reference.mean())
        return float(np.sum(chroma**2) + 0.5 * (rgb.mean() - reference.mean()) ** 2)

    return min(palette, key=distance)


def _shape_templates(mask: np.ndarray) -> dict[str, np.ndarray]:
    """A square, a circle and an upright triangle filling the mask's bounding box."""
    rows, cols = np.nonzero(mask)
    # Percentiles, not extremes: a few stray pixels should not stretch the box.
    top, bottom = np.percentile(rows, [1, 99])
    left, right = np.percentile(cols, [1, 99])
    top, left, bottom, right = top - 0.5, left - 0.5, bottom + 0.5, right + 0.5
    yy, xx = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]].astype(float)
    cy, cx = (top + bottom) / 2, (left + right) / 2
    ry, rx = max((bottom - top) / 2, 0.5), max((right - left) / 2, 0.5)
    inside = (yy >= top) & (yy <= bottom) & (xx >= left) & (xx <= right)
    half_width = (yy - top) / max(bottom - top, 1.0) * rx
    return {
        "square": inside,
        "circle": ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1,
        "triangle": inside & (np.abs(xx - cx) <= half_width),
    }


def read_image(picture: Image.Image) -> Reading:
    """Read the background colour, the shape's colour and the shape from pixel statistics:
    the background from the border, the shape from the pixels that differ from it, and which
    of a square, circle or triangle fitted to those pixels overlaps them best."""
    pixels = np.asarray(picture.convert("RGB").resize((NATIVE_SIZE, NATIVE_SIZE)), dtype=float)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background_rgb = np.median(border, axis=0)
    distance = np.sqrt(np.sum((pixels - background_rgb) ** 2, axis=2))
    background = _nearest(background_rgb, BACKGROUNDS)
    contrast = np.percentile(distance, 97)
    if contrast < 60:
        return Reading(background, None, None, tuple(background_rgb), None)
    # Half-way between background and shape: soft edges count for neither more nor less.
    mask = distance > contrast / 2
    colour_rgb = np.median(pixels[distance > contrast * 0.75], axis=0)
    overlap = {
        name: (mask & template).sum() / (mask | template).sum()
        for name, template in _shape_templates(mask).items()
    }
    return Reading(
        background=background,
        colour=_nearest(colour_rgb, COLOURS),
        shape=max(overlap, key=overlap.__getitem__),
        background_rgb=tuple(background_rgb),
        colour_rgb=tuple(colour_rgb),
    )


@dataclass(frozen=True)
class Score:
    images: int
    background: float
    colour: float
    shape: float

    def __str__(self) -> str:
        return (
            f"{self.images} images: background {self.background:.0%}, "
            f"colour {self.colour:.0%}, shape {self.shape:.0%}"
        )


def score(pairs: list[tuple[Scene, Image.Image]]) -> Score:
    """The fraction of pictures whose background, colour and shape match their prompt."""
    readings = [(scene, read_image(picture)) for scene, picture in pairs]
    n = len(readings)
    return Score(
        images=n,
        background=sum(r.background == s.background for s, r in readings) / n,
        colour=sum(r.colour == s.colour for s, r in readings) / n,
        shape=sum(r.shape == s.shape for s, r in readings) / n,
    )
