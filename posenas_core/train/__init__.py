"""posenas_core.train: the trainer, checkpoints, recipes, validation loss, prediction.

Names are imported from their module on first use; the `predict` function stays in `train.predict`
(a package attribute cannot be both the function and the submodule).
"""

from posenas_core._lazy import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "trainer": ("TrainConfig", "TrainResult", "train"),
    "steps": ("StepContext", "plain_step", "heatmap_mse"),
    "checkpoints": ("CHECKPOINT_FORMAT", "load_checkpoint", "read_checkpoint"),
    "recipes": ("Recipe", "RECIPES", "get_recipe", "list_recipes"),
    "validation": ("validation_loss",),
    "predict": ("make_val_fn", "output_stride_of", "heatmap_fn_from_model", "heatmap_fn_from_checkpoint"),
})
