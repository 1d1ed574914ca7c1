"""``python -m involution fit|validate|test|predict --config RECIPE [--model.model_name NAME]``.

A LightningCLI over :class:`~involution.train.module.ImageClassifier` and
:class:`~involution.data.module.Caltech256DataModule`. On top of Lightning's own
behaviour it finds the shipped recipes by name (:mod:`involution.train.configs`) and
decides where a run lives and how it is logged:

* every run gets a folder ``<trainer.default_root_dir>/<run_name>/<version>``
  (``run_name`` defaults to ``<model>_<recipe>``, the recipe being the first
  config file's name, ``version`` is the start time) holding ``metrics.csv``,
  ``results.json``, ``config.yaml``, ``hparams.yaml`` and
  ``checkpoints/best.ckpt`` (best val top-1) and ``checkpoints/last.ckpt``;
* given ``--ckpt_path`` inside such a folder, fit resumes that same run
  (same folder, same metrics file, same W&B run; the resumed command's
  settings go to ``config-resumed-<time>.yaml``), and validate/test/predict
  evaluate it: each writes its own files (config, metrics, predictions)
  into ``<run>/evaluations/<time>-<command>/`` and adds an entry to the
  run's ``results.json``, never changing what the training recorded;
* a checkpoint is checked before anything is written: readable (not cut off
  mid-write), of the model the config names, for the data's classes (their
  names, stored in checkpoints), and the run's ``results.json`` readable; a
  resume must keep the run's data (image size, split, classes, images) and
  optimiser, and trains with the command's other model options, printing
  those that differ from the checkpoint's (docs/training-resume.md);
  checkpoints are written atomically (:class:`~involution.train.checkpoints.AtomicCheckpointIO`)
  and keep their best score wherever the run folder is
  (:class:`~involution.train.checkpoints.RunCheckpoint`);
* W&B logs when it is configured (logged in, ``WANDB_API_KEY`` or
  ``WANDB_MODE=offline``); a CSV log is always written as well;
* unless the config sets ``trainer.precision``, 16-bit mixed precision is
  on wherever the hardware computes it natively: a GPU, or a CPU with
  bfloat16 instructions (float32 on other CPUs; :func:`~involution.ops.functional.default_precision`);
* the recipe chooses the optimiser and schedule (``model.optimizer``,
  ``model.schedule``); LightningCLI's own ``--optimizer``/``--lr_scheduler``
  flags, which would silently replace both, do not exist here;
* with several processes (``--trainer.devices 2 --trainer.strategy ddp``, or
  ``--trainer.num_nodes`` under SLURM) every file is written once, by
  global rank 0, into rank 0's run folder;
* it prints the run: its folder, one line per epoch (or Lightning's progress
  bar, on a terminal), the results, and warnings that point at a problem;
  Lightning's other messages (accelerators found, advertisements, notes on
  its internals, see :mod:`involution.train.quiet`) only with ``--verbose``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import signal
import sys
import textwrap
import warnings
from pathlib import Path

from involution._extras import require_extra

require_extra("train", "lightning", "torchmetrics", "jsonargparse", "yaml",
              feature="The training command line (python -m involution fit/validate/test/predict)")

import lightning  # noqa: E402 -- after the check above, which explains a missing extra
import yaml  # noqa: E402
from jsonargparse import ActionConfigFile, DefaultHelpFormatter  # noqa: E402
from lightning.pytorch.callbacks import LearningRateMonitor  # noqa: E402
from lightning.pytorch.cli import LightningCLI  # noqa: E402
from lightning.pytorch.plugins.io import CheckpointIO  # noqa: E402
from lightning.pytorch.utilities import rank_zero_only  # noqa: E402
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException  # noqa: E402

from involution._notices import said_before  # noqa: E402
from involution.data import Caltech256DataModule  # noqa: E402
from involution.data.module import SAMPLE_SET_NOTICE_KEY  # noqa: E402
from involution.ops.functional import default_precision  # noqa: E402
from involution.train.apply import image_paths_in, predict_images_main  # noqa: E402
from involution.train.callbacks import EpochPrinter, KernelStatsMonitor, NonFiniteLossGuard, PredictionWriter  # noqa: E402
from involution.train.checkpoints import AtomicCheckpointIO, CheckpointError, RunCheckpoint, read_checkpoint  # noqa: E402
from involution.train.configs import list_configs, resolve_config_args  # noqa: E402
from involution.train.loggers import ResumableCSVLogger, finish_wandb_run, start_wandb_logger, wandb_configured  # noqa: E402
from involution.train.module import ImageClassifier  # noqa: E402
from involution.train.quiet import EVALUATION_NOTES, RESUME_NOTES, lightning_quieted  # noqa: E402
from involution.train.runs import (  # noqa: E402
    RESULTS_FILE,
    RunResults,
    RunSummary,
    new_version_folder,
    run_folder_of_checkpoint,
)
from involution.train.runs.lock import is_first_process, lock_run  # noqa: E402

__all__ = ["InvolutionCLI", "run_cli", "run_folder_of_checkpoint", "check_checkpoint_architecture",
           "check_checkpoint_classes"]


# The model options that decide the architecture: a checkpoint of another
# architecture cannot be what the config asks for.
ARCHITECTURE_OPTIONS = ("model_name", "kernel_size", "group_channels", "reduction_ratio")
# The data settings a resumed run keeps: they choose the images it trains on, and their size.
RESUMED_DATA_SETTINGS = ("image_size", "split", "split_seed", "include_clutter")
# Model options a resumed fit takes from the command, not from the checkpoint (LightningCLI's
# choice): all but the architecture, the classes and the starting weights.
NOT_RESUMED_FROM_COMMAND = (*ARCHITECTURE_OPTIONS, "num_classes", "pretrained")
# Lightning's own ``--ckpt_path`` values, which name no file.
LIGHTNING_CKPT_KEYWORDS = ("best", "last", "hpc")
# Lightning reads an int as a number of batches and a float as a fraction of the
# set, but its type (float | int) makes the parser turn "1" into 1.0: the whole set.
BATCH_LIMITS = ("limit_train_batches", "limit_val_batches", "limit_test_batches",
                "limit_predict_batches")


def _is_checkpoint_file(ckpt_path) -> bool:
    text = str(ckpt_path or "")
    return bool(text) and text not in LIGHTNING_CKPT_KEYWORDS and not text.startswith("registry")


def check_checkpoint_architecture(checkpoint: dict, ckpt_path, model_config) -> None:
    """Refuse a checkpoint whose architecture differs from the config's model.

    LightningCLI replaces the config's model options with the checkpoint's,
    so ``--model.model_name resnet26 --ckpt_path <a RedNet>`` would quietly
    load the RedNet. Options the config leaves at None are not compared.
    """
    saved = checkpoint.get("hyper_parameters") or {}
    differ = {key: (model_config.get(key), saved.get(key)) for key in ARCHITECTURE_OPTIONS
              if key in saved and model_config.get(key) is not None
              and model_config.get(key) != saved[key]}
    if differ:
        listed = ", ".join(f"model.{key}: {wanted!r} in the config, {found!r} in the checkpoint"
                           for key, (wanted, found) in differ.items())
        fix = " ".join(f"--model.{key} {found}" for key, (_, found) in differ.items())
        raise ValueError(
            f"the checkpoint {ckpt_path} is not the model the config asks for ({listed}). "
            f"Use a checkpoint of that model, or pass {fix} to use this one. Nothing was written.")


def check_checkpoint_classes(checkpoint: dict, ckpt_path, model, datamodule) -> None:
    """Refuse a checkpoint trained on other classes than the data has: another count, or other names.

    A checkpoint trained on 10 classes would run on any 10 classes, and its
    outputs would be given their names. Checkpoints written before they stored
    class names are used with a warning.
    """
    saved = (checkpoint.get("hyper_parameters") or {}).get("num_classes")
    if saved is not None and saved != model.hparams.num_classes:
        raise ValueError(
            f"the checkpoint {ckpt_path} was trained for {saved} classes but the data "
            f"({datamodule!r}) has {model.hparams.num_classes}. Evaluate or resume it on the data "
            "it was trained on (its data settings are in its run's config.yaml), or fine-tune "
            "from official weights with model.pretrained. Nothing was written.")
    names = (checkpoint.get(type(datamodule).__qualname__) or {}).get("class_names")
    if names is None:
        warnings.warn(f"the checkpoint {ckpt_path} records no class names (it was written before "
                      f"checkpoints stored them): that it was trained on the classes of {datamodule!r} "
                      "cannot be checked.", UserWarning, stacklevel=2)
        return
    mismatch = datamodule.classes_differ(names)
    if mismatch:
        raise ValueError(
            f"the checkpoint {ckpt_path} was trained on other classes than the data has, and its outputs "
            f"would be given the data's class names. {mismatch} Evaluate or resume it on the data it was "
            "trained on (its data settings are in its run's config.yaml). Nothing was written.")


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def check_resume_data(checkpoint: dict, ckpt_path, datamodule) -> None:
    """Refuse to resume a run on other data than it started with, naming each difference.

    The settings that choose the images (``RESUMED_DATA_SETTINGS``) must be the
    run's; then the images each split holds must be the run's, compared by
    their fingerprints, so that the data may move (another ``root``, a copy on
    a local disk) but not change. Checkpoints written before they stored
    fingerprints are checked on the settings and the root as written.
    """
    saved = checkpoint.get("datamodule_hyper_parameters") or {}
    differences = [f"data.{key}: {_plain(saved[key])!r} in the run, {_plain(datamodule.hparams[key])!r} now"
                   for key in RESUMED_DATA_SETTINGS
                   if key in saved and _plain(saved[key]) != _plain(datamodule.hparams[key])]
    fingerprints = (checkpoint.get(type(datamodule).__qualname__) or {}).get("split_fingerprints")
    if fingerprints and not differences:  # the same settings: do they give the run's images?
        now = datamodule.split_fingerprints()
        differences += [f"the {name} split holds other images than the run's (split file now: "
                        f"{datamodule.split_path})" for name in fingerprints if fingerprints[name] != now.get(name)]
    if differences:
        raise ValueError(
            f"the run of {ckpt_path} cannot be resumed on other data than it started with: "
            f"{'; '.join(differences)}. Its remaining epochs would train on data its record does not "
            "describe. Resume with the run's data settings (they are in its config.yaml), or start a "
            "new run. Nothing was written.")
    if not fingerprints and str(saved.get("root")) != str(datamodule.hparams.root):
        warnings.warn(f"the checkpoint {ckpt_path} records no split fingerprints (it was written before "
                      f"checkpoints stored them) and the run's data root was {saved.get('root')!r}, now "
                      f"{datamodule.hparams.root!r}: that these hold the same images cannot be checked.",
                      UserWarning, stacklevel=2)


def _leaves(value, prefix: str) -> dict:
    """``{"model.optimizer.lr": 0.002, ...}``: the settings below ``value`` (dicts and Namespaces)."""
    if hasattr(value, "as_dict"):
        value = value.as_dict()
    if not isinstance(value, dict):
        return {prefix: _plain(value)}
    return {name: leaf for key, item in value.items() for name, leaf in _leaves(item, f"{prefix}.{key}").items()}


def check_resume_checkpoints(ckpt_path) -> None:
    """A resume ends by reading its run's ``best.ckpt``: a damaged one stops it before training, not
    after every remaining epoch has run."""
    run_dir = run_folder_of_checkpoint(ckpt_path)
    best = run_dir / "checkpoints" / "best.ckpt" if run_dir is not None else None
    if best is None or not best.is_file() or best.resolve() == Path(ckpt_path).resolve():
        return
    try:
        read_checkpoint(best)
    except CheckpointError as error:
        raise CheckpointError(f"this resume needs the run's best checkpoint too (it ends by reading it), and "
                              f"{error}") from error


def classes_to_train(datamodule) -> int:
    """The model's classes, from the data: two at least (with one, torchmetrics failed while the
    model was built, naming neither the data nor its folder)."""
    if datamodule.num_classes < 2:
        raise ValueError(f"{datamodule.categories_dir} has one class folder ({datamodule.class_folders[0]}): a "
                         "classifier needs at least two. Put each class's images in a folder of its own there")
    return datamodule.num_classes


def check_max_epochs(trainer_config: dict) -> None:
    """``max_epochs: 0`` trains nothing, yet the run would be recorded as finished."""
    if trainer_config.get("max_epochs") == 0:
        raise ValueError("trainer.max_epochs is 0, so this fit would train nothing; set it to the number of "
                         "epochs the run should have in all (for a resumed run, its epochs so far plus the new ones)")


def check_resume_optimizer(checkpoint: dict, ckpt_path, model_config) -> None:
    """Refuse to resume with another optimiser: its saved state (momentum, Adam's moments) is the checkpoint's."""
    saved = ((checkpoint.get("hyper_parameters") or {}).get("optimizer") or {}).get("name")
    asked = _leaves(model_config, "model").get("model.optimizer.name")
    if saved is not None and asked is not None and saved != asked:
        raise ValueError(
            f"model.optimizer.name: {asked!r} now, {saved!r} in the checkpoint {ckpt_path}. A resumed fit "
            "goes on with the optimiser's saved state (momentum or Adam's moment estimates), which belongs "
            f"to {saved}. Resume with --model.optimizer.name {saved}, or start a new run from the "
            "checkpoint's weights. Nothing was written.")


@contextlib.contextmanager
def _rank_zero_speaks():
    """Silence this process unless it is global rank 0.

    Ranks started by SLURM or torchrun cannot know rank 0's run folder before
    the processes connect (Lightning then broadcasts it, and every file goes
    there); what they would print about their own guess is wrong, and the
    rest repeats rank 0.
    """
    if rank_zero_only.rank == 0:
        yield
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            yield


def _csv_logger(log_dir: Path, resume_epoch: int | None = None) -> ResumableCSVLogger:
    return ResumableCSVLogger(save_dir=log_dir.parent, name="", version=log_dir.name,
                              keep_through_epoch=resume_epoch)


_said_csv_only = False  # the "W&B is not configured" note is printed once per process


def _loggers(run_dir: Path, resume_epoch: int | None, csv_dir: Path | None = None) -> list:
    """The CSV logger (in ``csv_dir``, default the run folder) and W&B's, reporting into the run."""
    global _said_csv_only
    csv_dir = csv_dir or run_dir
    csv_logger = _csv_logger(csv_dir, resume_epoch if csv_dir == run_dir else None)
    if not wandb_configured():
        why = "" if _said_csv_only else (
            " (W&B is not configured: no login, WANDB_API_KEY or WANDB_MODE=offline)")
        print(f"Logging to CSV only, in {csv_dir}{why}")
        _said_csv_only = True
        return [csv_logger]
    run_id = re.sub(r"[^A-Za-z0-9_-]", "-", f"{run_dir.parent.name}-{run_dir.name}")
    wandb_logger = start_wandb_logger(project=os.environ.get("WANDB_PROJECT", "involution"),
                                      name=f"{run_dir.parent.name}/{run_dir.name}", id=run_id,
                                      save_dir=str(run_dir), resume="allow")
    if wandb_logger is None:  # W&B could not start: it has warned, the CSV log goes on
        return [csv_logger]
    # The CSV logger comes first: it defines the run folder and checkpoint place.
    return [csv_logger, wandb_logger]


def _description() -> str:
    return "\n\n".join([
        textwrap.fill("Train and evaluate the models of this package (fit, validate, test, predict: a "
                      "LightningCLI; add --help after one for its options). The other commands: "
                      "python -m involution --help.", 79),
        textwrap.fill("--config takes a YAML file, or the name of a recipe shipped with the "
                      f"package: {', '.join(list_configs())}. A recipe sets the data, trainer, "
                      "optimiser and schedule; choose the model with --model.model_name "
                      "(default: the recipe's).", 79),
        "Example: python -m involution fit --config shapes --model.model_name resnet26",
    ])


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the description's lines kept as written."""


class InvolutionCLI(LightningCLI):
    """Lightning's command line with this package's recipes, run folders and checkpoint checks
    (see the module's description)."""

    def __init__(self, args=None, run: bool = True):
        self._checkpoint = None  # the --ckpt_path file's contents, once read
        self._asked_model = None  # a fit from a checkpoint: the command's model options
        self._resume_changes = {}  # {option: [the checkpoint's value, the command's]}
        self._batch_limits = {}  # the --trainer.limit_*_batches given as whole numbers
        # Lightning's chatter is left out (unless --verbose) from the parsing of the
        # arguments to the end of the command, then the process is as it was.
        with contextlib.ExitStack() as self._quiet:
            self._init_lightning_cli(args, run)

    def _init_lightning_cli(self, args, run: bool) -> None:
        super().__init__(
            ImageClassifier, Caltech256DataModule, args=args, run=run,
            # The recipe's model.optimizer and model.schedule are the run's: Lightning's
            # --optimizer/--lr_scheduler would replace both without a word.
            auto_configure_optimizers=False,
            parser_kwargs={"prog": "python -m involution", "description": _description(),
                           "formatter_class": _HelpFormatter},
            trainer_defaults={"callbacks": [
                RunCheckpoint(monitor="val/top1", mode="max", filename="best",
                              enable_version_counter=False),
                # Lightning's save_last rewrites last.ckpt only when best.ckpt
                # changes, so a resumed run would lose every epoch since the last
                # improvement; this one writes last.ckpt after every epoch.
                RunCheckpoint(filename="last", enable_version_counter=False),
                LearningRateMonitor(logging_interval="step"),
                KernelStatsMonitor(every_n_steps=50),
                NonFiniteLossGuard(),
                EpochPrinter(),
                RunSummary(),
                PredictionWriter(),
            ]},
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's commands and the Trainer arguments they do not offer: here also
        validate's and test's ``verbose`` (whether to print the results, which they always
        do here), whose flag is this command line's --verbose."""
        commands = LightningCLI.subcommands()
        return {name: skipped | {"verbose"} if name in ("validate", "test") else skipped
                for name, skipped in commands.items()}

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if subcommand in ("validate", "test"):  # Lightning's own flag for this is our --verbose
            # Its table prints fractions; after_fit prints the results in the epoch lines' units.
            kwargs["verbose"] = False
        return kwargs

    def init_parser(self, **kwargs):
        """Lightning's parser, whose --config also takes the name of a shipped recipe."""
        kwargs.setdefault("dump_header", [f"lightning.pytorch=={lightning.__version__}"])
        parser = self.parser_class(**kwargs)
        parser.add_argument("-c", "--config", action=ActionConfigFile,
                            help="A YAML config file, or the name of a shipped recipe ("
                                 f"{', '.join(list_configs())}). Several compose, later ones "
                                 "overriding earlier ones.")
        return parser

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data", "model.num_classes", compute_fn=classes_to_train, apply_on="instantiate")
        parser.add_argument("--run_name", type=str | None, default=None,
                            help="Folder name of the run under trainer.default_root_dir "
                                 "(default: <model>_<recipe>, the recipe being the first "
                                 "config's name).")
        parser.add_argument("--verbose", action="store_true",
                            help="Print all of Lightning's messages: the accelerators it found, "
                                 "its notes and tips (by default only the run, its results and "
                                 "the warnings that point at a problem).")
        parser.add_argument("--print_results", type=bool, default=True,
                            help="validate/test: print the results line (loss, top-1 and top-5 in percent; a "
                                 "notebook that prints the results itself passes false).")
        parser.add_argument("--kernel_stats_every_n_steps", type=int, default=50,
                            help="How often KernelStatsMonitor records the involution kernels' "
                                 "std and max |value| (they reach metrics.csv at the trainer's "
                                 "log_every_n_steps): lower both to watch a run diverge step by step.")
        # A progress bar on a terminal; elsewhere (a log file, a notebook) one line per epoch
        # (EpochPrinter), instead of a bar's every redraw.
        parser.set_defaults({"trainer.default_root_dir": "runs",
                             "trainer.enable_progress_bar": sys.stdout.isatty()})

    def parse_arguments(self, parser, args) -> None:
        if args is None or isinstance(args, (list, tuple)):
            # Parsed here rather than by Lightning, which warns whenever a list is
            # given while the process has command-line arguments (a notebook's).
            try:
                args = resolve_config_args(list(args) if args is not None else sys.argv[1:])
            except FileNotFoundError as error:
                parser.error(str(error))
            self.config = parser.parse_args(args)
            self._keep_whole_batch_limits(args)
        else:  # a dict or Namespace of settings
            super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        settings = self.config[subcommand] if subcommand else self.config
        ckpt_path = settings.get("ckpt_path")
        if not settings.get("verbose"):
            self._quiet.enter_context(lightning_quieted(self._notes_by_design(subcommand, ckpt_path)))
        # Next, Lightning replaces the model options with the checkpoint's:
        # check the checkpoint against what the config asked for, first.
        if subcommand in ("validate", "test", "predict") and not ckpt_path \
                and not self.config[subcommand]["model"].get("pretrained"):
            # Otherwise it evaluated freshly initialised weights (chance level) and recorded them as a run.
            raise ValueError(f"{subcommand} needs weights: give the checkpoint to evaluate with --ckpt_path "
                             "RUN/checkpoints/best.ckpt (or official weights with --model.pretrained FILE)")
        if ckpt_path and not _is_checkpoint_file(ckpt_path):
            # Lightning would find and load that file itself, past the checks below (and past
            # weights-only loading where TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set).
            raise ValueError(f"--ckpt_path {ckpt_path}: Lightning's shortcut names no file, so this command "
                             "cannot check what it would load; give the checkpoint file's path, for example "
                             "runs/NAME/VERSION/checkpoints/last.ckpt")
        if _is_checkpoint_file(ckpt_path):
            checkpoint = read_checkpoint(ckpt_path)
            check_checkpoint_architecture(checkpoint, ckpt_path, self.config[subcommand]["model"])
            if subcommand == "fit":
                check_resume_optimizer(checkpoint, ckpt_path, self.config[subcommand]["model"])
                check_resume_checkpoints(ckpt_path)
                self._asked_model = self.config[subcommand]["model"].clone()
            # Keep what the later checks need, not the (memory-mapped) weights.
            self._checkpoint = {key: checkpoint.get(key) for key in (
                "epoch", "hyper_parameters", "datamodule_hyper_parameters", Caltech256DataModule.__qualname__)}

    def before_instantiate_classes(self) -> None:
        """A fit from a checkpoint trains with the command's model options, and says which differ.

        LightningCLI replaces every model option with the checkpoint's: a resume
        with ``--model.optimizer.lr 0.5`` went on at the checkpoint's rate without
        a word. The architecture comes from the checkpoint (checked to agree); the
        optimiser's settings, the schedule and the other options are the
        command's, applied from the resumed epoch on (the module sets them over
        the optimiser's restored state).
        """
        subcommand = self.config.get("subcommand")
        if subcommand and run_folder_of_checkpoint((self.config.get(subcommand) or {}).get("ckpt_path")) is not None:
            # A later command of a run (a resume, a test): the run's first command said the sample
            # set's disclaimer, and the run's record keeps it (is_sample_set); once per run is enough.
            said_before(SAMPLE_SET_NOTICE_KEY)
        if self._asked_model is None:
            return
        model = self.config["fit"]["model"]
        for key in vars(self._asked_model):  # the top-level options (keys() would list the nested ones)
            if key not in NOT_RESUMED_FROM_COMMAND:
                model[key] = self._asked_model[key]
        saved = _leaves(self._checkpoint.get("hyper_parameters") or {}, "model")
        asked = _leaves(model, "model")
        self._resume_changes = {
            name: [saved[name], value] for name, value in asked.items()
            if name in saved and saved[name] != value
            and name.split(".")[1] not in NOT_RESUMED_FROM_COMMAND}
        if self._resume_changes:
            listed = ", ".join(f"{name}: {old!r} -> {new!r}" for name, (old, new) in self._resume_changes.items())
            with _rank_zero_speaks():
                print(f"This fit goes on from the checkpoint of epoch {self._checkpoint['epoch'] + 1} with "
                      f"settings that differ from the checkpoint's; they apply from here on (the "
                      f"optimiser's state is kept, with these settings): {listed}")

    @staticmethod
    def _notes_by_design(subcommand: str | None, ckpt_path) -> tuple[str, ...]:
        """The notes Lightning makes about how this command line places a command's files."""
        if subcommand in ("validate", "test", "predict"):
            return EVALUATION_NOTES
        if subcommand == "fit" and run_folder_of_checkpoint(ckpt_path) is not None:
            return RESUME_NOTES
        return ()

    def _keep_whole_batch_limits(self, args) -> None:
        """``limit_val_batches: 1`` means one batch, as written, not 100%.

        Lightning types these options ``float | int``, so the parser reads every
        count as a fraction. The written values are read again here, in the order
        they override each other (config files and flags, left to right); the
        Trainer gets the counts from :meth:`instantiate_trainer` (the parser's
        instantiation would read them as floats again).
        """
        for key, value in _batch_limit_settings(args):
            if isinstance(value, int) and not isinstance(value, bool):
                self._batch_limits[key] = value
            else:  # a later fraction (1.0) overrides an earlier count
                self._batch_limits.pop(key, None)

    def _run_name(self, config) -> str:
        if config.get("run_name"):
            return config["run_name"]
        model = config["model"]["model_name"]
        config_files = config.get("config") or []
        if not config_files:
            return model
        recipe = Path(str(config_files[0])).stem
        return recipe if recipe.startswith(model) else f"{model}_{recipe}"

    def instantiate_trainer(self, **kwargs):
        config = self.config[self.subcommand]
        ckpt_path = config.get("ckpt_path")
        if self.subcommand == "fit":
            check_max_epochs(config["trainer"])
        if self._checkpoint is not None:  # the model and data exist now; no file does yet
            check_checkpoint_classes(self._checkpoint, ckpt_path, self.model, self.datamodule)
            if self.subcommand == "fit":
                check_resume_data(self._checkpoint, ckpt_path, self.datamodule)
        run_dir = run_folder_of_checkpoint(ckpt_path)
        if run_dir is not None and (run_dir / RESULTS_FILE).is_file():
            RunResults.read(run_dir)  # the command ends by updating it: an unreadable one stops it now
        resume_epoch = None
        if run_dir is None:  # a new run
            run_dir = log_dir = new_version_folder(Path(config["trainer"]["default_root_dir"])
                                                   / self._run_name(config), create=is_first_process())
            config_file = "config.yaml"
        elif self.subcommand == "fit":  # resume the run: same folder, same metrics.csv
            resume_epoch = self._checkpoint["epoch"]
            log_dir, config_file = run_dir, new_version_folder(run_dir, "config-resumed-{}.yaml").name
        else:  # evaluate the run's checkpoint: its own folder inside the run
            log_dir = new_version_folder(run_dir / "evaluations", "{}-" + self.subcommand)
            config_file = "config.yaml"
        if is_first_process():  # one command at a time on a run; given back when this one ends
            self._quiet.callback(lock_run(run_dir, f"python -m involution {self.subcommand}"))
        # overwrite=False: a command never replaces another's record.
        self.save_config_kwargs = {"config_filename": config_file, "overwrite": False}
        if config["trainer"].get("logger") in (None, True):
            # An evaluation's CSV log goes to its own folder: it never rewrites the
            # training's metrics.csv (W&B reports into the run).
            with _rank_zero_speaks():
                kwargs["logger"] = _loggers(run_dir, resume_epoch, csv_dir=log_dir)
        else:  # the config's own logger (or none): our folder still holds this command's files
            kwargs["default_root_dir"] = str(log_dir)
        kwargs["plugins"] = self._plugins_with_atomic_checkpoints()
        kwargs.update(self._batch_limits)
        for callback in self.trainer_defaults["callbacks"]:
            if isinstance(callback, KernelStatsMonitor):
                callback.every_n_steps = config.get("kernel_stats_every_n_steps") or 50
            if isinstance(callback, RunSummary):
                callback.resume_changes = self._resume_changes
        if config["trainer"].get("precision") is None:
            # 16-bit only where the hardware computes it natively (a T4 only emulates
            # bfloat16: float16 there; a CPU without bfloat16: float32).
            kwargs["precision"] = default_precision()
        return super().instantiate_trainer(**kwargs)

    # LightningCLI calls after_<command> once the command is done.
    def after_fit(self) -> None:
        if (self.subcommand in ("validate", "test") and self.config[self.subcommand].get("print_results", True)
                and self.trainer.is_global_zero):
            from involution.train.callbacks import results_line
            print(results_line(self.trainer.callback_metrics, "val" if self.subcommand == "validate" else "test"))
        finish_wandb_run()

    after_validate = after_test = after_predict = after_fit

    def _plugins_with_atomic_checkpoints(self) -> list:
        plugins = self.config_init[self.subcommand]["trainer"].get("plugins")
        if plugins is None:
            plugins = []
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):  # the config's wins
            plugins.append(AtomicCheckpointIO())
        return plugins


def _option_values(args: list[str]):
    """(flag, value) of each ``--flag value`` and ``--flag=value`` in ``args``."""
    for index, arg in enumerate(args):
        if arg.startswith("--") and "=" in arg:
            yield tuple(arg.split("=", 1))
        elif arg.startswith("-") and index + 1 < len(args):
            yield arg, args[index + 1]


def _batch_limit_settings(args: list[str]):
    """(option, value) of each ``limit_*_batches`` setting in ``args``, in order: from the
    trainer section of each config file, and from flags (a flag's ``"2"`` gives 2)."""
    for flag, value in _option_values(args):
        if flag in ("--config", "-c") and Path(value).is_file():
            trainer = (yaml.safe_load(Path(value).read_text()) or {}).get("trainer") or {}
            yield from ((key, trainer[key]) for key in BATCH_LIMITS if key in trainer)
        elif flag.removeprefix("--trainer.") in BATCH_LIMITS:
            yield flag.removeprefix("--trainer."), yaml.safe_load(value)


def run_cli(args: list[str] | None = None) -> InvolutionCLI:
    """Run the CLI with ``args`` (as on the command line) and return it, for notebooks."""
    return InvolutionCLI(args=args)


def _without_option(args: list[str], flag: str) -> list[str]:
    """``args`` without ``flag VALUE`` and ``flag=VALUE``."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        elif not arg.startswith(flag + "="):
            kept.append(arg)
    return kept


def fit_summary(cli: InvolutionCLI, args: list[str]) -> str | None:
    """How a fit on the command line ends: its best score, the checkpoint, and the command
    that tests it (``args``: the fit's own, the command first). None without checkpoints."""
    # The best-val-top-1 checkpoint's callback knows the run's folder on every process (the
    # trainer's log_dir would ask all processes, and only rank 0 is here).
    checkpoint = cli.trainer.checkpoint_callback
    if checkpoint is None or not checkpoint.dirpath:
        return None
    run = Path(checkpoint.dirpath).parent
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    try:
        results = RunResults.read(run)
    except FileNotFoundError:
        results = None
    if best is None or not best.is_file() or results is None or results.best_val_top1 is None:
        return f"Done: the run is in {run}"
    test = ["python", "-m", "involution", "test", *_without_option(args[1:], "--ckpt_path"),
            "--ckpt_path", str(best)]
    return (f"Done: best val top-1 {results.best_val_top1:.1%} (epoch {results.best_epoch + 1}), "
            f"checkpoint {best}\nTest it: {shlex.join(test)}")


def main(argv: list[str] | None = None) -> int:
    """``python -m involution fit|validate|test|predict ...``: ``argv`` starts with the command;
    None reads the command line."""
    # (A command without a recipe or data is answered by involution.__main__, before Lightning loads.)
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments and arguments[0] == "predict" and image_paths_in(arguments[1:]):
        # Image files, folders or patterns: the checkpoint's model on them, not the data's test split.
        return predict_images_main(arguments[1:])
    try:
        cli = run_cli(argv)
    except (CheckpointError, FileNotFoundError) as error:
        # A file the user named is missing or unreadable: the message names it and the fix,
        # and a traceback through Lightning would only bury it.
        print(f"error: {error}", file=sys.stderr)
        return 1
    except PermissionError as error:
        # A read-only run folder (another user's, a mounted archive): the command writes into it.
        print(f"error: cannot write {error.filename}: permission denied. Make the folder writable, or copy "
              "the run to a folder you can write and give that copy's checkpoint", file=sys.stderr)
        return 1
    except SIGTERMException:
        # Lightning raises it as a SystemExit without a status, which exits 0: `fit && test`
        # would go on. The run's summary has said where the run stands.
        return 128 + signal.SIGTERM
    except ValueError as error:
        # The package's refusals of a setting or a combination (another model's checkpoint,
        # a resume on other data, max_epochs 0, a batch size of 0): the message names the
        # problem and the fix; exit 2, as for any other bad command line. jsonargparse wraps a
        # refusal raised while it links options: the innermost message is ours.
        while isinstance(error.__cause__, ValueError):
            error = error.__cause__
        print(f"error: {error}", file=sys.stderr)
        return 2
    except MisconfigurationException as error:
        # Lightning's own check of a setting (say --trainer.max_epochs -3): its message names
        # the setting and what it accepts; exit 2, as for any other bad command line.
        print(f"error: invalid setting: {error}", file=sys.stderr)
        return 2
    if cli.subcommand == "fit" and cli.trainer.is_global_zero:
        summary = fit_summary(cli, sys.argv[1:] if argv is None else list(argv))
        if summary:
            print(summary)
    return 0
