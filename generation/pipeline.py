"""The GPU pipeline: the only module that imports torch and diffusers.

Workers import it; web processes never do. The model named by GENERATION_MODEL is loaded
once per worker process, on cuda, then mps, then cpu.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers import (
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
)
from diffusers.models.attention_processor import AttnProcessor2_0
from django.conf import settings
from PIL import Image as PILImage

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded: dict[str, StableDiffusionPipeline] = {}
_editors: dict[str, StableDiffusionImg2ImgPipeline] = {}


class ModelLoadError(RuntimeError):
    pass


@dataclass(frozen=True)
class Request:
    prompt: str
    negative_prompt: str
    width: int
    height: int
    steps: int
    guidance: float
    seeds: list[int]


def pick_device() -> torch.device:
    if settings.GENERATION_DEVICE:
        return torch.device(settings.GENERATION_DEVICE)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device) -> torch.dtype:
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def load(model: str | None = None) -> StableDiffusionPipeline:
    """The pipeline for `model` (default GENERATION_MODEL), loaded on first use."""
    model = model or settings.GENERATION_MODEL
    with _lock:
        if model in _loaded:
            return _loaded[model]
        device = pick_device()
        local = os.path.isdir(model)
        if not local and (model.startswith(("/", ".", "~")) or model.count("/") > 1):
            # A path, not a hub id ("org/name"): say so instead of trying the hub.
            raise ModelLoadError(f"Model folder {model!r} does not exist.")
        try:
            pipe = StableDiffusionPipeline.from_pretrained(
                model,
                torch_dtype=pick_dtype(device),
                local_files_only=local,
                safety_checker=None,
                requires_safety_checker=False,
            )
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"Could not load model {model!r}: {exc}") from exc
        pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        pipe.unet.set_attn_processor(AttnProcessor2_0())  # PyTorch's fused SDPA kernels
        # NHWC convolutions, the layout GPU tensor cores prefer (diffusers' advice); a few
        # percent faster on this CPU too, in an interleaved A/B with the demo model.
        pipe.unet.to(memory_format=torch.channels_last)
        if settings.GENERATION_COMPILE:
            pipe.unet = torch.compile(pipe.unet)
        logger.info("Loaded %s on %s", model, device)
        _loaded[model] = pipe
        return pipe


@torch.inference_mode()
def generate(request: Request, model: str | None = None) -> list[PILImage.Image]:
    """Text to image, one generator per image so that each seed gives the same picture."""
    pipe = load(model)
    generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in request.seeds]
    result = pipe(
        prompt=[request.prompt] * len(request.seeds),
        negative_prompt=[request.negative_prompt] * len(request.seeds)
        if request.negative_prompt
        else None,
        width=request.width,
        height=request.height,
        num_inference_steps=request.steps,
        guidance_scale=request.guidance,
        generator=generators,
    )
    return list(result.images)


def load_editor(model: str | None = None) -> StableDiffusionImg2ImgPipeline:
    """An image-to-image pipeline on the same weights as `load(model)` (no second copy)."""
    model = model or settings.GENERATION_MODEL
    pipe = load(model)
    with _lock:
        if model not in _editors:
            editor = StableDiffusionImg2ImgPipeline.from_pipe(pipe)
            editor.set_progress_bar_config(disable=True)
            _editors[model] = editor
        return _editors[model]


@torch.inference_mode()
def edit(
    source: PILImage.Image,
    *,
    prompt: str,
    negative_prompt: str = "",
    strength: float,
    steps: int,
    guidance: float,
    seeds: list[int],
    model: str | None = None,
) -> list[PILImage.Image]:
    """Redraw `source` toward `prompt`: strength 0 keeps it, 1 ignores it. One image per seed.

    The source is cropped to a multiple of 8 on each side, which the UNet needs.
    """
    editor = load_editor(model)
    image = source.convert("RGB")
    width, height = image.width // 8 * 8, image.height // 8 * 8
    if (width, height) != image.size:
        image = image.crop((0, 0, width, height))
    generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
    result = editor(
        prompt=[prompt] * len(seeds),
        negative_prompt=[negative_prompt] * len(seeds) if negative_prompt else None,
        image=[image] * len(seeds),
        strength=strength,
        num_inference_steps=steps,
        guidance_scale=guidance,
        generator=generators,
    )
    return list(result.images)


@dataclass(frozen=True)
class BatchSpec:
    """What every image of a batch shares. `strength` set means an edit (img2img)."""

    width: int
    height: int
    steps: int
    guidance: float
    strength: float | None = None


@dataclass(frozen=True)
class BatchItem:
    prompt: str
    negative_prompt: str
    seed: int
    source: PILImage.Image | None = None


class Interrupted(Exception):
    """The step callback asked the pipeline to stop (cancellation or time limit)."""


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


@torch.inference_mode()
def run_batch(
    spec: BatchSpec,
    items: list[BatchItem],
    *,
    model: str | None = None,
    on_step: Callable[[int], bool] | None = None,
) -> list[PILImage.Image]:
    """One pipeline call for several prompts, one generator per image.

    Each image depends only on its own prompt and seed, so a job's pictures are the same
    alone or batched (up to kernel rounding). `on_step(step)` returning False stops the
    run after that step and raises Interrupted.
    """
    pipe = load(model) if spec.strength is None else load_editor(model)
    arguments: dict[str, object] = {
        "prompt": [item.prompt for item in items],
        "negative_prompt": [item.negative_prompt for item in items],
        "num_inference_steps": spec.steps,
        "guidance_scale": spec.guidance,
        "generator": [torch.Generator(device="cpu").manual_seed(item.seed) for item in items],
        # The decoded batch stays on the device (one batched VAE decode); pictures_of turns
        # it into pixels there and copies it to the host once.
        "output_type": "pt",
    }
    if spec.strength is None:
        arguments.update(width=spec.width, height=spec.height)
    else:
        size = (spec.width, spec.height)
        arguments["image"] = [
            item.source.convert("RGB").resize(size, PILImage.Resampling.LANCZOS)  # type: ignore[union-attr]
            for item in items
        ]
        arguments["strength"] = spec.strength
    if on_step is not None:

        def callback(pipeline: object, step: int, timestep: object, tensors: dict) -> dict:
            if not on_step(step + 1):
                pipeline._interrupt = True  # type: ignore[attr-defined]
            return tensors

        arguments["callback_on_step_end"] = callback
    result = pipe(**arguments)
    if pipe.interrupt:
        raise Interrupted()
    return pictures_of(result.images)


def pictures_of(batch: torch.Tensor) -> list[PILImage.Image]:
    """A decoded batch (N x 3 x H x W in [0, 1], on the device) as pictures: rounded to
    uint8 on the device, then copied to the host in one transfer for the whole batch, not
    one per image. The same arithmetic as diffusers' PIL output (float32, x 255, round
    half to even), so the pixels are identical to it."""
    pixels = (batch.float() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    host = pixels.cpu().numpy()
    return [PILImage.fromarray(picture) for picture in host]


def warm_up(model: str | None = None) -> None:
    """Load the model and run one small step, so that the first job does not pay for it."""
    run_batch(BatchSpec(64, 64, 1, 1.0), [BatchItem("warm up", "", 0)], model=model)


def gpu_usage() -> tuple[float, float | None] | None:
    """(bytes of GPU memory this process holds, the GPU's utilisation 0-1 or None when the
    driver does not say), or None off CUDA. Read after each batch for the worker's gauges."""
    if not torch.cuda.is_available():
        return None
    try:
        utilisation: float | None = torch.cuda.utilization() / 100
    except Exception:  # needs NVML (pynvml); memory is known without it
        utilisation = None
    return float(torch.cuda.memory_allocated()), utilisation
