"""Named training recipes."""

import pytest

from posenas_core.data.transforms import AugConfig
from posenas_core.errors import ConfigError
from posenas_core.train.recipes import RECIPES, get_recipe, list_recipes


def test_the_recipes_and_their_papers_values():
    assert list_recipes() == ["evopose2d", "short-cpu", "simplebaseline"]
    sb, ep = get_recipe("simplebaseline"), get_recipe("evopose2d")
    assert (sb.base_lr, sb.lr_schedule, sb.aug["rotation_deg"], sb.sigma) == (1e-3, "step", 40.0, 2.0)
    assert (ep.base_lr, ep.lr_schedule, ep.warmup, ep.weight_decay, ep.aug) == (2.5e-4, "cosine", 5 / 200, 2e-5, {})
    assert get_recipe(sb) is sb


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_makes_a_valid_train_config(name):
    r = get_recipe(name)
    AugConfig(**r.aug)
    c = r.train_config(epochs=8, seed=3, max_minutes=2.0, fill_budget=True)
    assert c.epochs == 8 and c.seed == 3 and c.fill_budget and c.base_lr == r.base_lr
    assert c.warmup_epochs == pytest.approx(r.warmup * 8) and c.lr_schedule == r.lr_schedule


def test_unknown_recipe_names_the_choices_and_a_close_one():
    with pytest.raises(ConfigError, match=r"unknown training recipe 'short_cpu'.*did you mean 'short-cpu'"):
        get_recipe("short_cpu")
    with pytest.raises(ConfigError, match=r"allowed: \['evopose2d', 'short-cpu', 'simplebaseline'\]"):
        get_recipe("adam")
