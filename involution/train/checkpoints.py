"""Checkpoints that survive a killed job or a moved run: written atomically, read with a clear diagnosis."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from involution.models.checkpoint_file import CheckpointError, read_checkpoint
from involution.train.runs import write_atomically

__all__ = ["AtomicCheckpointIO", "CheckpointError", "RunCheckpoint", "read_checkpoint"]


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


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, which keeps its record of the best score wherever the run folder is.

    Lightning restores the best score (and the paths of the files it keeps)
    only when the folder is written exactly as when the checkpoint was saved:
    a run started with ``default_root_dir: runs`` and resumed with an absolute
    ``--ckpt_path``, or moved from Google Drive to a local disk, lost its best
    score with a mere warning, and the next epoch replaced ``best.ckpt`` even
    when it was worse. When the checkpoint being restored lies in this
    callback's own folder, the saved state is this run's: its paths are moved
    into the folder as it is written now, and all of it is restored.
    """

    PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")

    @property
    def state_key(self) -> str:
        # Named as Lightning's own callback: checkpoints written with ModelCheckpoint
        # (runs started before this class) restore into this one and back.
        return ModelCheckpoint.__qualname__ + super().state_key.removeprefix(type(self).__qualname__)

    # Lightning runs checkpoint callbacks after all others, so a callback that must describe
    # the files as just written (the run's record) is told here, once the files are on disk.
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        self._tell_followers(trainer, pl_module, epoch_finished=True)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if not trainer.sanity_checking:  # a validation in the middle of an epoch leaves it unfinished
            self._tell_followers(trainer, pl_module,
                                 epoch_finished=trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)

    def _tell_followers(self, trainer, pl_module, epoch_finished: bool) -> None:
        for callback in trainer.callbacks:
            if hasattr(callback, "checkpoints_written"):
                callback.checkpoints_written(trainer, pl_module, self, epoch_finished)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        # Called before any callback's load_state_dict, with the checkpoint they read from.
        state = (checkpoint.get("callbacks") or {}).get(self.state_key)
        saved = (state or {}).get("dirpath")
        if not saved or not self.dirpath or saved == self.dirpath or not trainer.ckpt_path:
            return
        if Path(trainer.ckpt_path).resolve().parent != Path(self.dirpath).resolve():
            return  # another run's checkpoint: its best score is not this run's (Lightning's rule)

        def moved(path):
            return os.path.join(self.dirpath, Path(path).name) if path and Path(path).parent == Path(saved) else path
        state.update({key: moved(state.get(key)) for key in self.PATH_KEYS if key in state})
        state["best_k_models"] = {moved(path): score for path, score in state.get("best_k_models", {}).items()}
        state["dirpath"] = self.dirpath
