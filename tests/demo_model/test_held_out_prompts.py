"""The demo model draws what it is asked, including combinations it never saw in training."""

from __future__ import annotations

from generation import pipeline
from generation.demo_data import HELD_OUT, score
from generation.model_info import ModelInfo

SEEDS_PER_PROMPT = 8


def test_held_out_combinations_come_out_with_the_right_background_colour_and_shape(
    demo_model: str, demo_info: ModelInfo
) -> None:
    pairs = []
    for number, scene in enumerate(HELD_OUT):
        pictures = pipeline.generate(
            pipeline.Request(
                prompt=scene.prompt,
                negative_prompt="",
                width=demo_info.native_size,
                height=demo_info.native_size,
                steps=demo_info.recommended_steps,
                guidance=demo_info.recommended_guidance,
                seeds=[5000 + 100 * number + i for i in range(SEEDS_PER_PROMPT)],
            ),
            model=demo_model,
        )
        pairs += [(scene, picture) for picture in pictures]
    result = score(pairs)
    assert result.images == len(HELD_OUT) * SEEDS_PER_PROMPT
    assert result.background >= 0.95, result
    assert result.colour >= 0.90, result
    assert result.shape >= 0.85, result
