"""pareto_front / pareto_order against a brute-force O(n^2) dominance oracle."""

import numpy as np
import pytest

from posenas_core.search.pareto import dominates, pareto_front, pareto_order


def oracle(costs, losses):
    c, l_ = np.asarray(costs, float), np.asarray(losses, float)
    ok = np.isfinite(c) & np.isfinite(l_)
    out = np.zeros(len(c), bool)
    for i in range(len(c)):
        if not ok[i]:
            continue
        out[i] = not any(ok[j] and dominates((c[j], l_[j]), (c[i], l_[i])) for j in range(len(c)) if j != i)
    return out


@pytest.mark.parametrize("seed", range(40))
def test_random_points_match_oracle(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 60))
    if seed % 3 == 0:   # small integer grid: many ties in cost, in loss and duplicate points
        c = rng.integers(0, 6, n).astype(float)
        l_ = rng.integers(0, 6, n).astype(float)
    else:
        c = rng.random(n) * 1e9
        l_ = rng.random(n)
    if seed % 4 == 1 and n:   # some failed candidates
        c[rng.random(n) < 0.15] = np.nan
        l_[rng.random(n) < 0.15] = np.nan
        l_[rng.random(n) < 0.05] = np.inf
    mask = pareto_front(c, l_)
    assert mask.dtype == bool and mask.shape == (n,)
    np.testing.assert_array_equal(mask, oracle(c, l_))
    idx = pareto_order(c, l_)
    assert sorted(idx.tolist()) == np.flatnonzero(mask).tolist()
    # drawn as a step line: cost non-decreasing, loss non-increasing along the order
    assert np.all(np.diff(c[idx]) >= 0) and np.all(np.diff(l_[idx]) <= 0)


def test_small_cases_by_hand():
    # (1,5) (2,3) (3,3) (4,1) (2,3) duplicate, (5,0.5), (0.5, nan)
    c = [1, 2, 3, 4, 2, 5, 0.5]
    l_ = [5, 3, 3, 1, 3, 0.5, np.nan]
    assert pareto_front(c, l_).tolist() == [True, True, False, True, True, True, False]
    assert pareto_order(c, l_).tolist() == [0, 1, 4, 3, 5]
    # equal cost: only the lowest loss; equal loss: only the lowest cost
    assert pareto_front([1, 1, 1], [3, 2, 2]).tolist() == [False, True, True]
    assert pareto_front([3, 1, 2], [1, 1, 1]).tolist() == [False, True, False]
    assert pareto_front([], []).tolist() == []
    assert pareto_front([np.nan, 1], [0, np.nan]).tolist() == [False, False]
    # maximising a score = minimising its negation
    ap = np.array([0.5, 0.6, 0.55])
    assert pareto_front([1, 2, 3], -ap).tolist() == [True, True, False]


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same length"):
        pareto_front([1, 2], [1])
