"""Reading a checkpoint file with a clear diagnosis: a training run's, or any file ``torch.save`` wrote.

Low in the package (it needs only torch) so that loading a trained model for
inference (:mod:`involution.models.hub`) and the training command line share it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

__all__ = ["CheckpointError", "read_checkpoint"]


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
