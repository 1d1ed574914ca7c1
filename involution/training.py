"""Lightning training: the classifier module, its optimisers and schedules, callbacks, loggers.

The LightningModule holds the science (model, loss, metrics, optimiser,
learning-rate schedule); the Trainer and the callbacks hold the engineering
(checkpoints, logging, instability guards). ``python -m involution fit
--config configs/NAME.yaml`` drives it all through LightningCLI (see
``involution/__main__.py``).
"""
from __future__ import annotations

import csv
import io
import math
import netrc
import os
import time
import warnings
from pathlib import Path
from typing import Callable, Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torch.optim import lr_scheduler
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from .complexity import count_parameters
from .layers import KernelGenerator
from .models import create_model
# The run folder's format lives in runs.py; these names stay importable from here.
from .runs import RunSummary, find_run_dir, machine_description, run_folder, write_atomically

__all__ = [
    "ImageClassifier", "StepSchedule", "build_schedule", "KernelStatsMonitor", "NonFiniteLossGuard",
    "RunSummary", "ResumableCSVLogger", "PredictionWriter", "AtomicCheckpointIO", "CheckpointError",
    "read_checkpoint", "find_run_dir", "run_folder", "wandb_configured", "wandb_init_timeout",
    "start_wandb_logger", "machine_description", "EpochPrinter",
]

@rank_zero_only
def _say(message: str) -> None:
    """Print on global rank 0 only: the other processes of a multi-process run would repeat it."""
    print(message)


OptimizerName = Literal["sgd", "adam", "adamw"]
SchedulerName = Literal["cosine", "exponential", "linear", "step", "polynomial", "constant"]


class ImageClassifier(L.LightningModule):
    """Train any registered model as an image classifier.

    Args:
        model_name: a name from :func:`involution.models.list_models`.
        num_classes: classifier size; the CLI links it to the data module.
        pretrained: path to an official RedNet ImageNet checkpoint to start from.
        kernel_size, group_channels, reduction_ratio: involution options
            (``None`` keeps the official value; refused by models without them).
        drop_rate: dropout before the classifier.
        label_smoothing: cross-entropy label smoothing.
        optimizer: ``sgd`` (with ``momentum``/``nesterov``), ``adam`` or ``adamw``.
        lr, weight_decay: optimiser settings.
        scheduler: learning-rate schedule over the whole run, updated after
            every optimiser step; ``gamma`` (per epoch) for exponential and
            step, ``step_epochs`` for step, ``power`` for polynomial,
            ``min_lr`` for cosine and linear.
        warmup_epochs: linear warm-up from ``warmup_start_factor * lr``.
        channels_last: use the channels-last (NHWC) memory format. The
            convolutions run faster in it on GPUs and on recent CPUs (see
            the benchmark), and the involution kernels read it directly.
    """

    def __init__(self, model_name: str = "rednet26", num_classes: int = 257,
                 pretrained: str | None = None, kernel_size: int | None = None,
                 group_channels: int | None = None, reduction_ratio: int | None = None,
                 drop_rate: float = 0.0, label_smoothing: float = 0.0,
                 optimizer: OptimizerName = "sgd", lr: float = 0.1, momentum: float = 0.9,
                 nesterov: bool = True, weight_decay: float = 1e-4,
                 scheduler: SchedulerName = "cosine", warmup_epochs: float = 0.0,
                 warmup_start_factor: float = 0.01, min_lr: float = 0.0, gamma: float = 0.1,
                 step_epochs: int = 30, power: float = 1.0, channels_last: bool = True):
        super().__init__()
        self.save_hyperparameters()
        options = {"kernel_size": kernel_size, "group_channels": group_channels,
                   "reduction_ratio": reduction_ratio}
        # create_model refuses, by name, options the model does not take.
        options = {k: v for k, v in options.items() if v is not None}
        self.model = create_model(model_name, num_classes=num_classes, pretrained=pretrained,
                                  drop_rate=drop_rate, **options)
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        accuracy = MetricCollection({
            "top1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
            "top5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro"),
        })
        self.train_metrics = accuracy.clone(prefix="train/")
        self.val_metrics = accuracy.clone(prefix="val/")
        self.test_metrics = accuracy.clone(prefix="test/")

    @property
    def num_parameters(self) -> int:
        return count_parameters(self.model)

    # -- checks before anything runs ---------------------------------------

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        data_classes = getattr(datamodule, "num_classes", None)
        if data_classes is not None and data_classes != self.hparams.num_classes:
            raise ValueError(
                f"the model has {self.hparams.num_classes} classes but the data has "
                f"{data_classes}; set model.num_classes: {data_classes} (or leave it to the CLI, "
                "which takes it from the data)")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("hyper_parameters", {}).get("num_classes")
        if saved is not None and saved != self.hparams.num_classes:
            raise ValueError(
                f"the checkpoint was trained for {saved} classes but this model has "
                f"{self.hparams.num_classes} (from the data); evaluate it on the data it was "
                "trained on, or fine-tune from official weights with model.pretrained")

    # -- the steps ------------------------------------------------------------

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = self.criterion(logits, labels)
        on_step = stage == "train"
        # sync_dist: with several processes (DDP) the logged loss is the mean
        # over all of them, not rank 0's share of the batch (torchmetrics
        # reduces the accuracies across processes by itself).
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True,
                 batch_size=len(labels), sync_dist=True)
        metrics = getattr(self, f"{stage}_metrics")
        metrics(logits, labels)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True,
                      batch_size=len(labels))
        return loss

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx):
        images, labels = batch
        probabilities = self(images).softmax(dim=1)
        return {"probabilities": probabilities, "labels": labels}

    # -- optimisation ---------------------------------------------------------

    def configure_optimizers(self):
        h = self.hparams
        if h.optimizer == "sgd":
            optimizer = torch.optim.SGD(self.parameters(), lr=h.lr, momentum=h.momentum,
                                        nesterov=h.nesterov and h.momentum > 0,
                                        weight_decay=h.weight_decay)
        elif h.optimizer == "adam":
            optimizer = torch.optim.Adam(self.parameters(), lr=h.lr, weight_decay=h.weight_decay)
        else:
            optimizer = torch.optim.AdamW(self.parameters(), lr=h.lr, weight_decay=h.weight_decay)
        total_steps = int(self.trainer.estimated_stepping_batches)
        steps_per_epoch = max(1, total_steps // max(1, self.trainer.max_epochs or 1))
        schedule = build_schedule(optimizer, h, total_steps, steps_per_epoch)
        # interval "step": the schedule advances after every optimiser step, so
        # a 150-epoch cosine decays smoothly over all 150 epochs.
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": "step", "frequency": 1}}


class StepSchedule(lr_scheduler.LambdaLR):
    """A learning-rate schedule that is a function of the optimiser step alone.

    Torch's schedulers keep their length (``T_max``, ``total_iters``) in their
    state, and a checkpoint restores it: a run resumed with a larger
    ``trainer.max_epochs`` went on with the old length, so its cosine reached 0
    at the old end and climbed back to the peak. This schedule's state is only
    the step count (and, for the record, the length it was defined over): the
    length always comes from the current run, so a resumed run continues the
    schedule defined over its new length, and says so when the length changed.

    Args:
        factor: step -> multiple of the base learning rate.
        total_steps: the run's length in optimiser steps.
        depends_on_length: False for schedules that a new length leaves
            unchanged (step, exponential, constant).
    """

    def __init__(self, optimizer, factor: Callable[[int], float], total_steps: int,
                 depends_on_length: bool = True):
        self.factor, self.total_steps = factor, total_steps
        self.depends_on_length = depends_on_length
        super().__init__(optimizer, factor)

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "_step_count": self._step_count,
                "total_steps": self.total_steps}

    def load_state_dict(self, state_dict: dict) -> None:
        # Any torch scheduler's state has last_epoch (here: optimiser steps
        # taken), so checkpoints written before this class resume as well.
        self.last_epoch = state_dict["last_epoch"]
        self._step_count = state_dict.get("_step_count", self.last_epoch + 1)
        # The optimiser state restored just before holds the learning rate of
        # the checkpoint's schedule; set this schedule's for the current step.
        before = [group["lr"] for group in self.optimizer.param_groups]
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base_lr * self.factor(self.last_epoch)
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        saved_total = state_dict.get("total_steps")
        if self.depends_on_length and saved_total is not None and saved_total != self.total_steps:
            _say(f"The learning-rate schedule was defined over {saved_total} steps when the "
                 f"checkpoint was written and is now defined over {self.total_steps} (the run's "
                 f"length changed): it continues over the new length from step {self.last_epoch}, "
                 f"learning rate {before[0]:.3g} -> {self._last_lr[0]:.3g}.")


def build_schedule(optimizer, h, total_steps: int, steps_per_epoch: int) -> StepSchedule:
    """The learning-rate schedule ``h.scheduler`` with optional linear warm-up, in steps.

    The same curves as torch's LinearLR warm-up followed by CosineAnnealingLR,
    LinearLR, PolynomialLR, StepLR, ExponentialLR or ConstantLR, written as one
    function of the step so that a resumed run can change its length (see
    :class:`StepSchedule`); each curve stays at its end value after its end.
    """
    warmup_steps = max(0, min(total_steps - 1, round(h.warmup_epochs * steps_per_epoch)))
    main_steps = max(1, total_steps - warmup_steps)
    min_factor = h.min_lr / optimizer.param_groups[0]["lr"]

    def main(step: int) -> float:  # step counted from the end of the warm-up
        progress = min(step, main_steps) / main_steps
        if h.scheduler == "cosine":
            return min_factor + (1 - min_factor) * (1 + math.cos(math.pi * progress)) / 2
        if h.scheduler == "linear":
            return 1 + (max(min_factor, 1e-8) - 1) * progress
        if h.scheduler == "polynomial":
            return (1 - progress) ** h.power
        if h.scheduler == "step":
            return h.gamma ** (step // (h.step_epochs * steps_per_epoch))
        if h.scheduler == "exponential":  # gamma is per epoch, spread over its steps
            return h.gamma ** (step / steps_per_epoch)
        return 1.0

    def factor(step: int) -> float:
        if step < warmup_steps:
            return h.warmup_start_factor + (1 - h.warmup_start_factor) * step / warmup_steps
        return main(step - warmup_steps)

    return StepSchedule(optimizer, factor, total_steps,
                        depends_on_length=h.scheduler in ("cosine", "linear", "polynomial"))


# -- callbacks ----------------------------------------------------------------


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic within the destination folder.

    Lightning writes a checkpoint through a temporary file in ``$TMPDIR`` and
    moves it into place; when ``$TMPDIR`` is on another file system the move
    is a copy, and a job killed during it leaves an empty or truncated
    ``last.ckpt``. Every checkpoint (ModelCheckpoint's, and
    ``trainer.save_checkpoint``'s) goes through this plugin instead; the CLI
    installs it. Remote paths (``s3://...``) keep Lightning's own writer.
    """

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        write_atomically(path, lambda file: torch.save(checkpoint, file))


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read: empty, truncated or not a checkpoint."""


def read_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint's contents (tensors memory-mapped, so it is cheap), or explain why not.

    An empty or truncated file (a write that was cut off) raises
    :class:`CheckpointError` naming the other checkpoints of its folder to use
    instead, rather than torch's bare ``EOFError`` or zip error.
    """
    path = Path(path)
    if not path.is_file():
        others = _other_checkpoints(path) if path.parent.is_dir() else ""
        raise FileNotFoundError(f"checkpoint {path} does not exist{others}")
    size = path.stat().st_size
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as error:
        state = ("empty (0 bytes)" if size == 0
                 else f"truncated or damaged ({size:,} bytes: {error})")
        raise CheckpointError(
            f"checkpoint {path} is {state}; it was probably cut off while being written (a "
            f"killed job, a full disk){_other_checkpoints(path)}") from error


def _other_checkpoints(path: Path) -> str:
    """The end of an error message: the other checkpoint files beside ``path``, newest first."""
    others = sorted((p for p in path.parent.glob("*.ckpt") if p != path and p.stat().st_size),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    if not others:
        return "; no other checkpoint is in its folder, so start the run again"

    def written(p: Path) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(p.stat().st_mtime))
    listed = ", ".join(f"{p} (written {written(p)})" for p in others)
    return (f". Resume or evaluate from another checkpoint of the run instead, newest first: "
            f"{listed} (best.ckpt is the epoch with the best val top-1, which may be older than "
            "the lost one)")


class KernelStatsMonitor(Callback):
    """Logs statistics of every involution layer's generated kernels.

    RedNets can be unstable (the course project saw exploding activations in
    RedNet-50): watching the kernels' spread and extremes per layer shows
    where it starts. Every ``every_n_steps`` training steps, forward hooks on
    the kernel generators record the std and max |value| of the kernels.
    """

    def __init__(self, every_n_steps: int = 50):
        self.every_n_steps = every_n_steps
        self._hooks, self._stats = [], {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step % self.every_n_steps != 0:
            return
        for name, module in pl_module.named_modules():
            if isinstance(module, KernelGenerator):
                self._hooks.append(module.register_forward_hook(self._recorder(name)))

    def _recorder(self, name: str):
        short = name.removeprefix("model.").removesuffix(".kernel_generator")

        def record(module, inputs, kernel):
            kernel = kernel.detach().float()
            self._stats[f"kernels/{short}/std"] = kernel.std()
            self._stats[f"kernels/{short}/absmax"] = kernel.abs().max()
        return record

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
        if self._stats:
            pl_module.log_dict(self._stats, on_step=True, on_epoch=False)
            self._stats = {}


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss."""


class NonFiniteLossGuard(Callback):
    """Stops training at the first NaN/inf loss, after saving a checkpoint.

    The training loss is checked before each backward pass, so the saved
    weights are the last finite ones: load them to inspect what went wrong.
    A diverged run can keep a finite training loss (lr 1e6 gives 1e31) while
    its validation loss is NaN, so every validation metric is checked too,
    after each validation of ``fit``. Lightning calls ModelCheckpoint after
    every other callback, so no ``best.ckpt`` or ``last.ckpt`` is written from
    such an epoch; the weights that gave it are saved beside them instead.
    """

    ADVICE = ("Lower the learning rate, add a warm-up (model.warmup_epochs) or clip gradients "
              "(trainer.gradient_clip_val).")

    def on_before_backward(self, trainer, pl_module, loss):
        if torch.isfinite(loss).all():
            return
        path = self._save(trainer, f"nonfinite-step{trainer.global_step}.ckpt")
        raise NonFiniteLossError(
            f"non-finite loss ({loss.item()}) at global step {trainer.global_step} (epoch "
            f"{trainer.current_epoch}); the weights before this step are saved in {path}. "
            + self.ADVICE)

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        bad = {name: float(value) for name, value in trainer.callback_metrics.items()
               if name.startswith("val/") and not torch.isfinite(value).all()}
        if not bad:
            return
        what = (f"loss ({bad['val/loss']})" if "val/loss" in bad else
                ", ".join(f"{name} ({value})" for name, value in bad.items()))
        path = self._save(trainer, f"nonfinite-val-epoch{trainer.current_epoch}.ckpt")
        raise NonFiniteLossError(
            f"non-finite validation {what} after epoch {trainer.current_epoch} (global step "
            f"{trainer.global_step}) although the training loss stayed finite: the weights have "
            f"diverged. They are saved in {path}; no best.ckpt comes from this epoch. "
            + self.ADVICE)

    @staticmethod
    def _save(trainer, name: str) -> Path:
        path = run_folder(trainer) / "checkpoints" / name
        trainer.save_checkpoint(path)
        return path


class EpochPrinter(Callback):
    """One line per epoch when the progress bar is off (notebooks, logs of batch jobs).

    A progress bar saved in a notebook stays frozen at whatever it showed last;
    a line per epoch reads well both while training and afterwards.
    """

    def __init__(self):
        self._start = None

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        if (trainer.sanity_checking or trainer.state.fn != "fit" or trainer.progress_bar_callback
                is not None or not trainer.is_global_zero or self._start is None):
            return
        metrics = trainer.callback_metrics
        # (The epoch's training averages are only aggregated after validation: metrics.csv has them.)
        parts = [f"{label} {float(metrics[key]) * scale:{spec}}{unit}" for key, label, scale, spec, unit in (
            ("val/loss", "val loss", 1, ".3f", ""), ("val/top1", "val top-1", 100, ".1f", "%"))
            if key in metrics]
        print(f"  epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {', '.join(parts)} "
              f"({time.perf_counter() - self._start:.0f} s)", flush=True)


class PredictionWriter(BasePredictionWriter):
    """Writes ``predictions.csv`` in the run folder after ``predict``.

    One row per image of the predict split: its path, the true and the
    predicted class, the top-5 classes and the top-1 probability.
    """

    FILENAME = "predictions.csv"

    def __init__(self):
        super().__init__(write_interval="epoch")

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices):
        dataset = trainer.predict_dataloaders.dataset
        names = getattr(dataset, "class_names", None) or []
        probabilities = torch.cat([batch["probabilities"] for batch in predictions])
        indices = [i for batch in batch_indices[0] for i in batch] if batch_indices else []
        top5 = probabilities.topk(min(5, probabilities.shape[1]), dim=1)
        path = run_folder(trainer) / self.FILENAME

        def name(label: int) -> str:
            return names[label] if label < len(names) else str(label)

        rows = []
        for row, index in enumerate(indices or range(len(probabilities))):
            image, label = dataset.samples[index] if hasattr(dataset, "samples") else (index, -1)
            best = top5.indices[row].tolist()
            rows.append((index, [image, name(label) if label >= 0 else "", name(best[0]),
                                 f"{top5.values[row, 0].item():.4f}",
                                 " ".join(name(i) for i in best)]))
        rows = _gather_to_rank_zero(trainer, rows)
        if not trainer.is_global_zero:
            return
        rows.sort(key=lambda indexed_row: indexed_row[0])  # the data set's order
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(["path", "label", "predicted", "probability", "top5"])
            writer.writerows(row for _, row in rows)
        print(f"Predictions for {len(rows)} images written to {path}")


def _gather_to_rank_zero(trainer, items: list) -> list:
    """All processes' ``items`` together (on every rank); just ``items`` with one process.

    With DDP each process predicts its own share of the images.
    """
    if trainer.world_size == 1 or not torch.distributed.is_initialized():
        return items
    gathered = [None] * trainer.world_size
    torch.distributed.all_gather_object(gathered, items)
    return [item for share in gathered for item in share]


# -- loggers ------------------------------------------------------------------


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, except that a resumed run keeps its earlier rows.

    Lightning deletes an existing metrics.csv; when a run resumes from the
    checkpoint of epoch E we keep the rows of epochs <= E (rows of the epoch
    that was interrupted are dropped, since that epoch is trained again).
    A resumed run also keeps the ``hparams.yaml`` of its start: the CLI saves
    the resumed command's settings in ``config-resumed-<time>.yaml``.
    """

    def __init__(self, log_dir: str, keep_through_epoch: int | None = None):
        self.keep_through_epoch = keep_through_epoch  # read by the parent's __init__
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if not os.path.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as file:
            reader = csv.DictReader(file)
            self.metrics_keys = list(reader.fieldnames or [])
            rows = list(reader)
        limit = self.keep_through_epoch
        if limit is not None:
            kept = [r for r in rows if not r.get("epoch") or float(r["epoch"]) <= limit]
            if len(kept) < len(rows):
                print(f"Resuming after epoch {limit}: {len(rows) - len(kept)} rows of later epochs "
                      f"are dropped from {self.metrics_file_path}, since those epochs are trained "
                      "again.")
            rows = kept
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.metrics_keys)
        writer.writeheader()
        writer.writerows(rows)
        # Atomically: a job killed now must not lose the run's metrics.
        write_atomically(self.metrics_file_path, lambda file: file.write(text.getvalue().encode()))

    def log_hparams(self, params: dict) -> None:
        resuming = self.keep_through_epoch is not None
        if resuming and os.path.isfile(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE)):
            self.hparams.update(params)
            return
        super().log_hparams(params)


class ResumableCSVLogger(CSVLogger):
    """A CSVLogger whose metrics.csv survives a resumed run.

    Args:
        keep_through_epoch: when resuming from a checkpoint saved at the end
            of this epoch, the rows logged after it are dropped.
        Other arguments as for :class:`lightning.pytorch.loggers.CSVLogger`.
    """

    def __init__(self, *args, keep_through_epoch: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._keep_through_epoch = keep_through_epoch

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(self.log_dir, self._keep_through_epoch)
        return self._experiment


def wandb_configured() -> bool:
    """True when Weights & Biases can log: logged in, an API key, or offline mode."""
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode == "disabled":
        return False
    if mode in ("offline", "dryrun") or os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


WANDB_DEFAULT_INIT_TIMEOUT = 30.0


def wandb_init_timeout() -> float:
    """Seconds W&B may take to start a run: ``WANDB_INIT_TIMEOUT`` (wandb's own variable), or 30.

    wandb's default of 90 s (about 100 s with its account look-ups) is a long
    stall for a logger, after which it raises instead of training.
    """
    value = os.environ.get("WANDB_INIT_TIMEOUT")
    if value is None:
        return WANDB_DEFAULT_INIT_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not seconds > 0:  # also refuses NaN
        raise ValueError(f"WANDB_INIT_TIMEOUT must be a positive number of seconds, got "
                         f"{value!r}; unset it for the default of {WANDB_DEFAULT_INIT_TIMEOUT:g} s")
    return seconds


def start_wandb_logger(**kwargs):
    """A WandbLogger whose run has started, or ``None`` with one warning if W&B cannot start one.

    Logging must never cost a run: when the server cannot be reached within
    :func:`wandb_init_timeout`, or refuses the key, the run goes on with its
    CSV log. The W&B run is started here, before training, rather than at
    Lightning's first use of the logger, where a failure would abort ``fit``.
    ``kwargs`` go to :class:`~lightning.pytorch.loggers.WandbLogger`.
    """
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    timeout = wandb_init_timeout()
    logger = WandbLogger(settings=wandb.Settings(init_timeout=timeout), **kwargs)
    try:
        logger.experiment  # noqa: B018 -- the property starts the run
    except Exception as error:  # CommError, AuthenticationError, UsageError...: all mean no W&B
        # wandb keeps the failed session's settings (server, mode) for the rest of the
        # process: drop them, so that a later run here starts afresh.
        wandb.teardown()
        server = f" at {os.environ['WANDB_BASE_URL']}" if "WANDB_BASE_URL" in os.environ else ""
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        warnings.warn(
            f"W&B could not start a run{server} within {timeout:g} s ({reason}): logging to "
            "CSV only. Set WANDB_INIT_TIMEOUT=<seconds> to wait longer, WANDB_MODE=offline to "
            "log locally and `wandb sync` later, or WANDB_MODE=disabled to skip W&B.",
            UserWarning, stacklevel=2)
        return None
    return logger
