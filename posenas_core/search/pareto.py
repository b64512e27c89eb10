"""Pareto fronts of (cost, loss) pairs, both minimised (e.g. MACs or params vs validation loss).

Dominance: point j dominates point i when ``cost_j <= cost_i`` and ``loss_j <= loss_i`` with at least
one of the two strictly smaller. The front is the set of points no other point dominates.

- Ties: identical points do not dominate each other, so duplicates on the front are all on it; of
  several points with the same cost only those with the smallest loss can be on it (and the same for
  equal losses).
- Points whose cost or loss is not finite (NaN from a failed candidate, or +-inf) are excluded: they
  are never on the front and never dominate anything.
- To maximise a score (e.g. AP) pass its negation as the loss.

`pareto_front` returns a boolean mask (O(n log n): one sort by cost, then a sweep keeping the lowest
loss seen at strictly smaller cost). `pareto_order` returns the indices of the front sorted by
cost, the order in which to draw it as a step line (cost ascending, so loss descending).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["pareto_front", "pareto_order", "dominates"]


def _as_pair(costs: Sequence[float], losses: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(costs, dtype=np.float64).reshape(-1)
    l_ = np.asarray(losses, dtype=np.float64).reshape(-1)
    if c.shape != l_.shape:
        raise ValueError(f"pareto_front: costs and losses must have the same length, got {c.size} and {l_.size}")
    return c, l_


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """True if (cost, loss) `a` dominates `b` (both minimised; see the module docstring)."""
    return a[0] <= b[0] and a[1] <= b[1] and (a[0] < b[0] or a[1] < b[1])


def pareto_front(costs: Sequence[float], losses: Sequence[float]) -> np.ndarray:
    """Boolean mask (n,) of the non-dominated points, minimising both cost and loss.

    Non-finite points are False and are ignored as dominators. Empty input -> empty mask.
    """
    c, l_ = _as_pair(costs, losses)
    n = c.size
    mask = np.zeros(n, dtype=bool)
    ok = np.flatnonzero(np.isfinite(c) & np.isfinite(l_))
    if ok.size == 0:
        return mask
    order = ok[np.lexsort((l_[ok], c[ok]))]          # by cost, then loss (ascending)
    best_prev = np.inf                               # lowest loss at strictly smaller cost
    i = 0
    while i < order.size:
        j = i
        ci = c[order[i]]
        while j < order.size and c[order[j]] == ci:  # the group of equal cost
            j += 1
        group = order[i:j]
        gmin = l_[group[0]]                          # sorted: the group's lowest loss comes first
        if gmin < best_prev:
            mask[group[l_[group] == gmin]] = True
            best_prev = gmin
        i = j
    return mask


def pareto_order(costs: Sequence[float], losses: Sequence[float]) -> np.ndarray:
    """Indices (int64) of the front's points sorted by cost ascending (ties by loss, then index).

    Draw ``costs[idx], losses[idx]`` with a horizontal-then-vertical step (plotly ``line_shape="hv"``):
    the region above / right of the line is what the front dominates.
    """
    c, l_ = _as_pair(costs, losses)
    idx = np.flatnonzero(pareto_front(c, l_))
    return idx[np.lexsort((idx, l_[idx], c[idx]))].astype(np.int64)
