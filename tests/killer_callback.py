"""A callback that kills its own process mid-epoch, as a preempted cluster job would be.

Used by test_training.py through ``--trainer.callbacks+=killer_callback.KillMidEpoch``.
"""
import os
import signal

from lightning.pytorch.callbacks import Callback


class KillMidEpoch(Callback):
    def __init__(self, epoch: int = 1, batch: int = 1):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)  # no clean-up, no final checkpoint
