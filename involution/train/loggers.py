"""Loggers: a CSV log that survives a resumed run, and Weights & Biases when it is configured."""
from __future__ import annotations

import csv
import io
import math
import netrc
import os
import sys
import warnings

from lightning.pytorch.loggers import CSVLogger

from involution.train.runs import write_atomically

__all__ = ["ResumableCSVLogger", "wandb_configured", "wandb_init_timeout", "start_wandb_logger",
           "finish_wandb_run"]


class ResumableCSVLogger(CSVLogger):
    """A CSVLogger whose ``metrics.csv`` and ``hparams.yaml`` survive a resumed run.

    Lightning's CSV writer deletes an existing ``metrics.csv`` when it starts.
    When a run resumes from the checkpoint of epoch E, this logger reads the
    file first, keeps the rows of epochs <= E (rows of the epoch that was
    interrupted are dropped, since that epoch is trained again) and puts them
    back once the writer exists, so the log goes on where it was. A resumed
    run also keeps the ``hparams.yaml`` of its start: the CLI saves the
    resumed command's settings in ``config-resumed-<time>.yaml``.

    Only Lightning's public API is used (the ``experiment`` writer, its
    ``metrics_file_path`` and ``metrics_keys``), so a new Lightning release
    cannot silently break resuming.

    The arguments are those of :class:`lightning.pytorch.loggers.CSVLogger`, and:

    Args:
        keep_through_epoch: when resuming from a checkpoint saved at the end
            of this epoch, the rows logged after it are dropped.
    """

    def __init__(self, *args, keep_through_epoch: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.keep_through_epoch = keep_through_epoch
        self._resumed_log = keep_through_epoch is None  # True once the earlier rows are back

    @property
    def experiment(self):
        # (header, rows) of the earlier log, read before the writer deletes the file
        earlier = None if self._resumed_log else self._read_earlier_log()
        with warnings.catch_warnings():
            # The run folder already holds the command's config.yaml (and, resuming, the
            # run's files) by design: Lightning's "not empty" warning says nothing useful.
            warnings.filterwarnings("ignore", message=r"Experiment logs directory .* not empty")
            writer = super().experiment
        self._resumed_log = True
        if earlier and earlier[0] and hasattr(writer, "metrics_file_path"):  # rank 0 writes
            header, rows = earlier
            writer.metrics_keys = list(header)  # later rows are written under the same columns
            text = io.StringIO()
            table = csv.DictWriter(text, fieldnames=header)
            table.writeheader()
            table.writerows(rows)
            # Atomically: a job killed now must not lose the run's metrics.
            write_atomically(writer.metrics_file_path,
                             lambda file: file.write(text.getvalue().encode()))
        return writer

    def _read_earlier_log(self) -> tuple:
        path = os.path.join(self.log_dir, "metrics.csv")
        if not os.path.isfile(path):
            return ((), ())
        with open(path, newline="") as file:
            reader = csv.DictReader(file)
            header, rows = list(reader.fieldnames or []), list(reader)
        kept = [row for row in rows
                if not row.get("epoch") or float(row["epoch"]) <= self.keep_through_epoch]
        if len(kept) < len(rows):
            print(f"Resuming after epoch {self.keep_through_epoch}: {len(rows) - len(kept)} rows "
                  f"of later epochs are dropped from {path}, since those epochs are trained again.")
        return header, kept

    def log_hyperparams(self, params=None) -> None:
        resuming = self.keep_through_epoch is not None
        if resuming and os.path.isfile(os.path.join(self.log_dir, "hparams.yaml")):
            return  # the run's hparams.yaml records how it started
        super().log_hyperparams(params)


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

    finish_wandb_run()  # one left open by a command that failed: this command gets its own
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


def finish_wandb_run() -> None:
    """End this process's W&B run, if one is open.

    Lightning leaves it open after ``fit``, and the next run's logger would
    then log into it: a notebook training several seeds would fill one W&B
    run. A later command of the same run (``test``) resumes it by its id.
    """
    wandb = sys.modules.get("wandb")  # never imported: nothing to finish
    if wandb is not None and wandb.run is not None:
        wandb.finish()
