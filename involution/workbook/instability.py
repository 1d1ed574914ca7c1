"""Notebook 04's check of one way a network can give NaN in validation while its training loss stays finite.

The course project saw RedNet-50 at learning rate 0.8 reach a NaN validation loss while its
training loss stayed finite. Training and validation differ in one operation: batch norm. In
training it divides by the statistics of the batch in hand; in evaluation it uses running
averages gathered over earlier batches, which lag behind weights that move fast (a high
learning rate, the first epochs). A batch norm whose running variance is too small scales
its output up by some factor instead of leaving it at unit scale, and the next layers carry
that error on. An involution multiplies its input by a kernel generated from that same
input, so an error in its input enters its output twice.

:func:`measure` makes that error on purpose: every batch norm's running variance divided
by ``factor**2`` (so each one's output is ``factor`` times too large), on a freshly
initialised model whose running statistics were first gathered on the same images, and
records how large the model's outputs get in evaluation. It runs in seconds and trains
nothing: it shows how strongly each family amplifies the error, not that the course
project's run failed this way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from involution.models import create_model
from involution.train.runs import model_label

__all__ = ["FACTORS", "Amplification", "measure", "format_table", "growth", "summary"]

FACTORS = (1.0, 1.2, 1.5, 2.0)  # how many times too large every batch norm's output is


@dataclass(frozen=True)
class Amplification:
    """The largest output (logit) of one model in evaluation, with its batch norms off by ``factor``."""

    model: str
    zero_init_residual: bool
    factor: float
    largest_output: float  # inf or NaN where the outputs overflowed

    @property
    def finite(self) -> bool:
        return math.isfinite(self.largest_output)


def _gather_running_statistics(model: torch.nn.Module, images: torch.Tensor) -> None:
    """Running statistics that match the model's activations exactly: a cumulative average over
    a few training-mode passes of ``images``, with the weights unchanged."""
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a cumulative average instead of an exponential one
            module.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(images)
    model.eval()


def _largest_output(model: torch.nn.Module, images: torch.Tensor, factor: float) -> float:
    saved = {name: buffer.clone() for name, buffer in model.named_buffers() if name.endswith("running_var")}
    # Each batch norm divides by sqrt(running_var): a variance factor**2 too small makes its
    # output factor times too large.
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_var /= factor ** 2
    with torch.no_grad():
        largest = model(images).abs().max().item()
    for name, buffer in model.named_buffers():
        if name in saved:
            buffer.copy_(saved[name])
    return largest


def measure(models: Sequence[str], options: dict[str, dict], image_size: int,
            factors: Sequence[float] = FACTORS, images: int = 32, seed: int = 0,
            num_classes: int = 10) -> list[Amplification]:
    """Every model, with and without a zero-initialised last batch norm per block, at every factor.

    ``options`` holds each model's architecture options (``planes``, ``small_input``: the
    variant a notebook trains). The images are random normal pixels, the same for every
    model; the classifier's size changes nothing here.
    """
    generator = torch.Generator().manual_seed(seed)
    batch = torch.randn(images, 3, image_size, image_size, generator=generator)
    rows = []
    for name in models:
        for zero_init in (True, False):
            torch.manual_seed(seed)
            model = create_model(name, num_classes=num_classes,
                                 **{**options.get(name, {}), "zero_init_residual": zero_init})
            _gather_running_statistics(model, batch)
            rows += [Amplification(name, zero_init, factor, _largest_output(model, batch, factor))
                     for factor in factors]
    return rows


def _shown(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else ("NaN" if math.isnan(value) else "inf")


def format_table(rows: Sequence[Amplification]) -> str:
    """One line per model and initialisation: the largest output at each factor."""
    factors = sorted({row.factor for row in rows})
    lines = [f"{'model':<10} {'last batch norm of each block':<30}"
             + "".join(f"{'x' + format(factor, 'g'):>10}" for factor in factors)]
    for (model, zero_init) in dict.fromkeys((row.model, row.zero_init_residual) for row in rows):
        by_factor = {row.factor: row.largest_output for row in rows
                     if (row.model, row.zero_init_residual) == (model, zero_init)}
        lines.append(f"{model_label(model):<10} {'starts at zero' if zero_init else 'starts at one':<30}"
                     + "".join(f"{_shown(by_factor[factor]):>10}" for factor in factors))
    return "\n".join(lines)


def growth(rows: Sequence[Amplification], model: str, zero_init_residual: bool, factor: float) -> float:
    """How many times larger the model's largest output is at ``factor`` than with exact
    statistics (factor 1); NaN where the outputs overflowed."""
    by_factor = {row.factor: row.largest_output for row in rows
                 if (row.model, row.zero_init_residual) == (model, zero_init_residual)}
    return by_factor[factor] / by_factor[1.0]


def _ranked(grew: dict) -> tuple[str | None, str | None]:
    """(larger, smaller) of two growths, a non-finite one the larger; (None, None) when tied."""
    key = {name: value if math.isfinite(value) else math.inf for name, value in grew.items()}
    larger, smaller = sorted(key, key=key.get, reverse=True)
    return (None, None) if key[larger] == key[smaller] else (larger, smaller)


def _grew(value: float) -> str:
    return f"grew {value:,.0f}-fold" if math.isfinite(value) else "overflowed to NaN"


def summary(rows: Sequence[Amplification]) -> list[str]:
    """What the table says at the largest factor, each direction read from the numbers: which
    family amplified the error more under each initialisation, and for each family which
    initialisation amplified it more (an overflow counts as more than any finite growth)."""
    factor = max(row.factor for row in rows)
    models = list(dict.fromkeys(row.model for row in rows))
    lines = []
    for zero_init in (True, False):
        grew = {model: growth(rows, model, zero_init, factor) for model in models}
        larger, _ = _ranked(grew)
        start = "each block's last batch norm starting at zero" if zero_init else "starting at one"
        lines.append(f"Every batch norm {factor:g}x too large, {start}: "
                     + ", ".join(f"{model_label(model)}'s largest output {_grew(value)}"
                                 for model, value in grew.items())
                     + ("; neither amplified the error more." if larger is None
                        else f"; {model_label(larger)} amplified the error more."))
    for model in models:
        grew = {start: growth(rows, model, start == "zero", factor) for start in ("zero", "one")}
        larger, smaller = _ranked(grew)
        lines.append(f"{model_label(model)}: starting at zero its largest output {_grew(grew['zero'])}, starting at "
                     f"one it {_grew(grew['one'])}; "
                     + ("the start made no difference." if larger is None
                        else f"the start at {smaller} amplified the error less."))
    return lines
