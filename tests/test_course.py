"""The course project's runs: overrides composed on the course recipe, sets, commands, a real tiny set."""
import shlex
from types import SimpleNamespace

import pytest
import yaml

from involution.__main__ import main
from involution.train.configs import compose_configs, find_config, list_configs
from involution.train.runs import RESULTS_FILE
from involution.workbook import course, course_sets
from involution.workbook.data_choice import choose_data
from involution.workbook.notebook import Workbook
from involution.workbook.reference import COURSE_PROJECT_FINDINGS, COURSE_PROJECT_RESULTS, COURSE_PROJECT_RUNS

# Each course run as the course project described it (its README): model, lr, weight decay,
# epochs, gradient clipping, dropout.
EXPECTED = {
    "rednet26_nowd": ("rednet26", 0.1, 0.0, 130, None, 0.0),
    "rednet26_wd_dropout": ("rednet26", 0.1, 1e-4, 130, None, 0.1),
    "rednet26_clip": ("rednet26", 0.1, 1e-4, 130, 1.0, 0.1),
    "rednet26_150": ("rednet26", 0.1, 1e-4, 150, 1.0, 0.1),
    "resnet26_nowd": ("resnet26", 0.1, 0.0, 130, None, 0.0),
    "resnet26_wd": ("resnet26", 0.1, 1e-4, 130, None, 0.0),
    "resnet26_150": ("resnet26", 0.1, 1e-4, 150, None, 0.0),
    "rednet50_lr08": ("rednet50", 0.8, 0.0, 150, None, 0.1),
    "rednet50_lr08_wd_clip": ("rednet50", 0.8, 1e-4, 150, 1.0, 0.1),
    "resnet50_lr08": ("resnet50", 0.8, 0.0, 150, None, 0.1),
    "dednet121": ("dednet121", 0.1, 1e-4, 150, 1.0, 0.1),
    "densenet121": ("densenet121", 0.1, 1e-4, 150, 1.0, 0.1),
}


def recipe_values(config: dict) -> tuple:
    model, trainer = config["model"], config["trainer"]
    return (model["model_name"], model["optimizer"]["lr"], model["optimizer"]["weight_decay"],
            trainer["max_epochs"], trainer["gradient_clip_val"], model["drop_rate"])


def test_every_override_file_is_a_known_course_run():
    assert list_configs("course") == [f"course/{name}" for name in sorted(EXPECTED)]
    assert {run.name for chosen in course_sets.COURSE_SETS.values() for run in chosen.runs} == set(EXPECTED)
    assert "course/rednet26_nowd" not in list_configs()  # the recipes' list is unchanged


@pytest.mark.parametrize("name", ["rednet26_nowd", "rednet26_clip", "resnet26_150", "rednet50_lr08"])
def test_the_cli_composes_the_course_run(capsys, name):
    """The real parser (jsonargparse), on a few runs: it agrees with compose_configs, checked on all."""
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", "caltech256_course", "--config", f"course/{name}", "--print_config"])
    assert exit_.value.code == 0
    parsed = yaml.safe_load(capsys.readouterr().out)
    assert recipe_values(parsed) == EXPECTED[name]
    assert parsed["model"]["optimizer"]["nesterov"] is True and parsed["data"]["batch_size"] == 16
    assert parsed["data"]["transforms"] == "course" and parsed["model"]["schedule"]["name"] == "cosine"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_course_run_resolves_to_its_reported_recipe(name):
    run = course_sets.CourseRun(name)
    assert recipe_values(compose_configs(list(run.configs))) == EXPECTED[name]
    assert run.model == EXPECTED[name][0] and run.epochs == EXPECTED[name][3]


def test_reported_figures_live_in_one_table():
    assert COURSE_PROJECT_RUNS["rednet26_nowd"]["val_top1"] == 50.6
    assert [row["val_top1"] for row in COURSE_PROJECT_FINDINGS if row["model"] == "RedNet-26"] == \
        [50.6, 55.00, 57.3, 60.05]
    assert [row["val_top1"] for row in COURSE_PROJECT_RESULTS] == [57.59, 60.05]
    assert course_sets.CourseRun("rednet50_lr08_wd_clip").reported is None  # our controls, not theirs
    assert course_sets.CourseRun("resnet50_lr08").reported is None
    assert compose_configs([course_sets.RECIPE])["data"]["root"] == course_sets.RECIPE_DATA_ROOT


def test_find_config_names_override_folders():
    assert find_config("course/rednet26_nowd").parent.name == "course"
    with pytest.raises(FileNotFoundError, match="the overrides in course/ are course/dednet121"):
        find_config("course/rednet26")


def test_list_shows_sets_runs_and_recipes(capsys):
    course.main(["list"])
    out = capsys.readouterr().out
    assert "ablation: RedNet-26's recipe, one change at a time" in out
    assert "rednet26_nowd          RedNet-26    sgd lr 0.1, wd 0, dropout 0, clip none, 130 epochs" in out
    assert "rednet50_lr08          RedNet-50    sgd lr 0.8, wd 0, dropout 0.1, clip none, 150 epochs" in out
    assert "course/densenet121" in out


def test_print_commands_gives_one_fit_line_per_run(capsys):
    course.main(["run", "ablation", "--print-commands"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "export WANDB_RUN_GROUP=course-ablation"
    assert len(lines) == 1 + 4
    for line, run in zip(lines[1:], ["rednet26_nowd", "rednet26_wd_dropout", "rednet26_clip", "rednet26_150"]):
        args = shlex.split(line)
        assert args[:4] == ["python", "-m", "involution", "fit"]
        assert args[4:8] == ["--config", "caltech256_course", "--config", f"course/{run}"]
        assert args[args.index("--run_name") + 1] == f"ablation-{run}-caltech256"
        assert "--trainer.max_epochs" not in args  # Caltech-256: the composed recipe as it is


def test_print_commands_on_shapes_scales_the_epochs(capsys):
    course.main(["run", "overfitting", "--data", "shapes", "--epochs", "15", "--print-commands"])
    lines = [shlex.split(line) for line in capsys.readouterr().out.splitlines()[1:]]
    assert [args[args.index("--trainer.max_epochs") + 1] for args in lines] == ["13", "13", "15"]
    assert all(args[args.index("--data.root") + 1] == "shapes" for args in lines)


@pytest.mark.parametrize("argv, message", [
    (["run", "ablations"], "unknown set 'ablations'; choose one of ablation, overfitting, instability, dednet"),
    (["run", "ablation", "--epochs", "3", "--print-commands"],
     "on Caltech-256 the course recipe is run exactly. Use --data shapes"),
    (["run", "ablation", "--data", "shapes", "--epochs", "0"], "--epochs must be a positive whole number"),
])
def test_bad_sets_and_options_say_the_fix(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        course.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    with pytest.raises(ValueError, match="python -m involution course list"):
        course_sets.course_set("nope")


def test_a_missing_data_folder_is_named_as_the_flag_that_gave_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("involution.workbook.data_choice.internet_reachable", lambda: False)
    missing = tmp_path / "nowhere"
    with pytest.raises(SystemExit):
        course.main(["run", "ablation", "--data", str(missing), "--print-commands"])
    error = capsys.readouterr().err
    assert f"--data {missing}, but {missing} holds no 256_ObjectCategories folder" in error
    assert error.rstrip().endswith("or use --data shapes.")
    assert "settings cell" not in error and "DATA_ROOT" not in error


def test_a_tiny_set_runs_and_is_tabled_together(tmp_path, capsys):
    """The dednet set with the tiny test model, fast-mode limits, on the sample set."""
    book = Workbook(root=tmp_path, fast=True, workdir=tmp_path, colab=False, gpu=None)
    data = choose_data("sample", fast=True)
    runs = course.run_set("dednet", book, data, course_sets.SMALL_SCALE, model="test_rednet")
    assert list(runs) == ["dednet121", "densenet121"]
    for name, run in runs.items():
        assert run.path.parent.name == f"dednet-{name}-sample"
        assert (run.path / RESULTS_FILE).is_file() and run.tested and run.results.epochs_trained == 1
    table = course.results_table("dednet", course.load_set("dednet", book.runs_dir, "sample"), "sample")
    lines = table.splitlines()
    assert lines[2].split()[:3] == ["course", "run", "model"]
    assert lines[4].startswith("dednet121") and " tested " in lines[4]
    assert "sample set" in lines[1] and "reported by the original course project" in lines[0]
    capsys.readouterr()
    assert course.run_set("dednet", book, data, course_sets.SMALL_SCALE, model="test_rednet") == runs
    assert capsys.readouterr().out.count("Reusing the finished run") == 2


def test_small_scale_composes_on_the_shapes_recipe_except_the_instability_set():
    # The course's SGD at lr 0.1 does not learn the shapes set at 32 px; the divergence at lr 0.8 needs no learning.
    ablation = course_sets.course_set("ablation")
    nowd = ablation.runs[0]
    assert nowd.configs_on(ablation.recipe_at(course_sets.SMALL_SCALE)) == ("shapes", "course/rednet26_nowd")
    assert nowd.recipe("shapes") == "adamw lr 0.004, wd 0, dropout 0, clip none, 130 epochs"
    assert course_sets.course_set("instability").recipe_at(course_sets.SMALL_SCALE) == course_sets.RECIPE
    assert course_sets.course_set("dednet").recipe_at(course_sets.FULL_SCALE) == course_sets.RECIPE


def test_print_commands_keep_an_absolute_workdir_absolute(tmp_path, capsys, monkeypatch):
    # The commands are for another shell or machine: a workdir given absolute was printed
    # relative to the folder the command happened to run in.
    monkeypatch.chdir(tmp_path.parent)
    course.main(["run", "ablation", "--data", "shapes", "--print-commands", "--workdir", str(tmp_path)])
    lines = [shlex.split(line) for line in capsys.readouterr().out.splitlines()[1:]]
    assert {args[args.index("--trainer.default_root_dir") + 1] for args in lines} == {str(tmp_path / "runs")}


def test_step_losses_read_every_model_and_kernel_growth_only_involution(tmp_path):
    # A step-level metrics.csv as Lightning's CSV logger writes it: a RedNet's rows carry kernel
    # statistics, a ResNet's (the instability set's control) only the loss.
    (tmp_path / "metrics.csv").write_text(
        "epoch,step,train/loss_step,kernels/layer1.0.conv2/absmax,val/loss\n"
        "0,0,2.5,7.0,\n0,1,3.5,70.0,\n0,1,,,nan\n")
    run = SimpleNamespace(path=tmp_path)
    assert course.step_losses(run) == {"step": [0, 1], "train_loss": [2.5, 3.5]}
    assert course.kernel_growth(run) == {"step": [0, 1], "kernel_absmax": [7.0, 70.0], "train_loss": [2.5, 3.5]}
    (tmp_path / "metrics.csv").write_text("epoch,step,train/loss_step\n0,0,2.5\n0,1,2.25\n")
    assert course.step_losses(run)["train_loss"] == [2.5, 2.25] and course.kernel_growth(run)["step"] == []




def test_the_reported_table_holds_every_course_run_with_its_own_numbers():
    table = course.reported_table()
    assert table.startswith("reported by the original course project")
    for name, reported in COURSE_PROJECT_RUNS.items():
        line = next(line for line in table.splitlines() if f" {name} " in line)
        assert reported["model"] in line
        assert (f"{reported['val_top1']:.2f}%" if reported["val_top1"] is not None else " - ") in line
    assert "rednet50_lr08_wd_clip" not in table  # our own controls are not the course project's


def _fake_run(folder, seed, val_losses, val_top1, test_top1, model="resnet26"):
    """A finished, tested run folder with the given per-epoch validation loss and top-1."""
    import json

    from involution.train.runs import Run
    folder.mkdir(parents=True)
    rows = ["epoch,step,train/loss_epoch,val/loss,val/top1"]
    rows += [f"{epoch},{epoch},{2.0 / (epoch + 1):.4f},{loss},{top1}"
             for epoch, (loss, top1) in enumerate(zip(val_losses, val_top1))]
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    (folder / RESULTS_FILE).write_text(json.dumps({
        "model": model, "params": 1000, "epochs_trained": len(val_losses), "best_val_top1": max(val_top1),
        "best_epoch": len(val_losses), "seed": seed, "test_top1": test_top1, "test_top5": 0.99,
        "dataset": {"kind": "shapes", "image_size": 64, "root": "shapes", "num_classes": 10},
        "machine": {"cpu": "Test CPU", "cpu_threads": 2, "gpu": None}}))
    return Run.load(folder)


def test_the_overfitting_experiment_reads_rises_and_compares_with_intervals(tmp_path):
    from involution.workbook import overfitting
    plan = overfitting.Plan(seeds=(0, 1, 2))
    top1 = [0.5, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    runs = {0.0: [_fake_run(tmp_path / f"off{s}", s, [1.0, 0.6, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0 + s / 10], top1, t)
                  for s, t in ((0, 0.70), (1, 0.71), (2, 0.72))],
            0.05: [_fake_run(tmp_path / f"on{s}", s, [1.0, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5 + s / 100], top1, t)
                   for s, t in ((0, 0.80), (1, 0.81), (2, 0.82))]}
    curve = overfitting.read_loss_curve(runs[0.0][1])
    assert (curve.lowest, curve.lowest_epoch, curve.final) == (0.5, 3, 1.1)
    assert curve.rise == pytest.approx(0.6)
    compared = overfitting.compare(plan, runs)
    assert compared["test top-1"].verdict == "weight decay 0.05 higher"
    assert compared["test top-1"].difference == pytest.approx(10.0)
    assert compared["rise of the validation loss"].verdict == "no weight decay higher"
    table = overfitting.format_runs(plan, runs)
    assert len(table.splitlines()) == 7 and "+0.600" in table and "70.0%" in table
    found = overfitting.findings(plan, runs, "shapes set")
    assert [row["rose"] for row in found["rows"]] == [3, 2]
    assert found["verdicts"]["test top-1"]["verdict"] == "weight decay 0.05 higher"
    assert found["verdicts"]["test top-1"]["higher"] == "weight decay 0.05" and found["all_at_chance"] is False
    assert overfitting.run_name(plan, 0.05, 2, "shapes") == "overfitting-resnet26-wd0.05-shapes-seed2"
    assert overfitting.extra_args(plan, 0.0)[:4] == ["--data.train_per_class", "40", "--model.optimizer.weight_decay",
                                                     "0.0"]
