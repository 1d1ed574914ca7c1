"""Lightning training: the classifier module that holds the science of a run.

The LightningModule holds the science (model, loss, metrics, optimiser,
learning-rate schedule); the Trainer and the callbacks hold the engineering
(checkpoints, logging, instability guards). ``python -m involution fit
--config NAME`` drives it all through LightningCLI (see :mod:`involution.train.cli`).
The pieces live beside it in :mod:`involution.train`: ``optimization``
(optimisers, schedules), ``callbacks``, ``checkpoints``, ``loggers`` and
``runs`` (the run folder).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass

from involution._extras import require_extra

require_extra("train", "lightning", "torchmetrics", feature="Training (involution.train.module)")

import lightning as L  # noqa: E402 -- after the check above, which explains a missing extra
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torchmetrics import MetricCollection  # noqa: E402
from torchmetrics.aggregation import SumMetric  # noqa: E402
from torchmetrics.classification import MulticlassAccuracy  # noqa: E402

from involution.analysis.complexity import count_parameters  # noqa: E402
from involution.models import create_model  # noqa: E402
from involution.train.checkpoints import read_checkpoint  # noqa: E402
from involution.train.optimization import OptimizerConfig, ScheduleConfig, build_schedule  # noqa: E402

__all__ = ["ImageClassifier"]


def _as_config(value, config_class):
    """``value`` as a ``config_class``: checkpoints and YAML give plain dicts."""
    return config_class(**value) if isinstance(value, Mapping) else value


class ImageClassifier(L.LightningModule):
    """Train any registered model as an image classifier.

    Args:
        model_name: a name from :func:`involution.models.registry.list_models`.
        num_classes: classifier size; the CLI links it to the data module.
        pretrained: path to an official RedNet ImageNet checkpoint to start from.
        kernel_size, group_channels, reduction_ratio: involution options of the
            models that have them (``None`` keeps the official value).
        drop_rate: dropout before the classifier.
        label_smoothing: cross-entropy label smoothing.
        optimizer: the optimiser (:class:`~involution.train.optimization.OptimizerConfig`:
            name, lr, momentum, nesterov, weight_decay).
        schedule: the learning-rate schedule over the whole run, updated after
            every optimiser step (:class:`~involution.train.optimization.ScheduleConfig`:
            name, warmup_epochs, ...).
        channels_last: use the channels-last (NHWC) memory format. The
            convolutions run faster in it on GPUs and on recent CPUs (see
            the benchmark), and the involution kernels read it directly.
        recompute: RedNets only: generate the kernels again in backward instead
            of keeping them, for less memory at some time (the docs'
            Performance page); the gradients are the same. None: the model's default (off).
        planes, small_input: the ResNets' and RedNets' width (bottleneck planes of the
            first stage; official 64) and small-image stem (no max pool); None keeps the
            official model. The workbook's small-image variant sets both.
        zero_init_residual: start each residual block's last batch norm at zero (the
            official recipe's, None keeps it) or at one.
    """

    def __init__(self, model_name: str = "rednet26", num_classes: int = 257,
                 pretrained: str | None = None, kernel_size: int | None = None,
                 group_channels: int | None = None, reduction_ratio: int | None = None,
                 drop_rate: float = 0.0, label_smoothing: float = 0.0,
                 optimizer: OptimizerConfig = OptimizerConfig(),
                 schedule: ScheduleConfig = ScheduleConfig(), channels_last: bool = True,
                 recompute: bool | None = None, planes: int | None = None,
                 small_input: bool | None = None, zero_init_residual: bool | None = None):
        super().__init__()
        self.optimizer_config = _as_config(optimizer, OptimizerConfig)
        self.schedule_config = _as_config(schedule, ScheduleConfig)
        self.save_hyperparameters()
        # Recorded as plain values (checkpoints are read with weights_only=True,
        # and results.json and hparams.yaml are read by people and by other programs).
        for key in ("optimizer", "schedule"):
            if is_dataclass(self.hparams[key]):
                self.hparams[key] = asdict(self.hparams[key])
        options = {"kernel_size": kernel_size, "group_channels": group_channels,
                   "reduction_ratio": reduction_ratio, "recompute": recompute,
                   "planes": planes, "small_input": small_input, "zero_init_residual": zero_init_residual}
        # Only the options set: the model registry refuses, by name, those a model does not take.
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
        # How many images a test scored, summed over processes: only a test of the whole
        # split, each image once, becomes the run's test score (RunSummary checks).
        self.test_images = SumMetric()

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
        self._apply_optimizer_settings(checkpoint)

    def _apply_optimizer_settings(self, checkpoint: dict) -> None:
        """A resumed fit keeps the optimiser's state (momentum, moment estimates) but trains with this
        module's settings: restoring the state would otherwise bring back the checkpoint's
        weight decay and momentum. (The learning rate is the schedule's, from this module's ``lr``.)

        Called before Lightning restores the optimiser from ``checkpoint``.
        """
        if not checkpoint.get("optimizer_states"):
            return
        settings = self.optimizer_config.build([nn.Parameter(torch.zeros(1))]).defaults
        for state in checkpoint["optimizer_states"]:
            for group in state.get("param_groups", []):
                group.update({key: settings[key] for key in ("weight_decay", "momentum", "nesterov")
                              if key in group and key in settings})
                if "initial_lr" in group:
                    group["initial_lr"] = settings["lr"]

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
        self.test_images.update(len(batch[1]))
        self.log("test/images", self.test_images, on_step=False, on_epoch=True)

    def predict_step(self, batch, batch_idx):
        images, labels = batch
        probabilities = self(images).softmax(dim=1)
        return {"probabilities": probabilities, "labels": labels}

    # -- optimisation ---------------------------------------------------------

    def _check_schedule_covers_resume(self, total_steps: int, steps_per_epoch: int) -> None:
        """A resumed fit's schedule, rebuilt over this command's steps, must reach every step it trains.

        The schedule goes on from the checkpoint's step count. With fewer steps an epoch than the
        run took (a larger batch, fewer batches, gradient accumulation) it would end before the
        last epoch does, and every step after its end would train at its end value: a learning
        rate of 0 for cosine, with the epochs recorded as trained.
        """
        trainer = self.trainer
        ckpt_path = trainer.ckpt_path
        if trainer.state.fn != "fit" or not ckpt_path or not os.path.isfile(ckpt_path) \
                or trainer.max_epochs is None or trainer.max_epochs < 0:  # a new fit, or no end to reach
            return
        checkpoint = read_checkpoint(ckpt_path)
        taken, epochs_done = int(checkpoint.get("global_step", 0)), int(checkpoint.get("epoch", -1)) + 1
        needed = max(0, trainer.max_epochs - epochs_done) * steps_per_epoch
        if epochs_done > 0 and taken + needed > total_steps:
            raise ValueError(
                f"this resume cannot continue its learning-rate schedule: the run has taken {taken} optimiser "
                f"steps in {epochs_done} epochs, its remaining {trainer.max_epochs - epochs_done} epochs take "
                f"{needed} more at {steps_per_epoch} steps an epoch, but the schedule, rebuilt over "
                f"{trainer.max_epochs} epochs of this command, ends at step {total_steps}: the last "
                f"{taken + needed - total_steps} steps would train at its end value (a learning rate of 0 for "
                f"cosine). Resume with the batch size, batch limits and gradient accumulation the run was "
                f"trained with ({taken // epochs_done} steps an epoch), or train a new run with the new settings")

    def configure_optimizers(self):
        optimizer = self.optimizer_config.build(self.parameters())
        total_steps = int(self.trainer.estimated_stepping_batches)
        steps_per_epoch = max(1, total_steps // max(1, self.trainer.max_epochs or 1))
        self._check_schedule_covers_resume(total_steps, steps_per_epoch)
        schedule = build_schedule(optimizer, self.schedule_config, total_steps, steps_per_epoch)
        # interval "step": the schedule advances after every optimiser step, so
        # a 150-epoch cosine decays smoothly over all 150 epochs.
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": "step", "frequency": 1}}
