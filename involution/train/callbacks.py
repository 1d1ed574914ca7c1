"""The callbacks of every run: kernel statistics, instability guards, one line per epoch,
predictions to CSV. (The run's results file is written by :class:`involution.train.runs.summary.RunSummary`.)"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback

from involution.layers import KernelGenerator
from involution.train.runs import trainer_run_folder

__all__ = ["KernelStatsMonitor", "NonFiniteLossError", "NonFiniteLossGuard", "EpochPrinter",
           "PredictionWriter"]


class KernelStatsMonitor(Callback):
    """Logs statistics of every involution layer's generated kernels.

    RedNets can be unstable (the course project saw exploding activations in
    RedNet-50): watching the kernels' spread and extremes per layer shows
    where it starts. Every ``every_n_steps`` training steps, forward hooks on
    the kernel generators record the std and the largest absolute value of the kernels.
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

    ADVICE = ("Lower the learning rate, add a warm-up (model.schedule.warmup_epochs) or clip "
              "gradients (trainer.gradient_clip_val).")

    def on_before_backward(self, trainer, pl_module, loss):
        if torch.isfinite(loss).all():
            return
        path = self._save(trainer, f"nonfinite-step{trainer.global_step}.ckpt")
        raise NonFiniteLossError(
            f"non-finite loss ({loss.item()}) at global step {trainer.global_step} (epoch "
            f"{trainer.current_epoch + 1}); the weights before this step are saved in {path}. "
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
        # Epochs are counted from 1 wherever the command line names one (as its per-epoch lines do).
        path = self._save(trainer, f"nonfinite-val-epoch{trainer.current_epoch + 1}.ckpt")
        raise NonFiniteLossError(
            f"non-finite validation {what} after epoch {trainer.current_epoch + 1} (global step "
            f"{trainer.global_step}) although the training loss stayed finite: the weights have "
            f"diverged. They are saved in {path}; no best.ckpt comes from this epoch. "
            + self.ADVICE)

    @staticmethod
    def _save(trainer, name: str) -> Path:
        path = trainer_run_folder(trainer) / "checkpoints" / name
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
        # (The epoch's training averages are only aggregated after validation: metrics.csv has them.)
        parts = format_metrics(trainer.callback_metrics, "val", ("loss", "top1"))
        print(f"  epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: {parts} "
              f"({time.perf_counter() - self._start:.0f} s)", flush=True)


# How the command line prints a metric (logged as a fraction, printed in %): one format for the
# per-epoch lines and the results of validate and test.
METRIC_FORMATS = {"loss": ("loss", 1, ".3f", ""), "top1": ("top-1", 100, ".1f", "%"),
                  "top5": ("top-5", 100, ".1f", "%")}


def format_metrics(metrics, stage: str, names=("loss", "top1", "top5")) -> str:
    """``"val loss 2.295, val top-1 18.8%"``: the ``stage/name`` metrics that are present."""
    return ", ".join(f"{stage} {label} {float(metrics[f'{stage}/{name}']) * scale:{spec}}{unit}"
                     for name in names if f"{stage}/{name}" in metrics
                     for label, scale, spec, unit in [METRIC_FORMATS[name]])


def results_line(metrics, stage: str) -> str:
    """What validate and test print: ``"Results: test loss 2.296, test top-1 15.0%, test top-5
    60.0% (20 images)"``, in the per-epoch lines' units (Lightning's table gives fractions)."""
    images = metrics.get(f"{stage}/images")
    counted = f" ({int(images)} images)" if images is not None else ""
    return f"Results: {format_metrics(metrics, stage)}{counted}"


class PredictionWriter(BasePredictionWriter):
    """Writes ``predictions.csv`` in the run folder after ``predict``.

    One row per image of the predict split: its path, the true and the
    predicted class, the top-1 probability and the top-5 classes as a JSON
    list (``["hot dog", "dog", ...]``: class names may hold spaces).
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
        path = trainer_run_folder(trainer) / self.FILENAME

        def name(label: int) -> str:
            return names[label] if label < len(names) else str(label)

        rows = []
        for row, index in enumerate(indices or range(len(probabilities))):
            image, label = dataset.samples[index] if hasattr(dataset, "samples") else (index, -1)
            best = top5.indices[row].tolist()
            rows.append((index, [image, name(label) if label >= 0 else "", name(best[0]),
                                 f"{top5.values[row, 0].item():.4f}",
                                 json.dumps([name(i) for i in best])]))
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
