"""A run's record survives what users do to it for days: resume, extend, re-test, predict, DDP.

Each test trains a few steps on the built-in sample set at 32 px, then does
one everyday action and checks the run's files: what the training recorded
never changes, and a refused action writes nothing at all.
"""
import csv
import errno
import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_training import MODEL, QUICK_RUN
from test_training import quick_args as training_args

from involution.__main__ import main
from involution.data import Caltech256DataModule
from involution.data.splits import load_split, make_split, save_split
from involution.train import loggers
from involution.train.checkpoints import CheckpointError
from involution.train.cli import run_cli
from involution.train.loggers import ResumableCSVLogger
from involution.train.runs import find_runs

REPO = Path(__file__).resolve().parents[1]
STEPS_PER_EPOCH = 2


def quick_args(tmp_path, *extra, command="fit"):
    """The quick recipe of test_training, 2 steps an epoch and 1 validation batch."""
    return training_args(tmp_path, "--trainer.limit_train_batches", str(STEPS_PER_EPOCH),
                         "--trainer.limit_val_batches", "1", *extra, command=command)


def train(tmp_path, epochs=1, *extra) -> Path:
    """Fit a fresh run and return its folder."""
    run_cli(quick_args(tmp_path, "--trainer.max_epochs", str(epochs), *extra))
    (run_dir,) = (tmp_path / QUICK_RUN).iterdir()
    return run_dir


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` with its bytes: a run's whole record."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


@pytest.fixture(autouse=True)
def no_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One run trained for one epoch, for the tests below that each take a copy."""
    return train(tmp_path_factory.mktemp("trained"))


@pytest.fixture
def run_dir(trained, tmp_path) -> Path:
    """A copy of the trained run in ``tmp_path/<QUICK_RUN>/``, this test's to change."""
    copy = tmp_path / QUICK_RUN / trained.name
    shutil.copytree(trained, copy)
    return copy


# -- 1. resuming keeps the training log -------------------------------------------------------


def resume(tmp_path, run_dir, epochs=2, *extra):
    return run_cli(quick_args(tmp_path, "--trainer.max_epochs", str(epochs), *extra,
                              "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt")))


def test_a_malformed_row_in_the_log_stops_the_resume_with_its_line_and_keeps_the_log(tmp_path, run_dir):
    # Lightning's CSV writer deleted metrics.csv before the logger wrote the rows back,
    # and a row with one field too many ("dict contains fields not in fieldnames: None")
    # failed that write: the run was left with no training log at all.
    log = run_dir / "metrics.csv"
    lines = log.read_text().splitlines(keepends=True)
    lines[2] = lines[2].rstrip("\n") + ",stray\n"
    log.write_text("".join(lines))
    before = files_under(run_dir)
    with pytest.raises(ValueError) as error:
        resume(tmp_path, run_dir)
    assert f"{log}, line 3" in str(error.value) and "unchanged" in str(error.value)
    assert files_under(run_dir) == before  # nothing written, the log as it was


def test_a_resume_killed_while_it_rewrites_the_log_leaves_the_whole_log(tmp_path, run_dir, monkeypatch):
    # Resuming from epoch 0 drops the rows of the interrupted epoch 1 and rewrites the
    # file: a kill during that rewrite (after Lightning had deleted the file) lost the log.
    log = run_dir / "metrics.csv"
    with open(log, newline="") as file:
        rows = list(csv.DictReader(file))
    with open(log, "a", newline="") as file:  # a row of epoch 1, which was interrupted
        csv.DictWriter(file, fieldnames=list(rows[0])).writerow({**rows[-1], "epoch": "1"})
    before = log.read_bytes()
    real_write = loggers.write_atomically

    def killed_halfway(path, write):
        def half(file):
            buffer = io.BytesIO()
            write(buffer)
            file.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
            raise Killed
        real_write(path, half)

    monkeypatch.setattr(loggers, "write_atomically", killed_halfway)
    with pytest.raises(Killed):
        resume(tmp_path, run_dir)
    assert log.read_bytes() == before


def test_the_log_is_rewritten_in_one_step_when_new_columns_appear(tmp_path, monkeypatch):
    # Lightning rewrites metrics.csv in place when a new column appears: a job killed
    # during that rewrite left the file with its header only.
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.csv").write_text("epoch,step,train/loss\n0,0,2.5\n0,1,2.4\n")
    before = (folder / "metrics.csv").read_bytes()
    logger = ResumableCSVLogger(save_dir=tmp_path, name="", version="run", keep_through_epoch=0)
    logger.log_metrics({"train/loss": 2.3, "val/top1": 0.5, "epoch": 1}, step=2)

    def killed(self, rows):
        raise Killed
    monkeypatch.setattr(csv.DictWriter, "writerows", killed)
    with pytest.raises(Killed):
        logger.save()
    assert (folder / "metrics.csv").read_bytes() == before
    monkeypatch.undo()
    logger = ResumableCSVLogger(save_dir=tmp_path, name="", version="run", keep_through_epoch=0)
    logger.log_metrics({"train/loss": 2.3, "val/top1": 0.5, "epoch": 1}, step=2)  # once more, whole
    logger.save()
    with open(folder / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["train/loss"] for row in rows] == ["2.5", "2.4", "2.3"] and rows[-1]["val/top1"] == "0.5"


# -- 1b. the best checkpoint, however the run's path is written -------------------------------


def as_if_epoch_0_scored(checkpoint_file: Path, top1: float) -> None:
    """Rewrite a checkpoint's record of the best val top-1 (ModelCheckpoint's and RunSummary's)."""
    checkpoint = torch.load(checkpoint_file, weights_only=True)
    for key, state in checkpoint["callbacks"].items():
        if key.startswith("ModelCheckpoint{'monitor': 'val/top1'"):
            state["best_model_score"] = torch.tensor(top1)
            state["best_k_models"] = {path: torch.tensor(top1) for path in state["best_k_models"]}
            state["kth_value"] = torch.tensor(top1)
        elif key == "RunSummary":
            state.update(best_val_top1=top1, best_val_top5=top1)
    torch.save(checkpoint, checkpoint_file)


@pytest.mark.parametrize("path_of_the_run", ["written absolute", "moved"])
def test_a_worse_epoch_never_replaces_best_ckpt_however_the_run_is_reached(tmp_path, monkeypatch,
                                                                          path_of_the_run):
    # A run started with a relative default_root_dir and resumed with an absolute
    # --ckpt_path (or moved from Google Drive to a local disk): Lightning only warned
    # "The dirpath has changed", forgot the best score, and the next, worse epoch
    # replaced best.ckpt while results.json still named epoch 0.
    monkeypatch.chdir(tmp_path)
    args = [a if a != str(tmp_path) else "runs" for a in quick_args(tmp_path, "--trainer.max_epochs", "1")]
    run_cli(args)
    (run_dir,) = (tmp_path / "runs" / QUICK_RUN).iterdir()
    if path_of_the_run == "moved":
        moved = tmp_path / "local-disk" / "runs" / QUICK_RUN / run_dir.name
        moved.parent.mkdir(parents=True)
        shutil.move(run_dir, moved)
        run_dir = moved
    as_if_epoch_0_scored(run_dir / "checkpoints" / "last.ckpt", 1.0)  # no later epoch can beat it
    best = (run_dir / "checkpoints" / "best.ckpt").read_bytes()

    run_cli(quick_args(tmp_path, "--trainer.max_epochs", "2",
                       "--ckpt_path", str(run_dir.resolve() / "checkpoints" / "last.ckpt")))
    assert (run_dir / "checkpoints" / "best.ckpt").read_bytes() == best
    recorded = results(run_dir)
    assert recorded["epochs_trained"] == 2 and recorded["best_epoch"] == 0
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1


def test_results_json_describes_the_epoch_best_ckpt_holds(tmp_path, run_dir):
    # RunSummary kept its own best score beside ModelCheckpoint's: when the two
    # disagreed, results.json named an epoch that best.ckpt did not hold.
    last = run_dir / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["callbacks"]["RunSummary"].update(best_val_top1=1.0, best_val_top5=1.0)  # a stale record
    torch.save(checkpoint, last)
    run_cli(quick_args(tmp_path, "--trainer.max_epochs", "2", "--ckpt_path", str(last)))
    recorded = results(run_dir)
    held = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert recorded["best_epoch"] == held["epoch"]
    (score,) = [state["best_model_score"] for key, state in held["callbacks"].items()
                if key.startswith("ModelCheckpoint{'monitor': 'val/top1'")]
    assert recorded["best_val_top1"] == pytest.approx(float(score))


def test_the_record_says_in_which_arithmetic_the_run_trained(run_dir):
    # A CPU with bfloat16 now trains in bfloat16 autocast: its numbers differ from a
    # float32 machine's, so the record and the machine line a notebook prints must say so.
    from involution.ops.functional import default_precision
    from involution.train.runs import Run
    assert results(run_dir)["machine"]["precision"] == default_precision()
    words = {"bf16-mixed": "bfloat16 mixed precision", "32-true": "float32"}[default_precision()]
    assert Run.load(run_dir).machine().endswith(f", {words}")


@pytest.mark.parametrize("native,expected", [(True, "bf16-mixed"), (False, "32-true")])
def test_a_cpu_trains_in_bfloat16_only_where_it_has_the_instructions(monkeypatch, native, expected):
    # Emulated bfloat16 is slower than float32: a CPU without the instructions keeps float32.
    from involution.ops import functional
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(functional, "cpu_has_native_bfloat16", lambda: native)
    assert functional.default_precision() == expected


def test_onednn_limited_to_avx2_counts_as_a_cpu_without_bfloat16():
    # The cross-CPU check (scripts/cross_cpu_check.py) relies on it: at AVX2 the runs train in float32.
    code = "from involution.ops.functional import cpu_has_native_bfloat16 as f; print(f())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2"}).stdout
    assert out.strip() == "False"


def test_a_resume_checks_the_runs_best_checkpoint_before_it_trains(tmp_path, run_dir):
    # A truncated best.ckpt was found only at the end: every remaining epoch trained, then the
    # fit crashed reading it and results.json was not updated.
    best = run_dir / "checkpoints" / "best.ckpt"
    best.write_bytes(best.read_bytes()[:1000])
    log = (run_dir / "metrics.csv").read_bytes()
    with pytest.raises(CheckpointError, match="this resume needs the run's best checkpoint too .*best.ckpt is "
                                              "truncated or damaged"):
        run_cli(quick_args(tmp_path, "--trainer.max_epochs", "3",
                           "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt")))
    assert (run_dir / "metrics.csv").read_bytes() == log


def test_max_epochs_0_is_refused_in_one_line_and_writes_nothing(tmp_path, capsys):
    # It used to record a "finished" run that had trained nothing.
    assert main(quick_args(tmp_path, "--trainer.max_epochs", "0")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: trainer.max_epochs is 0, so this fit would train nothing") and "\n" not in err
    assert not (tmp_path / QUICK_RUN).exists()


@pytest.mark.parametrize("signal_name,status,cause", [("SIGTERM", 143, "SIGTERM"),
                                                      ("SIGINT", 1, "an interrupt (Ctrl-C)")])
def test_a_signal_stops_a_fit_with_a_non_zero_status_one_line_and_a_record_of_best_ckpt(tmp_path, signal_name,
                                                                                        status, cause):
    # A SLURM time limit or a preemption: the fit exited 0 and said nothing, so `fit && test` went on,
    # and results.json was missing or stale. Ctrl-C exited 1 with no word, results.json at epoch 0.
    import signal
    command = [sys.executable, "-m", "involution", *quick_args(tmp_path, "--trainer.max_epochs", "500")]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(f"{QUICK_RUN}/*/checkpoints/last.ckpt")) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # a few more epochs
    process.send_signal(getattr(signal, signal_name))
    out, _ = process.communicate(timeout=120)
    assert process.returncode == status, out
    (run_dir,) = (tmp_path / QUICK_RUN).iterdir()
    stopped = [line for line in out.splitlines() if line.startswith(f"Stopped by {cause} after")]
    assert len(stopped) == 1 and f"--ckpt_path {run_dir / 'checkpoints' / 'last.ckpt'}" in stopped[0]
    recorded = results(run_dir)
    held = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert recorded["best_epoch"] == held["epoch"] and 1 <= recorded["epochs_trained"] < 500


def test_a_fit_killed_outright_between_epochs_leaves_a_record_of_its_best_ckpt(tmp_path, monkeypatch):
    # SIGKILL (an out-of-memory kill, a lost node) runs no handler: results.json was written only at
    # the end of a fit, so a killed fit left none, or a stale one disagreeing with best.ckpt.
    from involution.train.runs.summary import RunSummary

    class Killed(BaseException):
        pass

    def kill_at_the_third_epoch(self, trainer, pl_module):
        if trainer.current_epoch == 2:
            raise Killed
    monkeypatch.setattr(RunSummary, "on_train_epoch_start", kill_at_the_third_epoch, raising=False)
    with pytest.raises(Killed):
        run_cli(quick_args(tmp_path, "--trainer.max_epochs", "5"))
    (run_dir,) = (tmp_path / QUICK_RUN).iterdir()
    recorded = results(run_dir)
    held = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert recorded["epochs_trained"] == 2 and recorded["best_epoch"] == held["epoch"]
    assert recorded["model"] and recorded["dataset"]


@pytest.mark.parametrize("shortcut", ["hpc", "last", "best"])
def test_lightnings_checkpoint_shortcuts_are_refused_in_one_line(tmp_path, capsys, shortcut):
    # --ckpt_path hpc let Lightning find and load a file past the package's checks.
    assert main(quick_args(tmp_path, "--ckpt_path", shortcut)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --ckpt_path {shortcut}: Lightning's shortcut names no file") and "\n" not in err
    assert not (tmp_path / QUICK_RUN).exists()


def test_a_second_command_on_a_run_in_use_is_refused_in_one_line_and_a_stale_lock_is_taken_over(tmp_path, run_dir,
                                                                                                  capsys):
    # Two resumes of one run both went on: two rows per epoch in metrics.csv, checkpoints of whichever
    # finished last.
    from involution.train.runs.lock import LOCK_FILE, lock_run
    last = str(run_dir / "checkpoints" / "last.ckpt")
    release = lock_run(run_dir, "python -m involution fit (the other one)")
    log = (run_dir / "metrics.csv").read_bytes()
    assert main(quick_args(tmp_path, "--trainer.max_epochs", "2", "--ckpt_path", last)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: the run {run_dir} is in use by another command (python -m involution fit "
                          f"(the other one), process {os.getpid()}") and "\n" not in err
    assert (run_dir / "metrics.csv").read_bytes() == log
    release()
    # A lock left by a process of this machine that has ended (a killed job) is stale.
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True).stdout.strip()
    stale = {"pid": int(ended), "host": socket.gethostname(), "command": "killed", "since": "then"}
    (run_dir / LOCK_FILE).write_text(json.dumps(stale))
    run_cli(quick_args(tmp_path, "--trainer.max_epochs", "2", "--ckpt_path", last))
    assert results(run_dir)["epochs_trained"] == 2 and not (run_dir / LOCK_FILE).exists()


def test_two_runs_started_in_the_same_second_get_two_folders(tmp_path, monkeypatch):
    # The second died with Lightning's "config.yaml expected to NOT exist".
    from involution.train.runs import new_version_folder
    monkeypatch.setattr(time, "strftime", lambda *args: "20261207-120000")
    first = new_version_folder(tmp_path / "run", create=True)
    second = new_version_folder(tmp_path / "run", create=True)
    assert first != second and first.is_dir() and second.is_dir()


@pytest.mark.parametrize("command", ["validate", "test", "predict"])
def test_an_evaluation_without_weights_is_refused_in_one_line_and_writes_nothing(tmp_path, capsys, command):
    # It evaluated random weights (chance level) and recorded them as a new run.
    assert main(quick_args(tmp_path, command=command)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {command} needs weights: give the checkpoint to evaluate with --ckpt_path") \
        and "\n" not in err
    assert not (tmp_path / QUICK_RUN).exists()


def test_a_run_folder_that_cannot_be_written_is_one_line_naming_it(tmp_path, run_dir, capsys, monkeypatch):
    # A read-only run folder gave a raw OSError traceback. (Faked: the tests may run as root.)
    from involution.train import cli

    def read_only(folder, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(folder))
    monkeypatch.setattr(cli, "new_version_folder", read_only)
    best = str(run_dir / "checkpoints" / "best.ckpt")
    assert main(quick_args(tmp_path, "--ckpt_path", best, command="test")) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot write {run_dir / 'evaluations'}: permission denied") and "\n" not in err


# -- 2. extending a run ----------------------------------------------------------------------


def test_extending_a_run_continues_the_cosine_schedule_over_the_new_length(tmp_path, capsys):
    # 2 epochs, then resumed from the last checkpoint with max_epochs 4. Torch's
    # CosineAnnealingLR restored its old length from the checkpoint: the learning
    # rate reached 0 at step 4 and climbed back to the peak by step 8.
    lr, extra = 0.002, ["--model.schedule.warmup_epochs", "0", "--trainer.log_every_n_steps", "1"]
    run_dir = train(tmp_path, 2, *extra)
    # last.ckpt is the last epoch's even when val top-1 did not improve (Lightning's
    # save_last only followed best.ckpt: this run would have resumed from step 2).
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    capsys.readouterr()
    run_cli(quick_args(tmp_path, "--trainer.max_epochs", "4", *extra,
                       "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt")))
    said = capsys.readouterr().out

    with open(run_dir / "metrics.csv", newline="") as file:
        logged = {int(r["step"]): float(r["lr-AdamW"]) for r in csv.DictReader(file)
                  if r.get("lr-AdamW")}
    assert sorted(logged) == list(range(8))

    def cosine(step, total):
        return lr * (1 + math.cos(math.pi * step / total)) / 2
    assert [logged[s] for s in range(4)] == pytest.approx([cosine(s, 4) for s in range(4)])
    # From the resume on: the cosine over the new length, decreasing to the end.
    assert [logged[s] for s in range(4, 8)] == pytest.approx([cosine(s, 8) for s in range(4, 8)])
    assert "now defined over 8 (the run's length changed): it continues over the new length " \
           "from step 4" in said and "-> 0.001." in said


def test_a_resume_whose_schedule_would_end_before_its_last_step_is_refused(tmp_path, run_dir):
    # "Moved to a bigger GPU, doubled the batch": fewer steps an epoch, so the rebuilt cosine ended
    # early and the new epochs trained at learning rate 0, recorded as trained.
    recorded = results(run_dir)
    last = str(run_dir / "checkpoints" / "last.ckpt")
    with pytest.raises(ValueError, match=r"cannot continue its learning-rate schedule: the run has taken 2 "
                                         r"optimiser steps in 1 epochs.* the last 1 steps would train at its end "
                                         r"value .*\(2 steps an epoch\)"):
        run_cli(quick_args(tmp_path, "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "1",
                           "--ckpt_path", last))
    assert results(run_dir)["epochs_trained"] == recorded["epochs_trained"] == 1
    run_cli(quick_args(tmp_path, "--trainer.max_epochs", "3", "--ckpt_path", last))  # the run's own steps: goes on
    assert results(run_dir)["epochs_trained"] == 3


def test_an_extension_that_moves_best_ckpt_clears_the_runs_test_result(tmp_path, run_dir, capsys):
    # Extending 1 -> 2 epochs moved best.ckpt to epoch 1 while test_top1 still came
    # from epoch 0: notebook 02 then reused the run with that mismatched pair.
    best = str(run_dir / "checkpoints" / "best.ckpt")
    run_cli(quick_args(tmp_path, "--ckpt_path", best, command="test"))
    tested = results(run_dir)
    assert tested["test_top1"] is not None and tested["best_epoch"] == 0
    as_if_epoch_0_scored(run_dir / "checkpoints" / "last.ckpt", -1.0)  # any later epoch beats it
    capsys.readouterr()
    run_cli(quick_args(tmp_path, "--trainer.max_epochs", "2",
                       "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt")))
    extended = results(run_dir)
    assert extended["best_epoch"] == 1
    assert torch.load(best, weights_only=True)["epoch"] == 1
    for key in ("test_top1", "test_top5", "test_checkpoint"):
        assert key not in extended, key
    assert extended["evaluations"] == tested["evaluations"]  # the earlier test stays listed
    assert "test it again" in capsys.readouterr().out

    run_cli(quick_args(tmp_path, "--ckpt_path", best, command="test"))
    assert results(run_dir)["test_top1"] == results(run_dir)["evaluations"][-1]["metrics"]["test/top1"]


def test_an_extension_that_keeps_best_ckpt_keeps_the_runs_test_result(tmp_path, run_dir):
    best = str(run_dir / "checkpoints" / "best.ckpt")
    run_cli(quick_args(tmp_path, "--ckpt_path", best, command="test"))
    tested = results(run_dir)
    as_if_epoch_0_scored(run_dir / "checkpoints" / "last.ckpt", 1.0)  # no later epoch beats it
    run_cli(quick_args(tmp_path, "--trainer.max_epochs", "2",
                       "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt")))
    extended = results(run_dir)
    assert extended["best_epoch"] == 0 and extended["epochs_trained"] == 2
    assert extended["test_top1"] == tested["test_top1"]


# -- 3. evaluations keep the training's record -----------------------------------------------


def test_evaluations_never_change_what_the_training_recorded(tmp_path, run_dir):
    as_trained = files_under(run_dir)
    recorded = results(run_dir)
    best = str(run_dir / "checkpoints" / "best.ckpt")

    run_cli(quick_args(tmp_path, "--ckpt_path", best, command="validate"))
    run_cli(quick_args(tmp_path, "--ckpt_path", best, "--data.image_size", "48", command="test"))
    after_other_test = results(run_dir)
    run_cli(quick_args(tmp_path, "--ckpt_path", best, command="test"))
    run_cli(quick_args(tmp_path, "--ckpt_path", best, command="predict"))

    # The training's files are untouched, byte for byte (results.json aside).
    now = files_under(run_dir)
    for name in ("config.yaml", "hparams.yaml", "metrics.csv", "checkpoints/best.ckpt",
                 "checkpoints/last.ckpt"):
        assert now[name] == as_trained[name], name
    final = results(run_dir)
    for key, value in recorded.items():
        if key != "updated":
            assert final[key] == value, key
    assert final["dataset"]["image_size"] == 32
    assert final["config"]["data"]["image_size"] == 32

    # Each evaluation has its own entry and its own folder with its own config.
    evaluations = final["evaluations"]
    assert [e["command"] for e in evaluations] == ["validate", "test", "test", "predict"]
    assert [e["dataset"]["image_size"] for e in evaluations] == [32, 48, 32, 32]
    assert set(evaluations[0]["metrics"]) == {"val/loss", "val/top1", "val/top5"}
    for entry in evaluations:
        folder = run_dir / entry["folder"]
        assert folder.parent == run_dir / "evaluations" and folder.name.endswith(entry["command"])
        assert f"image_size: {entry['dataset']['image_size']}" in (
            folder / "config.yaml").read_text()
    # The test at 48 px is listed, but the run's test accuracy is the one on its own data.
    assert "test_top1" not in after_other_test
    assert final["test_top1"] == evaluations[2]["metrics"]["test/top1"]
    assert final["test_top5"] == evaluations[2]["metrics"]["test/top5"]
    with open(run_dir / evaluations[3]["folder"] / "predictions.csv", newline="") as file:
        assert len(list(csv.DictReader(file))) == 20  # the sample set's test split


def image_folder(tmp_path) -> Path:
    """The sample set's images as a plain image folder: its split is made here, by seed."""
    sample = REPO / "involution" / "data" / "sample_data" / "256_ObjectCategories"
    shutil.copytree(sample, tmp_path / "folder" / "256_ObjectCategories")
    return tmp_path / "folder"


def test_a_test_of_part_of_the_split_is_kept_as_partial_and_never_becomes_the_runs_score(tmp_path, run_dir,
                                                                                         capsys):
    # A limit on test batches (as fast mode passed) replaced the exact test_top1 with a score on a
    # few images; a padding DDP sampler scores some images twice. Only the whole split, each once, counts.
    best = str(run_dir / "checkpoints" / "best.ckpt")
    run_cli(quick_args(tmp_path, "--ckpt_path", best, command="test"))
    whole = results(run_dir)
    assert whole["evaluations"][-1]["metrics"]["test/images"] == 20 and "partial" not in whole["evaluations"][-1]
    run_cli(quick_args(tmp_path, "--ckpt_path", best, "--data.batch_size", "8",
                       "--trainer.limit_test_batches", "1", command="test"))
    after = results(run_dir)
    assert (after["test_top1"], after["test_top5"]) == (whole["test_top1"], whole["test_top5"])
    assert after["evaluations"][-1]["partial"] == {"images_scored": 8, "test_images": 20}
    assert "This test scored 8 images where the test split has 20" in capsys.readouterr().out


def test_a_three_process_test_whose_sampler_pads_the_split_is_partial(tmp_path, run_dir):
    # Three processes share 20 test images as 7 each: the padding sampler scores one twice, and a
    # score on 21 images replaced the run's exact test_top1.
    before = results(run_dir)
    command = [sys.executable, "-m", "involution",
               *quick_args(tmp_path, "--ckpt_path", str(run_dir / "checkpoints" / "best.ckpt"),
                           "--trainer.devices", "3", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu",
                           command="test")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    after = results(run_dir)
    assert after["evaluations"][-1]["partial"] == {"images_scored": 21, "test_images": 20}
    assert after.get("test_top1") == before.get("test_top1")


def test_testing_a_run_without_its_record_says_that_and_not_other_data(tmp_path, run_dir, capsys):
    (run_dir / "results.json").unlink()
    run_cli(quick_args(tmp_path, "--ckpt_path", str(run_dir / "checkpoints" / "best.ckpt"), command="test"))
    out = capsys.readouterr().out
    assert "The run has no record of the data it was trained on" in out and "other data" not in out
    assert "test_top1" not in results(run_dir)


def test_a_test_on_another_split_is_only_an_evaluation_and_says_it_saw_training_images(tmp_path, capsys):
    # Same classes, same image counts, another split seed: RunSummary compared counts
    # only, and set the run's test_top1 from a test on the run's own training images.
    folder = image_folder(tmp_path)
    run_dir = train(tmp_path, 1, "--data.root", str(folder))
    best = str(run_dir / "checkpoints" / "best.ckpt")
    capsys.readouterr()
    run_cli(quick_args(tmp_path, "--data.root", str(folder), "--data.split_seed", "1", "--ckpt_path", best,
                       command="test"))
    said = capsys.readouterr().out
    recorded = results(run_dir)
    assert "test_top1" not in recorded
    (entry,) = recorded["evaluations"]
    leaked = entry["training_images_tested"]
    assert 0 < leaked <= 20
    assert f"{leaked} of the 20 test images were training images of this run" in said

    run_cli(quick_args(tmp_path, "--data.root", str(folder), "--ckpt_path", best, command="test"))
    recorded = results(run_dir)
    assert recorded["test_top1"] == recorded["evaluations"][1]["metrics"]["test/top1"]
    assert "training_images_tested" not in recorded["evaluations"][1]


def test_predictions_list_the_top_5_so_that_names_with_spaces_read_back(tmp_path):
    # The top-5 classes were joined with spaces: "hot dog" could not be told from "hot", "dog".
    from types import SimpleNamespace

    from involution.train.callbacks import PredictionWriter
    names = ["hot dog", "cat", "fire truck", "dog", "hot", "car"]
    dataset = SimpleNamespace(class_names=names, samples=[("a.jpg", 0), ("b.jpg", 2)])
    trainer = SimpleNamespace(predict_dataloaders=SimpleNamespace(dataset=dataset), log_dir=str(tmp_path),
                              default_root_dir=str(tmp_path), world_size=1, is_global_zero=True)
    probabilities = torch.tensor([[0.5, 0.1, 0.1, 0.1, 0.15, 0.05], [0.1, 0.1, 0.4, 0.2, 0.1, 0.1]])
    PredictionWriter().write_on_epoch_end(trainer, None, [{"probabilities": probabilities}], [[[0, 1]]])
    with open(tmp_path / "predictions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert json.loads(rows[0]["top5"])[:2] == ["hot dog", "hot"]
    assert json.loads(rows[1]["top5"])[0] == rows[1]["predicted"] == "fire truck"


# -- 4. a checkpoint of another model or other classes -----------------------------------------


@pytest.mark.parametrize("command", ["fit", "test"])
def test_checkpoint_of_another_model_is_refused_before_anything_is_written(tmp_path, run_dir,
                                                                            command):
    # Lightning replaced the config's model with the checkpoint's: the "ResNet"
    # went on as the RedNet of the checkpoint.
    before = files_under(tmp_path)
    with pytest.raises(ValueError) as error:
        run_cli(quick_args(tmp_path, "--trainer.max_epochs", "2", "--model.model_name", "test_resnet",
                           "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"),
                           command=command))
    assert f"model.model_name: 'test_resnet' in the config, '{MODEL}' in the checkpoint" in str(
        error.value)
    assert f"--model.model_name {MODEL}" in str(error.value)
    assert files_under(tmp_path) == before


def test_checkpoint_for_other_classes_is_refused_before_anything_is_written(tmp_path, run_dir):
    # A copy of the sample set with 3 of its 10 classes.
    fewer = tmp_path / "fewer" / "256_ObjectCategories"
    sample = REPO / "involution" / "data" / "sample_data" / "256_ObjectCategories"
    for folder in sorted(sample.iterdir())[:3]:
        shutil.copytree(folder, fewer / folder.name)
    before = files_under(tmp_path)
    with pytest.raises(ValueError, match=r"trained for 10 classes but the data .* has 3"):
        run_cli(quick_args(tmp_path, "--data.root", str(fewer.parent),
                           "--data.split_file", str(tmp_path / "split.csv"),
                           "--ckpt_path", str(run_dir / "checkpoints" / "best.ckpt"),
                           command="test"))
    assert files_under(tmp_path) == before


def test_a_checkpoint_is_refused_on_other_classes_of_the_same_count(tmp_path, run_dir):
    # Checkpoints did not store class names: a sample-set checkpoint predicted on another
    # set of 10 classes, and predictions.csv gave its outputs that set's names.
    other = tmp_path / "other" / "256_ObjectCategories"
    sample = REPO / "involution" / "data" / "sample_data" / "256_ObjectCategories"
    for index, folder in enumerate(sorted(sample.iterdir())):
        shutil.copytree(folder, other / f"{index + 1:03d}.shape{index}")
    before = files_under(tmp_path)
    with pytest.raises(ValueError) as error:
        run_cli(quick_args(tmp_path, "--data.root", str(other.parent), "--data.split_file",
                           str(tmp_path / "split.csv"), "--ckpt_path", str(run_dir / "checkpoints" / "best.ckpt"),
                           command="predict"))
    message = str(error.value)
    assert "'astronaut', 'cat'" in message and "'shape0', 'shape1'" in message
    assert files_under(tmp_path) == before


def test_a_checkpoint_without_class_names_is_used_with_a_warning(tmp_path, run_dir):
    best = run_dir / "checkpoints" / "best.ckpt"
    checkpoint = torch.load(best, weights_only=True)
    checkpoint.pop("Caltech256DataModule")  # as written before class names were stored
    torch.save(checkpoint, best)
    with pytest.warns(UserWarning, match="records no class names"):
        run_cli(quick_args(tmp_path, "--ckpt_path", str(best), command="test"))


@pytest.mark.parametrize("change,named", [
    (["--data.image_size", "48"], "data.image_size: 32 in the run, 48 now"),
    # The same images, split another way by a split file of the user's.
    (["--data.root", "{folder}", "--data.split_file", "{split_file}"], "the test split holds other images"),
])
def test_a_resume_on_other_data_is_refused_with_the_difference_named(tmp_path, run_dir, change, named):
    # Resuming a sample-set run on other data trained the remaining epochs on it while
    # the record still said sample set at 32 px.
    if "{folder}" in change:
        folder, split_file = image_folder(tmp_path), tmp_path / "seed1.csv"
        save_split(make_split(load_split(REPO / "involution" / "data" / "sample_data" / "split.csv"), seed=1),
                   split_file)
        change = [arg.format(folder=folder, split_file=split_file) for arg in change]
    before = files_under(tmp_path)
    with pytest.raises(ValueError) as error:
        resume(tmp_path, run_dir, 2, *change)
    assert named in str(error.value) and "Nothing was written" in str(error.value)
    assert files_under(tmp_path) == before


def test_a_resume_on_the_same_images_moved_elsewhere_goes_on(tmp_path, run_dir):
    moved = tmp_path / "moved"
    shutil.copytree(REPO / "involution" / "data" / "sample_data", moved)  # with its own split.csv
    resume(tmp_path, run_dir, 2, "--data.root", str(moved))
    assert results(run_dir)["epochs_trained"] == 2


def test_a_resume_applies_new_optimiser_settings_and_says_so(tmp_path, run_dir, capsys):
    # Lightning replaced the command's model options with the checkpoint's: lr 0.5
    # was silently trained at the checkpoint's 0.002.
    cli = resume(tmp_path, run_dir, 2, "--model.optimizer.lr", "0.5", "--model.optimizer.weight_decay", "0.3")
    said = capsys.readouterr().out
    assert cli.model.hparams.optimizer["lr"] == 0.5
    (group,) = cli.trainer.optimizers[0].param_groups
    assert group["initial_lr"] == 0.5 and group["weight_decay"] == 0.3
    assert cli.trainer.lr_scheduler_configs[0].scheduler.base_lrs == [0.5]
    assert "model.optimizer.lr: 0.002 -> 0.5" in said and "model.optimizer.weight_decay: 0.05 -> 0.3" in said
    assert results(run_dir)["resumes"][0]["changed"]["model.optimizer.lr"] == [0.002, 0.5]


def test_a_resume_cannot_change_the_optimiser_itself(tmp_path, run_dir):
    before = files_under(tmp_path)
    with pytest.raises(ValueError) as error:
        resume(tmp_path, run_dir, 2, "--model.optimizer.name", "sgd")
    assert "model.optimizer.name: 'sgd' now, 'adamw' in the checkpoint" in str(error.value)
    assert "--model.optimizer.name adamw" in str(error.value)
    assert files_under(tmp_path) == before


# -- 5. checkpoints cut off mid-write ---------------------------------------------------------


class Killed(Exception):
    """The job dying at this point."""


def test_checkpoint_write_killed_mid_copy_leaves_whole_checkpoints(tmp_path, run_dir, monkeypatch):
    # Lightning wrote a checkpoint to $TMPDIR and moved it into place; with
    # $TMPDIR on another file system the move is a copy, and a job killed during
    # it left a truncated checkpoint. Here renames fail as across file systems,
    # and the first copy dies halfway.
    last = run_dir / "checkpoints" / "last.ckpt"

    def rename_across_file_systems(src, dst, *args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def copy_killed_halfway(src, dst, *args, **kwargs):
        data = Path(src).read_bytes()
        Path(dst).write_bytes(data[:len(data) // 2])
        raise Killed

    monkeypatch.setattr(os, "rename", rename_across_file_systems)
    monkeypatch.setattr(shutil, "copyfile", copy_killed_halfway)
    try:
        run_cli(quick_args(tmp_path, "--trainer.max_epochs", "2", "--ckpt_path", str(last)))
    except Killed:
        pass
    monkeypatch.undo()

    # Every checkpoint is whole: the previous one, or the new one.
    for checkpoint in last.parent.glob("*.ckpt"):
        assert torch.load(checkpoint, weights_only=True)["epoch"] in (0, 1), checkpoint
    assert torch.load(last, weights_only=True)["epoch"] in (0, 1)
    assert not list(last.parent.glob(".*.partial"))  # no unfinished file left behind


def test_checkpoint_writer_killed_halfway_keeps_the_previous_checkpoint(tmp_path, run_dir,
                                                                       monkeypatch):
    # The atomic writer itself dies halfway through a checkpoint: the file in place
    # must still be the previous, whole one, and nothing unfinished is left beside it.
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    real_save = torch.save

    def save_killed_halfway(obj, file, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        file.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise Killed

    monkeypatch.setattr(torch, "save", save_killed_halfway)
    with pytest.raises(Killed):
        run_cli(quick_args(tmp_path, "--trainer.max_epochs", "2", "--ckpt_path", str(last)))
    monkeypatch.undo()
    assert last.read_bytes() == before
    assert not [p for p in last.parent.iterdir() if p.name.endswith(".partial")]


class DiskFullAfter(io.RawIOBase):
    """A file on a disk that fills up after ``room`` bytes."""

    def __init__(self, file, room: int):
        self.file, self.room = file, room

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return self.file.write(data)


def test_a_full_disk_while_writing_a_checkpoint_says_so_and_keeps_the_previous_one(tmp_path, run_dir,
                                                                                monkeypatch):
    # torch reported "[enforce fail at inline_container.cc] . unexpected pos 704 vs 598".
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, file, *a, **k: real_save(obj, DiskFullAfter(file, 4096), *a, **k))
    with pytest.raises(OSError) as error:
        resume(tmp_path, run_dir)
    monkeypatch.undo()
    message = str(error.value)
    # (best.ckpt is written first when the epoch improved on it, last.ckpt otherwise)
    assert f"no space left on {last.parent}" in message
    assert "the previous best.ckpt is intact" in message or "the previous last.ckpt is intact" in message
    assert error.value.errno == errno.ENOSPC
    assert last.read_bytes() == before
    assert not [p for p in last.parent.iterdir() if p.name.endswith(".partial")]


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_cut_off_checkpoint_is_reported_with_the_checkpoints_to_use(tmp_path, run_dir, damage):
    last = run_dir / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(b"" if damage == "empty" else data[:len(data) // 2])
    before = files_under(tmp_path)
    with pytest.raises(CheckpointError) as error:  # was a bare EOFError / zip error
        run_cli(quick_args(tmp_path, "--trainer.max_epochs", "2", "--ckpt_path", str(last)))
    message = str(error.value)
    state = "empty (0 bytes)" if damage == "empty" else f"truncated or damaged ({len(data) // 2:,}"
    assert f"checkpoint {last} is {state}" in message
    assert str(run_dir / "checkpoints" / "best.ckpt") in message
    assert files_under(tmp_path) == before


# -- 6. an unreadable record -------------------------------------------------------------------


def test_a_corrupt_results_file_stops_a_resume_before_training_and_names_the_file(tmp_path, run_dir):
    # A resume trained every epoch, then failed on results.json with a bare JSONDecodeError.
    (run_dir / "results.json").write_text('{"model": "test_rednet",\n oops}')
    before = files_under(run_dir)
    with pytest.raises(ValueError) as error:
        resume(tmp_path, run_dir)
    message = str(error.value)
    assert str(run_dir / "results.json") in message and "line 2 column 2" in message
    assert files_under(run_dir) == before


def test_find_runs_skips_and_lists_an_unreadable_run(tmp_path, run_dir):
    # One corrupt run made find_runs fail for every run in the folder (and the notebooks with it).
    broken = run_dir.parent / "20000101-000000"
    shutil.copytree(run_dir, broken)
    (broken / "results.json").write_text("{")
    with pytest.warns(UserWarning, match=f"{broken / 'results.json'}"):
        found = find_runs(tmp_path)
    assert [run.path for run in found] == [run_dir]


# -- many processes ---------------------------------------------------------------------------


def test_two_process_ddp_run_writes_each_file_once_with_metrics_over_all_processes(tmp_path):
    # Two CPU processes (gloo), launched by Lightning itself.
    ddp = ["--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp"]
    env = dict(os.environ, PYTHONPATH=str(REPO), WANDB_MODE="disabled")

    def launch(*args):
        done = subprocess.run([sys.executable, "-m", "involution", *args, *ddp], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout + done.stderr

    output = launch(*quick_args(tmp_path, "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "1.0"))
    (run_dir,) = (tmp_path / QUICK_RUN).iterdir()
    assert list(tmp_path.rglob("results.json")) == [run_dir / "results.json"]
    assert list(tmp_path.rglob("config.yaml")) == [run_dir / "config.yaml"]
    # Only rank 0 speaks, and about the folder that exists.
    assert output.count("Logging to CSV only, in ") == 1
    assert f"Logging to CSV only, in {run_dir}" in output
    recorded = results(run_dir)
    assert recorded["epochs_trained"] == 1 and recorded["model"] == MODEL
    best = run_dir / "checkpoints" / "best.ckpt"
    assert best.is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()

    # The validation of each epoch covered both processes' halves of the
    # validation set (20 images, 10 each): one process evaluating the whole set
    # from the best checkpoint finds the same accuracy and loss.
    with open(run_dir / "metrics.csv", newline="") as file:
        (val_row,) = [r for r in csv.DictReader(file) if r.get("val/loss")]
    validated = run_cli(quick_args(tmp_path, "--ckpt_path", str(best),
                                   "--trainer.limit_val_batches", "1.0",
                                   command="validate")).trainer.callback_metrics
    assert float(validated["val/top1"]) == pytest.approx(recorded["best_val_top1"], abs=1e-6)
    assert float(val_row["val/loss"]) == pytest.approx(float(validated["val/loss"]), rel=1e-4)

    # Predictions from two processes: one file, each test image once, in order.
    launch(*quick_args(tmp_path, "--ckpt_path", str(best), command="predict"))
    (predictions,) = run_dir.glob("evaluations/*-predict/predictions.csv")
    with open(predictions, newline="") as file:
        rows = list(csv.DictReader(file))
    data = Caltech256DataModule("sample", image_size=32, num_workers=0)
    data.setup("predict")
    assert [row["path"] for row in rows] == [str(path) for path, _ in data.test_dataset.samples]


# -- epochs are counted from 1 wherever the command line prints one ----------------------------


def test_the_resume_of_the_log_names_the_epoch_as_the_epoch_lines_do(tmp_path, capsys):
    # metrics.csv counts epochs from 0; a resume from the checkpoint of the second epoch
    # ("epoch 2/3" when it was trained) said "Resuming after epoch 1".
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.csv").write_text("epoch,step,val/top1\n0,0,0.1\n1,1,0.2\n2,2,0.3\n")
    ResumableCSVLogger(save_dir=tmp_path, name="", version="run", keep_through_epoch=1)
    out = capsys.readouterr().out
    assert out.startswith("Resuming after epoch 2: 1 rows of later epochs are dropped")


def test_a_resume_with_other_settings_names_the_checkpoints_epoch_from_1(capsys):
    # Lightning's checkpoint of the third epoch records epoch 2; the message said "of epoch 2".
    from jsonargparse import Namespace

    from involution.train.cli import InvolutionCLI
    cli = object.__new__(InvolutionCLI)
    cli._asked_model = Namespace(model_name="resnet26", optimizer=Namespace(lr=0.5))
    cli.config = {"fit": {"model": Namespace(model_name="resnet26", optimizer=Namespace(lr=0.002))}}
    cli._checkpoint = {"epoch": 2, "hyper_parameters": {"model_name": "resnet26", "optimizer": {"lr": 0.002}}}
    cli.before_instantiate_classes()
    out = capsys.readouterr().out
    assert out.startswith("This fit goes on from the checkpoint of epoch 3 with settings that differ")
    assert "model.optimizer.lr: 0.002 -> 0.5" in out
