"""Which trained weights a notebook looks at, and which held-out images it shows them.

:func:`find_weights` chooses, in order: a checkpoint named in the settings,
official ImageNet weights, notebook 02's newest RedNet run, the committed
float16 weights beside the exported runs (``slides/data/runs/<key>/weights.pt``)
and, where there are none, an untrained RedNet (said loudly). Every choice
comes with the sentence that says where the weights came from.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import skimage.data
import torch
from PIL import Image
from torchvision.models import ResNet50_Weights

from involution.analysis.kernels import involution_layers
from involution.data import Caltech256DataModule, build_transforms, class_names
from involution.data.constants import DATA_KINDS
from involution.data.shapes import landmarks, read_sources
from involution.models import create_model
from involution.train.module import ImageClassifier
from involution.train.runs import RESULTS_FILE, WEIGHTS_FILE, Run, latest_run, model_label, run_folder_of_checkpoint

__all__ = ["KERNEL_RUN_KEY", "Weights", "find_weights", "HeldOutImages", "held_out_images", "run_datamodule"]

# The exported run (slides/data/runs/<key>) whose weights the appendix notebook commits and notebook 03
# falls back to: notebook 02's seed-0 RedNet-26, as the deck names its runs (<model>_seed<seed>).
KERNEL_RUN_KEY = "rednet26_seed0"


@dataclass
class Weights:
    """Where a model's weights come from, and how to say so."""

    source: str  # "checkpoint", "official", "run", "committed" or "untrained"
    path: Path | None
    statement: str
    model_name: str
    run: Run | None = None

    @property
    def short(self) -> str:
        """One line for a figure's title."""
        if self.source == "untrained":
            return "Weights: an UNTRAINED RedNet-26 (random initial weights)."
        if self.source == "official":
            return f"Weights: official ImageNet {model_label(self.model_name)} (Li et al.)."
        what = "a float16 copy of the best checkpoint" if self.source == "committed" else \
            "the best checkpoint"
        about = self.run.summary() if self.run else self.model_name
        return f"Weights: {what} of {about}."

    @property
    def model_options(self) -> dict:
        """The options the weights' model was built with (``planes``, ``small_input``...): pass them
        to ``create_model`` for the same network, untrained."""
        return self.run.model_options if self.run else {}

    def load(self):
        """(model in eval mode on the CPU, class names or None)."""
        if self.source == "official":
            model = create_model(self.model_name, pretrained=self.path)
            return model.eval(), ResNet50_Weights.IMAGENET1K_V1.meta["categories"]
        if self.source in ("committed", "untrained"):
            num_classes = (self.run.results.dataset or {}).get("num_classes") if self.run else None
            model = create_model(self.model_name, num_classes=num_classes or 1000, **self.model_options)
            if self.path is not None:  # float16 on disk, float32 to compute
                model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in
                                       torch.load(self.path, map_location="cpu", weights_only=True).items()})
            return model.eval(), _class_names(self.run)
        module = ImageClassifier.load_from_checkpoint(self.path, map_location="cpu")
        if not involution_layers(module.model):
            raise ValueError(f"{self.path} holds a {module.hparams.model_name}, which has no "
                             "involution layers: choose a RedNet checkpoint")
        return module.model.eval(), _class_names(self.run)


def _class_names(run: Run | None) -> list[str] | None:
    dataset = (run.results.dataset or {}) if run else {}
    root = dataset.get("root")
    if not root:
        return None
    try:  # a built-in set's name or the data folder; gone data just means no names
        return class_names(root, include_clutter=dataset.get("include_clutter", True))
    except FileNotFoundError:
        return None


def _existing_file(path: str | os.PathLike, root: Path, setting: str, hint: str) -> Path:
    """``path`` as given, or relative to the repository ``root`` (notebooks run in notebooks/)."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_absolute() and (root / path).is_file():
        return root / path
    raise FileNotFoundError(f"{setting}={str(path)!r} does not exist; {hint}")


def find_weights(book, checkpoint: str | os.PathLike | None = None,
                 official: str | os.PathLike | None = None, official_model: str = "rednet26",
                 run_names: Sequence[str] = (), committed: str = KERNEL_RUN_KEY) -> Weights:
    """Choose a RedNet's weights for visualisation (``book``: the notebook's Workbook), in this order:

    1. ``checkpoint``: a Lightning checkpoint of this project (``best.ckpt``);
    2. ``official``: an official ImageNet RedNet checkpoint (mmcls ``.pth``)
       of ``official_model``'s depth;
    3. the newest finished RedNet run under ``book.runs_dir`` named in
       ``run_names`` (searched in that order of names);
    4. the committed weights ``slides/data/runs/<committed>/weights.pt``
       (written by the appendix notebook from notebook 02's run);
    5. an untrained RedNet-26, with a statement that says so.

    A path that is given but missing is an error, not a silent fallback.
    """
    if checkpoint is not None:
        path = _existing_file(checkpoint, book.root, "CHECKPOINT", "set it to a runs/<name>/"
                              "<version>/checkpoints/best.ckpt (relative paths start at the "
                              "repository) or to None")
        run_dir = run_folder_of_checkpoint(path)
        run = Run.load(run_dir) if run_dir and (run_dir / RESULTS_FILE).is_file() else None
        model = run.model if run else "the checkpoint's model"
        about = f" ({run.describe()})" if run else ""
        return Weights("checkpoint", path, f"Weights: the trained checkpoint {path}{about}.",
                       model, run)
    if official is not None:
        path = _existing_file(official, book.root, "OFFICIAL_WEIGHTS", "download it from the "
                              "official model zoo (see the docs' Using the package page) or set it to None")
        return Weights("official", path,
                       f"Weights: the official ImageNet {model_label(official_model)} checkpoint "
                       f"{path} (Li et al., trained on ImageNet-1k, not by this project).",
                       official_model)
    for name in run_names:
        run = latest_run(book.runs_dir, name=name, model="rednet")
        if run is not None and run.best_checkpoint.is_file():
            return Weights("run", run.best_checkpoint,
                           f"Weights: {run.describe()}, best checkpoint.", run.model, run)
    exported = book.committed_runs_dir / committed
    if (exported / WEIGHTS_FILE).is_file():
        run = Run.load(exported)
        return Weights("committed", exported / WEIGHTS_FILE, (
            f"Weights: the committed {exported / WEIGHTS_FILE} (float16 copy of the best checkpoint "
            f"of {run.summary()}, made by ./run.sh), since {book.runs_dir} holds no RedNet run of "
            "notebook 02."), run.model, run)
    return Weights("untrained", None, (
        f"Weights: NONE TRAINED. {book.runs_dir} holds no RedNet run of notebook 02 and "
        f"{exported / WEIGHTS_FILE} is not committed, so this is an untrained RedNet-26 (random "
        "initial weights): its kernels show how involution works, not what a network learns. "
        "Run notebook 02 first, or set CHECKPOINT or OFFICIAL_WEIGHTS."), "rednet26")


@dataclass
class HeldOutImages:
    """A small batch of images a model never trained on, with what to say about them."""

    batch: torch.Tensor  # (N, 3, H, W), normalised as in evaluation
    names: list[str]
    labels: list[str | None]  # true class names (None for photographs without one)
    pixels: list[dict[str, tuple[int, int]]]  # per image: {what: (row, col)} to mark
    statement: str


# Pixels to mark where an image has no record of its content: fractions of (height, width).
_FIXED_PIXELS = {"upper left": (0.3, 0.3), "centre": (0.5, 0.5), "lower left": (0.85, 0.15)}


def _fixed_pixels(size: int) -> dict[str, tuple[int, int]]:
    return {what: (int(r * size), int(c * size)) for what, (r, c) in _FIXED_PIXELS.items()}


def run_datamodule(weights: Weights, batch_size: int = 250) -> Caltech256DataModule:
    """The data a run of this project trained on, set up with the run's own split and image size
    (only then are its test images really held out). Needs weights from a run."""
    if weights.run is None:
        raise ValueError(f"{weights.statement} These weights come from no run of this project, so there "
                         "is no test split held out from their training.")
    dataset = weights.run.results.dataset or {}
    trained_with = (weights.run.results.config or {}).get("data") or {}
    split_settings = {key: trained_with[key] for key in ("split", "split_seed", "split_file",
                                                         "include_clutter") if key in trained_with}
    datamodule = Caltech256DataModule(dataset.get("root", "shapes"), image_size=int(dataset.get("image_size") or 64),
                                      batch_size=batch_size, num_workers=0, **split_settings)
    datamodule.setup()
    return datamodule


def held_out_images(weights: Weights, count: int = 3, photo_size: int = 128) -> HeldOutImages:
    """Test images for looking at a model's kernels: never the images it trained on.

    For weights from a run of this project: the first test image of each of
    the first ``count`` classes of the data the run trained on, at the run's
    image size (for the shapes set the marked pixels come from each image's
    record: inside the shape, on its outline, on the background). For the
    official ImageNet weights: scikit-image's sample photographs.
    """
    if weights.run is None:  # official weights, a checkpoint outside a run folder, untrained
        transform = build_transforms("standard", photo_size, train=False)
        names = ["chelsea", "astronaut", "coffee"][:count]
        batch = torch.stack([transform(Image.fromarray(getattr(skimage.data, n)()).convert("RGB"))
                             for n in names])
        return HeldOutImages(batch, names, [None] * len(names), [_fixed_pixels(photo_size)] * len(names),
                             f"Images: scikit-image's sample photographs ({', '.join(names)}) at "
                             f"{photo_size}px.")
    datamodule = run_datamodule(weights)
    size = datamodule.hparams.image_size
    test = datamodule.test_dataset
    first_of_class: dict[int, int] = {}
    for index, (_, label) in enumerate(test.samples):
        first_of_class.setdefault(label, index)
    chosen = [first_of_class[label] for label in sorted(first_of_class)][:count]
    batch = torch.stack([test[i][0] for i in chosen])
    paths = [Path(test.samples[i][0]) for i in chosen]
    names = [f"{path.parent.name}/{path.name}" for path in paths]
    labels = [test.class_names[test.samples[i][1]] for i in chosen]
    if datamodule.kind == "shapes":
        records = {record.path: record for record in read_sources(datamodule.data_dir)}
        pixels = [landmarks(records[name], size) for name in names]
    else:
        pixels = [_fixed_pixels(size)] * len(chosen)
    return HeldOutImages(batch, names, labels, pixels,
                         f"Images: {len(chosen)} test images of the {DATA_KINDS[datamodule.kind].label} "
                         f"(held out from training) at {size}px.")
