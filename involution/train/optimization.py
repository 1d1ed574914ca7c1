"""Optimisers and learning-rate schedules, configured by two small typed records.

A recipe's YAML names them under ``model``::

    optimizer: {name: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 1.0e-4}
    schedule: {name: cosine, warmup_epochs: 5}

and the command line changes one field at a time (``--model.optimizer.lr 0.05``).
:class:`OptimizerConfig` builds the optimiser, :func:`build_schedule` the
schedule, which advances after every optimiser step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Literal

import torch
from lightning.pytorch.utilities import rank_zero_only
from torch.optim import lr_scheduler

__all__ = ["OptimizerConfig", "ScheduleConfig", "StepSchedule", "build_schedule"]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimiser of a run.

    Args:
        name: ``sgd`` (with ``momentum`` and ``nesterov``), ``adam`` or ``adamw``.
        lr: the peak learning rate (the schedule multiplies it).
        momentum, nesterov: SGD only.
        weight_decay: L2 penalty (SGD, Adam) or decoupled weight decay (AdamW).
    """

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4

    def __post_init__(self):
        _require(self.name in ("sgd", "adam", "adamw"),
                 f"optimizer.name must be 'sgd', 'adam' or 'adamw', got {self.name!r}")
        _require(self.lr > 0, f"optimizer.lr must be positive, got {self.lr!r}")
        _require(self.weight_decay >= 0,
                 f"optimizer.weight_decay must be >= 0, got {self.weight_decay!r}")

    def build(self, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        if self.name == "sgd":
            # Nesterov momentum needs momentum: with momentum 0 it is plain SGD.
            return torch.optim.SGD(parameters, lr=self.lr, momentum=self.momentum,
                                   nesterov=self.nesterov and self.momentum > 0,
                                   weight_decay=self.weight_decay)
        optimizer_class = torch.optim.Adam if self.name == "adam" else torch.optim.AdamW
        return optimizer_class(parameters, lr=self.lr, weight_decay=self.weight_decay)


@dataclass(frozen=True)
class ScheduleConfig:
    """The learning-rate schedule of a run, over its whole length, with an optional warm-up.

    Args:
        name: the curve after the warm-up: ``cosine`` and ``linear`` (down to
            ``min_lr``), ``polynomial`` (exponent ``power``), ``step``
            (times ``gamma`` every ``step_epochs``), ``exponential`` (times
            ``gamma`` per epoch) or ``constant``.
        warmup_epochs: linear warm-up from ``warmup_start_factor * lr`` to
            ``lr`` over this many epochs (fractions allowed).
    """

    name: Literal["cosine", "exponential", "linear", "step", "polynomial", "constant"] = "cosine"
    warmup_epochs: float = 0.0
    warmup_start_factor: float = 0.01
    min_lr: float = 0.0
    gamma: float = 0.1
    step_epochs: int = 30
    power: float = 1.0

    # Curves whose shape depends on the run's length (see StepSchedule).
    LENGTH_DEPENDENT = ("cosine", "linear", "polynomial")

    def __post_init__(self):
        names = ("cosine", "exponential", "linear", "step", "polynomial", "constant")
        _require(self.name in names, f"schedule.name must be one of {names}, got {self.name!r}")
        _require(self.warmup_epochs >= 0,
                 f"schedule.warmup_epochs must be >= 0, got {self.warmup_epochs!r}")
        _require(0 < self.warmup_start_factor <= 1, "schedule.warmup_start_factor must be in "
                 f"(0, 1], got {self.warmup_start_factor!r}")
        _require(self.step_epochs > 0, f"schedule.step_epochs must be positive, got "
                 f"{self.step_epochs!r}")


class StepSchedule(lr_scheduler.LambdaLR):
    """A learning-rate schedule that is a function of the optimiser step alone.

    Torch's schedulers keep their length (``T_max``, ``total_iters``) in their
    state, and a checkpoint restores it: a run resumed with a larger
    ``trainer.max_epochs`` went on with the old length, so its cosine reached 0
    at the old end and climbed back to the peak. This schedule's state is only
    the step count (and, for the record, the length it was defined over): the
    length always comes from the current run, so a resumed run continues the
    schedule defined over its new length, and says so when the length changed.

    Args:
        factor: step -> multiple of the base learning rate.
        total_steps: the run's length in optimiser steps.
        depends_on_length: False for schedules that a new length leaves
            unchanged (step, exponential, constant).
    """

    def __init__(self, optimizer, factor: Callable[[int], float], total_steps: int,
                 depends_on_length: bool = True):
        self.factor, self.total_steps = factor, total_steps
        self.depends_on_length = depends_on_length
        super().__init__(optimizer, factor)

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "_step_count": self._step_count,
                "total_steps": self.total_steps}

    def load_state_dict(self, state_dict: dict) -> None:
        self.last_epoch = state_dict["last_epoch"]  # optimiser steps taken
        self._step_count = state_dict["_step_count"]
        # The optimiser state restored just before holds the learning rate of
        # the checkpoint's schedule; set this schedule's for the current step.
        before = [group["lr"] for group in self.optimizer.param_groups]
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base_lr * self.factor(self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        saved_total = state_dict.get("total_steps")
        if self.depends_on_length and saved_total is not None and saved_total != self.total_steps:
            # Rank 0 only: the other processes of a multi-process run would repeat it.
            rank_zero_only(print)(
                f"The learning-rate schedule was defined over {saved_total} steps when the "
                f"checkpoint was written and is now defined over {self.total_steps} (the run's "
                f"length changed): it continues over the new length from step {self.last_epoch}, "
                f"learning rate {before[0]:.3g} -> {self._last_lr[0]:.3g}.")


def build_schedule(optimizer: torch.optim.Optimizer, config: ScheduleConfig, total_steps: int,
                   steps_per_epoch: int) -> StepSchedule:
    """The schedule ``config`` for ``optimizer`` over ``total_steps`` optimiser steps.

    The same curves as torch's LinearLR warm-up followed by CosineAnnealingLR,
    LinearLR, PolynomialLR, StepLR, ExponentialLR or ConstantLR, written as one
    function of the step so that a resumed run can change its length (see
    :class:`StepSchedule`); each curve stays at its end value after its end.
    """
    warmup_steps = max(0, min(total_steps - 1, round(config.warmup_epochs * steps_per_epoch)))
    main_steps = max(1, total_steps - warmup_steps)
    min_factor = config.min_lr / optimizer.param_groups[0]["lr"]

    def main(step: int) -> float:  # step counted from the end of the warm-up
        progress = min(step, main_steps) / main_steps
        if config.name == "cosine":
            return min_factor + (1 - min_factor) * (1 + math.cos(math.pi * progress)) / 2
        if config.name == "linear":
            return 1 + (max(min_factor, 1e-8) - 1) * progress
        if config.name == "polynomial":
            return (1 - progress) ** config.power
        if config.name == "step":
            return config.gamma ** (step // (config.step_epochs * steps_per_epoch))
        if config.name == "exponential":  # gamma is per epoch, spread over its steps
            return config.gamma ** (step / steps_per_epoch)
        return 1.0

    def factor(step: int) -> float:
        if step < warmup_steps:
            start = config.warmup_start_factor
            return start + (1 - start) * step / warmup_steps
        return main(step - warmup_steps)

    return StepSchedule(optimizer, factor, total_steps,
                        depends_on_length=config.name in ScheduleConfig.LENGTH_DEPENDENT)
