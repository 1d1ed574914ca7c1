"""Checkpoints that survive a killed job: written atomically, read with a clear diagnosis."""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from involution.train.runs import write_atomically

__all__ = ["AtomicCheckpointIO", "CheckpointError", "read_checkpoint"]


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
