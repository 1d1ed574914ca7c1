"""Draw the kernels an involution network generates over the photograph they came from.

:func:`plot_kernel_heatmaps` maps one summary per pixel and layer (see
:func:`involution.analysis.kernels.kernel_summary`); :func:`plot_kernels_at_pixels`
shows the kernels themselves at chosen pixels, with their windows on the
image. The kernels come from :func:`involution.analysis.kernels.capture_kernels`.
"""
from __future__ import annotations

import math
import textwrap
from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from involution.analysis.kernels import check_kernel, grid_position, kernel_summary

__all__ = ["SUMMARY_LABELS", "window_side", "heatmap_scale", "plot_kernel_heatmaps", "plot_kernels_at_pixels",
           "plot_pixel_kernels", "fit_text", "suptitle"]


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


def _layer_title(name: str, kernel: torch.Tensor) -> str:
    _, groups, k, _, height, width = kernel.shape
    # Three short lines: the five maps of a row share a slide's width at 18 px type.
    return f"{name}\n{height}x{width} px, {k}x{k}\n{groups} group{'' if groups == 1 else 's'}"


# -- figures ------------------------------------------------------------------------


def fit_text(text: str, width_inches: float, fontsize: float) -> str:
    """Wrap ``text`` so that it fits ``width_inches`` at ``fontsize`` points."""
    characters = max(20, int(width_inches * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, characters) for line in text.split("\n"))


def suptitle(figure: Figure, title: str | None, fontsize: float = 11) -> None:
    """Give ``figure`` the title ``title`` (if any), wrapped to the figure's width."""
    if title:
        figure.suptitle(fit_text(title, figure.get_figwidth(), fontsize), fontsize=fontsize)


# What each summary's colour means, for the colour bars: the name and the unit.
# Kernel weights multiply input values, so they carry no unit of their own.
SUMMARY_LABELS = {
    "norm": "norm: RMS kernel weight\n(weight, no unit)",
    "sum": "sum of K x K weights\n(gain, 1 = smoothing)",
    "deviation": "deviation from mean kernel\n(RMS weight, no unit)",
}
COLOUR_BAR_LABEL = "kernel\nweight"  # two short lines: one beside each row's colour bar
PHOTO_ALPHA, HEAT_ALPHA = 1.0, 0.55  # the photograph stays readable under every map


def _check_layers(kernels: Mapping[str, torch.Tensor], layers: Sequence[str] | None) -> list[str]:
    layers = list(kernels) if layers is None else list(layers)
    missing = [name for name in layers if name not in kernels]
    if missing or not layers:
        raise ValueError(f"no kernels captured for layers {missing or layers}; captured: {list(kernels)}")
    return layers


def heatmap_scale(*captured: Mapping[str, torch.Tensor], summary: str = "deviation",
                  layers: Sequence[str] | None = None) -> float:
    """The largest summary value over every layer of every capture: one colour scale for all their maps.

    Pass the kernels of two models (trained and untrained, say) to draw both on the same scale.
    """
    return max(float(kernel_summary(kernels[name], summary).abs().max())
               for kernels in captured for name in _check_layers(kernels, layers))


def plot_kernel_heatmaps(image, kernels: Mapping[str, torch.Tensor], summary: str = "deviation",
                         index: int = 0, layers: Sequence[str] | None = None, columns: int = 5,
                         title: str | None = None, vmax: float | None = None) -> Figure:
    """The image, then one heat map per involution layer of a per-pixel kernel summary.

    Args:
        image: the (denormalised) image the kernels were generated from,
            a (3, H, W) tensor or (H, W, 3) array in [0, 1].
        kernels: ``{layer: (B, G, K, K, H, W) kernels}`` from :func:`capture_kernels`.
        summary: see :func:`kernel_summary`.
        index: which image of the batch.
        layers: which layers, in order (default: all).
        columns: heat maps per row.
        vmax: the top of the colour scale (default: :func:`heatmap_scale` of these kernels).
    All maps share one colour scale, with one labelled colour bar, so that a brighter layer is
    one whose kernels vary more (``"sum"``, which can be negative, is centred on zero). Each map
    is drawn half-transparent over the greyscale photograph, so a map cell sits on the pixels it
    was generated for and the photograph shows through even the coarse maps of deep layers.
    """
    picture = _display_image(image)
    layers = _check_layers(kernels, layers)
    panels = len(layers) + 1
    rows = math.ceil(panels / columns)
    figure = Figure(figsize=(2.8 * columns, 2.9 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    height, width = picture.shape[:2]
    extent = (0, width, height, 0)
    axes[0].imshow(picture, extent=extent)
    axes[0].set_title(f"input\n{height}x{width} px", fontsize=9)
    gray = picture.mean(axis=2)
    vmax = heatmap_scale(kernels, summary=summary, layers=layers) if vmax is None else vmax
    for axis, name in zip(axes[1:], layers):
        summary_map = kernel_summary(kernels[name], summary)[index].numpy()
        axis.imshow(gray, cmap="gray", extent=extent, alpha=PHOTO_ALPHA, vmin=0, vmax=1)
        shown = axis.imshow(summary_map, cmap="magma", extent=extent, alpha=HEAT_ALPHA, interpolation="nearest",
                            vmin=-vmax if summary == "sum" else 0, vmax=vmax)
        axis.set_title(_layer_title(name, kernels[name]), fontsize=10)
    colour_bar = figure.colorbar(shown, ax=list(axes[1:panels]), shrink=0.6, aspect=30)
    colour_bar.set_label(SUMMARY_LABELS[summary] + "\n(one scale for every map)", fontsize=10)
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    for axis in axes[panels:]:
        axis.set_visible(False)
    suptitle(figure, title)
    return figure


_MARKER_COLOURS = ("#00c2ff", "#ffd400", "#ff4fd8", "#7dff4f", "#ff7b00", "#ffffff")


def window_side(kernel: torch.Tensor, image_height: int, stride: int = 1) -> float:
    """How many input pixels a layer's K x K window spans, from its (B, G, K, K, H, W) kernels.

    The window covers K cells of the layer's *input* map, which is ``stride``
    times finer than the output grid the kernels are stored on.
    """
    k, grid_height = kernel.shape[2], kernel.shape[-2]
    return k * image_height / (grid_height * stride)


def _deepest(layers: Sequence[str], kernels: Mapping[str, torch.Tensor]) -> str:
    """The layer with the coarsest kernel map (the last such one, in the order given)."""
    coarsest = min(kernels[name].shape[-2] for name in layers)
    return [name for name in layers if kernels[name].shape[-2] == coarsest][-1]


def _draw_windows(axis, picture, name, kernel, pixels, stride) -> None:
    """The photograph with each marked pixel and the window ``name``'s kernel weights around it."""
    height, width = picture.shape[:2]
    axis.imshow(picture)
    side = window_side(kernel, height, stride)
    for number, ((row, col), colour) in enumerate(zip(pixels, _MARKER_COLOURS), start=1):
        axis.plot(col, row, "o", markersize=7, markerfacecolor=colour, markeredgecolor="black")
        axis.annotate(str(number), (col, row), xytext=(5, 5), textcoords="offset points",
                      color=colour, fontsize=10, fontweight="bold")
        # A deep layer's window can be larger than the image: draw the part on the image, shaded,
        # so that no edge of it crosses the picture as a stray line.
        left, top = max(col - side / 2, -0.5), max(row - side / 2, -0.5)
        right, bottom = min(col + side / 2, width - 0.5), min(row + side / 2, height - 0.5)
        axis.add_patch(Rectangle((left, top), right - left, bottom - top, facecolor=colour, alpha=0.12,
                                 edgecolor=colour, linewidth=1.5))
    axis.set_xlim(-0.5, width - 0.5)
    axis.set_ylim(height - 0.5, -0.5)
    axis.set_xticks([])
    axis.set_yticks([])
    k = kernel.shape[2]
    axis.set_title(f"{name}: {k}x{k} window\n= {side:.0f}x{side:.0f} of {height}x{width} px",
                   fontsize=9)


def plot_kernels_at_pixels(image, kernels: Mapping[str, torch.Tensor],
                           pixels: Sequence[tuple[int, int]], layers: Sequence[str] | None = None,
                           group: int = 0, index: int = 0, strides: Mapping[str, int] | None = None,
                           title: str | None = None) -> Figure:
    """The image with a few pixels marked, beside the K x K kernel generated at each.

    One row per layer, one column per pixel. A pixel (row, col) is in image
    coordinates; each layer uses the kernel of the grid cell covering it.
    The photograph is drawn twice, with the squares each kernel weights
    around the marked pixels: for the first layer (the stem's small window)
    and for the layer with the coarsest map, whose 7x7 window covers much of
    the image. ``strides`` (``{name: layer.stride}``, default 1) sizes the
    windows of strided layers, which span K cells of their finer input map.
    Colours are symmetric around zero per layer: red weights add the
    neighbour, blue ones subtract it.
    """
    picture = _display_image(image)
    layers = _check_layers(kernels, layers)
    if not pixels or len(pixels) > len(_MARKER_COLOURS):
        raise ValueError(f"give between 1 and {len(_MARKER_COLOURS)} pixels, got {len(pixels)}")
    height, width = picture.shape[:2]
    for pixel in pixels:
        grid_position(pixel, (height, width), (height, width))  # checks the pixel lies inside
    strides = dict(strides or {})
    windows = list(dict.fromkeys([layers[0], _deepest(layers, kernels)]))
    # The photographs take one column each, the kernels one column per pixel. A photograph is
    # about as tall as the stack of kernel rows, so it fills its column's height, and the
    # figure's wide shape fills a slide.
    rows_height = max(3.4, 1.5 * len(layers) + 0.6)
    photo_width = 0.7 * rows_height
    figure = Figure(figsize=(photo_width * len(windows) + 1.5 * len(pixels) + 0.6, rows_height),
                    layout="constrained")
    grid = figure.add_gridspec(len(layers), len(pixels) + len(windows),
                               width_ratios=[photo_width / 1.5] * len(windows) + [1] * len(pixels))
    for column, name in enumerate(windows):
        _draw_windows(figure.add_subplot(grid[:, column]), picture, name, kernels[name], pixels,
                      strides.get(name, 1))
    for layer_row, name in enumerate(layers):
        kernel = check_kernel(kernels[name])
        if not 0 <= group < kernel.shape[1]:
            raise ValueError(f"group {group} does not exist in {name}, which has {kernel.shape[1]} groups")
        chosen = [kernel[index, group, :, :, gy, gx]
                  for gy, gx in (grid_position(p, (height, width), kernel.shape[-2:]) for p in pixels)]
        limit = max(float(c.abs().max()) for c in chosen) or 1.0
        for column, (weights, colour) in enumerate(zip(chosen, _MARKER_COLOURS)):
            axis = figure.add_subplot(grid[layer_row, column + len(windows)])
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
                # Horizontal: a row is too short for the layer's name written upwards at slide size.
                axis.set_ylabel(f"{name}\n{k}x{k}, group {group}", fontsize=8, rotation=0, ha="right",
                                va="center")
        colour_bar = figure.colorbar(shown, ax=axis, shrink=0.8)
        colour_bar.set_label(COLOUR_BAR_LABEL, fontsize=7)
        colour_bar.ax.tick_params(labelsize=7)
    suptitle(figure, title)
    return figure


def plot_pixel_kernels(image, kernels: Mapping[str, torch.Tensor], pixel: tuple[int, int],
                       strides: Mapping[str, int] | None = None, index: int = 0, group: int = 0,
                       title: str | None = None) -> Figure:
    """One pixel's generated kernels at every involution layer, each under its window on the image.

    The figure of notebook 03's kernel explorer: the top row shows the image with the
    window that layer's kernel weights around ``pixel`` (clipped to the image), the
    bottom row the K x K kernel of ``group`` at the grid cell covering it. Colours are
    symmetric around zero per layer (red adds the neighbour, blue subtracts it).
    """
    picture = _display_image(image)
    layers = _check_layers(kernels, None)
    height, width = picture.shape[:2]
    grid_position(pixel, (height, width), (height, width))  # checks the pixel lies inside
    strides = dict(strides or {})
    figure = Figure(figsize=(1.9 * len(layers), 4.4), layout="constrained")
    axes = figure.subplots(2, len(layers), squeeze=False)
    for column, name in enumerate(layers):
        kernel = check_kernel(kernels[name])
        _draw_windows(axes[0, column], picture, name, kernel, [pixel], strides.get(name, 1))
        gy, gx = grid_position(pixel, (height, width), kernel.shape[-2:])
        weights = kernel[index, group, :, :, gy, gx]
        limit = float(weights.abs().max()) or 1.0
        axes[1, column].imshow(weights.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        axes[1, column].set_title(f"max |w| {limit:.2g}", fontsize=8)
        axes[1, column].set_xticks([])
        axes[1, column].set_yticks([])
    suptitle(figure, title or f"pixel {pixel}: its kernels (group {group}) at every involution layer")
    return figure
