"""CPU facts and the measured choice of training precision / memory format."""

import pytest

import posenas_core.machine as machine
from posenas_core.errors import ConfigError
from posenas_core.models.baselines import BaselineSpec

TINY = BaselineSpec(stem_channels=8, stages=((1, 8, 1), (1, 16, 2), (1, 16, 2)), head_channels=16,
                    head_layers=2, num_joints=4)


def test_cpu_info_names_the_model_and_features():
    info = machine.cpu_info()
    assert info["model"] and isinstance(info["features"], list) and info["cores"] >= 1
    assert info["native_bf16"] == any(f in info["features"] for f in ("amx_bf16", "avx512_bf16"))


def test_train_step_speed_runs_on_random_data():
    assert machine.train_step_speed(TINY, (32, 32), batch_size=2, steps=1, warmup=1) > 0


@pytest.mark.parametrize("native", [True, False])
def test_the_fastest_measured_format_wins_and_bf16_only_where_native(monkeypatch, native):
    speeds = {(False, True): 10.0, (False, False): 12.0, (True, True): 30.0}
    tried = []

    def fake_speed(spec, hw, *, bf16, channels_last, **kw):
        tried.append((bf16, channels_last))
        return speeds[(bf16, channels_last)]

    monkeypatch.setattr(machine, "train_step_speed", fake_speed)
    monkeypatch.setattr(machine, "cpu_info", lambda: {"model": "test cpu", "native_bf16": native})
    got = machine.choose_train_format(TINY, (32, 32))
    if native:   # bf16 is tried in channels_last only, and wins here
        assert sorted(tried) == [(False, False), (False, True), (True, True)]
        assert (got["bf16"], got["channels_last"], got["img_per_s"]) == (True, True, 30.0)
    else:        # never bf16 without native support, whatever it would measure
        assert sorted(tried) == [(False, False), (False, True)]
        assert (got["bf16"], got["channels_last"]) == (False, False)
    assert got["cpu"] == "test cpu" and got["measured"]["fp32-nchw"] == 12.0
    tried.clear()
    fixed = machine.resolve_auto(TINY, (32, 32), batch_size=2, bf16=False, channels_last=True)
    assert (fixed["bf16"], fixed["channels_last"], fixed["measured"]) == (False, True, {}) and not tried


def test_bad_choice_is_refused():
    with pytest.raises(ConfigError, match=r"bf16 = 'yes' is invalid; allowed: true, false or 'auto'"):
        machine.choose_train_format(TINY, (32, 32), bf16="yes")
