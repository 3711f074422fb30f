"""The GPU pipeline: the only module that imports torch and diffusers.

Workers import it; web processes never do. The model named by GENERATION_MODEL is loaded
once per worker process, on cuda, then mps, then cpu.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    DPMSolverMultistepScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.models.attention_processor import AttnProcessor2_0
from django.conf import settings
from PIL import Image as PILImage
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

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
    return list(result.images)


def warm_up(model: str | None = None) -> None:
    """Load the model and run one small step, so that the first job does not pay for it."""
    run_batch(BatchSpec(64, 64, 1, 1.0), [BatchItem("warm up", "", 0)], model=model)


# The demo model: a tiny Stable Diffusion pipeline built from the standard classes, so that
# the platform runs end to end on machines that cannot download a real model.


def _byte_level_alphabet() -> list[str]:
    """The 256 printable stand-ins for bytes that CLIP's byte-level BPE works on."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return [chr(code) for code in codes]


def build_demo_model(path: Path, *, seed: int = 0) -> None:
    """Write a small random-weight StableDiffusionPipeline to `path` with save_pretrained."""
    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    alphabet = _byte_level_alphabet()
    vocab = {char: i for i, char in enumerate(alphabet)}
    vocab.update({f"{char}</w>": len(alphabet) + i for i, char in enumerate(alphabet)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    source = path / "tokenizer-source"
    source.mkdir(exist_ok=True)
    (source / "vocab.json").write_text(json.dumps(vocab))
    (source / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(
        vocab_file=str(source / "vocab.json"),
        merges_file=str(source / "merges.txt"),
        model_max_length=77,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=77,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        block_out_channels=(8, 16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        layers_per_block=1,
    )
    scheduler = DPMSolverMultistepScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(path)
    for leftover in source.iterdir():
        leftover.unlink()
    source.rmdir()
