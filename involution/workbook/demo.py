"""``python -m involution demo``: a RedNet built, measured and run on a real photo."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from involution.analysis.complexity import complexity_table, format_complexity_table
from involution.analysis.kernels import capture_kernels
from involution.data import build_transforms, load_rgb_image
from involution.models import create_model
from involution.ops.functional import default_impl

__all__ = ["run_demo", "default_photo", "main"]


def default_photo() -> Path:
    """A real photograph that ships with scikit-image (the astronaut Eileen Collins)."""
    import skimage.data
    return Path(skimage.data.__file__).with_name("astronaut.png")


def _imagenet_categories() -> list[str]:
    from torchvision.models import ResNet50_Weights
    return ResNet50_Weights.IMAGENET1K_V1.meta["categories"]


def run_demo(model_name: str = "rednet26", image: str | None = None,
             pretrained: str | None = None) -> int:
    """Print the RedNet/ResNet size table, then run ``model_name`` on a photo and describe
    the kernels each involution layer generated for it (ImageNet top-5 with official weights)."""
    print(format_complexity_table(complexity_table()))
    print()

    model = create_model(model_name, pretrained=pretrained).eval()
    path = Path(image) if image else default_photo()
    pixels = build_transforms("standard", 224, train=False)(load_rgb_image(path)).unsqueeze(0)
    with torch.no_grad(), capture_kernels(model) as kernels:
        start = time.perf_counter()
        logits = model(pixels)
        seconds = time.perf_counter() - start

    print(f"{model_name} forward pass on {path.name} ({tuple(pixels.shape)}): "
          f"{seconds * 1000:.0f} ms on the CPU, involution implementation "
          f"{default_impl(pixels)!r}, output {tuple(logits.shape)}")
    print(f"{len(kernels)} involution layers generated their kernels for this image:")
    for name, kernel in kernels.items():
        _, groups, k, _, height, width = kernel.shape
        print(f"  {name:<16} {groups:>3} groups x {k}x{k} kernels at {height}x{width} pixels, "
              f"std {kernel.std():.3f}")
    if pretrained is None:
        print("Weights are random (no --pretrained checkpoint), so there is no prediction to show.")
        return 0
    top5 = logits.softmax(dim=1)[0].topk(5)
    names = _imagenet_categories()
    print("ImageNet top-5 with the official weights:")
    for probability, index in zip(top5.values, top5.indices):
        print(f"  {probability:6.1%}  {names[index]}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m involution demo``."""
    parser = argparse.ArgumentParser(prog="python -m involution demo",
                                     description="Build a RedNet, print the parameter and "
                                                 "multiply-add table, run it on a real photo.")
    parser.add_argument("--model", default="rednet26")
    parser.add_argument("--image", default=None, help="an image file (default: a photo from "
                                                      "scikit-image's sample data)")
    parser.add_argument("--pretrained", default=None,
                        help="official RedNet ImageNet checkpoint (mmcls .pth) for real predictions")
    args = parser.parse_args(argv)
    return run_demo(args.model, args.image, args.pretrained)
