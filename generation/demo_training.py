"""Train the demo model: a small Stable Diffusion pipeline that draws coloured shapes.

Besides generation/pipeline.py this is the only module that imports torch and diffusers; only
`manage.py train_demo_model` imports it (never the web process, never a worker).

Three stages, each with a fixed seed and a fixed number of steps so that a run takes the same
work on any machine: the autoencoder on shapes in random colours (trained on the prompt's
combinations it memorises colour pairs and draws held-out colours wrong), then the text encoder
and the UNet together on the training combinations, with 10% of prompts dropped for
classifier-free guidance, min-SNR loss weighting and EMA weights. The result is written with
save_pretrained like any other diffusers model.

Over 300 lines: the three stages share the data, the schedule and the scorer's checks; only
`manage.py train_demo_model` runs it.
"""

from __future__ import annotations

import copy
import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from PIL import Image
from tqdm import tqdm
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from generation import demo_data
from generation.model_info import METADATA_FILE

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_TOKENS = 16


@dataclass(frozen=True)
class TrainingPlan:
    seed: int = 0
    vae_steps: int = 800
    vae_batch: int = 32
    vae_lr: float = 1e-3
    images_per_scene: int = 120
    unet_steps: int = 2500
    unet_batch: int = 48
    unet_lr: float = 1e-3
    prompt_dropout: float = 0.1
    ema_decay: float = 0.999
    snr_gamma: float = 5.0
    guidance: float = 4.0
    inference_steps: int = 20


def _bpe_merges(words: list[str]) -> list[tuple[str, str]]:
    """BPE merges learned on `words` until each is one token: a word-level CLIP tokenizer."""
    pieces = {word: [*word[:-1], word[-1] + "</w>"] for word in words}
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter[tuple[str, str]] = Counter()
        for parts in pieces.values():
            pairs.update(pairwise(parts))
        if not pairs:
            return merges
        best = max(pairs, key=lambda pair: (pairs[pair], pair))
        merges.append(best)
        for word, parts in pieces.items():
            merged, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            pieces[word] = merged


def build_tokenizer() -> CLIPTokenizer:
    """A CLIPTokenizer whose vocabulary is the demo's words (anything else is unknown)."""
    words = sorted(demo_data.VOCABULARY)
    merges = _bpe_merges(words)
    # The tokenizers library wants every piece in the vocabulary: letters, then each merge.
    letters = "abcdefghijklmnopqrstuvwxyz"
    pieces = [*letters, *(f"{letter}</w>" for letter in letters), *(a + b for a, b in merges)]
    vocab = {BOS: 0, EOS: 1, **{piece: i + 2 for i, piece in enumerate(pieces)}}
    tokenizer = CLIPTokenizer(
        vocab=vocab,
        merges=merges,
        model_max_length=MAX_TOKENS,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=EOS,
        pad_token=EOS,
    )
    for word in words:
        assert len(tokenizer(word).input_ids) == 3, f"{word!r} is not one token"
    return tokenizer


def build_models(
    tokenizer: CLIPTokenizer,
) -> tuple[AutoencoderKL, CLIPTextModel, UNet2DConditionModel]:
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=demo_data.NATIVE_SIZE,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer.get_vocab()),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=MAX_TOKENS,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    unet = UNet2DConditionModel(
        sample_size=demo_data.NATIVE_SIZE // 4,
        in_channels=4,
        out_channels=4,
        block_out_channels=(48, 96),
        layers_per_block=1,
        # Cross-attention only at the lowest resolution: enough to follow the prompt, and fast.
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=16,
        norm_num_groups=16,
    )
    return vae, text_encoder, unet


def _to_tensor(pictures: list[Image.Image]) -> torch.Tensor:
    array = np.stack([np.asarray(p, dtype=np.float32) for p in pictures]) / 127.5 - 1.0
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def _to_pictures(batch: torch.Tensor) -> list[Image.Image]:
    array = ((batch.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a) for a in array]


def train_vae(vae: AutoencoderKL, plan: TrainingPlan, progress: Callable) -> None:
    rng = random.Random(plan.seed)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=plan.vae_lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=plan.vae_lr, total_steps=plan.vae_steps, pct_start=0.05
    )
    vae.train()
    for _ in progress(range(plan.vae_steps), desc="autoencoder"):
        batch = _to_tensor([demo_data.draw_random_shape(rng) for _ in range(plan.vae_batch)])
        posterior = vae.encode(batch).latent_dist
        reconstruction = vae.decode(posterior.sample()).sample
        loss = F.mse_loss(reconstruction, batch) + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    vae.eval()


@torch.no_grad()
def encode_training_set(vae: AutoencoderKL, plan: TrainingPlan) -> tuple[torch.Tensor, list[str]]:
    """Latents of every training picture (drawn once), scaled to unit variance."""
    rng = random.Random(plan.seed + 1)
    scenes = [s for s in demo_data.TRAINING for _ in range(plan.images_per_scene)]
    latents = []
    for start in range(0, len(scenes), 256):
        chunk = scenes[start : start + 256]
        pictures = [demo_data.draw_scene(scene, rng) for scene in chunk]
        latents.append(vae.encode(_to_tensor(pictures)).latent_dist.mode())
    stacked = torch.cat(latents)
    vae.register_to_config(scaling_factor=float(1.0 / stacked.std()))
    return stacked * vae.config.scaling_factor, [scene.prompt for scene in scenes]


def _token_ids(tokenizer: CLIPTokenizer, prompts: list[str]) -> torch.Tensor:
    return tokenizer(
        prompts, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt"
    ).input_ids


def train_denoiser(
    text_encoder: CLIPTextModel,
    unet: UNet2DConditionModel,
    tokenizer: CLIPTokenizer,
    latents: torch.Tensor,
    prompts: list[str],
    plan: TrainingPlan,
    progress: Callable,
) -> tuple[CLIPTextModel, UNet2DConditionModel]:
    """Train text encoder and UNet together; return their EMA copies."""
    generator = torch.Generator().manual_seed(plan.seed + 2)
    noise_schedule = DDPMScheduler(
        num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012
    )
    alphas = noise_schedule.alphas_cumprod
    snr = alphas / (1 - alphas)
    ids = _token_ids(tokenizer, prompts)
    empty = _token_ids(tokenizer, [""])[0]
    parameters = [*text_encoder.parameters(), *unet.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=plan.unet_lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=plan.unet_lr, total_steps=plan.unet_steps, pct_start=0.05
    )
    ema_text, ema_unet = copy.deepcopy(text_encoder), copy.deepcopy(unet)
    ema_parameters = [*ema_text.parameters(), *ema_unet.parameters()]
    text_encoder.train()
    unet.train()
    for step in progress(range(plan.unet_steps), desc="text encoder + unet"):
        index = torch.randint(0, len(latents), (plan.unet_batch,), generator=generator)
        x0 = latents[index]
        tokens = ids[index].clone()
        dropped = torch.rand(plan.unet_batch, generator=generator) < plan.prompt_dropout
        tokens[dropped] = empty
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, 1000, (plan.unet_batch,), generator=generator)
        noisy = noise_schedule.add_noise(x0, noise, t)
        context = text_encoder(tokens)[0]
        prediction = unet(noisy, t, encoder_hidden_states=context).sample
        weight = torch.clamp(snr[t], max=plan.snr_gamma) / snr[t]
        loss = (weight * F.mse_loss(prediction, noise, reduction="none").mean(dim=(1, 2, 3))).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        schedule.step()
        decay = min(plan.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_parameters, parameters, 1 - decay)
    return ema_text.eval(), ema_unet.eval()


def inference_scheduler() -> DDIMScheduler:
    # clip_sample must be off: these latents are not bounded by [-1, 1].
    return DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def metadata(plan: TrainingPlan) -> dict[str, object]:
    return {
        "name": "atelier-demo",
        "description": "A tiny demo model that draws coloured shapes; a demo of the platform, "
        "not of image quality.",
        "native_size": demo_data.NATIVE_SIZE,
        "recommended_steps": plan.inference_steps,
        "recommended_guidance": plan.guidance,
        "example_prompt": demo_data.HELD_OUT[0].prompt,
        "vocabulary": {
            "colours": list(demo_data.COLOURS),
            "shapes": list(demo_data.SHAPES),
            "backgrounds": list(demo_data.BACKGROUNDS),
        },
        "prompt_template": "a <colour> <shape> on a <background> background",
        "held_out": [scene.prompt for scene in demo_data.HELD_OUT],
        "training": asdict(plan),
    }


def train(
    path: Path, plan: TrainingPlan, *, half: bool = True, log: Callable[[str], None] = print
) -> None:
    """Train all three models and write the pipeline (and its metadata) to `path`."""
    torch.manual_seed(plan.seed)
    progress = _progress
    tokenizer = build_tokenizer()
    vae, text_encoder, unet = build_models(tokenizer)
    train_vae(vae, plan, progress)
    latents, prompts = encode_training_set(vae, plan)
    log(f"{len(latents)} training pictures, latents {tuple(latents.shape[1:])}")
    text_encoder, unet = train_denoiser(
        text_encoder, unet, tokenizer, latents, prompts, plan, progress
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=inference_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    if half:
        pipe.to(torch.float16)
    path.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(path)
    (path / METADATA_FILE).write_text(json.dumps(metadata(plan), indent=2) + "\n")


def _progress(iterable: range, desc: str) -> Iterator[int]:
    return iter(tqdm(iterable, desc=desc, unit="step", smoothing=0.05))


def _load(path: Path) -> StableDiffusionPipeline:
    pipe = StableDiffusionPipeline.from_pretrained(
        path, torch_dtype=torch.float32, local_files_only=True, safety_checker=None
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _draw(
    pipe: StableDiffusionPipeline, prompt: str, seeds: list[int], plan: TrainingPlan
) -> list[Image.Image]:
    return pipe(
        [prompt] * len(seeds),
        num_inference_steps=plan.inference_steps,
        guidance_scale=plan.guidance,
        generator=[torch.Generator().manual_seed(seed) for seed in seeds],
        height=demo_data.NATIVE_SIZE,
        width=demo_data.NATIVE_SIZE,
    ).images


@torch.inference_mode()
def evaluate(path: Path, plan: TrainingPlan, *, per_scene: int = 8) -> demo_data.Score:
    """Score the saved model on the held-out combinations, loaded like any other model."""
    pipe = _load(path)
    pairs = []
    for number, scene in enumerate(tqdm(demo_data.HELD_OUT, desc="held-out score")):
        seeds = [1000 * number + i for i in range(per_scene)]
        pairs += [(scene, picture) for picture in _draw(pipe, scene.prompt, seeds, plan)]
    return demo_data.score(pairs)


@torch.inference_mode()
def draw_grid(path: Path, plan: TrainingPlan, out: Path, *, per_prompt: int = 6) -> None:
    """A PNG of what the model draws: one row per prompt (held-out ones marked), 3x enlarged."""
    from PIL import ImageDraw

    pipe = _load(path)
    rows = []
    for number, colour in enumerate(demo_data.COLOURS):
        # Per colour, one trained and one held-out prompt, with shapes and backgrounds varied.
        for offset, scenes in enumerate((demo_data.TRAINING, demo_data.HELD_OUT)):
            mine = [scene for scene in scenes if scene.colour == colour]
            rows.append((mine[(number + offset) % len(mine)], offset == 1))
    cell, label = demo_data.NATIVE_SIZE * 3, 330
    grid = Image.new("RGB", (label + per_prompt * (cell + 4), len(rows) * (cell + 4)), "white")
    pen = ImageDraw.Draw(grid)
    for row, (scene, unseen) in enumerate(rows):
        top = row * (cell + 4)
        text = scene.prompt + ("\n(never in training)" if unseen else "")
        pen.multiline_text((8, top + cell // 2 - 12), text, fill="black", font_size=15)
        seeds = [row * 100 + i for i in range(per_prompt)]
        for column, picture in enumerate(_draw(pipe, scene.prompt, seeds, plan)):
            enlarged = picture.resize((cell, cell), Image.Resampling.NEAREST)
            grid.paste(enlarged, (label + column * (cell + 4), top))
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out, optimize=True)
