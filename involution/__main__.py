"""Command line: ``python -m involution COMMAND``.

Training (LightningCLI, see ``involution/cli.py``)::

    python -m involution fit      --config configs/quick_sample.yaml
    python -m involution validate --config configs/quick_sample.yaml --ckpt_path RUN/checkpoints/best.ckpt
    python -m involution test     --config configs/quick_sample.yaml --ckpt_path RUN/checkpoints/best.ckpt
    python -m involution predict  --config configs/quick_sample.yaml --ckpt_path RUN/checkpoints/best.ckpt

Tools::

    python -m involution check-data ROOT     list unreadable images before training
    python -m involution demo                build a RedNet, print its size table, run it on a photo
"""
from __future__ import annotations

import argparse
import sys


def _check_data(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m involution check-data",
                                     description="Decode every image of a Caltech-256 copy and "
                                                 "list the unreadable ones.")
    parser.add_argument("root", help="folder holding 256_ObjectCategories ('sample' for the "
                                     "built-in sample set)")
    from .data import main_check_data
    return main_check_data(parser.parse_args(argv).root)


def _demo(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m involution demo",
                                     description="Build a RedNet, print the parameter and "
                                                 "multiply-add table, run it on a real photo.")
    parser.add_argument("--model", default="rednet26")
    parser.add_argument("--image", default=None, help="an image file (default: a photo from "
                                                      "scikit-image's sample data)")
    parser.add_argument("--pretrained", default=None,
                        help="official RedNet ImageNet checkpoint (mmcls .pth) for real predictions")
    from .demo import run_demo
    args = parser.parse_args(argv)
    return run_demo(args.model, args.image, args.pretrained)


TOOLS = {"check-data": _check_data, "demo": _demo}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in TOOLS:
        return TOOLS[argv[0]](argv[1:])
    from .cli import run_cli
    run_cli(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
