"""Command line: ``python -m involution COMMAND``.

Training (LightningCLI, see ``involution/cli.py``); ``--config`` takes a YAML
file or the name of a shipped recipe (``python -m involution --help`` lists them)::

    python -m involution fit      --config quick_sample
    python -m involution fit      --config shapes --model.model_name resnet26
    python -m involution validate --config quick_sample --ckpt_path RUN/checkpoints/best.ckpt
    python -m involution test     --config quick_sample --ckpt_path RUN/checkpoints/best.ckpt
    python -m involution predict  --config quick_sample --ckpt_path RUN/checkpoints/best.ckpt

Tools::

    python -m involution check-data ROOT     list unreadable images before training
    python -m involution demo                build a RedNet, print its size table, run it on a photo
"""
from __future__ import annotations

import argparse
import sys

from ._extras import MissingExtraError


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
    """Run a command: ``argv`` as on the command line, or the command line itself when None."""
    arguments = sys.argv[1:] if argv is None else argv
    try:
        if arguments and arguments[0] in TOOLS:
            return TOOLS[arguments[0]](arguments[1:])
        from .cli import run_cli
        # None, not the list: LightningCLI then reads the command line itself
        # (given both, it warns that they might disagree).
        run_cli(argv)
    except MissingExtraError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
