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
    assert nowd.recipe("shapes") == "adamw lr 0.002, wd 0, dropout 0, clip none, 130 epochs"
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


def test_findings_gather_every_set_for_the_slides(tmp_path):
    book = Workbook(root=tmp_path, fast=True, workdir=tmp_path, colab=False, gpu=None)
    assert course.findings(book.runs_dir, "sample") is None  # no runs yet
    course.run_set("dednet", book, choose_data("sample", fast=True), course_sets.SMALL_SCALE, model="test_rednet")
    found = course.findings(book.runs_dir, "sample")
    assert list(found["sets"]) == list(course_sets.COURSE_SETS) and found["image_sizes"] == [32]
    dednet = found["sets"]["dednet"]["rows"]
    assert [row["course run"] for row in dednet] == ["dednet121", "densenet121"]
    assert all(row["status"] == "tested" for row in dednet)
    assert {row["status"] for row in found["sets"]["ablation"]["rows"]} == {"not run"}
    assert found["kernel_growth"] == {} and found["data"].startswith("sample set")
    classes = course.load_set("dednet", book.runs_dir, "sample")["densenet121"].results.dataset["num_classes"]
    assert classes > 1 and found["chance_top1"] == 100 / classes
