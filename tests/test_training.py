"""Training on the built-in sample set: fit, evaluate, resume, guard, log, refuse bad configs."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.data import DataLoader, TensorDataset

from involution.__main__ import main
from involution.train.callbacks import NonFiniteLossError, NonFiniteLossGuard
from involution.train.cli import run_cli
from involution.train.loggers import wandb_configured
from involution.train.module import ImageClassifier
from involution.train.optimization import OptimizerConfig, ScheduleConfig, build_schedule

REPO = Path(__file__).resolve().parents[1]
QUICK = "quick_sample"  # the shipped recipe, found by its name
# The tiny RedNet (a twentieth of RedNet-26's weights): what these tests check is how
# runs are trained and recorded, which is the same for every model, in a third of the time.
MODEL = "test_rednet"
QUICK_RUN = f"{MODEL}_{QUICK}"  # its runs' folder: <model>_<recipe>


def quick_args(tmp_path, *extra, command="fit"):
    """The quick sample-set recipe with the tiny RedNet, shrunk to seconds."""
    return [command, "--config", QUICK, "--model.model_name", MODEL,
            "--trainer.default_root_dir", str(tmp_path),
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--data.image_size", "32", "--data.num_workers", "0", *extra]


def read_metrics(run_dir):
    with open(run_dir / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def column(rows, name):
    return [float(r[name]) for r in rows if r.get(name)]


def only_run_dir(tmp_path, run_name=QUICK_RUN):
    (run_dir,) = (tmp_path / run_name).iterdir()
    return run_dir


@pytest.fixture(autouse=True)
def no_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")


def test_short_fit_lowers_training_loss(tmp_path):
    # Two fixed batches, learned over several epochs: the loss must come down.
    run_cli(quick_args(tmp_path, "--trainer.max_epochs", "6", "--trainer.limit_train_batches", "2",
                       "--trainer.limit_val_batches", "1", "--model.optimizer.lr", "0.003",
                       "--model.schedule.warmup_epochs", "0", "--model.drop_rate", "0",
                       "--model.optimizer.weight_decay", "0"))
    run_dir = only_run_dir(tmp_path)
    losses = column(read_metrics(run_dir), "train/loss_epoch")
    assert len(losses) == 6
    assert losses[-1] < 0.7 * losses[0], losses
    results = json.loads((run_dir / "results.json").read_text())
    assert results["model"] == MODEL and results["epochs_trained"] == 6
    assert results["dataset"]["is_sample_set"] and "NOT Caltech-256" in results["dataset"]["name"]
    assert 0.0 <= results["best_val_top1"] <= 1.0
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


def test_validate_and_test_from_checkpoint_reproduce_logged_metrics(tmp_path):
    run_cli(quick_args(tmp_path, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "3"))
    run_dir = only_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    best = run_dir / "checkpoints" / "best.ckpt"

    cli = run_cli(quick_args(tmp_path, "--ckpt_path", str(best), command="validate"))
    validated = cli.trainer.callback_metrics
    assert float(validated["val/top1"]) == pytest.approx(results["best_val_top1"], abs=1e-6)
    assert float(validated["val/top5"]) == pytest.approx(results["best_val_top5"], abs=1e-6)
    logged = read_metrics(run_dir)
    val_rows = [r for r in logged if r.get("val/top1") and r.get("epoch")
                and int(float(r["epoch"])) == results["best_epoch"]]
    assert float(val_rows[0]["val/top1"]) == pytest.approx(results["best_val_top1"], abs=1e-6)

    run_cli(quick_args(tmp_path, "--ckpt_path", str(best), command="test"))
    results = json.loads((run_dir / "results.json").read_text())
    assert 0.0 <= results["test_top1"] <= results["test_top5"] <= 1.0

    run_cli(quick_args(tmp_path, "--ckpt_path", str(best), command="predict"))
    # Each evaluation writes its files into its own folder inside the run.
    (predictions_file,) = run_dir.glob("evaluations/*-predict/predictions.csv")
    with open(predictions_file, newline="") as file:
        predictions = list(csv.DictReader(file))
    assert len(predictions) == 20  # the sample set's test split
    hits = sum(row["label"] == row["predicted"] for row in predictions)
    assert hits / len(predictions) == pytest.approx(results["test_top1"], abs=1e-6)
    assert all(row["predicted"] == json.loads(row["top5"])[0] for row in predictions)

    # The checkpoint alone rebuilds the model: no arguments needed.
    model = ImageClassifier.load_from_checkpoint(best)
    assert model.hparams.model_name == MODEL and model.hparams.num_classes == 10


def test_run_killed_mid_epoch_resumes_to_the_same_number_of_epochs(tmp_path, recwarn):
    args = quick_args(tmp_path, "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "3",
                      "--trainer.limit_val_batches", "1")
    killed = subprocess.run(
        [sys.executable, "-m", "involution", *args,
         "--trainer.callbacks+=killer_callback.KillMidEpoch",
         "--trainer.callbacks.epoch=1", "--trainer.callbacks.batch=1"],
        env=dict(os.environ, PYTHONPATH=str(REPO / "tests")), capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    run_dir = only_run_dir(tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 0  # only epoch 0 finished

    cli = run_cli(args + ["--ckpt_path", str(last)])
    assert cli.trainer.current_epoch == 3
    assert only_run_dir(tmp_path) == run_dir  # same run folder, same log
    # Lightning's note that the folder has checkpoints already: by design, so not shown.
    assert not [w for w in recwarn if "exists and is not empty" in str(w.message)]
    val_epochs = [int(float(r["epoch"])) for r in read_metrics(run_dir) if r.get("val/top1")]
    assert val_epochs == [0, 1, 2]
    train_epochs = [int(float(r["epoch"])) for r in read_metrics(run_dir)
                    if r.get("train/loss_epoch")]
    assert train_epochs == [0, 1, 2]


def test_kernel_statistics_are_logged_per_involution_layer(tmp_path):
    run_cli(quick_args(tmp_path, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
                       "--trainer.limit_val_batches", "1", "--trainer.log_every_n_steps", "1"))
    header = read_metrics(only_run_dir(tmp_path))[0].keys()
    kernel_columns = [name for name in header if name.startswith("kernels/")]
    # The tiny RedNet: the stem's involution and one per bottleneck (one per stage).
    assert len(kernel_columns) == 2 * 5
    assert "kernels/stem.1/std" in kernel_columns and "kernels/layer4.0.conv2/absmax" in header


@pytest.mark.parametrize("written", [["--trainer.limit_val_batches", "1"], ["--trainer.limit_val_batches=1"],
                                     ["--config", "{tmp_path}/one.yaml"]])
def test_a_batch_limit_of_1_means_one_batch_not_the_whole_set(tmp_path, written):
    # Lightning's type (float | int) made the parser read "1" as 1.0, i.e. 100%,
    # on the command line and in a config file alike.
    (tmp_path / "one.yaml").write_text("trainer:\n  limit_val_batches: 1\n")
    written = [arg.format(tmp_path=tmp_path) for arg in written]
    cli = run_cli(quick_args(tmp_path, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
                             *written, "--trainer.num_sanity_val_steps", "0"))
    assert cli.trainer.limit_val_batches == 1 and isinstance(cli.trainer.limit_val_batches, int)
    assert cli.trainer.num_val_batches == [1]  # the sample set's validation split has 2 batches


def test_a_batch_limit_of_1_0_means_the_whole_set(tmp_path):
    fraction = run_cli(quick_args(tmp_path, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
                                  "--trainer.limit_val_batches", "1.0", "--trainer.num_sanity_val_steps", "0"))
    assert fraction.trainer.num_val_batches == [2]


def test_non_finite_loss_stops_training_and_saves_a_checkpoint(tmp_path):
    import lightning as L
    images = torch.full((8, 3, 32, 32), float("nan"))
    loader = DataLoader(TensorDataset(images, torch.zeros(8, dtype=torch.long)), batch_size=4)
    trainer = L.Trainer(max_epochs=1, default_root_dir=tmp_path, logger=False,
                        callbacks=[NonFiniteLossGuard()], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss .* at global step 0 \(epoch 1\)"):
        trainer.fit(ImageClassifier("resnet26", num_classes=3), loader)
    assert (tmp_path / "checkpoints" / "nonfinite-step0.ckpt").is_file()


@pytest.mark.parametrize("override,message", [
    (["--model.model_name", "rednet27"], "unknown model 'rednet27'"),
    (["--model.optimizer.name", "lamb"], "lamb"),
    (["--model.schedule.name", "cyclic"], "cyclic"),
    (["--model.optimizer.lr", "-0.1"], "optimizer.lr must be positive, got -0.1"),
    # LightningCLI's own optimiser flags would silently replace the recipe's optimiser
    # and schedule: they do not exist here.
    (["--optimizer", "torch.optim.Adam"], "unrecognized arguments: --optimizer"),
    (["--lr_scheduler", "torch.optim.lr_scheduler.StepLR"],
     "unrecognized arguments: --lr_scheduler"),
    (["--config", "resnet26_caltech256_course"],
     "use --config caltech256_course --model.model_name resnet26"),
])
def test_bad_config_stops_before_training(tmp_path, override, message, capsys):
    with pytest.raises((ValueError, SystemExit)) as error:
        run_cli(quick_args(tmp_path, *override))
    shown = str(error.value) + capsys.readouterr().err
    assert message in shown
    assert not any(tmp_path.rglob("*.ckpt"))


def test_a_misspelt_model_name_is_one_line_with_a_suggestion(tmp_path, capsys):
    # It printed a 63-line traceback before its message.
    assert main(quick_args(tmp_path, "--model.model_name", "rednet_26")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown model 'rednet_26'; did you mean 'rednet26'") and "\n" not in err


def test_training_on_one_class_is_refused_in_one_line_naming_the_folder(tmp_path, capsys):
    # One class gave torchmetrics' traceback from inside the first training step.
    from PIL import Image
    folder = tmp_path / "one" / "256_ObjectCategories" / "001.ant"
    folder.mkdir(parents=True)
    for i in range(10):
        Image.new("RGB", (40, 40), (i * 20, 0, 0)).save(folder / f"{i}.jpg")
    assert main(quick_args(tmp_path, "--data.root", str(tmp_path / "one"))) == 2
    err = capsys.readouterr().err.strip()
    assert "has one class folder (001.ant): a classifier needs at least two" in err and "\n" not in err


def test_missing_data_root_is_reported(tmp_path, capsys):
    with pytest.raises((FileNotFoundError, SystemExit)) as error:
        run_cli(quick_args(tmp_path, "--data.root", str(tmp_path / "nowhere")))
    assert "Caltech-256 was not found" in str(error.value) + capsys.readouterr().err


def test_num_classes_disagreeing_with_the_data_is_refused(tmp_path):
    import lightning as L

    from involution.data import Caltech256DataModule
    trainer = L.Trainer(max_epochs=1, default_root_dir=tmp_path, logger=False,
                        enable_progress_bar=False, enable_model_summary=False)
    with pytest.raises(ValueError, match="model has 257 classes but the data has 10"):
        trainer.fit(ImageClassifier("resnet26", num_classes=257),
                    Caltech256DataModule("sample", image_size=32, num_workers=0))


def test_schedules_step_every_optimiser_step_with_warmup():
    warmup_cosine = ScheduleConfig(name="cosine", warmup_epochs=1, warmup_start_factor=0.1)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = build_schedule(optimizer, warmup_cosine, total_steps=40, steps_per_epoch=10)
    lrs = []
    for _ in range(40):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[10] == pytest.approx(1.0)  # warm-up, then peak
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # cosine decays every step
    assert lrs[-1] < 0.01

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    schedule = build_schedule(optimizer, ScheduleConfig(name="exponential", gamma=0.5),
                              total_steps=40, steps_per_epoch=10)
    for _ in range(10):
        optimizer.step()
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)  # gamma is per epoch


def test_optimiser_and_schedule_are_typed_records_saved_as_plain_values():
    model = ImageClassifier("resnet26", num_classes=3,
                            optimizer=OptimizerConfig(name="adamw", lr=0.01, weight_decay=0.05),
                            schedule=ScheduleConfig(name="step", step_epochs=2))
    optimizer = model.optimizer_config.build(model.parameters())
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.defaults["lr"] == 0.01 and optimizer.defaults["weight_decay"] == 0.05
    # Checkpoints hold plain values (read with weights_only=True), and rebuild the records.
    assert model.hparams["optimizer"] == {"name": "adamw", "lr": 0.01, "momentum": 0.9,
                                          "nesterov": True, "weight_decay": 0.05}
    assert model.hparams["schedule"]["name"] == "step"
    rebuilt = ImageClassifier(**{k: v for k, v in model.hparams.items()})
    assert rebuilt.optimizer_config == model.optimizer_config
    assert rebuilt.schedule_config == ScheduleConfig(name="step", step_epochs=2)
    with pytest.raises(ValueError, match=r"schedule.name must be one of .* got 'cyclic'"):
        ScheduleConfig(name="cyclic")


def test_a_missing_checkpoint_is_one_line_with_the_fix_not_a_traceback(tmp_path, capsys):
    missing = tmp_path / "missing.ckpt"
    assert main(quick_args(tmp_path, "--ckpt_path", str(missing), command="test")) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: checkpoint {missing} does not exist") and "Traceback" not in error


def test_a_setting_lightning_refuses_is_one_line_not_a_traceback(tmp_path, capsys):
    assert main(quick_args(tmp_path, "--trainer.max_epochs", "-3")) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: invalid setting: `max_epochs` must be a non-negative integer or -1. "
                            "You passed in -3.") and "Traceback" not in error


def print_config(capsys, *args) -> dict:
    """The configuration ``python -m involution ARGS --print_config`` composes."""
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--print_config"])
    assert exit_.value.code == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_one_recipe_serves_every_model(capsys):
    rednet = print_config(capsys, "fit", "--config", "caltech256_course")
    resnet = print_config(capsys, "fit", "--config", "caltech256_course",
                          "--model.model_name", "resnet26")
    assert rednet["model"]["model_name"] == "rednet26"
    assert resnet["model"]["model_name"] == "resnet26"
    for part in ("optimizer", "schedule"):  # the course recipe, for both
        assert rednet["model"][part] == resnet["model"][part]
    assert resnet["model"]["optimizer"] == {"name": "sgd", "lr": 0.1, "momentum": 0.9,
                                            "nesterov": True, "weight_decay": 1e-4}
    assert resnet["trainer"]["max_epochs"] == 150 and resnet["data"]["transforms"] == "course"


def test_config_files_compose_later_ones_overriding(tmp_path, capsys):
    override = tmp_path / "short.yaml"
    override.write_text("trainer:\n  max_epochs: 3\nmodel:\n  optimizer:\n    lr: 0.05\n")
    composed = print_config(capsys, "fit", "--config", "caltech256_official",
                            "--config", str(override))
    assert composed["trainer"]["max_epochs"] == 3
    assert composed["model"]["optimizer"]["lr"] == 0.05
    assert composed["model"]["optimizer"]["nesterov"] is True  # the rest is the recipe's
    assert composed["model"]["schedule"]["warmup_epochs"] == 5


def test_help_lists_every_command_and_fit_help_the_shipped_recipes(capsys):
    from involution.__main__ import COMMANDS

    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("usage: python -m involution COMMAND")
    for name, command in COMMANDS.items():  # one row per command, from the one table
        assert f"  {name}" in shown and command.summary in shown
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    shown = capsys.readouterr().out
    for name in ("quick_sample", "shapes", "caltech256_course", "caltech256_official", "finetune_caltech256"):
        assert name in shown


def test_an_unknown_command_is_named_with_the_choices(capsys):
    assert main(["fitt", "--config", "quick_sample"]) == 2
    error = capsys.readouterr().err
    assert "unknown command 'fitt'" in error and "fit, validate, test, predict" in error


def test_wandb_is_used_only_when_configured(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "")
    assert not wandb_configured()
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_configured()
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert not wandb_configured()


def test_offline_wandb_run_logs_beside_the_csv(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cli = run_cli(quick_args(tmp_path, "--trainer.max_epochs", "1",
                             "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1"))
    run_dir = only_run_dir(tmp_path)
    assert [type(logger).__name__ for logger in cli.trainer.loggers] == [
        "ResumableCSVLogger", "WandbLogger"]
    assert (run_dir / "metrics.csv").is_file()
    (first,) = (run_dir / "wandb").glob("offline-run-*")
    # A second run in the same process (a notebook's next seed) gets its own W&B
    # run: Lightning would reuse the open one and mix the two runs' curves.
    run_cli(quick_args(tmp_path, "--trainer.max_epochs", "1", "--run_name", "second",
                       "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1"))
    (second,) = (only_run_dir(tmp_path, "second") / "wandb").glob("offline-run-*")
    assert first.name.split("-")[-1] != second.name.split("-")[-1]  # two W&B run ids


def test_without_a_progress_bar_each_epoch_prints_one_line(tmp_path, capsys):
    # Notebooks run without a progress bar (a saved bar stays frozen): one line per epoch instead.
    run_cli(quick_args(tmp_path, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "1",
                       "--trainer.limit_val_batches", "1"))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  epoch ")]
    assert [line.split(":")[0] for line in lines] == ["  epoch 1/2", "  epoch 2/2"]
    assert "val top-1" in lines[0] and lines[0].endswith(" s)")


def test_recompute_is_a_training_option_of_rednets_only():
    # --model.recompute true trades time for memory (the Performance page of the docs).
    assert ImageClassifier("rednet26", num_classes=10, recompute=True).model.recompute is True
    assert ImageClassifier("rednet26", num_classes=10).model.recompute is False
    with pytest.raises(TypeError, match="resnet26 does not accept the option recompute"):
        ImageClassifier("resnet26", num_classes=10, recompute=True)


# What Lightning prints that a user of this command line cannot act on: an advertisement,
# a deprecation inside Lightning, the accelerators it found and did not use, and a note
# that an evaluation's checkpoint callbacks have a folder of their own.
LIBRARY_CHATTER = ["💡 Tip", "litlogger", "LeafSpec", "GPU available:", "TPU available:",
                   "The dirpath has changed"]


def run_command(*args) -> str:
    """``python -m involution ARGS`` in a process of its own (no terminal): stdout and stderr."""
    done = subprocess.run([sys.executable, "-m", "involution", *args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_the_command_line_shows_the_run_and_not_the_libraries_chatter(tmp_path):
    # Lightning's defaults for the progress bar and model summary: what a user gets.
    common = ["--config", QUICK, "--model.model_name", MODEL, "--trainer.default_root_dir", str(tmp_path),
              "--data.image_size", "32", "--data.num_workers", "0", "--trainer.max_epochs", "1",
              "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1"]
    fit = run_command("fit", *common)
    run_dir = only_run_dir(tmp_path)
    assert str(run_dir) in fit  # where the run is
    epoch_lines = [line for line in fit.splitlines() if line.startswith("  epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == ["  epoch 1/1"]  # no terminal: no bar
    best = run_dir / "checkpoints" / "best.ckpt"
    assert f"best val top-1 {json.loads((run_dir / 'results.json').read_text())['best_val_top1']:.1%}" in fit
    assert str(best) in fit  # what to evaluate next
    test = run_command("test", *common, "--ckpt_path", str(best))
    assert "Results: test loss " in test and "test top-1 " in test  # the results, in % as the epoch lines
    for chatter in LIBRARY_CHATTER:
        assert chatter not in fit and chatter not in test, chatter
    verbose = run_command("validate", *common, "--ckpt_path", str(best), "--verbose")
    assert "GPU available:" in verbose


def test_a_run_says_the_sample_set_disclaimer_once_and_every_line_speaks_the_same_units(tmp_path, capsys):
    # Epochs counted from 1 and accuracies in % in the epoch lines, the Done: line and the results
    # of validate and test (Lightning's table printed test/top1 0.15); the sample set's 60-word disclaimer
    # once per run: by the fit that makes it, not again by each later command of the run.
    from involution.data import SAMPLE_SET_NOTICE
    assert main(quick_args(tmp_path, "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "1",
                           "--trainer.limit_val_batches", "1")) == 0
    out = capsys.readouterr().out
    assert out.count(SAMPLE_SET_NOTICE) == 1
    run_dir = only_run_dir(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    epoch_lines = [line.strip() for line in out.splitlines() if line.startswith("  epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == ["epoch 1/2", "epoch 2/2"]
    best_epoch, best = results["best_epoch"] + 1, f"{results['best_val_top1']:.1%}"
    assert f"val top-1 {best} (" in epoch_lines[best_epoch - 1]
    assert f"Done: best val top-1 {best} (epoch {best_epoch}), checkpoint" in out

    checkpoint = str(run_dir / "checkpoints" / "best.ckpt")
    assert main(quick_args(tmp_path, "--ckpt_path", checkpoint, "--trainer.limit_val_batches", "1",
                           command="validate")) == 0  # the batch the fit validated on
    out = capsys.readouterr().out
    assert out.count(SAMPLE_SET_NOTICE) == 0 and "Validate metric" not in out
    (line,) = [line for line in out.splitlines() if line.startswith("Results:")]
    assert line.startswith("Results: val loss ") and line.endswith(
        f", val top-1 {best}, val top-5 {results['best_val_top5']:.1%}")

    assert main(quick_args(tmp_path, "--ckpt_path", checkpoint, command="test")) == 0
    out = capsys.readouterr().out
    results = json.loads((run_dir / "results.json").read_text())
    assert out.count(SAMPLE_SET_NOTICE) == 0 and "Test metric" not in out
    (line,) = [line for line in out.splitlines() if line.startswith("Results:")]
    assert line.startswith("Results: test loss ") and line.endswith(
        f", test top-1 {results['test_top1']:.1%}, test top-5 {results['test_top5']:.1%} (20 images)")
