"""A wall-clock budget for one training run: plan its step count from this machine's speed, stop at the deadline.

Why: eq. 8 (``2i/I``) and the cosine learning rate need the planned number of steps I from the start,
but a budget in seconds turns into steps only on the machine that runs it (a GPU's steps/s cannot be
known in advance, and on a CPU it depends on what else runs). So a run with ``train.time_budget_s`` and
no ``train.max_steps`` measures its own speed first and then fixes I once:

1. it starts on the config's provisional plan (``train.epochs`` x steps per epoch, an upper bound, so
   the schedules sit near their start values: the cosine at its peak or still in its linear warm-up,
   eq. 8 near 0.6/0.4);
2. at the end of the first epoch, or once ``PLAN_FRACTION`` of the budget has passed since the first
   step if that comes first, it measures steps per second since the end of the first step (so setup,
   worker start-up and cuDNN autotuning are left out, while data loading, the per-step sync and one
   end-of-epoch checkpoint are in) and fixes ``I = steps done + rate x time left x (1 - RESERVE)``, at
   most the provisional plan; ``RESERVE`` leaves time for the final validation and save;
3. the deadline is a hard stop on top: a run slower than planned ends at the budget (validated and
   saved as at a normal end) and says so.

A measured plan beats a fixed step count (too long on a slow GPU, wasted time on a fast one) and beats
a schedule over elapsed time (not reproducible from the step count, and unlike the paper's eq. 8, which
is over steps). Before the plan, eq. 8 used the provisional I: at the step where the plan is fixed,
``w_kd`` differs from the planned run's by ``0.2 i (1/I - 1/I_provisional)`` (under 0.02 when the plan
comes within the first tenth of the run); keep ``schedule.warmup_steps`` above the first epoch and the
learning rate does not depend on I before the plan at all.

With ``train.max_steps`` given, the budget is only the hard stop. The plan is written into the run's
``config.yaml`` and checkpoints as ``train.max_steps``, so ``--resume`` continues the same I.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

PLAN_FRACTION = 0.1  # plan at the first epoch's end, or this fraction of the budget after the first step
RESERVE = 0.05  # fraction of the time left at the plan kept for the final validation and save


@dataclass(frozen=True)
class BudgetReport:
    """What a budgeted run did with its time.

    Attributes:
        budget_s: the budget (setup, steps, validation and saving all count).
        elapsed_s: time used, from the start of the run to its last save.
        planned_steps: I of eq. 8 and the learning-rate schedule (None if the run ended before a plan).
        planned_at_step: the step at which I was fixed (None: ``train.max_steps`` was given).
        rate_steps_s: measured optimiser steps per second behind the plan.
        stopped_at_deadline: the run reached the deadline before its planned steps.
    """

    budget_s: float
    elapsed_s: float
    planned_steps: int | None
    planned_at_step: int | None
    rate_steps_s: float | None
    stopped_at_deadline: bool

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("budget_s", "elapsed_s", "rate_steps_s"):
            if out[key] is not None:
                out[key] = round(float(out[key]), 3)
        return out


@dataclass
class TimeBudget:
    """The clock of one budgeted run (see the module docstring); one per run, never shared.

    Args:
        seconds: the budget.
        needs_plan: True when the step count is to be planned from the measured speed.
        clock: seconds from an arbitrary origin (``time.perf_counter``; tests pass a fake one).
    """

    seconds: float
    needs_plan: bool
    clock: Callable[[], float] = time.perf_counter
    start: float = field(init=False)
    planned_steps: int | None = None
    planned_at_step: int | None = None
    rate_steps_s: float | None = None
    stopped_at_deadline: bool = False
    _first: tuple[float, int] | None = None  # (time, step) at the end of this run's first step

    def __post_init__(self) -> None:
        if not self.seconds > 0:
            raise ValueError(f"the time budget must be > 0 seconds, got {self.seconds}")
        self.start = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.start

    def expired(self) -> bool:
        return self.elapsed() >= self.seconds

    def note_step(self, step: int) -> None:
        """Call after every optimiser step (``step`` = steps done); the first call starts the rate clock."""
        if self._first is None:
            self._first = (self.clock(), step)

    def ready_to_plan(self, *, epoch_done: bool) -> bool:
        """Whether to fix the plan now: a plan is due, a step was taken, and the first epoch ended or
        ``PLAN_FRACTION`` of the budget passed since the first step."""
        if not self.needs_plan or self.planned_steps is not None or self._first is None:
            return False
        return epoch_done or self.clock() - self._first[0] >= PLAN_FRACTION * self.seconds

    def plan(self, step: int, cap: int) -> int:
        """Fix I from the speed so far: ``step`` steps are done, ``cap`` is the provisional plan.

        Returns:
            The planned total, in [step, cap] (``step``: the budget is already spent).
        """
        now = self.clock()
        first_time, first_step = self._first if self._first is not None else (self.start, 0)
        if step > first_step and now > first_time:
            rate = (step - first_step) / (now - first_time)
        else:  # a single step so far: count the whole run, setup included (slower, so a safe estimate)
            rate = step / max(now - self.start, 1e-9)
        left = max(self.seconds - (now - self.start), 0.0)
        planned = step + math.floor(rate * left * (1.0 - RESERVE))
        self.rate_steps_s = rate
        self.planned_steps = int(min(max(planned, step), cap))
        self.planned_at_step = step
        return self.planned_steps

    def report(self, planned_steps: int | None = None) -> BudgetReport:
        """The run's use of its budget; ``planned_steps`` is I when it was not planned here (max_steps)."""
        return BudgetReport(
            budget_s=self.seconds, elapsed_s=self.elapsed(),
            planned_steps=self.planned_steps if self.planned_steps is not None else planned_steps,
            planned_at_step=self.planned_at_step, rate_steps_s=self.rate_steps_s,
            stopped_at_deadline=self.stopped_at_deadline,
        )  # fmt: skip
