"""What a run prints: the run, not the libraries' chatter.

Lightning logs, at info level, what it found and did not use ("GPU available:
False ...", "TPU available: ..."), advertisements for its cloud services
("💡 Tip: ..."), the seed, the checkpoint it restores and why a fit stopped; and it
warns about a deprecation inside itself (torch's pytree ``LeafSpec``). Nothing of
it is anything a user of this package can act on: the command line and the
notebooks leave it out (``--verbose`` brings it back). Lightning's warnings about
a run itself (too few batches for the logging interval, a GPU left unused, few
data loader workers) stay.
"""
from __future__ import annotations

import contextlib
import logging
import warnings

__all__ = ["quiet_lightning", "lightning_quieted", "EVALUATION_NOTES", "RESUME_NOTES"]

LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")
# Warnings about nothing a user could change.
LIBRARY_WARNINGS = (
    # A deprecation inside Lightning itself (torch's pytree API).
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
    # The model summary sizes a mixed-precision model in float32 bytes: a note on its own
    # estimate, printed on every fit on a CPU with bfloat16 (see default_precision).
    r"Precision .* is not supported by the model summary.*",
)
# Notes Lightning makes about what this command line does by design, for the commands
# that do it. An evaluation writes into a folder of its own (<run>/evaluations/...), so
# its checkpoint callbacks' folder differs from the one they were saved with; a resumed
# fit goes on writing checkpoints into its run's folder. (A fit resumed from a checkpoint
# outside its run folder gets the first note too, where it says that the tracking of the
# best checkpoint starts again: there it stays.)
EVALUATION_NOTES = (r"The dirpath has changed from ",)
RESUME_NOTES = (r"Checkpoint directory .* exists and is not empty",)


def quiet_lightning(notes: tuple[str, ...] = ()) -> None:
    """Leave Lightning's chatter out of this process's output from now on, and the warnings
    matching ``notes`` (:data:`EVALUATION_NOTES`, :data:`RESUME_NOTES`)."""
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in LIBRARY_WARNINGS + tuple(notes):
        warnings.filterwarnings("ignore", message=pattern)


@contextlib.contextmanager
def lightning_quieted(notes: tuple[str, ...] = ()):
    """:func:`quiet_lightning` inside the block; the loggers' levels and the warning filters
    are as they were again after it."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        quiet_lightning(notes)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)
