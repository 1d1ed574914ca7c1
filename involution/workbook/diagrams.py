"""Diagrams of involution and RedNet, drawn from the package's own modules.

Every label here is read from a real module: its class, its sizes and the
shapes a forward pass through it gives (recorded with forward hooks). Change
the code in :mod:`involution.layers.involution` or :mod:`involution.models` and the
diagrams change with it; nothing about the architecture is typed twice.

* :func:`plot_involution_operation`: what one involution does at one pixel;
* :func:`plot_kernel_generation`: the branch that generates the kernels;
* :func:`plot_bottlenecks`: a RedNet bottleneck beside the ResNet one it replaces;
* :func:`plot_augmentations`: one image through the training transforms.

Each returns a :class:`matplotlib.figure.Figure` (not registered with pyplot),
like the ``plot_*`` functions of :mod:`involution.workbook.figures`.
"""
from __future__ import annotations

import inspect
import textwrap
from typing import Sequence

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle
from torch import nn

from involution.layers import Involution2d

__all__ = ["trace_children", "describe", "plot_involution_operation", "plot_kernel_generation",
           "plot_bottlenecks", "plot_augmentations", "rednet_block", "rednet_defaults"]

INVOLUTION_COLOUR, CONV_COLOUR, OTHER_COLOUR = "#f6c9c4", "#c8dcf0", "#eeeeee"


# -- reading the modules ---------------------------------------------------------------------


def trace_children(module: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module, tuple]]:
    """(name, child, output shape without the batch) for each call of a direct child, in order.

    A child called twice (a block's shared ReLU) appears twice, as in the forward pass.
    """
    calls: list[tuple[str, nn.Module, tuple]] = []
    hooks = [child.register_forward_hook(
        lambda mod, inputs, output, name=name: calls.append((name, mod, tuple(output.shape[1:]))))
        for name, child in module.named_children()]
    try:
        with torch.no_grad():
            module.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def _size(value) -> int:
    return value[0] if isinstance(value, tuple) else value


def describe(module: nn.Module) -> str:
    """A short label for a layer, from its own attributes (e.g. ``"7x7 involution 128 ch, 8 groups"``)."""
    if isinstance(module, Involution2d):
        k, stride = module.kernel_size, module.stride
        return (f"{k}x{k} involution, {module.channels} ch, {module.groups} groups"
                + (f", stride {stride}" if stride > 1 else ""))
    if isinstance(module, nn.Conv2d):
        k, stride = _size(module.kernel_size), _size(module.stride)
        return (f"{k}x{k} conv {module.in_channels}->{module.out_channels}"
                + (f", stride {stride}" if stride > 1 else ""))
    if isinstance(module, nn.AvgPool2d):
        size = _size(module.kernel_size)
        return f"{size}x{size} average pool, stride {_size(module.stride)}"
    if isinstance(module, nn.BatchNorm2d):
        return "BN"
    if isinstance(module, nn.ReLU):
        return "ReLU"
    if isinstance(module, nn.Sequential):
        return " + ".join(describe(part) for part in module)
    return type(module).__name__


def _parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _shape(shape: Sequence[int]) -> str:
    return " x ".join(str(size) for size in shape)


def rednet_defaults() -> dict:
    """RedNet's involution settings (kernel_size, group_channels, reduction_ratio), read from
    the signature of :class:`involution.models.rednet.RedNet`, so no figure or slide repeats them."""
    from involution.models import RedNet
    parameters = inspect.signature(RedNet).parameters
    return {name: parameters[name].default
            for name in ("kernel_size", "group_channels", "reduction_ratio")}


def rednet_block(model_name: str = "rednet26", stage: int = 2, image_size: int = 224):
    """(the first bottleneck of ``stage`` in ``model_name``, its input) for a real forward pass."""
    from involution.models import create_model
    model = create_model(model_name).eval()
    block = getattr(model, f"layer{stage}")[0]
    seen = {}
    hook = block.register_forward_pre_hook(lambda module, inputs: seen.setdefault("x", inputs[0]))
    with torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size))
    hook.remove()
    return block, seen["x"]


# -- drawing ---------------------------------------------------------------------------------


def _box(axis, x: float, y: float, text: str, colour: str = OTHER_COLOUR, width: float = 4.2,
         height: float = 0.7, fontsize: float = 11) -> None:
    axis.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                  boxstyle="round,pad=0.05", facecolor=colour, edgecolor="#333333"))
    axis.text(x, y, text, ha="center", va="center", fontsize=fontsize)


def _arrow(axis, start, end, label: str | None = None, fontsize: float = 10) -> None:
    axis.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color="#333333"))
    if label:
        axis.text((start[0] + end[0]) / 2 + 0.12, (start[1] + end[1]) / 2, label, fontsize=fontsize,
                  va="center", color="#555555")


def _blank_axis(figure: Figure, xlim, ylim):
    axis = figure.subplots()
    axis.set(xlim=xlim, ylim=ylim)
    axis.set_aspect("equal")
    axis.axis("off")
    return axis


def _chain(calls) -> list[list]:
    """Merge each BN / ReLU call into the layer before it: [name, layer, label, output shape].

    The shortcut (``downsample``) takes nothing in; the ReLU after the residual
    addition stays a step of its own.
    """
    steps: list[list] = []
    for name, module, shape in calls:
        merge = isinstance(module, (nn.BatchNorm2d, nn.ReLU)) and steps and steps[-1][0] != "downsample"
        if merge:
            steps[-1][2] += (" + " if "\n" in steps[-1][2] else "\n+ ") + describe(module)
            steps[-1][3] = shape
        else:
            steps.append([name, module, describe(module), shape])
    return steps


def _draw_bottleneck(axis, x: float, title: str, block: nn.Module, x_in: torch.Tensor) -> None:
    steps = _chain(trace_children(block, x_in))
    layers = [step for step in steps if step[0] not in ("downsample", "relu")]
    shortcut = [step for step in steps if step[0] == "downsample"]
    axis.text(x, 9.4, title, ha="center", fontsize=14, weight="bold")
    axis.text(x, 8.75, f"input {_shape(x_in.shape[1:])}", ha="center", va="center", fontsize=11)
    y = 8.75
    for name, module, label, shape in layers:
        _arrow(axis, (x, y - 0.25 if y == 8.75 else y - 0.6), (x, y - 0.9))
        y -= 1.5
        colour = INVOLUTION_COLOUR if isinstance(module, Involution2d) else CONV_COLOUR
        norm = getattr(block, "bn" + name[-1], None)
        params = _parameters(module) + (_parameters(norm) if norm is not None else 0)
        first, _, rest = label.partition("\n")
        text = "\n".join([textwrap.fill(first, 30), rest, f"{params:,} parameters"])
        tall = len(first) > 30
        _box(axis, x, y, text, colour, width=4.4, height=1.0 + 0.25 * tall, fontsize=10)
        # The output's shape beside the arrow that carries it, in the gap below the box.
        axis.text(x + 0.15, y - 0.75 - 0.06 * tall, _shape(shape), fontsize=9, color="#555555", ha="left",
                  va="center")
    _arrow(axis, (x, y - 0.6), (x, y - 1.05))
    y -= 1.25
    axis.add_patch(Circle((x, y), 0.2, facecolor="white", edgecolor="#333333"))
    axis.text(x, y, "+", ha="center", va="center", fontsize=12)
    _arrow(axis, (x, y - 0.2), (x, y - 0.6))
    axis.text(x, y - 0.85, f"ReLU -> output {_shape(steps[-1][3])}", ha="center", va="center",
              fontsize=11)
    side = x + 3.5
    axis.plot([x, side, side], [8.45, 8.45, 6.3], color="#333333", lw=1)
    if shortcut:
        # Its parameter count too, so the boxes add up to the block's total below.
        _box(axis, side, 5.6, "shortcut:\n" + shortcut[0][2].replace(" + ", "\n+ ").replace(", ", ",\n")
             + f"\n{_parameters(shortcut[0][1]):,} parameters", CONV_COLOUR, width=2.3, height=1.5, fontsize=8)
        axis.plot([side, side], [4.8, y], color="#333333", lw=1)
    else:
        axis.plot([side, side], [6.3, y], color="#333333", lw=1)
    _arrow(axis, (side, y), (x + 0.22, y), None if shortcut else "identity")


def plot_bottlenecks(stage: int = 2, depth: int = 26, image_size: int = 224) -> Figure:
    """The first bottleneck of a stage in RedNet-``depth`` beside the same block in ResNet-``depth``.

    Labels, parameter counts and output shapes come from the blocks of
    :func:`involution.models.factory.create_model` run on a ``image_size`` image.
    """
    figure = Figure(figsize=(11, 5.6), layout="constrained")
    axis = _blank_axis(figure, (-0.5, 16.5), (0.6, 9.8))
    for x, family in ((3.2, "resnet"), (11.0, "rednet")):
        block, x_in = rednet_block(f"{family}{depth}", stage, image_size)
        title = f"{'ResNet' if family == 'resnet' else 'RedNet'}-{depth}: layer{stage}[0]"
        _draw_bottleneck(axis, x, title, block, x_in)
        axis.text(x, 1.5, f"{_parameters(block):,} parameters in the block", ha="center",
                  fontsize=11, weight="bold")
    axis.text(8.0, 0.8, f"Shapes: channels x height x width for one {image_size}x{image_size} image; "
              "read from the package's models by a forward pass.", ha="center", fontsize=9,
              color="#555555")
    return figure


def plot_kernel_generation(layer: Involution2d | None = None,
                           x: torch.Tensor | None = None) -> Figure:
    """The kernel-generation branch of ``layer``, with the shapes of a forward pass of ``x``.

    Default: the strided involution of RedNet-26's ``layer2[0]`` at 224 px.
    """
    if layer is None:
        block, x = rednet_block("rednet26", 2)
        with torch.no_grad():
            x = block.relu(block.bn1(block.conv1(x)))
        layer = block.conv2
    if x is None:
        raise ValueError("pass the layer's input x with the layer (one image: (1, C, H, W))")
    generator = layer.kernel_generator
    calls = trace_children(generator, x)
    with torch.no_grad():
        kernel = generator(x)
        out = layer(x)
    figure = Figure(figsize=(10, 4.7), layout="constrained")
    axis = _blank_axis(figure, (-0.2, 15.2), (0.0, 7.2))
    y = 6.6
    axis.text(3.5, y, f"x: {_shape(x.shape[1:])}", ha="center", va="center", fontsize=12)
    top = y - 0.25
    for name, module, shape in calls:
        if isinstance(module, nn.Identity):
            continue  # an unstrided layer has no pooling
        y -= 1.25
        _arrow(axis, (3.5, top), (3.5, y + 0.4))
        params = _parameters(module)
        _box(axis, 3.5, y, f"{name}: {describe(module)}" + (f"\n{params:,} parameters" if params else ""),
             CONV_COLOUR if params else OTHER_COLOUR, width=6.2, height=0.8)
        axis.text(6.75, y, _shape(shape), fontsize=10, color="#555555", va="center")
        top = y - 0.4
    _arrow(axis, (3.5, top), (3.5, top - 0.5), "view")
    groups, k = layer.groups, layer.kernel_size
    axis.text(3.5, top - 0.6, f"kernel: {_shape(kernel.shape[1:])}\n(G = {groups} groups, "
              f"K x K = {k} x {k}, one kernel per output pixel)", ha="center", va="top", fontsize=11)
    _box(axis, 11.5, 3.0, f"apply: out[c, i, j] =\nsum over the {k} x {k} window of\n"
         f"kernel[g(c), u, v, i, j] * x[c, ...]\ng(c) = c // {layer.channels // groups}",
         INVOLUTION_COLOUR, width=5.0, height=2.0, fontsize=11)
    _arrow(axis, (6.3, top - 0.9), (8.9, 2.6))
    axis.plot([4.9, 11.5], [6.6, 6.6], color="#333333", lw=1)
    _arrow(axis, (11.5, 6.6), (11.5, 4.1))
    axis.text(11.65, 5.4, "x itself,\nin K x K windows", fontsize=10, color="#555555", va="center")
    axis.text(11.5, 1.85, f"output: {_shape(out.shape[1:])}", ha="center", va="top", fontsize=12)
    axis.text(11.5, 1.2, f"{_parameters(generator):,} parameters in all,\nnone in the apply step",
              ha="center", va="top", fontsize=10, color="#555555")
    return figure


def plot_involution_operation(layer: Involution2d | None = None, map_size: int = 11) -> Figure:
    """What an involution does at one pixel: a kernel generated there, shared by a group's channels.

    ``layer`` (default: RedNet's bottleneck involution on 64 channels, with the
    model's default settings) gives K, the groups and the channels per group.
    """
    if layer is None:
        layer = Involution2d(64, **rednet_defaults())
    k, per_group = layer.kernel_size, layer.channels // layer.groups
    if map_size < k + 2:
        raise ValueError(f"map_size={map_size} cannot show a {k}x{k} window; use at least {k + 2}")
    figure = Figure(figsize=(12, 4.8), layout="constrained")
    axis = _blank_axis(figure, (-0.5, 3 * map_size + 9), (-3.9, map_size + 2.2))
    centre = map_size // 2
    half = k // 2

    def grid(x0, label, window=True, depth=3):
        for layer_index in reversed(range(depth)):  # a few of the group's channels, stacked
            dx = dy = 0.45 * layer_index
            axis.add_patch(Rectangle((x0 + dx, dy), map_size, map_size, facecolor="#f4f4f4",
                                     edgecolor="#999999", lw=0.8))
        for i in range(map_size + 1):
            axis.plot([x0 + i, x0 + i], [0, map_size], color="#cccccc", lw=0.5)
            axis.plot([x0, x0 + map_size], [i, i], color="#cccccc", lw=0.5)
        if window:
            axis.add_patch(Rectangle((x0 + centre - half, centre - half), k, k, fill=False,
                                     edgecolor="#c0392b", lw=2))
        axis.add_patch(Rectangle((x0 + centre, centre), 1, 1, facecolor="#c0392b"))
        axis.text(x0 + map_size / 2, -0.8, label, ha="center", va="top", fontsize=11)

    grid(0, f"input x: the {per_group} channels of one group\n(pixel (i, j) red, its {k}x{k} window)")
    kx = map_size + 4
    axis.add_patch(Rectangle((kx, centre - half), k, k, facecolor=INVOLUTION_COLOUR,
                             edgecolor="#c0392b", lw=2))
    for i in range(k + 1):
        axis.plot([kx + i, kx + i], [centre - half, centre + half + 1], color="#c0392b", lw=0.5)
        axis.plot([kx, kx + k], [centre - half + i] * 2, color="#c0392b", lw=0.5)
    axis.text(kx + k / 2, -0.8, f"the {k}x{k} kernel of pixel (i, j), group g:\ngenerated from "
              f"x[:, i, j] alone", ha="center", va="top", fontsize=11)
    ox = 2 * map_size + 8
    grid(ox, f"output: the same {per_group} channels\nout[c, i, j] for c in group g", window=False)
    _arrow(axis, (map_size + 0.5, centre + 0.5), (kx - 0.3, centre + 0.5), None)
    axis.text(map_size + 1.9, centre + 1.2, "generate", ha="center", fontsize=10)
    # The multiply-add takes two inputs: the kernel, and the input's values in the window.
    node_x, node_y, radius = kx + k + 2.2, centre + 0.5, 0.9
    axis.add_patch(Circle((node_x, node_y), radius, facecolor="white", edgecolor="#333333", lw=1.2, zorder=3))
    axis.text(node_x, node_y, "×, Σ", ha="center", va="center", fontsize=11, zorder=4)
    _arrow(axis, (kx + k + 0.2, node_y), (node_x - radius - 0.1, node_y), None)
    axis.add_patch(FancyArrowPatch((centre + half + 1, centre - half), (node_x, node_y - radius - 0.1),
                                   connectionstyle="arc3,rad=0.3", arrowstyle="-|>", mutation_scale=14,
                                   color="#c0392b", lw=1.3))
    axis.text(node_x + 0.4, node_y - radius - 1.2, f"x[c] in the\n{k}x{k} window", ha="left", va="top",
              fontsize=10, color="#c0392b")
    _arrow(axis, (node_x + radius + 0.1, node_y), (ox + centre - 0.2, node_y), None)
    axis.text((node_x + ox + centre) / 2, centre + 1.2, "multiply by the kernel,\nsum the window",
              ha="center", fontsize=10)
    axis.text((3 * map_size + 8) / 2, map_size + 1.6,
              f"Involution (K = {k}, {per_group} channels per group): every pixel gets its own "
              f"kernel, shared by the {per_group} channels of its group", ha="center", fontsize=13)
    axis.text((3 * map_size + 8) / 2, -3.5, f"A convolution does the opposite: one {k}x{k} kernel "
              "per (output, input) channel pair, the same at every pixel.", ha="center",
              fontsize=11, color="#555555")
    return figure


def plot_augmentations(image, presets: Sequence[str] = ("light", "course"), image_size: int = 64,
                       samples: int = 6, seed: int = 0, title: str | None = None) -> Figure:
    """One image (a PIL image) through each training-transforms preset of :mod:`involution.data`.

    One row per preset: the evaluation view first, then ``samples`` random
    training views (seeded, so the figure is the same each time).
    """
    from involution.data import build_transforms, denormalize
    figure = Figure(figsize=(1.6 * (samples + 1) + 1.2, 1.75 * len(presets) + 0.6),
                    layout="constrained")
    axes = figure.subplots(len(presets), samples + 1, squeeze=False)
    torch.manual_seed(seed)
    for row, preset in zip(axes, presets):
        views = [build_transforms(preset, image_size, train=False)(image)]
        train = build_transforms(preset, image_size, train=True)
        views += [train(image) for _ in range(samples)]
        for column, (axis, view) in enumerate(zip(row, views)):
            axis.imshow(denormalize(view).permute(1, 2, 0).clamp(0, 1).numpy())
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title("evaluation" if column == 0 else f"training {column}", fontsize=9)
        row[0].set_ylabel(f'"{preset}"', fontsize=11)
    if title:
        figure.suptitle(title, fontsize=11)
    return figure
