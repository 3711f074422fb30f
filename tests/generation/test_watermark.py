"""The invisible watermark: its payload reads back after a JPEG re-save at quality 75, and
nearly always after a 0.75x resize with a re-save or as WebP, at the sizes documented as
supported (512 px and more on the short side); after a JPEG re-save alone from 256 px; it is
not applied below that."""

from __future__ import annotations

import io
import random
import uuid
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter

from generation.provenance import (
    WATERMARK_MIN_SIDE,
    WATERMARK_RELIABLE_SIDE,
    watermark_embed,
    watermark_read,
    watermark_ref,
)


def scene(width: int, height: int, seed: int) -> PILImage.Image:
    """A picture with what generated images have: gradients, shapes, soft texture."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    sky = np.stack([90 + 120 * y, 140 + 60 * x, 200 - 80 * y], axis=-1)
    texture = PILImage.fromarray(rng.integers(0, 256, (height // 16, width // 16, 3), np.uint8))
    texture = texture.resize((width, height), PILImage.Resampling.BICUBIC)
    picture = PILImage.fromarray((0.7 * sky + 0.3 * np.asarray(texture)).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(6):
        x0, y0 = rng.integers(0, width * 3 // 4), rng.integers(0, height * 3 // 4)
        size = int(rng.integers(width // 10, width // 3))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x0 + size, y0 + size), fill=colour)
    return picture.filter(ImageFilter.GaussianBlur(1))


def jpeg(image: PILImage.Image, quality: int = 75) -> PILImage.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return PILImage.open(io.BytesIO(buffer.getvalue()))


def smaller(image: PILImage.Image, factor: float = 0.75) -> PILImage.Image:
    size = (round(image.width * factor), round(image.height * factor))
    return image.resize(size, PILImage.Resampling.LANCZOS)


def webp(image: PILImage.Image) -> PILImage.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=80)
    return PILImage.open(io.BytesIO(buffer.getvalue()))


SUPPORTED = [(512, 512), (768, 512), (512, 768), (1024, 1024)]


# Survival depends on the payload's bits as well as the picture: over 100 random payloads a
# case (2026-12-02) a JPEG re-save alone never lost one, while a WebP re-save lost up to 7 in
# 100 and a resize then a re-save up to 5 in 100 at 512 px. So each case embeds the same 16
# payloads (fixed, from a seeded generator: the outcome does not vary between runs) and
# holds each change to what was measured: none lost to a JPEG re-save, at most 2 of 16 to
# each of the others.
PAYLOADS = [watermark_ref(uuid.UUID(int=random.Random(n).getrandbits(128))) for n in range(16)]
CHANGES: dict[str, tuple[Callable[[PILImage.Image], PILImage.Image], int]] = {
    "JPEG re-save": (jpeg, 0),
    "re-saved, then resized": (lambda image: smaller(jpeg(image)), 2),
    "resized, then re-saved": (lambda image: jpeg(smaller(image)), 2),
    "WebP re-save": (webp, 2),
}


@pytest.mark.parametrize("size", SUPPORTED)
@pytest.mark.parametrize("seed", [1, 2])
def test_the_payload_survives_a_jpeg_resave_and_a_resize(size: tuple[int, int], seed: int) -> None:
    assert min(size) >= WATERMARK_RELIABLE_SIDE
    picture = scene(*size, seed)
    lost: dict[str, int] = dict.fromkeys(CHANGES, 0)
    for ref in PAYLOADS:
        marked = watermark_embed(picture, ref=ref)
        assert watermark_read(marked) == ref
        for name, (change, _) in CHANGES.items():
            read = watermark_read(change(marked))
            assert read in (ref, None)  # a damaged payload fails its CRC: never a wrong id
            lost[name] += read != ref
    assert {name: n for name, n in lost.items() if n > CHANGES[name][1]} == {}, lost


@pytest.mark.parametrize("size", [(256, 256), (384, 256)])
def test_from_the_minimum_size_it_survives_a_jpeg_re_save(size: tuple[int, int]) -> None:
    ref = watermark_ref(uuid.uuid4())
    marked = watermark_embed(scene(*size, 3), ref=ref)
    assert watermark_read(marked) == ref
    assert watermark_read(jpeg(marked)) == ref


def test_below_the_minimum_size_nothing_is_embedded() -> None:
    picture = scene(WATERMARK_MIN_SIDE - 8, 512, 4)
    assert watermark_embed(picture, ref=b"abcdef") is picture


def test_a_picture_without_a_watermark_reads_nothing() -> None:
    for seed in range(5):
        assert watermark_read(scene(512, 512, seed)) is None


def test_the_watermark_is_invisible_enough() -> None:
    """Peak signal-to-noise ratio above 30 dB: the change is not seen at a normal look."""
    picture = scene(768, 512, 5)
    marked = watermark_embed(picture, ref=watermark_ref(uuid.uuid4()))
    error = np.asarray(marked, float) - np.asarray(picture, float)
    psnr = 10 * np.log10(255**2 / np.mean(error**2))
    assert psnr > 30
