"""A trained run's model outside its data set: predict on image files, export a shareable folder.

* ``python -m involution predict --ckpt_path CKPT photo.jpg photos/ 'more/*.png'`` prints each
  image's top 5 classes (the checkpoint's own class names, after its own evaluation
  transform: :func:`involution.inference.transforms_for`) and writes them to a CSV file: in the
  run's ``evaluations/<time>-predict/predictions.csv`` for a checkpoint in a run folder,
  otherwise ``predictions-<time>.csv`` in the current folder (``--output`` chooses). Without
  image paths ``predict`` is the training command line's: the test split's predictions.
* ``python -m involution export --ckpt_path CKPT --to FOLDER`` writes the checkpoint's model as
  ``model.safetensors`` and ``config.json`` (:func:`involution.models.hub.save_pretrained`),
  which ``involution.from_pretrained(FOLDER)`` loads.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
from pathlib import Path

from involution._extras import require_extra

require_extra("train", "lightning", feature="Reading training checkpoints (python -m involution predict/export)")

from involution.inference import ImagePrediction, predict  # noqa: E402 -- after the check above
from involution.models.hub import model_from_source, save_pretrained  # noqa: E402
from involution.train.checkpoints import CheckpointError  # noqa: E402
from involution.train.runs import new_version_folder, run_folder_of_checkpoint  # noqa: E402

__all__ = ["image_paths_in", "predict_images_main", "export_main", "write_predictions"]

# The training command line's options that take no value.
_FLAGS = ("-h", "--help", "--verbose", "--print_config")


def image_paths_in(arguments: list[str]) -> list[str]:
    """The positional arguments of a ``predict`` command line (image files, folders, patterns):
    those that are neither an option nor an option's value."""
    paths, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument.startswith("-"):
            skip = "=" not in argument and argument not in _FLAGS
        else:
            paths.append(argument)
    return paths


def _predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m involution predict",
        description="The top classes of image files, folders and glob patterns, by a trained checkpoint "
                    "(its own class names and evaluation transform). Without images, predict writes the "
                    "test split's predictions (python -m involution predict --config RECIPE --ckpt_path CKPT).")
    parser.add_argument("paths", nargs="+", help="image files, folders (their images, recursively), glob patterns")
    parser.add_argument("--ckpt_path", required=True,
                        help="a training checkpoint (runs/NAME/VERSION/checkpoints/best.ckpt) or an exported folder")
    parser.add_argument("--topk", type=int, default=5, help="classes per image (default 5)")
    parser.add_argument("--output", help="the CSV file to write (default: the run's evaluations/<time>-predict/"
                                         "predictions.csv, or predictions-<time>.csv here)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda where there is one)")
    return parser


def write_predictions(predictions: list[ImagePrediction], path: Path, topk: int) -> None:
    """One row per image: its path, the best class and its probability, the top k classes and
    their probabilities (JSON lists: class names may hold commas), and the error, if any."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "predicted", "probability", f"top{topk}", f"top{topk}_probabilities", "error"])
        for result in predictions:
            writer.writerow([str(result.path), result.label or "",
                             f"{result.probability:.4f}" if result.probability is not None else "",
                             json.dumps(result.labels) if not result.error else "",
                             json.dumps([round(p, 4) for p in result.probabilities]) if not result.error else "",
                             result.error or ""])


def _default_output(ckpt_path: str) -> Path:
    run_dir = run_folder_of_checkpoint(ckpt_path)
    if run_dir is not None:
        return new_version_folder(run_dir / "evaluations", "{}-predict", create=True) / "predictions.csv"
    return new_version_folder(Path.cwd(), "predictions-{}.csv")


def predict_images_main(arguments: list[str]) -> int:
    """``python -m involution predict --ckpt_path CKPT IMAGE...`` (``arguments``: after ``predict``)."""
    parser = _predict_parser()
    options, unknown = parser.parse_known_args(arguments)
    if unknown:
        print(f"error: predicting image files takes only --ckpt_path, --topk, --output, --batch_size and --device "
              f"(the checkpoint brings its model, classes and preprocessing); not {' '.join(unknown)}",
              file=sys.stderr)
        return 2
    if options.topk < 1 or options.batch_size < 1:
        print("error: --topk and --batch_size must be at least 1", file=sys.stderr)
        return 2
    import torch
    device = options.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model = model_from_source(options.ckpt_path, device=device)
    except (FileNotFoundError, CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    results = predict(model, options.paths, topk=options.topk, batch_size=options.batch_size, errors="report")
    for result in results:
        print(result.line(), file=sys.stderr if result.error else sys.stdout)
    output = Path(options.output) if options.output else _default_output(options.ckpt_path)
    write_predictions(results, output, options.topk)
    failed = sum(1 for result in results if result.error)
    read = len(results) - failed
    print(f"Predictions for {read} image{'' if read == 1 else 's'} written to {output}"
          + (f" ({failed} could not be read: listed above, and in the file's error column)" if failed else ""))
    return 1 if failed else 0


def _export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m involution export",
        description="Write a trained checkpoint's model to a folder to share: model.safetensors (the weights) "
                    "and config.json (the model's name and options, class names and preprocessing). Load it "
                    "with involution.from_pretrained(FOLDER); upload it with huggingface_hub's upload_folder.")
    parser.add_argument("--ckpt_path", required=True, help="runs/NAME/VERSION/checkpoints/best.ckpt")
    parser.add_argument("--to", required=True, metavar="FOLDER", help="a new or empty folder")
    return parser


def export_main(arguments: list[str]) -> int:
    """``python -m involution export --ckpt_path CKPT --to FOLDER`` (``arguments``: after ``export``)."""
    options = _export_parser().parse_args(arguments)
    target = Path(options.to).expanduser()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        what = "is a file" if not target.is_dir() else "exists and is not empty"
        print(f"error: {target} {what}: export into a new or empty folder (nothing was written)", file=sys.stderr)
        return 1
    try:
        model = model_from_source(options.ckpt_path)
    except (FileNotFoundError, CheckpointError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target, then renamed: an interrupted export leaves no half folder.
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        save_pretrained(model, staging)
        staging.chmod(0o755)  # mkdtemp's folder is private; an export is made to be shared
        if target.exists():
            target.rmdir()
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    cfg = model.pretrained_cfg
    classes = len(cfg.get("label_names") or []) or model.num_classes
    print(f"Exported {cfg['architecture']} ({classes} classes, {cfg['input_size'][-1]} px images) to {target}; "
          f"load it with involution.from_pretrained({str(target)!r})")
    return 0
