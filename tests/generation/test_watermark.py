"""The invisible watermark: its payload reads back after a JPEG re-save at quality 75, and
nearly always after a 0.75x resize with a re-save or as WebP, at the sizes documented as
supported (512 px and more on the short side); after a JPEG re-save alone from 256 px; it is
not applied below that."""

from __future__ import annotations

import functools
import importlib.util
import io
import random
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFilter

from generation.provenance import (
    WATERMARK_MIN_SIDE,
    WATERMARK_RELIABLE_SIDE,
    _payload_bits,
    watermark_embed,
    watermark_read,
    watermark_ref,
)
from generation.watermark import dwt_dct_svd_embed, dwt_dct_svd_read


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


# Over 200 random payloads (2026-12-03) a JPEG re-save lost none at 256x256 and 6 at 384x256
# (a random payload here once made this test fail about one run in thirty): the same fixed
# payloads as above, at most 1 of 16 lost.
@pytest.mark.parametrize("size", [(256, 256), (384, 256)])
def test_from_the_minimum_size_it_survives_a_jpeg_re_save(size: tuple[int, int]) -> None:
    picture = scene(*size, 3)
    lost = 0
    for ref in PAYLOADS:
        marked = watermark_embed(picture, ref=ref)
        assert watermark_read(marked) == ref
        read = watermark_read(jpeg(marked))
        assert read in (ref, None)
        lost += read != ref
    assert lost <= 1


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


# --- The same marks as invisible-watermark's ------------------------------------------------
#
# generation/watermark.py computes invisible-watermark's DWT-DCT-SVD method on all blocks at
# once; imwatermark's own module, block by block, is the reference. Measured (2026-12-02) over
# 262 pictures at the canonical size (scenes, noise, flat and two-tone ones) and 100 marked
# images at full size: not one value of 150 million differs, and every read gave the same bits.
# So these hold them equal, not merely close.


@functools.cache
def imwatermark() -> ModuleType:
    """imwatermark/dwtDctSvd.py, loaded on its own: the package's __init__ imports torch."""
    spec = importlib.util.find_spec("imwatermark")  # finds the package without importing it
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "dwtDctSvd.py"
    module_spec = importlib.util.spec_from_file_location("test_imwatermark_dwtdctsvd", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def imwatermark_encode(rgb: np.ndarray, bits: list[int]) -> np.ndarray:
    embedder = imwatermark().EmbedDwtDctSvd(bits, wmLen=len(bits), scales=[0, 64, 0], block=4)
    bgr = embedder.encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def imwatermark_decode(rgb: np.ndarray, length: int = 64) -> list[int]:
    reader = imwatermark().EmbedDwtDctSvd([], wmLen=length, scales=[0, 64, 0], block=4)
    return [int(bit) for bit in reader.decode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))]


def imwatermark_embed(image: PILImage.Image, *, ref: bytes) -> PILImage.Image:
    """watermark_embed as it was, on imwatermark's module."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    small = cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_AREA)
    small = small.round().clip(0, 255).astype(np.uint8)
    marked = imwatermark_encode(small, _payload_bits(ref))
    change = cv2.resize(
        marked.astype(np.float32) - small.astype(np.float32),
        image.size,
        interpolation=cv2.INTER_CUBIC,
    )
    return PILImage.fromarray((rgb + change).round().clip(0, 255).astype(np.uint8))


def canonical(image: PILImage.Image) -> np.ndarray:
    """What watermark_read hands the decoder."""
    rgb = np.asarray(image.convert("RGB"))
    return cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_AREA)


def flat_and_two_tone(seed: int, size: int = 256) -> PILImage.Image:
    """A flat picture with a saturated patch: blocks whose numbers come out exact."""
    rng = np.random.default_rng(seed)
    picture = np.empty((size, size, 3), np.uint8)
    picture[:] = rng.integers(0, 256, 3)
    top, left = rng.integers(0, size // 2, 2)
    picture[top : top + size // 4, left : left + size // 3] = rng.choice([0, 255], 3)
    picture[-size // 8 :] = 0  # black: s0 is 16 steps of 64 but for its last bit: a floor splits
    return PILImage.fromarray(picture)


def saturated_checks(size: int = 256) -> PILImage.Image:
    """Blue and yellow checks as fine as the blocks: blocks whose two largest singular values
    are close (the power iteration leaves them to LAPACK), beside a scene's ordinary ones."""
    y, x = np.mgrid[0:size, 0:size] * 256 // size
    checks = ((y // 2 + x // 2) % 2 == 1)[..., None]
    picture = np.where(checks, (0, 0, 255), (255, 255, 0)).astype(np.uint8)
    picture[: size // 2] = np.asarray(scene(size, size // 2, 9))
    return PILImage.fromarray(picture)


def noise(seed: int, size: int = 256) -> PILImage.Image:
    return PILImage.fromarray(
        np.random.default_rng(seed).integers(0, 256, (size, size, 3), np.uint8)
    )


CANONICAL_PICTURES = {
    "scene": lambda: scene(256, 256, 11),
    "another scene": lambda: scene(256, 256, 12),
    "noise": lambda: noise(13),
    "flat and two-tone": lambda: flat_and_two_tone(14),
    "another flat one": lambda: flat_and_two_tone(15),
    "saturated checks": saturated_checks,
}


@pytest.mark.parametrize("name", CANONICAL_PICTURES)
def test_the_marked_pixels_are_those_imwatermark_makes(name: str) -> None:
    rgb = np.asarray(CANONICAL_PICTURES[name]())
    rng = np.random.default_rng(len(name))
    for _ in range(3):
        bits = [int(bit) for bit in rng.integers(0, 2, 64)]
        expected = imwatermark_encode(rgb, bits)
        marked = dwt_dct_svd_embed(rgb, bits, scale=64)
        assert np.count_nonzero(marked != expected) == 0
        assert dwt_dct_svd_read(marked, 64, scale=64) == imwatermark_decode(marked) == bits


FULL_SIZE_PICTURES = {
    "512 scene": lambda: scene(512, 512, 21),
    "768x512 scene": lambda: scene(768, 512, 22),
    "1024 scene": lambda: scene(1024, 1024, 23),
    "300x256 scene": lambda: scene(300, 256, 24),
    "flat and two-tone": lambda: flat_and_two_tone(25, 512),
    "saturated checks": lambda: saturated_checks(512),
}


@pytest.mark.parametrize("name", FULL_SIZE_PICTURES)
def test_an_image_is_marked_as_the_imwatermark_version_marked_it(name: str) -> None:
    picture = FULL_SIZE_PICTURES[name]()
    for ref in PAYLOADS[:3]:
        marked = np.asarray(watermark_embed(picture, ref=ref))
        assert np.count_nonzero(marked != np.asarray(imwatermark_embed(picture, ref=ref))) == 0


@pytest.mark.parametrize("size", [(512, 512), (768, 512)])
def test_old_and_new_marks_read_the_same_bits_as_imwatermark_reads_after_changes(
    size: tuple[int, int],
) -> None:
    picture = scene(*size, 31)
    unmarked = [picture, jpeg(picture), noise(32, 512)]
    for ref in PAYLOADS[:4]:
        for marked in (watermark_embed(picture, ref=ref), imwatermark_embed(picture, ref=ref)):
            changed = [change(marked) for change, _ in CHANGES.values()]
            for image in [marked, *changed, jpeg(marked, quality=40), *unmarked]:
                small = canonical(image)
                assert dwt_dct_svd_read(small, 64, scale=64) == imwatermark_decode(small)
            assert watermark_read(marked) == ref
