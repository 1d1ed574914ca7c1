"""Results of runs as tables and sentences: one row per run, spreads over seeds, honest comparisons.

Everything here reads :class:`~involution.train.runs.reader.Run` objects (their
:class:`~involution.train.runs.record.RunResults`); the notebooks print these, the figures
of :mod:`involution.workbook.figures` and the deck draw from the same rows.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from involution.data import SAMPLE_SET_DESCRIPTION
from involution.data.constants import DATA_KINDS
from involution.train.runs import Run, RunResults
from involution.workbook.reference import COURSE_PROJECT_RESULTS, COURSE_PROJECT_SOURCE

# The accuracies a run records (fractions in results.json, % in tables).
SCORES = tuple(name for name in RunResults.__dataclass_fields__ if name.endswith(("_top1", "_top5")))

__all__ = ["SCORES", "results_rows", "reference_rows", "format_results_table", "format_epoch_table",
           "runs_data_statement", "SeedSpread", "seed_spread", "MeanDifference", "compare_means",
           "format_seed_table", "plateau_gain", "format_rerun_table"]


# -- results tables -----------------------------------------------------------------------


def results_rows(runs: Iterable[Run]) -> list[dict]:
    """One row per run, accuracies in %, for tables and figures."""
    rows = []
    for run in runs:
        r = run.results
        rows.append({
            "label": run.label, "model": run.model, "params": r.params,
            "params_m": r.params / 1e6, "epochs": r.epochs_trained,
            "image_size": run.image_size, "data": run.data_label,
            **{score: r.percent(score) for score in SCORES},
            "best_epoch": r.best_epoch,
            "machine": run.machine(), "run": run.name + "/" + run.version, "seed": run.seed,
        })
    return rows


def reference_rows() -> list[dict]:
    """The course project's reported results, as rows shaped like :func:`results_rows`."""
    return [{"label": row["model"], "params_m": row["params_m"], "epochs": row["epochs"],
             "best_val_top1": row["val_top1"], "data": "Caltech-256",
             "source": COURSE_PROJECT_SOURCE} for row in COURSE_PROJECT_RESULTS]


def format_results_table(runs: Iterable[Run], reference: bool = True) -> str:
    """A plain-text table of runs and, as a table of its own, the course project's reported figures."""
    def fmt(value, spec=".1f"):
        return "-" if value is None else format(value, spec)

    header = (f"{'model':<10} {'params':>11} {'epochs':>6} {'image':>5} {'best val top-1':>14} "
              f"{'top-5':>6} {'test top-1':>10} {'top-5':>6}  data")
    lines = [header]
    for row in results_rows(runs):
        lines.append(f"{row['label']:<10} {row['params']:>11,} {fmt(row['epochs'], 'd'):>6} "
                     f"{fmt(row['image_size'], 'd'):>5} {fmt(row['best_val_top1']):>13}% "
                     f"{fmt(row['best_val_top5']):>5}% {fmt(row['test_top1']):>9}% "
                     f"{fmt(row['test_top5']):>5}%  {row['data']} (this project"
                     + (f", seed {row['seed']})" if row["seed"] is not None else ")"))
    if reference:  # another data set: a table of its own, never rows under our columns
        rows = reference_rows()
        lines += ["", "Caltech-256 (reported, not ours): " + rows[0]["source"] + ".",
                  f"{'model':<10} {'params':>11} {'epochs':>6} {'best val top-1':>14}"]
        lines += [f"{row['label']:<10} {row['params_m']:>10.1f}M {row['epochs']:>6} "
                  f"{row['best_val_top1']:>13.2f}%" for row in rows]
    return "\n".join(lines)


def format_epoch_table(metrics: Mapping[str, Sequence[float]]) -> str:
    """One line per epoch: training and validation loss and accuracy, from :func:`read_metrics`."""
    columns = [("train/loss_epoch", "train loss", 1, ".3f"), ("train/top1", "train top-1", 100, ".1f"),
               ("val/loss", "val loss", 1, ".3f"), ("val/top1", "val top-1", 100, ".1f"),
               ("val/top5", "val top-5", 100, ".1f")]
    present = [c for c in columns if c[0] in metrics]
    lines = [f"{'epoch':>5} " + " ".join(f"{title:>11}" for _, title, _, _ in present)]
    for index, epoch in enumerate(metrics["epoch"]):
        cells = []
        for key, _, scale, spec in present:
            value = metrics[key][index]
            cells.append(f"{'-' if math.isnan(value) else format(value * scale, spec):>11}")
        lines.append(f"{int(epoch) + 1:>5} " + " ".join(cells))
    return "\n".join(lines)


def runs_data_statement(runs: Iterable[Run]) -> str:
    """One line saying which data and machine a set of runs used."""
    runs = list(runs)
    if not runs:
        raise ValueError("no runs given")
    machines = sorted({run.machine() for run in runs})
    kinds = {run.kind for run in runs}
    if kinds == {"sample"}:
        data = f"{SAMPLE_SET_DESCRIPTION}; its accuracies say nothing about Caltech-256"
    elif kinds == {"shapes"}:
        data = ("the built-in shapes set (generated offline, NOT Caltech-256; validation and test "
                "images on photographs that training never sees)")
    elif kinds == {"caltech256"}:
        data = "Caltech-256 (this project's stratified split)"
    elif len(kinds) == 1:
        data = DATA_KINDS[kinds.pop()].label
    else:
        data = f"a MIX of {', '.join(sorted(DATA_KINDS[k].label for k in kinds))} (compare with care)"
    return f"Training data: {data}. Machine: {'; '.join(machines)}."


# -- several seeds ------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedSpread:
    """One model's metric over its seeds: mean, standard deviation, range, and the values."""

    label: str
    values: tuple[float, ...]
    unit: str = "%"  # how the values print: "%" for accuracies, "" for plain numbers such as losses

    @property
    def mean(self) -> float:
        return statistics.mean(self.values)

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1); 0 for a single run."""
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def half_width(self, confidence: float = 0.95) -> float:
        """Half the width of the t interval of the mean at ``confidence``; 0 for a single run."""
        if len(self.values) < 2:
            return 0.0
        from scipy import stats  # imported only where an interval is asked for

        return float(stats.t.ppf(0.5 + confidence / 2, len(self.values) - 1) * stats.sem(self.values))

    def __str__(self) -> str:
        digits = 1 if self.unit == "%" else 3
        spread = f" +- {self.std:.{digits}f}" if len(self.values) > 1 else ""
        return (f"{self.mean:.{digits}f}{self.unit}{spread} (n={len(self.values)}, "
                f"range {min(self.values):.{digits}f} to {max(self.values):.{digits}f})")


def seed_spread(runs: Sequence[Run], key: str = "test_top1") -> SeedSpread:
    """The spread of a score (one of :data:`SCORES`, in %) over the runs of one model."""
    if key not in SCORES:
        raise ValueError(f"{key!r} is not a score of a run; use one of {SCORES}")
    values = tuple(run.results.percent(key) for run in runs if run.results.percent(key) is not None)
    if not values:
        raise ValueError(f"none of the {len(runs)} run(s) has {key!r} in its results")
    return SeedSpread(runs[0].label, values)


@dataclass(frozen=True)
class MeanDifference:
    """The difference of two models' mean scores over seeds, with its confidence interval.

    ``low``/``high`` bound ``first.mean - second.mean`` at ``confidence`` (Welch's t
    interval: unequal variances, as two architectures' spreads need not be equal).
    The verdict is read from the interval alone: a model is called higher only when
    the whole interval lies on its side of zero.
    """

    first: SeedSpread
    second: SeedSpread
    difference: float
    low: float
    high: float
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    @property
    def higher(self) -> str | None:
        """The label of the model whose mean is higher beyond the interval; None when it includes zero."""
        return self.first.label if self.low > 0 else self.second.label if self.high < 0 else None

    @property
    def verdict(self) -> str:
        return f"{self.higher} higher" if self.higher else "no difference detectable at this precision"

    def __str__(self) -> str:
        digits, unit = (1, " points") if self.first.unit == "%" else (3, "")
        return (f"{self.first.label} minus {self.second.label}: {self.difference:+.{digits}f}{unit}, "
                f"{self.confidence:.0%} interval {self.low:+.{digits}f} to {self.high:+.{digits}f} "
                f"(Welch's t, {len(self.first.values)} and {len(self.second.values)} seeds). "
                f"Verdict: {self.verdict}.")


def compare_means(first: SeedSpread, second: SeedSpread, confidence: float = 0.95) -> MeanDifference:
    """``first`` against ``second``: the difference of their means and its Welch t interval.

    Needs at least two runs of each model (one run has no spread to judge a difference by).
    """
    if len(first.values) < 2 or len(second.values) < 2:
        raise ValueError(f"a comparison needs at least 2 seeds of each model; got {len(first.values)} "
                         f"of {first.label} and {len(second.values)} of {second.label}")
    from scipy import stats  # a training extra: imported only where a comparison is made

    if statistics.pvariance(first.values) == statistics.pvariance(second.values) == 0:
        difference = first.mean - second.mean  # no spread at all: the interval is the point
        return MeanDifference(first, second, difference, difference, difference, confidence)
    test = stats.ttest_ind(first.values, second.values, equal_var=False)
    interval = test.confidence_interval(confidence_level=confidence)
    return MeanDifference(first, second, first.mean - second.mean, float(interval.low),
                          float(interval.high), confidence)


def format_seed_table(runs_by_model: Mapping[str, Sequence[Run]]) -> str:
    """Per model: best validation and test top-1 over seeds (mean +- sd and range), parameters."""
    lines = [f"{'model':<10} {'params':>11} {'seeds':>5}  {'best val top-1':<34} test top-1"]
    for runs in runs_by_model.values():
        seeds = ",".join(str(run.seed) for run in runs)
        lines.append(f"{runs[0].label:<10} {runs[0].results.params:>11,} {seeds:>5}  "
                     f"{str(seed_spread(runs, 'best_val_top1')):<34} {seed_spread(runs)}")
    return "\n".join(lines)


def plateau_gain(metrics: Mapping[str, Sequence[float]], key: str = "val/top1") -> float:
    """Points of validation top-1 gained over the last quarter of a run's epochs.

    The last epoch's value minus the value a quarter of the epochs (at least one)
    before it. Under 1 point, the run has reached its plateau and its final score
    answers a question; above it, the run was still learning when it stopped.
    NaN for a run of fewer than two epochs, which cannot show a plateau.
    """
    values = [value for value in metrics[key] if not math.isnan(value)]
    if len(values) < 2:
        return math.nan
    quarter = max(1, math.ceil(len(values) / 4))
    return 100 * (values[-1] - values[-1 - quarter])


def format_rerun_table(baseline: Mapping[str, Sequence[Run]], rerun: Mapping[str, Sequence[Run]],
                       models: Sequence[str], other: str) -> str:
    """A Markdown table: each model's mean test top-1 in two sets of runs of the same plan, and the verdicts.

    ``baseline`` are notebook 02's runs, ``rerun`` the same plan trained again under another
    rounding (``other`` says which). A model's mean "holds" when it moved by less than the half
    width of its baseline 95% interval; the comparison holds when both verdicts agree.
    """
    machine = sorted({run.machine() for runs in baseline.values() for run in runs})
    lines = [f"| model | seeds | notebook 02 ({'; '.join(machine)}) | 95% interval of the mean | "
             f"again, {other} | moved by | within the interval |", "|---|---|---|---|---|---|---|"]
    for name in models:
        before, after = seed_spread(baseline[name]), seed_spread(rerun[name])
        half = before.half_width()
        moved = after.mean - before.mean
        lines.append(f"| {before.label} | {len(before.values)} | {before.mean:.1f}% +- {before.std:.1f} | "
                     f"+-{half:.1f} | {after.mean:.1f}% +- {after.std:.1f} | {moved:+.1f} | "
                     f"{'yes' if abs(moved) < half else 'no'} |")
    verdicts = [compare_means(*(seed_spread(runs[name]) for name in models[:2])) for runs in (baseline, rerun)]
    same = verdicts[0].verdict == verdicts[1].verdict
    lines += ["", f"Notebook 02: {verdicts[0]}", "", f"Again, {other}: {verdicts[1]}", "",
              f"The verdict {'is the same' if same else 'CHANGED'} under the other rounding."]
    return "\n".join(lines)
