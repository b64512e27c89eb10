"""The time-budget planner of `train.trainer.train(fill_budget=True)`: the total number of steps re-planned from
the measured speed so that the schedule ends when the budget does."""

from __future__ import annotations

import time
from typing import Callable

__all__ = ["BudgetPlanner"]


class BudgetPlanner:
    """Re-plans the total number of steps so that the schedule ends when the run's time budget does.

    Speed = steps per second over the recent past (the last max(60 s, 30% of the elapsed time)), wall time
    included (checkpoints, validations), so a machine that slows down or speeds up mid-run moves the end
    of the cosine schedule with it; a reserve covers the final validation and checkpoint."""

    def __init__(self, budget_s: float, validating: bool, elapsed_s: float, step: int):
        self.budget_s = budget_s
        self.reserve_s = (0.04 if validating else 0.02) * budget_s
        self.history: list[tuple[float, int]] = [(elapsed_s, step)]   # (elapsed s, step) at the start and re-plans

    def validate(self, validate: Callable[[], None]) -> None:
        """Run `validate`, keeping 1.5x its duration in reserve for the final validation."""
        t0 = time.perf_counter()
        validate()
        self.reserve_s = max(self.reserve_s, 1.5 * (time.perf_counter() - t0))

    def replan(self, step: int, elapsed_s: float, total_steps: int) -> int:
        """The new total number of steps (>= step: == step means stop now)."""
        horizon = max(60.0, 0.3 * elapsed_s)
        recent = [(t, s) for t, s in self.history if elapsed_s - t <= horizon] or self.history[-1:]
        self.history = recent + [(elapsed_s, step)]
        t0, s0 = recent[0]
        if step <= s0 or elapsed_s <= t0:
            return max(total_steps, step)
        rate = (step - s0) / (elapsed_s - t0)
        left = self.budget_s - self.reserve_s - elapsed_s - 2.0 / rate     # two steps' slack for a hiccup
        return step + max(0, int(left * rate))
