"""How long each way of writing a 512x512 picture takes, and how many bytes it makes.

Run with `make bench-encoders` (no services). The picture is bench.simulated_gpu's
photo-like one (it compresses as a rendered image does); each encoder writes it ROUNDS
times on one thread, and the median is reported. Pillow's PNG (zlib-ng inside Pillow's
wheel) at several levels, fpng (what the worker writes by default), Pillow's JPEG and WebP;
imagecodecs too where it is installed (it is not a dependency).
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fpng
import numpy as np
from PIL import Image as PILImage
from PIL import features

from bench.simulated_gpu import photo_like

ROUNDS = 15


def pillow(image: PILImage.Image, format: str, **options: object) -> Callable[[], bytes]:
    def encode() -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format=format, **options)
        return buffer.getvalue()

    return encode


def main() -> None:
    pixels = photo_like(1, 512, 512)
    image = PILImage.fromarray(pixels)
    encoders: dict[str, Callable[[], bytes]] = {
        "PNG, Pillow, compress_level=6 (Pillow's default)": pillow(image, "PNG"),
        "PNG, Pillow, compress_level=1": pillow(image, "PNG", compress_level=1),
        "PNG, Pillow, compress_level=0 (stored)": pillow(image, "PNG", compress_level=0),
        "PNG, fpng (the worker's default)": lambda: fpng.from_pil(image),
        "JPEG, Pillow, quality 90": pillow(image, "JPEG", quality=90),
        "JPEG, Pillow, quality 75": pillow(image, "JPEG", quality=75),
        "WebP, Pillow, quality 80, method 4 (Pillow's default)": pillow(image, "WEBP", quality=80),
        "WebP, Pillow, quality 80, method 0": pillow(image, "WEBP", quality=80, method=0),
    }
    try:
        import imagecodecs  # type: ignore[import-not-found]

        encoders["PNG, imagecodecs png_encode level 1"] = lambda: imagecodecs.png_encode(
            pixels, level=1
        )
    except ImportError:
        pass
    print(f"Pillow with zlib-ng {features.version('zlib_ng')}, fpng {fpng.__version__}")
    print("| Encoder | ms | KiB |\n| --- | ---: | ---: |")
    for name, encode in encoders.items():
        size = len(encode())
        times = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            encode()
            times.append(time.perf_counter() - start)
        print(f"| {name} | {median(times) * 1000:.1f} | {size / 1024:.0f} |")
    assert np.array_equal(np.asarray(PILImage.open(io.BytesIO(fpng.from_pil(image)))), pixels)


if __name__ == "__main__":
    main()
