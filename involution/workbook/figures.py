"""The figures of the notebooks and the slides.

(The kernel figures are :mod:`involution.workbook.kernel_figures`.)

The ``plot_*`` functions draw the figures of the notebooks and the slides.
Each returns a :class:`matplotlib.figure.Figure` (not registered with pyplot,
so nothing is drawn twice): show it as a cell's last value, save it with
``figure.savefig``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator

from involution.models.registry import model_info
from involution.workbook.kernel_figures import fit_text, suptitle
from involution.workbook.results import SeedSpread

__all__ = ["plot_training_curves", "plot_examples", "plot_test_top1_over_seeds", "plot_loss_curves",
           "plot_complexity_table", "plot_operator_costs", "plot_instability"]

# A colour per model; a marker per seed, so that runs of one model stay apart.
PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
SEED_MARKERS = ("o", "s", "^", "D", "v", "P")


def smallest_font_pt(figure: Figure) -> float:
    """The size, in points, of the smallest visible text of ``figure`` (tick labels included)."""
    figure.canvas.draw()  # ticks and their labels exist once drawn
    sizes = [text.get_fontsize() for text in figure.findobj(Text)
             if text.get_visible() and text.get_text().strip()]
    return min(sizes) if sizes else float("inf")


def enlarge_text(figure: Figure, minimum_pt: float) -> Figure:
    """Raise every text of ``figure`` smaller than ``minimum_pt`` points to ``minimum_pt`` (for a slide).

    A constrained layout makes room for the larger labels when the figure is saved.
    """
    for axis in figure.axes:
        for which in ("x", "y"):
            labels = getattr(axis, f"get_{which}ticklabels")()
            if labels and labels[0].get_fontsize() < minimum_pt:
                axis.tick_params(axis=which, labelsize=minimum_pt)
    for text in figure.findobj(Text):
        if text.get_fontsize() < minimum_pt:
            text.set_fontsize(minimum_pt)
    return figure


def _epochs(metrics: Mapping[str, Sequence[float]]) -> np.ndarray:
    return np.asarray(metrics["epoch"], dtype=float) + 1  # epochs completed


def plot_training_curves(curves: Mapping[str, Mapping[str, Sequence[float]]],
                         title: str | None = None, chance: float | None = None) -> Figure:
    """Loss and top-1 accuracy per epoch, training (solid) and validation (dashed), per run.

    Args:
        curves: ``{label: per-epoch metrics}`` as returned by
            :func:`involution.train.runs.reader.read_metrics` (keys ``epoch``,
            ``train/loss_epoch``, ``val/loss``, ``train/top1``, ``val/top1``).
            Runs of one model with different seeds, labelled ``"<model> seed <n>"``,
            share the model's colour and are told apart by their markers.
        title: say here which data and machine the runs come from.
        chance: top-1 accuracy (%) of guessing, drawn as a grey line (100 / classes).
    """
    if not curves:
        raise ValueError("no runs to plot: pass {label: metrics} for at least one run")
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    models = list(dict.fromkeys(label.split(" seed ")[0] for label in curves))
    colour_of = {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(models)}
    seeds = list(dict.fromkeys(label.split(" seed ")[1] for label in curves if " seed " in label))
    marker_of = {seed: SEED_MARKERS[i % len(SEED_MARKERS)] for i, seed in enumerate(seeds)}
    for label, metrics in curves.items():
        if "epoch" not in metrics:
            raise ValueError(f"metrics of {label!r} have no 'epoch' column; use workbook.read_metrics")
        model, _, seed = label.partition(" seed ")
        epochs = _epochs(metrics)
        for key, axis, style, split, scale in (
                ("train/loss_epoch", loss_axis, "-", "train", 1), ("val/loss", loss_axis, "--", "val", 1),
                ("train/top1", accuracy_axis, "-", "train", 100),
                ("val/top1", accuracy_axis, "--", "val", 100)):
            if key in metrics:
                axis.plot(epochs, np.asarray(metrics[key], dtype=float) * scale, style, color=colour_of[model],
                          marker=marker_of.get(seed, "o") if len(epochs) < 40 else None, markersize=4,
                          alpha=0.85, label=f"{label} {split}")
    loss_axis.set(xlabel="epochs trained", ylabel="cross-entropy loss", title="loss")
    accuracy_axis.set(xlabel="epochs trained", ylabel="top-1 accuracy (%)", title="top-1 accuracy",
                      ylim=(0, 100))
    for axis in (loss_axis, accuracy_axis):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    if chance is not None:
        accuracy_axis.axhline(chance, color="#777777", linewidth=1, linestyle=":")
        accuracy_axis.annotate("chance", (1, chance), xycoords=("axes fraction", "data"), xytext=(-4, 3),
                               textcoords="offset points", ha="right", fontsize=8, color="#555555")
    # One legend for both panels: a line per model and split, a marker per seed (not one entry
    # per run, which for 2 models x 3 seeds x 2 splits would cover the curves).
    entries = [Line2D([], [], color=colour_of[model], linestyle=style, label=f"{model} {split}")
               for model in models for style, split in (("-", "train"), ("--", "val"))]
    entries += [Line2D([], [], color="#555555", marker=marker_of[seed], linestyle="none", label=f"seed {seed}")
                for seed in seeds]
    # Lower right: under the curves once they have risen, above the chance line.
    accuracy_axis.legend(handles=entries, fontsize=8, loc="lower right", ncols=2 if seeds else 1,
                         bbox_to_anchor=(1, 0.14 if chance is not None else 0))
    suptitle(figure, title, fontsize=10)
    return figure


def plot_examples(dataset, per_class: int = 6, max_classes: int = 10,
                  title: str | None = None) -> Figure:
    """A grid of a data set's images as stored (before augmentation): one row per class.

    ``dataset`` is an :class:`involution.data.images.ImageListDataset` (``samples``
    of (path, label) and ``class_names``), e.g. a data module's ``test_dataset``.
    """
    from involution.data import load_rgb_image
    by_class: dict[int, list] = {}
    for path, label in dataset.samples:
        if label < max_classes and len(by_class.setdefault(label, [])) < per_class:
            by_class[label].append(path)
    if not by_class:
        raise ValueError("the data set has no images to show")
    rows = sorted(by_class)
    figure = Figure(figsize=(1.1 * per_class + 1.4, 1.1 * len(rows) + 0.5), layout="constrained")
    axes = figure.subplots(len(rows), per_class, squeeze=False)
    for row, label in zip(axes, rows):
        for column, axis in enumerate(row):
            axis.set_xticks([])
            axis.set_yticks([])
            axis.spines[:].set_visible(False)
            if column < len(by_class[label]):
                axis.imshow(np.asarray(load_rgb_image(by_class[label][column])))
        name = dataset.class_names[label] if label < len(dataset.class_names) else str(label)
        row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    suptitle(figure, title)
    return figure


SPACING = 2.0  # between the models' columns of plot_test_top1_over_seeds


def plot_test_top1_over_seeds(rows: Sequence[Mapping], title: str | None = None,
                              confidence: float = 0.95) -> Figure:
    """Test top-1 of every run, one column per model: a dot per seed, the mean and its interval.

    The axis is zoomed to the runs (not 0-100), so a difference of a point shows; the error bar
    is the ``confidence`` t interval of each model's mean over its seeds.

    Args:
        rows: :func:`involution.workbook.results.results_rows` of the runs (``label``, ``test_top1``).
        title: say here which data and machine the runs come from.
    """
    by_model: dict[str, list[float]] = {}
    for row in rows:
        if row.get("test_top1") is not None:
            by_model.setdefault(row["label"], []).append(row["test_top1"])
    if not by_model:
        raise ValueError("no tested runs to plot: every row lacks test_top1")
    figure = Figure(figsize=(6.4, 4.0), layout="constrained")
    axis = figure.subplots()
    for position, (label, values) in enumerate(by_model.items()):
        colour = PALETTE[position % len(PALETTE)]
        jitter = np.linspace(-0.08, 0.08, len(values)) if len(values) > 1 else np.zeros(1)
        position *= SPACING  # room between the columns for each mean's label
        axis.scatter(position + jitter, values, color=colour, s=36, alpha=0.8, zorder=3)
        mean = float(np.mean(values))
        half = SeedSpread(label, tuple(values)).half_width(confidence)
        axis.errorbar(position + 0.25, mean, yerr=half, fmt="D", color=colour, capsize=6, markersize=7)
        axis.annotate(f"mean {mean:.1f}%" + (f"\n{confidence:.0%} interval \u00b1 {half:.1f}" if half else ""),
                      (position + 0.32, mean),
                      va="center", fontsize=10)
    axis.set_xticks([SPACING * i for i in range(len(by_model))],
                    [f"{label}\n({len(values)} seeds)" for label, values in by_model.items()])
    axis.set_xlim(-0.5, SPACING * (len(by_model) - 1) + 1.3)
    axis.set_ylabel("test top-1 (%)")
    low, high = axis.get_ylim()
    axis.set_ylim(low, min(high, 100.5))  # an interval may reach past 100%; accuracy cannot
    axis.grid(axis="y", alpha=0.3)
    axis.set_title(f"dots: one run each\ndiamond and bar: mean and its {confidence:.0%} interval", fontsize=9)
    suptitle(figure, title, fontsize=10)
    return figure


def plot_loss_curves(panels: Mapping[str, Mapping[str, Mapping[str, Sequence[float]]]],
                     title: str | None = None) -> Figure:
    """Training (solid) and validation (dashed) loss per epoch: one panel per setting, one colour per run.

    Args:
        panels: ``{setting: {run label: per-epoch metrics}}`` (``epoch``, ``train/loss_epoch``,
            ``val/loss``), e.g. the same model with and without weight decay, one run per seed.
        title: say here which data and machine the runs come from.
    """
    if not panels:
        raise ValueError("nothing to plot: pass {setting: {label: metrics}}")
    figure = Figure(figsize=(5.2 * len(panels), 3.8), layout="constrained")
    axes = figure.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for axis, (setting, curves) in zip(axes, panels.items()):
        for index, (label, metrics) in enumerate(curves.items()):
            colour = PALETTE[index % len(PALETTE)]
            epochs = _epochs(metrics)
            axis.plot(epochs, metrics["train/loss_epoch"], "-", color=colour, alpha=0.85, label=f"{label} train")
            axis.plot(epochs, metrics["val/loss"], "--", color=colour, alpha=0.85, label=f"{label} val")
        axis.set(title=setting, xlabel="epochs trained")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("cross-entropy loss")
    # One legend below the panels: a colour per run, a line style per split (not one entry per line).
    runs = list(dict.fromkeys(label for curves in panels.values() for label in curves))
    entries = [Line2D([], [], color=PALETTE[index % len(PALETTE)], label=label) for index, label in enumerate(runs)]
    entries += [Line2D([], [], color="#555555", linestyle=style, label=split)
                for style, split in (("-", "training"), ("--", "validation"))]
    figure.legend(handles=entries, loc="outside lower center", ncols=len(entries), fontsize=9)
    suptitle(figure, title, fontsize=10)
    return figure


def plot_complexity_table(rows: Sequence[Mapping], input_size=(3, 224, 224),
                          title: str | None = None) -> Figure:
    """The table of :func:`involution.analysis.complexity.complexity_table` as a figure."""
    if not rows:
        raise ValueError("no rows: pass involution.analysis.complexity.complexity_table()")

    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    header = ["model", "params\n(counted)", "GMACs\n(counted)", "mmcv-style\nGFLOPs (counted)",
              "params (M)\n(reported)", "GFLOPs\n(reported)", "gap", "reported by"]
    cells = [[r["model"], f"{r['params']:,}", f"{r['gmacs']:.2f}", f"{r['mmcv_style_gflops']:.2f}",
              fmt(r["reported_params_m"], ".2f"), fmt(r["reported_gflops"], ".2f"),
              "-" if r["gap_percent"] is None else f"{r['gap_percent']:+.1f}%",
              {"paper": "Li et al. 2021", "torchvision": "torchvision"}.get(r["reported_by"], "-")]
             for r in rows]
    figure = Figure(figsize=(10, 0.28 * len(rows) + 1.2), layout="constrained")
    axis = figure.subplots()
    axis.axis("off")
    table = axis.table(cellText=cells, colLabels=header, loc="upper center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.3)
    for (row, column), cell in table.get_celld().items():
        if row == 0:
            cell.set_facecolor("#e8e8e8")
            cell.set_height(cell.get_height() * 1.7)
        elif model_info(rows[row - 1]["model"]).family == "rednet":
            cell.set_facecolor("#fdeaea")
    suptitle(figure, title or f"Parameters and multiply-adds per {input_size[1]}x{input_size[2]} "
              "image: counted by involution.analysis.complexity vs reported", fontsize=10)
    axis.text(0, 0, fit_text("counted: this project's code, 1000-class ImageNet heads. reported: Li "
                              "et al. (CVPR 2021) official model zoo (mmcv-style counts) or "
                              "torchvision's weight metadata (MACs). gap: our count in the "
                              "reporter's convention minus the reported figure.", 10, 8),
              fontsize=8, transform=axis.transAxes, va="bottom", color="#444444")
    return figure


def plot_operator_costs(by_channels: Sequence[Mapping], by_kernel: Sequence[Mapping],
                        title: str | None = None) -> Figure:
    """Parameters and multiply-adds of a convolution vs an involution as C and K grow.

    Args:
        by_channels: :func:`involution.analysis.complexity.operator_costs` rows at one K.
        by_kernel: rows at one C.
    """
    if not by_channels or not by_kernel:
        raise ValueError("pass operator_costs rows for several channel counts and several kernel sizes")
    figure = Figure(figsize=(10, 6.4), layout="constrained")
    axes = figure.subplots(2, 2)
    for column, (rows, key, xlabel) in enumerate(
            ((by_channels, "channels", "channels C"), (by_kernel, "kernel_size", "kernel size K"))):
        x = [r[key] for r in rows]
        fixed = (f"K = {rows[0]['kernel_size']}" if key == "channels" else f"C = {rows[0]['channels']}")
        for row_index, (measure, unit) in enumerate((("params", "parameters"),
                                                     ("macs", "multiply-adds"))):
            axis = axes[row_index, column]
            axis.plot(x, [r[f"conv_{measure}"] for r in rows], "o-", color="#1f77b4",
                      label="KxK convolution, C -> C")
            axis.plot(x, [r[f"involution_{measure}"] for r in rows], "s-", color="#d62728",
                      label="involution (incl. kernel generation)")
            axis.set_yscale("log")
            axis.set_xticks(x)
            # Short titles: four panels share a row's width; the map size goes in the figure's note.
            axis.set(xlabel=xlabel, ylabel=unit, title=f"{unit}, {fixed}")
            axis.grid(alpha=0.3, which="both")
    # One legend for the four panels, below them, where it covers no data.
    first = by_channels[0]
    figure.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=9,
                  title=f"multiply-adds on a {first['height']}x{first['width']} map", title_fontsize=8)
    suptitle(figure, title)
    return figure


def plot_instability(kernel_growth: Mapping[str, Mapping[str, Sequence[float]]],
                     losses: Mapping[str, Mapping[str, Sequence[float]]], where: str) -> Figure:
    """The instability runs step by step: the generated kernels' largest value, and the training loss.

    Args:
        kernel_growth: ``{run name: involution.workbook.course.kernel_growth(run)}``; runs
            without involution (a convolutional control) have no steps and no line there.
        losses: ``{run name: involution.workbook.course.step_losses(run)}``, every run.
        where: the data and image size, for the titles.
    """
    figure = Figure(figsize=(11, 3.8), layout="constrained")
    kernel_axis, loss_axis = figure.subplots(1, 2)
    for name, growth in kernel_growth.items():
        if growth["step"]:
            kernel_axis.plot(growth["step"], growth["kernel_absmax"], label=name)
    for name, loss in losses.items():
        loss_axis.plot(loss["step"], loss["train_loss"], label=name)
    kernel_axis.set(yscale="log", xlabel="training step", ylabel="largest |kernel value| (any layer)",
                    title=f"RedNet-50, lr 0.8: generated kernels ({where})")
    loss_axis.set(yscale="log", xlabel="training step", ylabel="training loss (log scale)",
                  title=f"lr 0.8: training loss ({where})")
    for axis in (kernel_axis, loss_axis):
        axis.grid(alpha=0.3, which="both")
        if axis.get_lines():
            axis.legend(fontsize=8)
    return figure
