"""The writer of ``results.json``: a Lightning callback that fills a :class:`RunResults`."""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException

from involution.train.runs.record import (
    RESULTS_FILE,
    RunResults,
    machine_description,
    portable_path,
    run_folder_of_checkpoint,
    trainer_run_folder,
)


@rank_zero_only
def _say(message: str) -> None:
    print(message)


class RunSummary(Callback):
    """Writes ``results.json`` (a :class:`RunResults`) in the run folder: what notebooks and slides read.

    Evaluations of the run's checkpoints (validate, test, predict) never change
    what the training recorded: each appends an entry to ``evaluations``
    (command, checkpoint, data, configuration, metrics, the folder holding its
    own files). A test on the run's own test images (same classes, size and
    test split) also sets ``test_top1``/``test_top5``; one on other data
    (another image size, another split) is only listed, with a warning and a
    count when it saw the run's training images. The best scores are those of
    the epoch ``best.ckpt`` holds, and a fit that replaces the tested
    checkpoint clears the test result. Only global rank 0 writes, atomically.
    """

    # Dataset fields that decide which images a test evaluates, and how big.
    _EVALUATED_FIELDS = ("num_classes", "include_clutter", "image_size", "images")
    # The split each command evaluates.
    _SPLIT_OF = {"validate": "val", "test": "test", "predict": "test"}

    def __init__(self):
        self.best, self._resume = {}, None
        # The scores of the latest validation of fit, {"epoch", "val/top1", "val/top5"}: saved
        # in every checkpoint, so that best.ckpt carries the scores of the epoch it holds.
        self.last_validation = None
        # A resumed fit's settings that differ from its checkpoint's, {option: [before, now]} (set by the CLI).
        self.resume_changes = {}

    @staticmethod
    def _description(trainer, pl_module) -> RunResults:
        datamodule = getattr(trainer, "datamodule", None)
        return RunResults(
            model=pl_module.hparams.model_name, params=pl_module.num_parameters,
            dataset=datamodule.summary() if hasattr(datamodule, "summary") else None,
            machine=machine_description(trainer.precision),
            # seed_everything's value (Lightning keeps it in PL_GLOBAL_SEED): runs of one
            # recipe differ only by it, and results are compared over seeds.
            seed=int(os.environ["PL_GLOBAL_SEED"]) if os.environ.get("PL_GLOBAL_SEED") else None,
            config={"model": dict(pl_module.hparams), "data": dict(getattr(datamodule, "hparams", {}))})

    def _same_data(self, recorded: dict | None, used: dict | None) -> bool:
        """Whether a test saw the run's own test images: the same classes, size and test images.

        Names, folders and the training augmentation do not change the test
        images; equal counts do not make them the same images (another split
        seed), so the test split's fingerprint decides, or, in a record made
        before fingerprints, the split file.
        """
        if recorded is None or used is None:
            return False
        if any(recorded.get(k) != used.get(k) for k in self._EVALUATED_FIELDS):
            return False
        ours, theirs = ((d.get("split_fingerprints") or {}).get("test") for d in (recorded, used))
        if ours and theirs:
            return ours == theirs
        return recorded.get("split_file") == used.get("split_file")

    def _training_images_evaluated(self, trainer, recorded: dict | None, command: str) -> int | None:
        """How many of the evaluated images the run trained on (None: its split cannot be read here)."""
        datamodule = getattr(trainer, "datamodule", None)
        if recorded is None or not hasattr(datamodule, "split_recorded_in"):
            return None
        split = datamodule.split_recorded_in(recorded)
        if split is None:
            return None
        trained_on = {path for path, name in split.items() if name == "train"}
        return len(trained_on.intersection(datamodule.images_in(self._SPLIT_OF[command])))

    @staticmethod
    def _update(trainer, folder: Path, change: Callable[[RunResults], None]) -> None:
        if not trainer.is_global_zero:
            return
        path = folder / RESULTS_FILE
        results = RunResults.read(folder) if path.exists() else RunResults()
        change(results)
        results.write(folder)

    # -- training ----------------------------------------------------------------

    def on_train_start(self, trainer, pl_module):
        if trainer.ckpt_path:  # a resumed fit; its checkpoint is restored by now
            self._resume = {"checkpoint": portable_path(trainer.ckpt_path),
                            "first_epoch": trainer.current_epoch,
                            "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                            "machine": machine_description(trainer.precision)}
            if self.resume_changes:
                self._resume["changed"] = dict(self.resume_changes)

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        if trainer.state.fn == "validate":
            self._record_evaluation(trainer, pl_module, "val/")
            return
        metrics = trainer.callback_metrics
        top1 = float(metrics.get("val/top1", math.nan))
        self.last_validation = {"epoch": trainer.current_epoch, "val/top1": top1,
                                "val/top5": float(metrics.get("val/top5", math.nan))}
        if not self.best or top1 > self.best["best_val_top1"]:
            self.best = {"best_val_top1": top1, "best_val_top5": self.last_validation["val/top5"],
                         "best_epoch": trainer.current_epoch}

    def checkpoints_written(self, trainer, pl_module, checkpoint_callback, epoch_finished: bool) -> None:
        """Called by the run's checkpoint callbacks once they have written their files: the record
        follows best.ckpt at once, so a fit killed outright (SIGKILL, an out-of-memory kill, a lost
        node), which runs no handler, leaves a results.json that describes its best.ckpt and the
        epochs finished, not an older state (or none)."""
        if getattr(checkpoint_callback, "monitor", None) != "val/top1" or trainer.state.fn != "fit":
            return  # one update per save of best.ckpt's callback

        def change(results: RunResults):
            results.describe_once(self._description(trainer, pl_module))
            # At the end of an epoch Lightning has not counted it yet.
            results.epochs_trained = trainer.current_epoch + int(epoch_finished)
            self._follow_best(results, trainer)
        self._update(trainer, trainer_run_folder(trainer), change)

    def _follow_best(self, results: RunResults, trainer) -> None:
        """Describe the best.ckpt of now; a test result of weights it no longer holds is cleared."""
        best_epoch_before = results.best_epoch
        for key, value in self._best_held(trainer).items():
            setattr(results, key, value)
        if results.test_top1 is not None and not self._test_still_holds(results, best_epoch_before):
            _say(f"The run's test result came from {results.test_checkpoint}, which this fit has "
                 f"replaced (best.ckpt now holds epoch {results.best_epoch + 1}): test_top1/test_top5 are "
                 "cleared from results.json until you test it again; the earlier test stays under "
                 "'evaluations'.")
            results.test_top1 = results.test_top5 = results.test_checkpoint = None

    def _best_held(self, trainer) -> dict:
        """The best scores as ``best.ckpt`` holds them: its epoch and that epoch's validation.

        results.json describes the file, whatever kept the score that chose it.
        Lightning runs checkpoint callbacks after every other callback, so the
        state of this callback in a checkpoint includes the validation of the
        checkpoint's own epoch.
        """
        callback = next((c for c in trainer.checkpoint_callbacks
                         if getattr(c, "monitor", None) == "val/top1" and c.best_model_path), None)
        if callback is None or not Path(callback.best_model_path).is_file():
            return self.best
        checkpoint = torch.load(callback.best_model_path, map_location="cpu", weights_only=True, mmap=True)
        epoch = checkpoint.get("epoch")
        validation = ((checkpoint.get("callbacks") or {}).get(self.state_key) or {}).get("last_validation")
        if validation and validation["epoch"] == epoch:
            return {"best_val_top1": validation["val/top1"], "best_val_top5": validation["val/top5"],
                    "best_epoch": epoch}
        # A checkpoint written before its callbacks saved their last validation: the
        # score that chose it is ModelCheckpoint's; top-5 only if recorded for that epoch.
        score = callback.best_model_score
        return {"best_val_top1": float(score) if score is not None else self.best.get("best_val_top1"),
                "best_val_top5": self.best.get("best_val_top5") if self.best.get("best_epoch") == epoch else None,
                "best_epoch": epoch}

    def on_fit_end(self, trainer, pl_module):
        description = self._description(trainer, pl_module)

        def change(results: RunResults):
            # A resumed run keeps the description of its start (the CLI saves
            # its own settings in config-resumed-<time>.yaml); counts and best move on.
            results.describe_once(description)
            results.epochs_trained = trainer.current_epoch
            self._follow_best(results, trainer)
            if self._resume:
                results.resumes.append(self._resume)
        self._update(trainer, trainer_run_folder(trainer), change)

    def on_exception(self, trainer, pl_module, exception):
        """A fit stopped by SIGTERM (a time limit, a preemption) or Ctrl-C: results.json describes
        best.ckpt and the epochs finished, as at the end of a fit, and one line says how to go on."""
        if trainer.state.fn != "fit" or not isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            return
        cause = "SIGTERM" if isinstance(exception, SIGTERMException) else "an interrupt (Ctrl-C)"
        folder = trainer_run_folder(trainer)
        last = folder / "checkpoints" / "last.ckpt"
        if trainer.current_epoch == 0 or not last.is_file():
            _say(f"Stopped by {cause} before its first epoch ended: {folder} has no checkpoint to resume; "
                 "start the run again.")
            return
        self.on_fit_end(trainer, pl_module)
        _say(f"Stopped by {cause} after {trainer.current_epoch} finished epochs: {folder / RESULTS_FILE} "
             f"describes its best.ckpt; to go on, run the same command with --ckpt_path {last}")

    @staticmethod
    def _test_still_holds(results: RunResults, best_epoch_before: int | None) -> bool:
        """Whether the weights the run's test result was measured on are still those of its file.

        A fit that goes on rewrites last.ckpt every epoch; best.ckpt only when
        a better epoch comes, so a test of best.ckpt holds while its epoch stays.
        """
        tested = Path(results.test_checkpoint or "").name
        return tested == "best.ckpt" and results.best_epoch == best_epoch_before

    # -- evaluations ---------------------------------------------------------------

    def on_test_end(self, trainer, pl_module):
        self._record_evaluation(trainer, pl_module, "test/")

    def on_predict_end(self, trainer, pl_module):
        self._record_evaluation(trainer, pl_module, None)

    def _record_evaluation(self, trainer, pl_module, prefix: str | None) -> None:
        own_folder = trainer_run_folder(trainer)  # every rank: it is a broadcast
        run = run_folder_of_checkpoint(trainer.ckpt_path) or own_folder
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()
                   if prefix and name.startswith(prefix)}
        description = self._description(trainer, pl_module)
        entry = {"command": trainer.state.fn.value,
                 "checkpoint": portable_path(trainer.ckpt_path) if trainer.ckpt_path else None,
                 "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                 "folder": os.path.relpath(own_folder, run), "metrics": metrics,
                 "dataset": description.dataset, "machine": description.machine,
                 "config": description.config}

        scored, total = self._images_scored(trainer, metrics) if prefix == "test/" else (None, None)
        if scored is not None and scored != total:
            entry["partial"] = {"images_scored": scored, "test_images": total}

        def change(results: RunResults):
            if own_folder == run:  # no training run to report into: this is the record
                results.describe_once(description)
            same_data = self._same_data(results.dataset, entry["dataset"])
            if not same_data and own_folder != run:
                self._check_for_training_images(trainer, results.dataset, entry)
            results.evaluations.append(entry)
            if prefix != "test/":
                return
            kept = (f"it is listed under 'evaluations' in {run / RESULTS_FILE} and does not replace "
                    "the run's test_top1/test_top5")
            if "partial" in entry:
                _say(f"This test scored {scored} images where the test split has {total}, each once (a limit on "
                     f"test batches, or several processes padding the split): {kept}, marked 'partial'. "
                     "Test on the whole split, in one process or without limits, for the run's test score.")
            elif results.dataset is None:
                _say(f"The run has no record of the data it was trained on (no 'dataset' in {run / RESULTS_FILE}): "
                     f"{kept}.")
            elif same_data:
                results.test_top1, results.test_top5 = metrics["test/top1"], metrics["test/top5"]
                results.test_checkpoint = entry["checkpoint"]
            else:
                _say(f"This test used other data than the run was trained on (see "
                     f"{run / RESULTS_FILE}, 'dataset'): {kept}.")
        self._update(trainer, run, change)

    @staticmethod
    def _images_scored(trainer, metrics: dict) -> tuple[int | None, int | None]:
        """(images the test scored over all processes, images in the test split), or (None, None)
        where the data module cannot list its split. Equal only for the whole split, each once: a
        limit on test batches scores fewer, a sampler padding the split for several processes more."""
        datamodule = getattr(trainer, "datamodule", None)
        if "test/images" not in metrics or not hasattr(datamodule, "images_in"):
            return None, None
        return round(metrics["test/images"]), len(datamodule.images_in("test"))

    def _check_for_training_images(self, trainer, recorded: dict | None, entry: dict) -> None:
        """Count, record and announce the evaluated images that were the run's training images."""
        leaked = self._training_images_evaluated(trainer, recorded, entry["command"])
        if leaked is None:
            return
        entry["training_images_tested"] = leaked
        if leaked:
            split = self._SPLIT_OF[entry["command"]]
            total = len(trainer.datamodule.images_in(split))
            _say(f"WARNING: {leaked} of the {total} {split} images were training images of this run "
                 f"(its split file: {recorded.get('split_file')}): on them the model is scored on what it "
                 "memorised, not on how it generalises. Evaluate on the run's own split to measure it.")

    def state_dict(self):
        return {**self.best, "last_validation": self.last_validation}

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        self.last_validation = state.pop("last_validation", None)
        self.best = state
