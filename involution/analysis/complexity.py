"""Parameters and multiply-adds of any model, involution included.

Convention: one multiply-add (MAC) is one multiplication plus one addition.
We count the MACs of convolutions, linear layers and involutions, the layers
that hold nearly all the work. An involution costs K*K MACs per output
element; its kernel-generation convolutions are counted as convolutions.
Bias additions, batch norm, activations, pooling and the residual additions
are not counted (together well under 1% of a RedNet's MACs). This is the
convention of the RedNet paper's "FLOPs" column and of most papers, which
say FLOPs and mean multiply-adds.

The official RedNet figures were counted with mmcv's counter, which also
counts one operation per element for bias additions, activations and
pooling inputs and two for batch norm. ``elementwise=True`` adds those
too (as types "bias", "norm", "activation", "pool") so the two conventions
can be compared; see :func:`complexity_table`.

Counting is done with forward hooks from the shapes of one real forward
pass, so it follows whatever the model does. A model built on the meta device
(``with torch.device("meta"): model = create_model(...)``) is counted the same
without computing anything: every layer, involution included, has a meta
implementation that only works out shapes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from involution.layers import Involution2d

__all__ = ["Complexity", "MAC_TYPES", "count_complexity", "count_parameters", "complexity_table",
           "format_complexity_table", "model_table", "format_model_table", "operator_costs",
           "format_operator_costs"]


MAC_TYPES = ("conv", "linear", "involution")


@dataclass
class Complexity:
    """Parameter count and per-image operation counts, by layer type.

    ``ops_by_type`` holds multiply-adds for the types in :data:`MAC_TYPES`
    and, when counted with ``elementwise=True``, mmcv-style element
    operations for the others.
    """

    params: int
    ops_by_type: dict[str, int] = field(default_factory=dict)

    @property
    def macs(self) -> int:
        return sum(self.ops_by_type.get(kind, 0) for kind in MAC_TYPES)

    @property
    def elementwise_ops(self) -> int:
        return sum(n for kind, n in self.ops_by_type.items() if kind not in MAC_TYPES)

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    @property
    def mparams(self) -> float:
        return self.params / 1e6


def count_parameters(model: nn.Module) -> int:
    """The number of parameters of ``model`` (every tensor, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def _layer_macs(module: nn.Module, output: torch.Tensor) -> tuple[str, int] | None:
    """(type, MACs) of one layer's forward, from its output shape."""
    if isinstance(module, Involution2d):
        return "involution", output.numel() * module.kernel_size ** 2
    if isinstance(module, nn.Conv2d):
        kernel_h, kernel_w = module.kernel_size
        per_output = module.in_channels // module.groups * kernel_h * kernel_w
        return "conv", output.numel() * per_output
    if isinstance(module, nn.Linear):
        return "linear", output.numel() * module.in_features
    return None


def _elementwise_ops(module: nn.Module, inputs, output: torch.Tensor) -> tuple[str, int] | None:
    """mmcv's per-element counts for the layers the MAC convention leaves out."""
    if isinstance(module, nn.Conv2d) and module.bias is not None:
        return "bias", output.numel()
    if isinstance(module, nn.BatchNorm2d):
        return "norm", 2 * output.numel()  # scale and shift
    if isinstance(module, (nn.ReLU, nn.ReLU6)):
        return "activation", output.numel()
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
        return "pool", inputs[0].numel()
    return None


@torch.no_grad()
def count_complexity(model: nn.Module, input_size=(3, 224, 224),
                     elementwise: bool = False) -> Complexity:
    """Count parameters and per-image multiply-adds of ``model`` on one input.

    Args:
        model: any ``nn.Module`` taking a ``(1, *input_size)`` tensor.
        input_size: (channels, height, width) of one image.
        elementwise: also count bias, norm, activation and pooling
            operations the way mmcv does (see the module docs).
    """
    result = Complexity(params=count_parameters(model))

    def record(module, inputs, output):
        counts = [_layer_macs(module, output)]
        if elementwise:
            counts.append(_elementwise_ops(module, inputs, output))
        for kind, ops in filter(None, counts):
            result.ops_by_type[kind] = result.ops_by_type.get(kind, 0) + ops

    hooks = [m.register_forward_hook(record) for m in model.modules()]
    was_training = model.training
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else "cpu"
    try:
        model.eval()
        model(torch.zeros(1, *input_size, device=device))
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return result


def complexity_table(depths=(26, 38, 50, 101, 152), input_size=(3, 224, 224)) -> list[dict]:
    """Our counts for every RedNet and ResNet depth beside the reported figures.

    Each row: model, params, GMACs (our convention), G ops with mmcv's
    element operations added, the reported params (M) and GFLOPs with their
    source (from the model's registry record), and the gap in % between the
    reported FLOPs and our count in the reporter's convention (mmcv-style
    for the paper, GMACs for torchvision).
    """
    from involution.models import create_model
    from involution.models.registry import list_models, model_info

    families = ("rednet", "resnet")
    infos = [model_info(name) for name in list_models()]
    chosen = sorted((info for info in infos if info.family in families and info.depth in depths),
                    key=lambda info: (families.index(info.family), info.depth))
    rows = []
    for info in chosen:
        with torch.device("meta"):  # counting needs shapes only: no weights to draw, no arithmetic
            model = create_model(info.name)
        counted = count_complexity(model, input_size, elementwise=True)
        reported = info.reported
        mmcv_style = (counted.macs + counted.elementwise_ops) / 1e9
        # Compare like with like: the paper used mmcv's counter, torchvision counts MACs.
        comparable = mmcv_style if reported and reported.source == "paper" else counted.gmacs
        rows.append({
            "model": info.name, "params": counted.params, "gmacs": counted.gmacs,
            "involution_gmacs": counted.ops_by_type.get("involution", 0) / 1e9,
            "mmcv_style_gflops": mmcv_style,
            "reported_params_m": reported.params_m if reported else None,
            "reported_gflops": reported.gflops if reported else None,
            "reported_by": reported.source if reported else "",
            "gap_percent": (None if reported is None
                            else 100 * (comparable - reported.gflops) / reported.gflops),
        })
    return rows


def format_complexity_table(rows: list[dict], input_size=(3, 224, 224)) -> str:
    """A plain-text rendering of :func:`complexity_table` with its conventions."""
    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    lines = [
        f"Parameters and multiply-adds per {input_size[1]}x{input_size[2]} image "
        "(counted by involution.analysis.complexity)",
        f"{'model':<10} {'params':>12} {'GMACs':>7} {'of which inv.':>13} {'mmcv-style':>10} "
        f"{'reported params (M)':>19} {'reported GFLOPs':>15} {'gap':>6}  reported by",
    ]
    for row in rows:
        lines.append(
            f"{row['model']:<10} {row['params']:>12,} {row['gmacs']:>7.3f} "
            f"{row['involution_gmacs']:>13.3f} {row['mmcv_style_gflops']:>10.3f} "
            f"{fmt(row['reported_params_m'], '.2f'):>19} {fmt(row['reported_gflops'], '.3f'):>15} "
            f"{fmt(row['gap_percent'], '+.1f'):>5}%  {row['reported_by'] or '-'}")
    lines += [
        "GMACs: multiply-adds of convolutions, linear layers and involutions (K*K per output",
        "element). mmcv-style: GMACs plus the per-element operations mmcv's counter adds (bias,",
        "2 per batch-norm element, ReLU, pooling input), the convention of the reported figures.",
        "gap: our count in the reporter's convention minus the reported figure. 'paper':",
        "reported by Li et al. (CVPR 2021), official model zoo (mmcv-style); 'torchvision':",
        "reported in torchvision's weight metadata (MACs only, compared with GMACs).",
    ]
    return "\n".join(lines)


def model_table(input_size=(3, 224, 224)) -> list[dict]:
    """One row per registered model (:func:`~involution.list_models`): its name, label,
    our parameter count (1000 classes) and multiply-adds per image, and the ImageNet-1k top-1
    someone else reported for its official weights (``None`` where none is reported), with
    the reporter's key (``"paper"``, ``"torchvision"``) and citation."""
    from involution.models import create_model
    from involution.models.registry import list_models, model_info

    rows = []
    for name in list_models():
        info = model_info(name)
        with torch.device("meta"):  # shapes only: nothing to compute
            counted = count_complexity(create_model(name), input_size)
        reported = info.reported
        rows.append({"model": name, "label": info.label, "params": counted.params, "gmacs": counted.gmacs,
                     "reported_top1": reported.top1 if reported else None,
                     "reported_by": reported.source if reported else "",
                     "citation": reported.citation if reported else ""})
    return rows


def format_model_table(rows: list[dict], input_size=(3, 224, 224)) -> str:
    """:func:`model_table` as a Markdown table, with a legend saying who reported each top-1."""
    lines = [f"| model | name | parameters (M) | GMACs at {input_size[1]} px | reported ImageNet top-1 |",
             "|---|---|--:|--:|--:|"]
    for row in rows:
        top1 = "-" if row["reported_top1"] is None else f"{row['reported_top1']:.2f}% ({row['reported_by']})"
        lines.append(f"| `{row['model']}` | {row['label']} | {row['params'] / 1e6:.2f} | {row['gmacs']:.2f} "
                     f"| {top1} |")
    citations: dict[str, list[str]] = {}
    for row in rows:
        if row["reported_by"] and row["citation"] not in citations.setdefault(row["reported_by"], []):
            citations[row["reported_by"]].append(row["citation"])
    lines += ["", f"Parameters (with a 1000-class head) and multiply-adds per {input_size[1]}x{input_size[2]} "
              "image are counted by `involution.analysis.complexity` from the models themselves. The top-1 "
              "accuracies are not this project's measurements but the figures reported for the official "
              "ImageNet-1k weights:", ""]
    lines += [f"- ({key}) {'; '.join(cited)}" for key, cited in sorted(citations.items())]
    return "\n".join(lines)


def operator_costs(channels: int, kernel_size: int, height: int = 14, width: int = 14,
                   group_channels: int = 16, reduction_ratio: int = 4) -> dict:
    """Parameters and multiply-adds of one KxK convolution and one involution, both C -> C.

    Both are counted by :func:`count_complexity` on real modules applied to a
    C x height x width feature map: ``nn.Conv2d(C, C, K, padding=K // 2,
    bias=False)`` and ``Involution2d(C, K)`` with its kernel-generation branch
    (G = C / group_channels groups). Per output pixel a convolution costs
    C*C*K*K multiply-adds and holds C*C*K*K weights whatever the image size;
    an involution costs C*K*K for applying its kernels plus C*C/r + (C/r)*K*K*G
    for generating them, and holds only the generator's weights.
    """
    with torch.device("meta"):  # counting needs shapes only: no weights to draw, no arithmetic
        conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=False)
        involution = Involution2d(channels, kernel_size, group_channels=group_channels,
                                  reduction_ratio=reduction_ratio)
    conv_counts = count_complexity(conv, (channels, height, width))
    inv_counts = count_complexity(involution, (channels, height, width))
    return {
        "channels": channels, "kernel_size": kernel_size, "height": height, "width": width,
        "groups": involution.groups,
        "conv_params": conv_counts.params, "conv_macs": conv_counts.macs,
        "involution_params": inv_counts.params, "involution_macs": inv_counts.macs,
        "involution_apply_macs": inv_counts.ops_by_type.get("involution", 0),
        "involution_generate_macs": inv_counts.ops_by_type.get("conv", 0),
    }


def format_operator_costs(rows: list[dict]) -> str:
    """A plain-text table of :func:`operator_costs` rows."""
    lines = [f"{'C':>4} {'K':>3} {'G':>3} {'conv params':>12} {'inv. params':>12} "
             f"{'conv MACs':>14} {'inv. MACs':>12} {'(apply':>11} {'+ generate)':>12}"]
    for row in rows:
        lines.append(
            f"{row['channels']:>4} {row['kernel_size']:>3} {row['groups']:>3} "
            f"{row['conv_params']:>12,} {row['involution_params']:>12,} {row['conv_macs']:>14,} "
            f"{row['involution_macs']:>12,} {row['involution_apply_macs']:>11,} "
            f"{row['involution_generate_macs']:>12,}")
    if rows:
        lines.append(f"MACs per {rows[0]['height']}x{rows[0]['width']} feature map, counted by "
                     "involution.analysis.complexity on real modules.")
    return "\n".join(lines)
