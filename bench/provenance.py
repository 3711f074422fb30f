"""What provenance and the output safety check add per image, in the worker.

Run with `make bench-provenance` (no services needed). For pictures of 64, 512 and 1024 px
(a scene with gradients, shapes and texture, as generated images have), the median of ROUNDS
runs of each step the worker adds to an image, next to the PNG encoding it always did:

- the invisible watermark (embed), before encoding;
- the C2PA manifest signed onto the encoded bytes (PNG, and JPEG and WebP for comparison);
- verification's reading of both (what POST /api/v1/provenance/verify spends).

Then the output safety check with the real StableDiffusionSafetyChecker's architecture (CLIP
ViT-L/14 at 224 px, 17 + 3 concepts; random weights, since no weights can be downloaded here:
the cost is the architecture's), per image at batch 1 and 4, on this machine's device.
"""

from __future__ import annotations

import io
import os
import sys
import time
import uuid
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "true")

import django

django.setup()

from PIL import Image as PILImage  # noqa: E402

from generation.images import encode_png  # noqa: E402
from generation.provenance import (  # noqa: E402
    ImageClaims,
    content_credentials_sign,
    manifest_read,
    watermark_embed,
    watermark_read,
    watermark_ref,
)
from tests.generation.test_watermark import scene  # noqa: E402

ROUNDS = 15
SIZES = [64, 512, 1024]


def timed(step: object, rounds: int = ROUNDS) -> float:
    """Median milliseconds of `step()` over `rounds` runs (after one warm-up run)."""
    step()  # type: ignore[operator]
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        step()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return median(times) * 1000


def encoded(picture: PILImage.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **({"quality": 90} if fmt != "PNG" else {}))
    return buffer.getvalue()


def provenance_costs() -> None:
    print("Per image, median ms over", ROUNDS, "runs")
    print(f"{'size':>6} {'png':>7} {'wm':>7} {'c2pa png':>9} {'c2pa jpg':>9} {'c2pa webp':>10}"
          f" {'+bytes':>7} {'read wm':>8} {'read c2pa':>10}")  # fmt: skip
    for size in SIZES:
        picture = scene(size, size, 1)
        image_id = uuid.uuid4()
        claims = ImageClaims(image_id, "atelier-demo")
        png = encode_png(picture, provenance={"job": "bench"})
        png_ms = timed(lambda: encode_png(picture, provenance={"job": "bench"}))  # noqa: B023
        wm_ms = timed(lambda: watermark_embed(picture, ref=watermark_ref(image_id)))  # noqa: B023
        sign = {
            fmt: timed(
                lambda: content_credentials_sign(data, mime, claims=claims)  # noqa: B023
            )
            for fmt, mime, data in [
                ("PNG", "image/png", png),
                ("JPEG", "image/jpeg", encoded(picture, "JPEG")),
                ("WEBP", "image/webp", encoded(picture, "WEBP")),
            ]
        }
        signed = content_credentials_sign(png, "image/png", claims=claims)
        marked = watermark_embed(picture, ref=watermark_ref(image_id))
        read_wm = timed(lambda: watermark_read(marked))  # noqa: B023
        read_c2pa = timed(lambda: manifest_read(signed, "image/png"))  # noqa: B023
        print(f"{size:>6} {png_ms:>7.1f} {wm_ms:>7.1f} {sign['PNG']:>9.1f} {sign['JPEG']:>9.1f}"
              f" {sign['WEBP']:>10.1f} {len(signed) - len(png):>7} {read_wm:>8.1f}"
              f" {read_c2pa:>10.1f}")  # fmt: skip


def safety_costs() -> None:
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import (
        StableDiffusionSafetyChecker,
    )
    from transformers import CLIPConfig, CLIPImageProcessor

    from generation import pipeline

    device = pipeline.pick_device()
    config = CLIPConfig(
        vision_config={"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                       "num_attention_heads": 16, "image_size": 224, "patch_size": 14},
        projection_dim=768,
    )  # fmt: skip
    started = time.perf_counter()
    checker = StableDiffusionSafetyChecker(config).to(device, pipeline.pick_dtype(device)).eval()
    processor = CLIPImageProcessor(size={"shortest_edge": 224}, crop_size=224)
    built = time.perf_counter() - started
    print(f"\nSafety checker (ViT-L/14 architecture) built in {built:.0f} s on {device}")
    folder = "bench:vit-l-14"
    pipeline._checkers[folder] = (checker, processor)  # as load_safety_checker keeps it
    with torch.inference_mode():
        for batch in (1, 4):
            pictures = [scene(512, 512, seed) for seed in range(batch)]
            ms = timed(
                lambda: pipeline.safety_flags(
                    pictures,  # noqa: B023
                    adjustments=[0.0] * len(pictures),  # noqa: B023
                    folder=folder,
                ),
                rounds=3,
            )
            print(f"batch {batch}: {ms / batch:.0f} ms per 512 px image")


if __name__ == "__main__":
    provenance_costs()
    if "--no-safety" not in sys.argv:
        safety_costs()
