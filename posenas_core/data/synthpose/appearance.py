"""Appearance of a person (skin, hair, clothing colours and patterns) and fixed noise textures.

Colours are RGB floats in 0..255. `noise_banks()` are deterministic (fixed seed) textures that
scenes crop at random offsets: smooth "fabric / lighting" noise and per-pixel sensor noise.
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools

import cv2
import numpy as np

__all__ = ["SKIN_TONES", "random_colour", "Appearance", "sample_appearance", "noise_banks", "noise_crop"]

SKIN_TONES = np.array([(255, 224, 196), (241, 194, 160), (224, 172, 125), (198, 140, 90), (160, 105, 65),
                       (120, 78, 50), (88, 58, 40)], dtype=np.float64)
HAIR_COLOURS = np.array([(20, 16, 14), (45, 30, 20), (90, 60, 35), (150, 110, 60), (210, 180, 120),
                         (160, 60, 30), (150, 150, 150), (230, 230, 225)], dtype=np.float64)
HAIR_P = np.array([0.3, 0.22, 0.16, 0.1, 0.08, 0.05, 0.06, 0.03])


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour (0-255 floats): any hue, half of them greyish, never pure black or white."""
    h, u, s_grey, s_col, v = rng.random(5)
    s = 0.2 * s_grey if u < 0.5 else 0.3 + 0.7 * s_col
    return np.array(colorsys.hsv_to_rgb(h, s, 0.12 + 0.83 * v)) * 255.0


@dataclasses.dataclass
class Appearance:
    skin: np.ndarray           # (3,) RGB 0-255
    hair: np.ndarray
    hair_style: str            # short, long, bald, hat
    hairline: float            # head-frame y above which hair starts (short hair)
    hat: np.ndarray
    top: np.ndarray            # shirt colour
    top_alt: np.ndarray        # stripe colour
    top_pattern: str           # plain, stripes, spots
    top_stripes: int           # stripe count on the chest
    sleeve: int                # 0 none, 1 short, 2 long
    bottom: np.ndarray
    bottom_alt: np.ndarray
    bottom_pattern: str
    legs: int                  # 1 shorts, 2 long
    shoes: np.ndarray
    lr_tint: float             # 0: none; > 0 left limbs lighter, right limbs darker by this factor
    texture_amp: float         # fabric / lighting noise amplitude (fraction)
    tex_seed: int              # seeds the pattern placement (stable over the frames of a video)


def sample_appearance(rng: np.random.Generator, texture_prob: float, lr_cue_prob: float) -> Appearance:
    tone = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))] * rng.uniform(0.9, 1.08) + rng.normal(0, 6, 3)
    hair = HAIR_COLOURS[int(rng.choice(len(HAIR_COLOURS), p=HAIR_P))] * rng.uniform(0.8, 1.2)
    style = ("short", "long", "bald", "hat")[int(rng.choice(4, p=[0.5, 0.3, 0.08, 0.12]))]

    def pattern():
        return "plain" if rng.random() >= texture_prob else ("stripes" if rng.random() < 0.65 else "spots")

    top, bottom = random_colour(rng), random_colour(rng)
    return Appearance(
        skin=np.clip(tone, 0, 255), hair=np.clip(hair, 0, 255), hair_style=style,
        hairline=float(rng.uniform(0.2, 0.5)), hat=random_colour(rng),
        top=top, top_alt=random_colour(rng), top_pattern=pattern(), top_stripes=int(rng.integers(3, 9)),
        sleeve=int(rng.choice(3, p=[0.15, 0.45, 0.4])),
        bottom=bottom, bottom_alt=random_colour(rng), bottom_pattern=pattern(),
        legs=int(rng.choice([1, 2], p=[0.3, 0.7])), shoes=random_colour(rng) * 0.7,
        lr_tint=float(rng.uniform(0.15, 0.3)) if rng.random() < lr_cue_prob else 0.0,
        texture_amp=float(rng.uniform(0.02, 0.07)), tex_seed=int(rng.integers(2**31)),
    )


# ------------------------------------------------------------------------------------ noise banks
@functools.lru_cache(maxsize=1)
def noise_banks() -> tuple[np.ndarray, np.ndarray]:
    """Fixed pseudo-random noise textures (deterministic): (smooth fabric noise, pixel noise), float32 ~N(0, 1)."""
    rng = np.random.default_rng(20240601)
    smooth = cv2.resize(rng.standard_normal((80, 80)).astype(np.float32), (640, 640), interpolation=cv2.INTER_CUBIC)
    smooth /= smooth.std()
    pixel = rng.standard_normal((640, 640, 3)).astype(np.float32)
    return smooth, pixel


def noise_crop(bank: np.ndarray, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A random (h, w[, c]) window of `bank`, tiled if needed."""
    bh, bw = bank.shape[:2]
    if h > bh or w > bw:
        reps = (h // bh + 1, w // bw + 1) + (1,) * (bank.ndim - 2)
        bank = np.tile(bank, reps)
        bh, bw = bank.shape[:2]
    y, x = int(rng.integers(0, bh - h + 1)), int(rng.integers(0, bw - w + 1))
    return bank[y:y + h, x:x + w]
