"""The GPU pipeline: the only module that imports torch and diffusers.

Workers import it; web processes never do. The model named by GENERATION_MODEL is loaded
once per worker process, on cuda, then mps, then cpu.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from diffusers import (
    StableDiffusionImg2ImgPipeline,
    StableDiffusionInpaintPipeline,
    StableDiffusionPipeline,
)
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.pipelines.stable_diffusion.safety_checker import (
    StableDiffusionSafetyChecker,
    cosine_distance,
)
from django.conf import settings
from PIL import Image as PILImage
from transformers import CLIPImageProcessor

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded: dict[str, StableDiffusionPipeline] = {}
_editors: dict[str, StableDiffusionImg2ImgPipeline] = {}
_inpainters: dict[str, StableDiffusionInpaintPipeline] = {}
_projections: dict[int, torch.Tensor] = {}  # latent_projection's, by the VAE's id


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


def load_inpainter(model: str | None = None) -> StableDiffusionInpaintPipeline:
    """An inpainting pipeline on the same weights as `load(model)` (no second copy).

    With a text-to-image UNet (4 latent channels) diffusers inpaints by blending: after each
    step the area outside the mask is set back to the source's latents, noised to that step.
    """
    model = model or settings.GENERATION_MODEL
    pipe = load(model)
    with _lock:
        if model not in _inpainters:
            inpainter = StableDiffusionInpaintPipeline.from_pipe(pipe)
            inpainter.set_progress_bar_config(disable=True)
            _inpainters[model] = inpainter
        return _inpainters[model]


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
    """What every image of a batch shares. `strength` set means an edit (img2img), and
    `masked` an edit of the masked area only (inpainting)."""

    width: int
    height: int
    steps: int
    guidance: float
    strength: float | None = None
    masked: bool = False


@dataclass(frozen=True)
class BatchItem:
    prompt: str
    negative_prompt: str
    seed: int
    source: PILImage.Image | None = None
    mask: PILImage.Image | None = None  # "L": 255 where the model repaints, 0 where it keeps


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
    previews: Mapping[int, Sequence[int]] | None = None,
    on_preview: Callable[[int, int, PILImage.Image], None] | None = None,
) -> list[PILImage.Image]:
    """One pipeline call for several prompts, one generator per image.

    Each image depends only on its own prompt and seed, so a job's pictures are the same
    alone or batched (up to kernel rounding). `on_step(step)` returning False stops the
    run after that step and raises Interrupted. `previews` maps a step to the items whose
    preview to make after it: `on_preview(step, item, picture)` gets each (preview_decode).
    """
    if spec.strength is None:
        pipe = load(model)
    else:
        pipe = load_inpainter(model) if spec.masked else load_editor(model)
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
    size = (spec.width, spec.height)
    sources: list[PILImage.Image] = []
    masks: list[PILImage.Image] = []
    if spec.strength is None:
        arguments.update(width=spec.width, height=spec.height)
    else:
        sources = [
            item.source.convert("RGB").resize(size, PILImage.Resampling.LANCZOS)  # type: ignore[union-attr]
            for item in items
        ]
        arguments["image"] = sources
        arguments["strength"] = spec.strength
    if spec.masked:
        masks = [item.mask.resize(size, PILImage.Resampling.NEAREST) for item in items]  # type: ignore[union-attr]
        arguments.update(mask_image=masks, width=spec.width, height=spec.height)
    if on_step is not None or previews:

        def callback(pipeline: object, step: int, timestep: object, tensors: dict) -> dict:
            if previews and on_preview and (wanted := previews.get(step + 1)):
                pictures = preview_decode(pipe, tensors["latents"][list(wanted)], size)
                for index, picture in zip(wanted, pictures, strict=True):
                    on_preview(step + 1, index, picture)
            if on_step is not None and not on_step(step + 1):
                pipeline._interrupt = True  # type: ignore[attr-defined]
            return tensors

        arguments["callback_on_step_end"] = callback
    result = pipe(**arguments)
    if pipe.interrupt:
        raise Interrupted()
    pictures = pictures_of(result.images)
    if spec.masked:
        # The VAE's round trip changes every pixel a little: outside the mask, the source's
        # own pixels are put back exactly.
        pictures = [
            PILImage.composite(picture, source, mask)
            for picture, source, mask in zip(pictures, sources, masks, strict=True)
        ]
    return pictures


def preview_steps(steps: int, count: int) -> list[int]:
    """`count` evenly spaced steps before the last of `steps`, after which to show a preview
    (fewer when there are too few steps)."""
    return sorted({round(steps * (index + 1) / (count + 1)) for index in range(count)} - {0, steps})


@torch.inference_mode()
def latent_projection(pipe: StableDiffusionPipeline) -> torch.Tensor:
    """A linear map from the model's latents to RGB ((channels + 1) x 3, with the bias),
    fitted once per model by least squares: the VAE encodes a picture of random colour
    patches, and each latent cell is matched to the mean colour of the 8x8 pixels it covers.
    The same idea as the fixed "latent to RGB" factors preview tools ship for known models,
    found from the model itself so that any VAE gets one."""
    key = id(pipe.vae)
    if key not in _projections:
        generator = torch.Generator().manual_seed(0)
        patches = torch.rand(1, 3, 16, 16, generator=generator) * 2 - 1
        picture = torch.nn.functional.interpolate(patches, scale_factor=16, mode="nearest")
        vae = pipe.vae
        encoded = vae.encode(picture.to(vae.device, vae.dtype)).latent_dist.mean
        latents = (encoded * vae.config.scaling_factor).float().cpu()
        scale = picture.shape[-1] // latents.shape[-1]
        target = torch.nn.functional.avg_pool2d(picture, scale)
        inputs = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        inputs = torch.cat([inputs, torch.ones(len(inputs), 1)], dim=1)
        colours = target.permute(0, 2, 3, 1).reshape(-1, 3)
        _projections[key] = torch.linalg.lstsq(inputs, colours).solution
    return _projections[key]


def preview_decode(
    pipe: StableDiffusionPipeline, latents: torch.Tensor, size: tuple[int, int]
) -> list[PILImage.Image]:
    """Cheap previews of intermediate latents: each latent cell becomes a colour through
    latent_projection (no VAE decode), then the picture is scaled up to `size`.
    bench/preview_cost.py measures what they add to a render."""
    projection = latent_projection(pipe)
    cells = latents.float().cpu().permute(0, 2, 3, 1)
    cells = torch.cat([cells, torch.ones(*cells.shape[:-1], 1)], dim=-1)
    rgb = ((cells @ projection).clamp(-1, 1) + 1) * 127.5
    pixels = rgb.round().to(torch.uint8).numpy()
    return [
        PILImage.fromarray(picture).resize(size, PILImage.Resampling.BILINEAR) for picture in pixels
    ]


_checkers: dict[str, tuple[StableDiffusionSafetyChecker, CLIPImageProcessor]] = {}


def load_safety_checker(folder: str) -> tuple[StableDiffusionSafetyChecker, CLIPImageProcessor]:
    """The output safety checker in `folder` (weights and CLIP preprocessor), loaded once, on
    the device and in the dtype the model uses."""
    with _lock:
        if folder not in _checkers:
            if not os.path.isdir(folder):
                raise ModelLoadError(f"Safety checker folder {folder!r} does not exist.")
            device = pick_device()
            try:
                checker = StableDiffusionSafetyChecker.from_pretrained(
                    folder, torch_dtype=pick_dtype(device), local_files_only=True
                )
                processor = CLIPImageProcessor.from_pretrained(folder, local_files_only=True)
            except (OSError, ValueError) as exc:
                raise ModelLoadError(f"Could not load safety checker {folder!r}: {exc}") from exc
            checker.to(device).eval()
            logger.info("Loaded safety checker %s on %s", folder, device)
            _checkers[folder] = (checker, processor)
        return _checkers[folder]


@torch.inference_mode()
def safety_flags(
    images: list[PILImage.Image], *, adjustments: list[float], folder: str
) -> list[bool]:
    """For each image, whether the safety checker in `folder` flags it, in one batch.

    The scores are StableDiffusionSafetyChecker's own (cosine similarity to each concept less
    its threshold, plus 0.01 once a special-care concept matched), with a per-image
    `adjustment` added: above 0 the check is stricter (moderation levels).
    """
    if not images:
        return []
    checker, processor = load_safety_checker(folder)
    parameter = next(checker.parameters())
    pixels = processor(images, return_tensors="pt").pixel_values.to(
        parameter.device, parameter.dtype
    )
    embeds = checker.visual_projection(checker.vision_model(pixels)[1])
    adjustment = torch.tensor(adjustments, device=embeds.device, dtype=torch.float32)[:, None]
    special = (
        cosine_distance(embeds, checker.special_care_embeds).float()
        - checker.special_care_embeds_weights.float()
        + adjustment
    )
    adjustment = adjustment + (special > 0).any(dim=1, keepdim=True) * 0.01
    concepts = (
        cosine_distance(embeds, checker.concept_embeds).float()
        - checker.concept_embeds_weights.float()
        + adjustment
    )
    return [bool(flag) for flag in (concepts > 0).any(dim=1).tolist()]


def pictures_of(batch: torch.Tensor) -> list[PILImage.Image]:
    """A decoded batch (N x 3 x H x W in [0, 1], on the device) as pictures: rounded to
    uint8 on the device, then copied to the host in one transfer for the whole batch, not
    one per image. The same arithmetic as diffusers' PIL output (float32, x 255, round
    half to even), so the pixels are identical to it."""
    pixels = (batch.float() * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    host = pixels.cpu().numpy()
    return [PILImage.fromarray(picture) for picture in host]


def warm_up(model: str | None = None) -> None:
    """Load the model and run one small step, so that the first job does not pay for it
    (nor the first stream for fitting the previews' projection)."""
    run_batch(BatchSpec(64, 64, 1, 1.0), [BatchItem("warm up", "", 0)], model=model)
    latent_projection(load(model))


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
