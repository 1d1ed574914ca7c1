"""Capture the kernels an involution network generates, and draw them.

The kernels are not weights: every forward pass generates new ones from the
image. :func:`capture_kernels` records them with forward hooks on each
layer's :class:`~involution.layers.KernelGenerator`, so nothing about the
forward pass is repeated or changed.

The ``plot_*`` functions draw the figures of the notebooks and the slides.
Each returns a :class:`matplotlib.figure.Figure` (not registered with pyplot,
so nothing is drawn twice): show it as a cell's last value, save it with
``figure.savefig``.
"""
from __future__ import annotations

import math
import textwrap
from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from torch import nn

from .layers import Involution2d
from .registry import model_info

__all__ = ["capture_kernels", "involution_layers", "KERNEL_SUMMARIES", "kernel_summary",
           "plot_kernel_heatmaps", "plot_kernels_at_pixels", "plot_training_curves",
           "plot_accuracy_vs_params", "plot_complexity_table", "plot_operator_costs"]


def involution_layers(model: nn.Module) -> dict[str, Involution2d]:
    """Every involution layer of ``model`` by name, in forward order for RedNets."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, Involution2d)}
    # named_modules lists the RedNet stem last (it is added after torchvision's
    # layers); put it first so the order follows the forward pass.
    stem = {n: m for n, m in layers.items() if n.startswith(("stem", "model.stem"))}
    return {**stem, **{n: m for n, m in layers.items() if n not in stem}}


@contextmanager
def capture_kernels(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Record every involution layer's generated kernels during forward passes.

    Yields a dict filled, after a forward pass inside the ``with`` block, with
    ``{layer name: kernel}``; each kernel is a detached CPU tensor of shape
    (B, G, K, K, H_out, W_out)::

        with capture_kernels(model) as kernels:
            model(images)
        kernels["layer1.0.conv2"].shape   # (B, 4, 7, 7, 56, 56) for RedNet at 224
    """
    kernels: dict[str, torch.Tensor] = {}

    def recorder(name):
        def record(module, inputs, kernel):
            kernels[name] = kernel.detach().float().cpu()
        return record

    hooks = [layer.kernel_generator.register_forward_hook(recorder(name))
             for name, layer in involution_layers(model).items()]
    try:
        yield kernels
    finally:
        for hook in hooks:
            hook.remove()


# -- summarising kernels ----------------------------------------------------------

KERNEL_SUMMARIES = ("norm", "sum", "deviation")


def _check_kernel(kernel: torch.Tensor) -> torch.Tensor:
    if not isinstance(kernel, torch.Tensor) or kernel.dim() != 6:
        shape = tuple(kernel.shape) if isinstance(kernel, torch.Tensor) else type(kernel).__name__
        raise ValueError(f"expected generated kernels of shape (B, G, K, K, H, W), got {shape}")
    if kernel.shape[2] != kernel.shape[3]:
        raise ValueError(f"kernels must be square (K x K), got shape {tuple(kernel.shape)}")
    return kernel.detach().float().cpu()


def kernel_summary(kernel: torch.Tensor, summary: str = "deviation") -> torch.Tensor:
    """One number per pixel for a layer's generated kernels: (B, G, K, K, H, W) -> (B, H, W).

    ``"norm"``: the root-mean-square of the pixel's kernel weights (all groups),
    how strongly the kernel weights its neighbourhood.
    ``"sum"``: the sum of the K x K weights, averaged over the groups; the
    kernel's gain on a flat patch (1 for a pure smoothing kernel).
    ``"deviation"``: the root-mean-square difference between the pixel's
    kernel and the image's average kernel of that layer: zero everywhere for a
    convolution, whose kernel is the same at every pixel, so it shows where
    involution is spatially specific.
    """
    kernel = _check_kernel(kernel)
    batch, groups, k, _, height, width = kernel.shape
    flat = kernel.reshape(batch, groups * k * k, height, width)
    if summary == "norm":
        return flat.pow(2).mean(dim=1).sqrt()
    if summary == "sum":
        return kernel.sum(dim=(2, 3)).mean(dim=1)
    if summary == "deviation":
        mean_kernel = flat.mean(dim=(2, 3), keepdim=True)
        return (flat - mean_kernel).pow(2).mean(dim=1).sqrt()
    raise ValueError(f"unknown kernel summary {summary!r}; choose one of {KERNEL_SUMMARIES}")


def _display_image(image) -> np.ndarray:
    """An (H, W, 3) array in [0, 1] from a (3, H, W) tensor or an (H, W, 3) array."""
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"expected an image tensor of shape (3, H, W), got {tuple(image.shape)};"
                             " pass one image, denormalised (involution.data.denormalize)")
        image = image.detach().float().cpu().permute(1, 2, 0).numpy()
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    if image.min() < -1e-3 or image.max() > 1 + 1e-3:
        raise ValueError(f"image values must lie in [0, 1] (got {image.min():.2f} to "
                         f"{image.max():.2f}); undo the normalisation with involution.data.denormalize")
    return image.clip(0, 1)


def _grid_position(pixel, image_shape, grid_shape) -> tuple[int, int]:
    """The cell of a layer's (H, W) kernel grid that covers image pixel (row, col)."""
    row, col = pixel
    height, width = image_shape
    if not (0 <= row < height and 0 <= col < width):
        raise ValueError(f"pixel {pixel} lies outside the {height}x{width} image")
    return int(row * grid_shape[0] / height), int(col * grid_shape[1] / width)


def _layer_title(name: str, kernel: torch.Tensor) -> str:
    _, groups, k, _, height, width = kernel.shape
    return f"{name}\n{height}x{width} px, {groups} groups, {k}x{k}"


# -- figures ------------------------------------------------------------------------


def _fit_text(text: str, width_inches: float, fontsize: float) -> str:
    """Wrap ``text`` so that it fits ``width_inches`` at ``fontsize`` points."""
    characters = max(20, int(width_inches * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, characters) for line in text.split("\n"))


def _suptitle(figure: Figure, title: str | None, fontsize: float = 11) -> None:
    if title:
        figure.suptitle(_fit_text(title, figure.get_figwidth(), fontsize), fontsize=fontsize)


def plot_kernel_heatmaps(image, kernels: Mapping[str, torch.Tensor], summary: str = "deviation",
                         index: int = 0, layers: Sequence[str] | None = None, columns: int = 5,
                         title: str | None = None) -> Figure:
    """The image, then one heat map per involution layer of a per-pixel kernel summary.

    Args:
        image: the (denormalised) image the kernels were generated from,
            a (3, H, W) tensor or (H, W, 3) array in [0, 1].
        kernels: ``{layer: (B, G, K, K, H, W) kernels}`` from :func:`capture_kernels`.
        summary: see :func:`kernel_summary`.
        index: which image of the batch.
        layers: which layers, in order (default: all).
        columns: heat maps per row.
    Each map is drawn over the image's area, so a map cell sits on the
    pixels it was generated for.
    """
    picture = _display_image(image)
    layers = list(kernels) if layers is None else list(layers)
    missing = [name for name in layers if name not in kernels]
    if missing or not layers:
        raise ValueError(f"no kernels captured for layers {missing or layers}; captured: {list(kernels)}")
    panels = len(layers) + 1
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(2.6 * columns, 2.9 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    height, width = picture.shape[:2]
    extent = (0, width, height, 0)
    axes[0].imshow(picture, extent=extent)
    axes[0].set_title(f"input\n{height}x{width} px", fontsize=9)
    gray = picture.mean(axis=2)
    for axis, name in zip(axes[1:], layers):
        summary_map = kernel_summary(kernels[name], summary)[index].numpy()
        axis.imshow(gray, cmap="gray", extent=extent, alpha=0.35)
        shown = axis.imshow(summary_map, cmap="magma", extent=extent, alpha=0.85,
                            interpolation="nearest")
        axis.set_title(_layer_title(name, kernels[name]), fontsize=9)
        figure.colorbar(shown, ax=axis, shrink=0.8)
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    for axis in axes[panels:]:
        axis.set_visible(False)
    _suptitle(figure, title)
    return figure


_MARKER_COLOURS = ("#00c2ff", "#ffd400", "#ff4fd8", "#7dff4f", "#ff7b00", "#ffffff")


def plot_kernels_at_pixels(image, kernels: Mapping[str, torch.Tensor],
                           pixels: Sequence[tuple[int, int]], layers: Sequence[str] | None = None,
                           group: int = 0, index: int = 0, title: str | None = None) -> Figure:
    """The image with a few pixels marked, beside the K x K kernel generated at each.

    One row per layer, one column per pixel. A pixel (row, col) is in image
    coordinates; each layer uses the kernel of the grid cell covering it, and
    the square drawn on the image is the window that kernel weights
    (K cells of that layer). Colours are symmetric around zero per layer:
    red weights add the neighbour, blue ones subtract it.
    """
    picture = _display_image(image)
    layers = list(kernels) if layers is None else list(layers)
    missing = [name for name in layers if name not in kernels]
    if missing or not layers:
        raise ValueError(f"no kernels captured for layers {missing or layers}; captured: {list(kernels)}")
    if not pixels or len(pixels) > len(_MARKER_COLOURS):
        raise ValueError(f"give between 1 and {len(_MARKER_COLOURS)} pixels, got {len(pixels)}")
    height, width = picture.shape[:2]
    figure = Figure(figsize=(3.2 + 1.5 * len(pixels), max(3.2, 1.5 * len(layers) + 0.6)),
                    layout="constrained")
    # The image takes the first two columns, the kernels one column per pixel.
    grid = figure.add_gridspec(len(layers), len(pixels) + 2, width_ratios=[2.2, 2.2] + [1] * len(pixels))
    image_axis = figure.add_subplot(grid[:, :2])
    image_axis.imshow(picture)
    # The windows drawn below may reach past the border: keep the view on the image.
    image_axis.set_xlim(-0.5, picture.shape[1] - 0.5)
    image_axis.set_ylim(picture.shape[0] - 0.5, -0.5)
    image_axis.set_xticks([])
    image_axis.set_yticks([])
    image_axis.set_title(f"input, {height}x{width} px", fontsize=9)
    first = kernels[layers[0]]
    for number, (pixel, colour) in enumerate(zip(pixels, _MARKER_COLOURS), start=1):
        row, col = pixel
        _grid_position(pixel, (height, width), first.shape[-2:])  # checks the pixel
        image_axis.plot(col, row, "o", markersize=7, markerfacecolor=colour,
                        markeredgecolor="black")
        image_axis.annotate(str(number), (col, row), xytext=(5, 5), textcoords="offset points",
                            color=colour, fontsize=10, fontweight="bold")
        # The first layer's window around this pixel, in image pixels.
        k, grid_h = first.shape[2], first.shape[-2]
        side = k * height / grid_h
        image_axis.add_patch(Rectangle((col - side / 2, row - side / 2), side, side, fill=False,
                                       edgecolor=colour, linewidth=1.2))
    for layer_row, name in enumerate(layers):
        kernel = _check_kernel(kernels[name])
        if not 0 <= group < kernel.shape[1]:
            raise ValueError(f"group {group} does not exist in {name}, which has {kernel.shape[1]} groups")
        chosen = [kernel[index, group, :, :, gy, gx]
                  for gy, gx in (_grid_position(p, (height, width), kernel.shape[-2:]) for p in pixels)]
        limit = max(float(c.abs().max()) for c in chosen) or 1.0
        for column, (weights, colour) in enumerate(zip(chosen, _MARKER_COLOURS)):
            axis = figure.add_subplot(grid[layer_row, column + 2])
            shown = axis.imshow(weights.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
            axis.set_xticks([])
            axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(2.5)
            if layer_row == 0:
                axis.set_title(f"pixel {column + 1}", fontsize=9)
            if column == 0:
                k = kernel.shape[2]
                axis.set_ylabel(f"{name}\n{k}x{k}, group {group}", fontsize=8)
        figure.colorbar(shown, ax=axis, shrink=0.8)
    _suptitle(figure, title)
    return figure


def _epochs(metrics: Mapping[str, Sequence[float]]) -> np.ndarray:
    return np.asarray(metrics["epoch"], dtype=float) + 1  # epochs completed


def plot_training_curves(curves: Mapping[str, Mapping[str, Sequence[float]]],
                         title: str | None = None) -> Figure:
    """Loss and top-1 accuracy per epoch, training (solid) and validation (dashed), per run.

    Args:
        curves: ``{label: per-epoch metrics}`` as returned by
            :func:`involution.workbook.read_metrics` (keys ``epoch``,
            ``train/loss_epoch``, ``val/loss``, ``train/top1``, ``val/top1``).
            Runs of one model with different seeds, labelled ``"<model> seed <n>"``,
            share the model's colour and one legend entry.
        title: say here which data and machine the runs come from.
    """
    if not curves:
        raise ValueError("no runs to plot: pass {label: metrics} for at least one run")
    figure = Figure(figsize=(10, 3.8), layout="constrained")
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    palette = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
    models = list(dict.fromkeys(label.split(" seed ")[0] for label in curves))
    colour_of = {model: palette[i % len(palette)] for i, model in enumerate(models)}
    legend_done = set()
    for label, metrics in curves.items():
        if "epoch" not in metrics:
            raise ValueError(f"metrics of {label!r} have no 'epoch' column; use workbook.read_metrics")
        model = label.split(" seed ")[0]
        epochs = _epochs(metrics)
        for key, axis, style, split, scale in (
                ("train/loss_epoch", loss_axis, "-", "train", 1), ("val/loss", loss_axis, "--", "val", 1),
                ("train/top1", accuracy_axis, "-", "train", 100),
                ("val/top1", accuracy_axis, "--", "val", 100)):
            if key in metrics:
                entry = f"{model} {split}"
                axis.plot(epochs, np.asarray(metrics[key], dtype=float) * scale, style,
                          color=colour_of[model], marker="o" if len(epochs) < 40 else None,
                          markersize=3, alpha=0.85,
                          label=entry if (entry, axis) not in legend_done else None)
                legend_done.add((entry, axis))
    loss_axis.set(xlabel="epochs trained", ylabel="cross-entropy loss", title="loss")
    accuracy_axis.set(xlabel="epochs trained", ylabel="top-1 accuracy (%)", title="top-1 accuracy",
                      ylim=(0, 100))
    for axis in (loss_axis, accuracy_axis):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    _suptitle(figure, title, fontsize=10)
    return figure


def plot_examples(dataset, per_class: int = 6, max_classes: int = 10,
                  title: str | None = None) -> Figure:
    """A grid of a data set's images as stored (before augmentation): one row per class.

    ``dataset`` is an :class:`involution.data.ImageListDataset` (``samples``
    of (path, label) and ``class_names``), e.g. a data module's ``test_dataset``.
    """
    from .data import load_rgb_image
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
    _suptitle(figure, title)
    return figure


def plot_accuracy_vs_params(ours: Sequence[Mapping], reference: Sequence[Mapping] = (),
                            ours_label: str = "this project",
                            reference_label: str = "reported by others",
                            metric: str = "best_val_top1", title: str | None = None) -> Figure:
    """Accuracy against parameter count: this project's runs and, apart, reported points.

    Args:
        ours: rows with ``label``, ``params_m`` and ``metric`` (in %), e.g.
            :func:`involution.workbook.results_rows`.
        reference: the same for reported figures (e.g. the course project's),
            drawn as hollow grey squares under their own legend entry.
        ours_label, reference_label: legend entries; say the data set in each.
    """
    if not ours and not reference:
        raise ValueError("nothing to plot: pass at least one row")
    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    axis = figure.subplots()
    for rows, label, style in ((ours, ours_label, dict(marker="o", color="#d62728", s=60)),
                               (reference, reference_label,
                                dict(marker="s", facecolors="none", edgecolors="#555555", s=70))):
        rows = [r for r in rows if r.get(metric) is not None]
        if not rows:
            continue
        axis.scatter([r["params_m"] for r in rows], [r[metric] for r in rows], label=label, **style)
        # One label per model: several seeds of a model are annotated with their mean.
        by_label: dict[str, list[Mapping]] = {}
        for r in rows:
            by_label.setdefault(r["label"], []).append(r)
        for name, group in by_label.items():
            values = [r[metric] for r in group]
            mean = sum(values) / len(values)
            text = f"{name} {mean:.1f}%" + (f" (mean of {len(values)})" if len(values) > 1 else "")
            axis.annotate(text, (group[0]["params_m"], max(values)), xytext=(6, 4),
                          textcoords="offset points", fontsize=8)
    axis.set(xlabel="parameters (millions)", ylabel=f"{metric.replace('_', ' ')} (%)",
             ylim=(0, 100))
    axis.set_xlim(left=0, right=1.25 * max(r["params_m"] for r in [*ours, *reference]))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    if title:
        axis.set_title(_fit_text(title, figure.get_figwidth(), 10), fontsize=10)
    return figure


def plot_complexity_table(rows: Sequence[Mapping], input_size=(3, 224, 224),
                          title: str | None = None) -> Figure:
    """The table of :func:`involution.complexity.complexity_table` as a figure."""
    if not rows:
        raise ValueError("no rows: pass involution.complexity.complexity_table()")

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
    _suptitle(figure, title or f"Parameters and multiply-adds per {input_size[1]}x{input_size[2]} "
              "image: counted by involution.complexity vs reported", fontsize=10)
    axis.text(0, 0, _fit_text("counted: this project's code, 1000-class ImageNet heads. reported: Li "
                              "et al. (CVPR 2021) official model zoo (mmcv-style counts) or "
                              "torchvision's weight metadata (MACs). gap: our count in the "
                              "reporter's convention minus the reported figure.", 10, 8),
              fontsize=8, transform=axis.transAxes, va="bottom", color="#444444")
    return figure


def plot_operator_costs(by_channels: Sequence[Mapping], by_kernel: Sequence[Mapping],
                        title: str | None = None) -> Figure:
    """Parameters and multiply-adds of a convolution vs an involution as C and K grow.

    Args:
        by_channels: :func:`involution.complexity.operator_costs` rows at one K.
        by_kernel: rows at one C.
    """
    if not by_channels or not by_kernel:
        raise ValueError("pass operator_costs rows for several channel counts and several kernel sizes")
    figure = Figure(figsize=(10, 6.4), layout="constrained")
    axes = figure.subplots(2, 2)
    for column, (rows, key, xlabel) in enumerate(
            ((by_channels, "channels", "channels C"), (by_kernel, "kernel_size", "kernel size K"))):
        x = [r[key] for r in rows]
        fixed = (f"K={rows[0]['kernel_size']}" if key == "channels" else f"C={rows[0]['channels']}")
        for row_index, (measure, unit) in enumerate((("params", "parameters"),
                                                     ("macs", "multiply-adds"))):
            axis = axes[row_index, column]
            axis.plot(x, [r[f"conv_{measure}"] for r in rows], "o-", color="#1f77b4",
                      label="KxK convolution, C -> C")
            axis.plot(x, [r[f"involution_{measure}"] for r in rows], "s-", color="#d62728",
                      label="involution (incl. kernel generation)")
            axis.set_yscale("log")
            axis.set_xticks(x)
            axis.set(xlabel=xlabel, ylabel=unit,
                     title=f"{unit} vs {xlabel} ({fixed}"
                           + (f", {rows[0]['height']}x{rows[0]['width']} map)" if measure == "macs" else ")"))
            axis.grid(alpha=0.3, which="both")
            axis.legend(fontsize=8)
    _suptitle(figure, title)
    return figure
