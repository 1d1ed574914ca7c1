"""Loggers: a CSV log that survives a resumed run, and Weights & Biases when it is configured."""
from __future__ import annotations

import csv
import importlib.util
import io
import math
import netrc
import os
import sys
import warnings

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from involution._extras import MissingExtraError
from involution.train.runs import write_atomically

__all__ = ["ResumableCSVLogger", "wandb_configured", "wandb_init_timeout", "start_wandb_logger",
           "finish_wandb_run"]


class _RunLogWriter(ExperimentWriter):
    """Lightning's CSV writer, which never leaves the run without its ``metrics.csv``.

    Lightning's writer deletes an existing ``metrics.csv`` when it starts, and
    rewrites the file in place whenever a new column appears: a job killed at
    either moment lost the run's whole training log. This one keeps the file it
    is given (``keep_log``: a resumed run's, already trimmed by the logger) and
    rewrites it in one step (:func:`~involution.train.runs.write_atomically`).
    """

    def __init__(self, log_dir: str, keep_log: bool = False):
        self._keep_log = keep_log  # read by _check_log_dir_exists, which super().__init__ calls
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # where Lightning deletes metrics.csv
        if not self._keep_log:
            super()._check_log_dir_exists()

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with open(self.metrics_file_path, newline="") as file:
            rows = list(csv.DictReader(file))
        text = _csv_text(fieldnames, rows)
        write_atomically(self.metrics_file_path, lambda file: file.write(text))


def _csv_text(header, rows) -> bytes:
    text = io.StringIO()
    table = csv.DictWriter(text, fieldnames=list(header))
    table.writeheader()
    table.writerows(rows)
    return text.getvalue().encode()


class ResumableCSVLogger(CSVLogger):
    """A CSVLogger whose ``metrics.csv`` and ``hparams.yaml`` survive a resumed run.

    When a run resumes from the checkpoint of epoch E, this logger keeps the
    rows of epochs <= E of the run's ``metrics.csv`` (rows of the epoch that
    was interrupted are dropped, since that epoch is trained again) and the
    log goes on where it was. The file is never removed: it is replaced in one
    step by its trimmed version, so a job killed at any moment leaves a whole
    log. The earlier log is read and checked when the logger is made, before
    anything is written: a malformed row stops the resume with its line
    number, and the log stays as it was. A resumed run also keeps the
    ``hparams.yaml`` of its start: the CLI saves the resumed command's settings
    in ``config-resumed-<time>.yaml``.

    The arguments are those of :class:`lightning.pytorch.loggers.CSVLogger`, and:

    Args:
        keep_through_epoch: when resuming from a checkpoint saved at the end
            of this epoch, the rows logged after it are dropped.
    """

    def __init__(self, *args, keep_through_epoch: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.keep_through_epoch = keep_through_epoch
        # (header, rows kept, whether the file must be rewritten) of the earlier log; None: a new log
        self._earlier = self._read_earlier_log() if keep_through_epoch is not None else None

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        os.makedirs(self.root_dir, exist_ok=True)
        keep_log = bool(self._earlier and self._earlier[0])
        if keep_log:
            header, rows, trimmed = self._earlier
            if trimmed:  # in one step: a job killed now leaves the whole earlier log
                text = _csv_text(header, rows)
                write_atomically(self.metrics_file_path, lambda file: file.write(text))
        with warnings.catch_warnings():
            # The run folder already holds the command's config.yaml by design:
            # Lightning's "not empty" warning says nothing useful.
            warnings.filterwarnings("ignore", message=r"Experiment logs directory .* not empty")
            self._experiment = _RunLogWriter(self.log_dir, keep_log=keep_log)
        if keep_log:
            self._experiment.metrics_keys = list(self._earlier[0])  # later rows, same columns
        return self._experiment

    @property
    def metrics_file_path(self) -> str:
        return os.path.join(self.log_dir, ExperimentWriter.NAME_METRICS_FILE)

    def _read_earlier_log(self) -> tuple | None:
        path = self.metrics_file_path
        if not os.path.isfile(path):
            return None
        with open(path, newline="") as file:
            text = file.read()
        lines = text.splitlines(keepends=True)
        cut_off = bool(lines) and not lines[-1].endswith(("\n", "\r"))
        if cut_off:
            # A job killed while Lightning appended a row leaves it cut off: only the last
            # line can be, and its epoch is the interrupted one, trained again.
            print(f"The last line of {path} (line {len(lines)}) was cut off when the run "
                  "stopped: it is dropped.")
            lines = lines[:-1]
        reader = csv.DictReader(lines)
        header, kept, dropped = list(reader.fieldnames or []), [], 0
        for row in reader:
            epoch = self._epoch_of(row, header, path, reader.line_num)
            if epoch is None or epoch <= self.keep_through_epoch:
                kept.append(row)
            else:
                dropped += 1
        if dropped:
            # The log's epochs count from 0, the messages' from 1 (as the per-epoch lines do).
            print(f"Resuming after epoch {int(self.keep_through_epoch) + 1}: {dropped} rows of later epochs "
                  f"are dropped from {path}, since those epochs are trained again.")
        return header, kept, dropped > 0 or cut_off

    @staticmethod
    def _epoch_of(row: dict, header: list, path: str, line: int) -> float | None:
        """The row's epoch (None: a row logged outside epochs), or a ValueError naming the line."""
        problem = None
        if None in row:
            problem = f"it has {len(header) + len(row[None])} fields, the header {len(header)}"
        elif row.get("epoch"):
            try:
                return float(row["epoch"])
            except ValueError:
                problem = f"its epoch is {row['epoch']!r}, not a number"
        else:
            return None
        raise ValueError(
            f"{path}, line {line} is malformed ({problem}), so the run's training log cannot be "
            f"carried on. The log is unchanged: correct or delete that line, then resume again.")

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
    if importlib.util.find_spec("wandb") is None:  # an optional extra: CSV logs need none of it
        raise MissingExtraError(
            "W&B is configured here (a login, WANDB_API_KEY or WANDB_MODE), but wandb is not installed: "
            "pip install 'involution[wandb]' to log to W&B, or set WANDB_MODE=disabled to log to CSV only",
            name="wandb")
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
