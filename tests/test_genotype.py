import dataclasses

import pytest

from posenas_core.errors import SpecError
from posenas_core.genotype import (
    Spec,
    check_choice,
    check_float,
    check_int,
    make_divisible,
    spec_from_dict,
    spec_from_json,
)


@dataclasses.dataclass(frozen=True)
class ToySpec(Spec):
    KIND = "toy-test"
    depths: tuple = (1, 2)
    act: str = "relu"

    def validate(self):
        for i, d in enumerate(self.depths):
            check_int("ToySpec", f"depths[{i}]", d, 1, 4)
        check_choice("ToySpec", "act", self.act, ("relu", "swish"))


def test_json_round_trip_and_hashable():
    s = ToySpec(depths=(3, 4), act="swish")
    back = spec_from_json(s.to_json())
    assert back == s and hash(back) == hash(s)
    assert isinstance(back.depths, tuple)
    assert {s: 1}[back] == 1


def test_lists_become_tuples():
    s = ToySpec(depths=[1, 1])
    assert s.depths == (1, 1)


def test_out_of_range_names_field_and_range():
    with pytest.raises(SpecError, match=r"depths\[1\] = 7 is out of range; allowed \[1, 4\]"):
        ToySpec(depths=(1, 7))
    with pytest.raises(SpecError, match=r"act = 'gelu' is not allowed; choose one of \['relu', 'swish'\]"):
        ToySpec(act="gelu")
    with pytest.raises(SpecError, match="must be an integer"):
        ToySpec(depths=(1.5,))


def test_unknown_kind_and_field():
    with pytest.raises(SpecError, match="unknown spec kind 'nope'"):
        spec_from_dict({"kind": "nope"})
    with pytest.raises(SpecError, match=r"unknown field\(s\) \['width'\]"):
        spec_from_dict({"kind": "toy-test", "width": 3})
    with pytest.raises(SpecError, match="not valid JSON"):
        spec_from_json("{bad")
    with pytest.raises(SpecError, match="'kind' field"):
        spec_from_dict({"depths": [1]})


def test_check_float_names_field_and_range():
    check_float("S", "x", 0.5, 0.0, 1.0)
    check_float("S", "x", 1, 0.0, 1.0)                          # ints are numbers
    with pytest.raises(SpecError, match=r"S\.x = 1\.5 is out of range; allowed \[0\.0, 1\.0\]"):
        check_float("S", "x", 1.5, 0.0, 1.0)
    for bad in (True, "0.5", float("nan"), float("inf"), None):
        with pytest.raises(SpecError, match=r"S\.x must be a number in \[0\.0, 1\.0\], got"):
            check_float("S", "x", bad, 0.0, 1.0)


def test_make_divisible_rounds_to_the_divisor_never_10_percent_below():
    assert [make_divisible(v) for v in (3, 12, 20, 27, 80 * 2.3, 32 * 1.3185)] == [8, 16, 24, 32, 184, 40]
    assert make_divisible(100, 16) == 96 and make_divisible(4, 8, min_value=16) == 16
    assert isinstance(make_divisible(42.7), int)
