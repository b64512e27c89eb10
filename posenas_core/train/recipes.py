"""Named training recipes: the hyperparameters of a run, apart from the network and the budget.

    get_recipe("short-cpu") -> Recipe     the default: learns in minutes on a CPU (measured, see below)
    get_recipe("simplebaseline")          Xiao et al. 2018, as published (for long runs)
    get_recipe("evopose2d")               McNally et al. 2021, as its public code trains (for long runs)
    recipe.train_config(epochs=..., ...)  -> TrainConfig with the recipe's optimiser fields

A recipe's warm-up is a fraction of the run, so the same recipe serves a 2-minute and a 2-hour budget.
The papers' recipes are tuned for 140-200 GPU epochs; given minutes on a CPU they spend the budget on
warm-up and on augmentations the short run cannot absorb. `short-cpu` is what `epochs="auto"`, the
notebooks and the searches use; `benchmarks/learning_curve.py` measures it against the papers'.
"""

from __future__ import annotations

import dataclasses
import difflib

from posenas_core.errors import ConfigError

__all__ = ["Recipe", "RECIPES", "get_recipe", "list_recipes"]


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    base_lr: float          # Adam lr at batch 32 (scaled by batch_size / 32)
    warmup: float           # linear warm-up, as a fraction of the run's steps
    lr_schedule: str        # "cosine" or "step" (TrainConfig.lr_schedule)
    min_lr_ratio: float     # the cosine's floor, x lr
    weight_decay: float     # L2 on conv kernels
    batch_size: int
    aug: dict               # AugConfig fields (missing ones keep AugConfig's defaults, EvoPose2D's)
    sigma: float | None     # heatmap Gaussian sigma in heatmap pixels; None: pipeline.heatmap_sigma's rule
    about: str

    def train_config(self, *, epochs: int, **fields):
        """A TrainConfig with this recipe's optimiser fields; `fields` set the others (seed, budget, ...)."""
        from posenas_core.train.trainer import TrainConfig

        warmup_epochs = min(float(epochs), self.warmup * epochs)
        return TrainConfig(epochs=epochs, batch_size=self.batch_size, base_lr=self.base_lr,
                           warmup_epochs=warmup_epochs, lr_schedule=self.lr_schedule,
                           min_lr_ratio=self.min_lr_ratio, weight_decay=self.weight_decay, **fields)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


RECIPES = {r.name: r for r in (
    Recipe("short-cpu", base_lr=2e-3, warmup=0.25, lr_schedule="cosine", min_lr_ratio=0.0, weight_decay=0.0,
           batch_size=32, aug={"scale_factor": 0.25, "rotation_deg": 15.0, "rotation_prob": 0.5}, sigma=None,
           about="Minutes on a CPU: Adam 2e-3 (1e-3 gave AP 0.285, 4e-3 0.302, 2e-3 0.312 after 24k samples), "
                 "a linear warm-up over the first quarter (0.489 vs 0.461 with 5%), cosine to 0, batch 32 "
                 "(16: 0.270), sigma 2 (3: 0.285), light augmentation (SynthPose's val split has at most 5 "
                 "degrees of roll). Measured with baseline-resnet-s2 / -skip at 128x96; see the README."),
    Recipe("simplebaseline", base_lr=1e-3, warmup=0.0, lr_schedule="step", min_lr_ratio=0.0, weight_decay=0.0,
           batch_size=32, aug={"scale_factor": 0.3, "rotation_deg": 40.0, "rotation_prob": 0.6}, sigma=2.0,
           about="Xiao et al. 2018: Adam 1e-3, x0.1 at epochs 90 and 120 of 140, rotation +-40 deg (p 0.6), "
                 "scale 0.3, flip, sigma 2 at 64x48 heatmaps."),
    Recipe("evopose2d", base_lr=2.5e-4, warmup=5 / 200, lr_schedule="cosine", min_lr_ratio=0.0,
           weight_decay=2e-5, batch_size=32, aug={}, sigma=None,
           about="McNally et al. 2021 (public code): Adam 2.5e-4 x batch/32, 5 of 200 epochs warm-up, cosine to 0, "
                 "Keras l2(1e-5) on conv kernels (Adam weight_decay 2e-5), rotation clip(N*40, +-80) (p 0.6), scale 0.3, flip, sigma 2h'/64."),
)}


def list_recipes() -> list[str]:
    return sorted(RECIPES)


def get_recipe(name) -> Recipe:
    """The named recipe (a Recipe passes through); ConfigError with the names and a 'did you mean'."""
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        close = difflib.get_close_matches(str(name), RECIPES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown training recipe {name!r}; allowed: {list_recipes()}{hint}")
    return RECIPES[name]
