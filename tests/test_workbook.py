"""The notebooks' support: set-up (workbook), data choice, run folders, results tables, weights."""
import json
import math
import re
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import tomllib
import torch

from involution.data import Caltech256DataModule
from involution.models import create_model
from involution.train import runs
from involution.train.runs import Run, RunResults, find_runs, latest_run, model_label, read_metrics
from involution.workbook import colab, data_choice, experiments, repository
from involution.workbook import notebook as workbook
from involution.workbook.data_choice import DataChoice, choose_data, internet_reachable
from involution.workbook.experiments import find_comparison, training_args
from involution.workbook.notebook import FAST_ENV, WORKDIR_ENV, fast_mode, work_directory
from involution.workbook.repository import repo_root
from involution.workbook.results import (
    SeedSpread,
    compare_means,
    format_epoch_table,
    format_rerun_table,
    format_results_table,
    format_seed_table,
    plateau_gain,
    results_rows,
    runs_data_statement,
)
from involution.workbook.weights import find_weights

REPO = Path(__file__).resolve().parents[1]


# -- where we are --------------------------------------------------------------------


def test_repo_root_is_found_from_a_subfolder_and_from_outside(tmp_path):
    assert repo_root(REPO / "notebooks") == REPO
    assert repo_root(REPO / "involution" / "data" / "sample_data") == REPO
    # Outside any checkout it falls back to the package's own repository.
    assert repo_root(tmp_path) == REPO


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("YES", True), (" on ", True),
                                             ("0", False), ("", False), ("false", False), ("off", False)])
def test_fast_mode_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(FAST_ENV, value)
    assert fast_mode() is expected


def test_fast_mode_is_off_without_the_variable_and_rejects_garbage(monkeypatch):
    monkeypatch.delenv(FAST_ENV, raising=False)
    assert fast_mode() is False
    monkeypatch.setenv(FAST_ENV, "maybe")
    with pytest.raises(ValueError, match="INVOLUTION_FAST='maybe'"):
        fast_mode()


def test_fast_mode_work_directory_is_outside_the_repository(monkeypatch, tmp_path):
    monkeypatch.delenv(WORKDIR_ENV, raising=False)
    monkeypatch.setattr(workbook.tempfile, "gettempdir", lambda: str(tmp_path))
    workdir = work_directory(fast=True)
    assert workdir.is_dir()
    assert workdir.parent == tmp_path
    with pytest.raises(ValueError):
        workdir.relative_to(REPO)


def test_work_directory_follows_the_environment_and_refuses_the_repo_in_fast_mode(monkeypatch, tmp_path):
    monkeypatch.setenv(WORKDIR_ENV, str(tmp_path / "work"))
    assert work_directory(fast=True) == (tmp_path / "work").resolve()
    assert (tmp_path / "work").is_dir()
    monkeypatch.setenv(WORKDIR_ENV, str(REPO / "runs"))
    with pytest.raises(ValueError, match="must not write into the repository"):
        work_directory(fast=True)


def test_normal_mode_writes_into_the_repository(monkeypatch):
    monkeypatch.delenv(WORKDIR_ENV, raising=False)
    assert work_directory(fast=False) == REPO


def test_setup_in_fast_mode(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(FAST_ENV, "1")
    monkeypatch.setenv(WORKDIR_ENV, str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.chdir(REPO / "notebooks")  # where a notebook starts
    book = workbook.setup()
    # The notebook now works from the repository's root, so its paths are short and relative.
    assert Path.cwd() == REPO
    assert book.fast and book.root == REPO and book.workdir == tmp_path.resolve()
    assert book.runs_dir == tmp_path.resolve() / "runs"
    assert book.figures_dir == tmp_path.resolve() / "slides" / "figures"
    assert book.config("quick_sample") == REPO / "involution" / "train" / "configs" / "quick_sample.yaml"
    assert workbook.os.environ["WANDB_MODE"] == "disabled"
    printed = capsys.readouterr().out
    assert "FAST" in printed and str(tmp_path.resolve()) in printed
    with pytest.raises(FileNotFoundError, match="the shipped recipes are .*quick_sample"):
        book.config("no_such_config")


# -- which data ------------------------------------------------------------------------


def _fake_caltech(root: Path) -> Path:
    """Caltech-256's 257 class folders, empty (choose_data only looks at the folders)."""
    for number in range(1, 258):
        name = "001.ak47" if number == 1 else f"{number:03d}.class{number}"
        (root / "256_ObjectCategories" / name).mkdir(parents=True)
    return root


def test_a_subset_of_caltech256_is_not_called_caltech256(tmp_path):
    for name in ("001.ak47", "002.american-flag"):
        (tmp_path / "256_ObjectCategories" / name).mkdir(parents=True)
    choice = choose_data(tmp_path, reachable=lambda: pytest.fail("no check needed"))
    assert choice.kind == "folder" and "not Caltech-256" in choice.statement


def test_fast_mode_always_uses_the_sample_set(tmp_path):
    choice = choose_data(_fake_caltech(tmp_path), fast=True, reachable=lambda: True)
    assert choice.is_sample_set and choice.root == "sample" and not choice.download
    assert "NOT Caltech-256" in choice.statement and "fast mode" in choice.statement
    assert choice.cli_args() == ["--data.root", "sample", "--data.download", "false"]
    assert choice.label == "sample set (memorisation check), not Caltech-256"


def test_the_default_is_the_shapes_set_and_the_statement_names_the_setting():
    choice = choose_data(reachable=lambda: pytest.fail("no check needed"))
    assert choice.kind == "shapes" and choice.root == "shapes" and not choice.download
    assert "DATA_ROOT = 'shapes' in the settings cell" in choice.statement
    assert "NOT Caltech-256" in choice.statement and "generalisation" in choice.statement
    assert choice.label == "shapes set (offline), not Caltech-256"


def test_caltech256_on_disk_is_used(tmp_path):
    choice = choose_data(_fake_caltech(tmp_path), reachable=lambda: pytest.fail("no check needed"))
    assert choice.kind == "caltech256" and not choice.download and choice.root == str(tmp_path)
    assert choice.statement.startswith("Data: Caltech-256, found in")
    assert choice.label == "Caltech-256"


def test_caltech256_is_downloaded_when_reachable(tmp_path):
    choice = choose_data(tmp_path / "absent", reachable=lambda: True)
    assert not choice.is_sample_set and choice.download
    assert choice.cli_args()[-2:] == ["--data.download", "true"]
    assert "downloaded" in choice.statement


def test_auto_falls_back_to_the_shapes_set_and_says_so(monkeypatch, tmp_path):
    monkeypatch.delenv(data_choice.DATA_ROOT_ENV, raising=False)
    choice = choose_data("auto", reachable=lambda: False, auto_folder=tmp_path)
    assert choice.kind == "shapes" and choice.root == "shapes"
    assert "NOT Caltech-256" in choice.statement and "cannot be reached" in choice.statement
    assert "\n" not in choice.statement


def test_auto_without_a_gpu_never_downloads(monkeypatch, tmp_path):
    monkeypatch.delenv(data_choice.DATA_ROOT_ENV, raising=False)
    choice = choose_data("auto", gpu=False, reachable=lambda: pytest.fail("no check needed"),
                         auto_folder=tmp_path)
    assert choice.kind == "shapes" and not choice.download and "no GPU" in choice.statement
    assert choose_data("auto", gpu=False, auto_folder=_fake_caltech(tmp_path)).kind == "caltech256"


def test_a_named_folder_without_data_is_an_error_not_a_silent_fallback(tmp_path):
    with pytest.raises(FileNotFoundError, match="DATA_ROOT = 'shapes'"):
        choose_data(tmp_path / "absent", reachable=lambda: False)


def test_auto_follows_the_data_root_variable(monkeypatch, tmp_path):
    monkeypatch.setenv(data_choice.DATA_ROOT_ENV, str(_fake_caltech(tmp_path)))
    assert choose_data("auto", reachable=lambda: False).root == str(tmp_path)
    monkeypatch.setenv(data_choice.DATA_ROOT_ENV, "sample")
    assert choose_data("auto").is_sample_set


@pytest.mark.parametrize("bad", [None, "", "  ", 3])
def test_bad_data_roots_are_refused(bad):
    with pytest.raises(ValueError, match="data root"):
        choose_data(bad)


def test_internet_check_is_correct_and_gives_up_on_a_hanging_connection(monkeypatch):
    with socket.socket() as server:  # a local server: reachable
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert internet_reachable(f"http://127.0.0.1:{port}/x", timeout=2)
    assert not internet_reachable(f"http://127.0.0.1:{port}/x", timeout=2)  # closed now
    # A connection (or name look-up) that hangs far beyond the timeout: given up, not waited for.
    release = threading.Event()

    def hang(*args, **kwargs):
        release.wait(30)
        raise OSError("never answered")
    monkeypatch.setattr(data_choice.socket, "create_connection", hang)
    start = time.perf_counter()
    assert not internet_reachable("https://caltech.example/", timeout=0.2)
    assert time.perf_counter() - start < 10  # the hang lasts 30 s unless given up
    release.set()
    with pytest.raises(ValueError):
        internet_reachable("not a url")


# -- runs ------------------------------------------------------------------------------

METRICS_HEADER = ("epoch,kernels/stem.1/std,lr-SGD,step,train/loss_epoch,train/loss_step,train/top1,"
                  "val/loss,val/top1,val/top5,test/top1")
METRICS_CSV = METRICS_HEADER + """
,,0.1,0,,,,,,,
0,0.5,,4,,2.5,,,,,
0,,,6,,,,2.1,0.3,0.7,
0,,,6,2.2,,0.25,,,,
1,,,13,,,,1.9,0.45,0.8,
1,,,13,1.8,,0.4,,,,
1,,,13,,,,,,,0.5
"""


def test_read_metrics_collapses_lightning_rows_to_epochs(tmp_path):
    (tmp_path / "metrics.csv").write_text(METRICS_CSV)
    metrics = read_metrics(tmp_path)
    assert metrics["epoch"] == [0.0, 1.0]
    assert metrics["train/loss_epoch"] == [2.2, 1.8]
    assert metrics["val/top1"] == [0.3, 0.45]
    assert metrics["train/top1"] == [0.25, 0.4]
    assert metrics["test/top1"][1] == 0.5 and metrics["test/top1"][0] != metrics["test/top1"][0]
    assert not any(k.startswith(("kernels/", "lr-")) or k.endswith("_step") for k in metrics)
    table = format_epoch_table(metrics)
    assert table.splitlines()[1].split() == ["1", "2.200", "25.0", "2.100", "30.0", "70.0"]
    with pytest.raises(FileNotFoundError):
        read_metrics(tmp_path / "missing.csv")


def make_run(runs_dir: Path, name: str, version: str, model="rednet26", sample=True, tested=True,
             val_top1=0.5, params=7_000_000, epochs=3, metrics=True, kind=None, test_top1=0.4,
             seed=None) -> Path:
    folder = runs_dir / name / version
    folder.mkdir(parents=True)
    kind = kind or ("sample" if sample else "caltech256")
    results = {"model": model, "params": params, "epochs_trained": epochs, "best_val_top1": val_top1,
               "best_val_top5": 0.9, "best_epoch": 1, "seed": seed,
               "dataset": {"is_sample_set": kind == "sample", "kind": kind, "image_size": 64,
                           "root": "/nowhere"},
               "machine": {"cpu": "Test CPU", "cpu_threads": 2, "gpu": None}}
    if tested:
        results.update(test_top1=test_top1, test_top5=0.8)
    (folder / "results.json").write_text(json.dumps(results))
    if metrics:
        (folder / "metrics.csv").write_text(METRICS_CSV)
    return folder


def test_latest_run_picks_the_newest_matching_run(tmp_path):
    make_run(tmp_path, "rednet26_sample", "20260101-120000")
    newest = make_run(tmp_path, "rednet26_sample", "20260102-120000-1")
    make_run(tmp_path, "rednet26_sample", "20260102-120000")
    make_run(tmp_path, "resnet26_sample", "20270101-000000", model="resnet26")
    (tmp_path / "rednet26_sample" / "20280101-000000").mkdir()  # unfinished: no results.json
    validate_only = tmp_path / "rednet26_sample" / "20290101-000000"
    validate_only.mkdir()
    (validate_only / "results.json").write_text(json.dumps({"model": "rednet26", "params": 1}))

    assert latest_run(tmp_path, name="rednet26_sample").path == newest
    assert [r.version for r in find_runs(tmp_path, name="rednet26_sample")] == [
        "20260102-120000-1", "20260102-120000", "20260101-120000"]
    assert latest_run(tmp_path).model == "resnet26"
    assert latest_run(tmp_path, model="rednet").path == newest
    assert latest_run(tmp_path, model="rednet26", sample_set=False) is None
    assert latest_run(tmp_path, name=["missing", "resnet26_sample"]).model == "resnet26"
    assert latest_run(tmp_path / "nothing-here") is None


def test_run_describes_itself(tmp_path):
    run = Run.load(make_run(tmp_path, "rednet26_sample", "20260101-000000", epochs=1))
    assert run.label == "RedNet-26" and run.is_sample_set and run.tested
    assert run.summary() == ("RedNet-26 trained for 1 epoch at 64px on the sample set (memorisation "
                             "check), not Caltech-256")
    assert "Test CPU, 2 CPU threads, no GPU" in run.describe()
    assert run.metrics()["val/top1"] == [0.3, 0.45]
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        Run.load(tmp_path)


def test_find_comparison_takes_every_seed_of_one_kind_of_data(tmp_path):
    book = _book(tmp_path, fast=False, root=tmp_path / "no-committed-runs")
    runs_dir = tmp_path / "runs"
    with pytest.raises(FileNotFoundError, match="02_train_rednet"):
        find_comparison(book)
    make_run(runs_dir, "rednet26_sample_seed0", "20260101-000000", seed=0)
    make_run(runs_dir, "resnet26_sample_seed0", "20260101-000000", model="resnet26", seed=0)
    comparison = find_comparison(book)
    assert not comparison.committed and "notebook 02's runs" in comparison.source
    chosen = comparison.runs
    assert {m: [r.name for r in runs] for m, runs in chosen.items()} == {
        "rednet26": ["rednet26_sample_seed0"], "resnet26": ["resnet26_sample_seed0"]}
    # Shapes runs of both models win over sample-set runs; every seed, the newest run of each.
    for seed in (0, 1):
        make_run(runs_dir, f"rednet26_shapes_seed{seed}", "20260101-000000", kind="shapes", seed=seed)
        make_run(runs_dir, f"resnet26_shapes_seed{seed}", "20260101-000000", model="resnet26",
                 kind="shapes", seed=seed)
    newer = make_run(runs_dir, "rednet26_shapes_seed1", "20260102-000000", kind="shapes", seed=1)
    chosen = find_comparison(book).runs
    assert [r.seed for r in chosen["rednet26"]] == [0, 1] and chosen["rednet26"][1].path == newer
    assert all(r.kind == "shapes" for runs in chosen.values() for r in runs)
    # A Caltech-256 run of one model only: the shapes pair still wins (same data for both).
    make_run(runs_dir, "rednet26_caltech256_course", "20260101-000000", sample=False)
    assert find_comparison(book).runs["rednet26"][0].kind == "shapes"


def test_find_comparison_falls_back_to_the_committed_runs_and_says_so(tmp_path):
    comparison = find_comparison(_book(tmp_path, fast=True))  # no runs of its own
    assert comparison.committed and "slides/data/runs" in comparison.source
    assert {model: [run.seed for run in seed_runs] for model, seed_runs in comparison.runs.items()} \
        == {"rednet26": [0, 1, 2], "resnet26": [0, 1, 2]}
    assert all(run.tested and run.kind == "shapes" for run in comparison.all_runs)


def test_the_verdict_is_read_from_the_welch_interval_of_the_difference():
    overlapping = compare_means(SeedSpread("RedNet-26", (60.0, 64.0, 62.0)),
                                SeedSpread("ResNet-26", (61.0, 59.0, 63.0)))
    assert overlapping.low < 0 < overlapping.high
    assert overlapping.verdict == "no difference detectable at this precision"
    separated = compare_means(SeedSpread("RedNet-26", (70.0, 72.0, 71.0)),
                              SeedSpread("ResNet-26", (61.0, 59.0, 63.0)))
    assert separated.difference == pytest.approx(10.0) and separated.verdict == "RedNet-26 higher"
    # Welch's interval, checked by hand: t(0.975, df) * sqrt(s1^2/n1 + s2^2/n2), df from Welch-Satterthwaite.
    from scipy import stats
    se = (1.0 / 3 + 4.0 / 3) ** 0.5
    df = (1.0 / 3 + 4.0 / 3) ** 2 / ((1.0 / 3) ** 2 / 2 + (4.0 / 3) ** 2 / 2)
    assert separated.half_width == pytest.approx(stats.t.ppf(0.975, df) * se)
    behind = compare_means(SeedSpread("RedNet-26", (61.0, 59.0, 63.0)), SeedSpread("ResNet-26", (70.0, 72.0, 71.0)))
    assert behind.verdict == "ResNet-26 higher" and behind.high < 0
    assert (overlapping.higher, separated.higher, behind.higher) == (None, "RedNet-26", "ResNet-26")
    assert "95% interval" in str(separated) and "Verdict: RedNet-26 higher." in str(separated)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        compare_means(SeedSpread("A", (1.0,)), SeedSpread("B", (2.0, 3.0)))
    # Losses print as plain numbers, not as percentage points.
    loss = compare_means(SeedSpread("a", (0.5, 0.7), unit=""), SeedSpread("b", (0.1, 0.2), unit=""))
    assert "points" not in str(loss) and "+0.450" in str(loss)


def test_seed_table_prints_mean_spread_and_range(tmp_path):
    spread = SeedSpread("RedNet-26", (60.0, 64.0, 62.0))
    assert spread.mean == pytest.approx(62.0) and spread.std == pytest.approx(2.0)
    runs = {"rednet26": [Run.load(make_run(tmp_path, f"rednet26_shapes_seed{s}", "1", kind="shapes",
                                           seed=s, test_top1=t)) for s, t in ((0, 0.6), (1, 0.64))]}
    table = format_seed_table(runs)
    assert "RedNet-26" in table and "62.0% +- 2.8 (n=2, range 60.0 to 64.0)" in table


def test_plateau_gain_is_the_last_quarters_gain_in_points():
    assert plateau_gain({"val/top1": [0.1, 0.5, 0.7, 0.8, 0.805, 0.81, 0.812, 0.815]}) == pytest.approx(0.5)
    assert plateau_gain({"val/top1": [0.1, 0.3, 0.5, 0.7]}) == pytest.approx(20.0)  # a quarter of 4: one epoch
    assert plateau_gain({"val/top1": [0.2, float("nan"), 0.4]}) == pytest.approx(20.0)
    assert math.isnan(plateau_gain({"val/top1": [0.5]}))  # one epoch shows no plateau


def test_the_rerun_table_says_whether_each_mean_and_the_verdict_held(tmp_path):
    def runs(prefix, red, res):
        return {model: [Run.load(make_run(tmp_path, f"{prefix}{model}_shapes_seed{seed}", "1", model=model,
                                          kind="shapes", seed=seed, test_top1=value))
                        for seed, value in enumerate(values)] for model, values in (("rednet26", red),
                                                                                     ("resnet26", res))}
    baseline = runs("a", (0.80, 0.81, 0.82), (0.70, 0.71, 0.72))
    same = runs("b", (0.805, 0.815, 0.825), (0.70, 0.715, 0.72))
    table = format_rerun_table(baseline, same, ["rednet26", "resnet26"], other="AVX2")
    assert "| RedNet-26 | 3 | 81.0% +- 1.0 | +-2.5 | 81.5% +- 1.0 | +0.5 | yes |" in table
    assert table.count("Verdict: RedNet-26 higher.") == 2 and "The verdict is the same" in table
    flipped = runs("c", (0.70, 0.71, 0.72), (0.80, 0.81, 0.82))
    table = format_rerun_table(baseline, flipped, ["rednet26", "resnet26"], other="AVX2")
    assert "| -10.0 | no |" in table and "The verdict CHANGED" in table


def test_runs_data_statement_never_lets_the_sample_set_pass_for_caltech256(tmp_path):
    sample = Run.load(make_run(tmp_path, "a", "1"))
    caltech = Run.load(make_run(tmp_path, "b", "1", sample=False))
    assert "NOT Caltech-256" in runs_data_statement([sample])
    assert "NOT" not in runs_data_statement([caltech])
    assert "MIX" in runs_data_statement([sample, caltech])


def test_results_table_has_our_runs_and_the_reported_rows(tmp_path):
    run = Run.load(make_run(tmp_path, "rednet26_sample", "1", val_top1=0.55))
    (row,) = results_rows([run])
    assert row["best_val_top1"] == pytest.approx(55.0) and row["test_top1"] == pytest.approx(40.0)
    assert row["data"] == "sample set (memorisation check), not Caltech-256"
    table = format_results_table([run])
    assert "55.0%" in table and "not Caltech-256 (this project)" in table
    assert "60.05%" in table and "reported, not ours" in table and "course project" in table
    assert "60.05%" not in format_results_table([run], reference=False)


def test_export_runs_copies_the_files_the_deck_needs(tmp_path):
    run = Run.load(make_run(tmp_path / "runs", "rednet26_sample", "1"))
    copied = runs.export_runs({"rednet26": run}, tmp_path / "slides" / "data" / "runs")
    assert copied == {"rednet26": tmp_path / "slides" / "data" / "runs" / "rednet26"}
    assert Run.load(copied["rednet26"]).results == run.results
    assert runs.export_runs({"rednet26": Run.load(copied["rednet26"])}, copied["rednet26"].parent) \
        == copied  # copying onto itself (the committed runs, re-exported) is a no-op
    with pytest.raises(ValueError):
        runs.export_runs({"../x": run}, tmp_path)


def test_results_file_round_trips_and_keeps_unknown_keys(tmp_path):
    data = {"model": "rednet26", "params": 5, "dataset": None, "machine": None, "seed": 0,
            "config": None, "epochs_trained": 2, "best_val_top1": 0.5, "from_the_future": [1]}
    results = RunResults.from_dict(data)
    assert results.extra == {"from_the_future": [1]} and results.percent("best_val_top1") == 50.0
    assert results.percent("test_top1") is None
    results.write(tmp_path)
    written = json.loads((tmp_path / runs.RESULTS_FILE).read_text())
    assert written == {**data, "updated": results.updated}  # unset scores stay out of the file
    assert RunResults.read(tmp_path) == results


def test_model_label():
    assert model_label("rednet26") == "RedNet-26"
    assert model_label("resnet152") == "ResNet-152"
    assert model_label("dednet121") == "DedNet-121"


# -- training arguments and weights ----------------------------------------------------------


def _book(tmp_path, fast, root=REPO):
    return workbook.Workbook(root=root, fast=fast, workdir=tmp_path, colab=False, gpu=None)


def test_training_args_set_only_model_data_seed_and_schedule(tmp_path):
    shapes = DataChoice("shapes", False, "shapes", "")
    args = training_args("fit", _book(tmp_path, fast=False), shapes, "resnet26", 64, epochs=15, seed=2)
    assert args[:3] == ["fit", "--config", "shapes"]  # a shipped recipe, found by name
    pairs = dict(zip(args[3::2], args[4::2]))
    assert pairs == {"--model.model_name": "resnet26", "--trainer.default_root_dir": str(tmp_path / "runs"),
                     "--run_name": "resnet26_shapes_seed2", "--data.root": "shapes",
                     "--data.download": "false", "--data.image_size": "64",
                     "--trainer.enable_progress_bar": "false",
                     "--trainer.enable_model_summary": "false", "--seed_everything": "2",
                     "--trainer.max_epochs": "15"}
    caltech = DataChoice("data/caltech256", True, "caltech256", "")
    args = training_args("test", _book(tmp_path, fast=False), caltech, "resnet26", 224, epochs=150,
                         ckpt_path="best.ckpt")
    assert args[2] == "caltech256_course"
    pairs = dict(zip(args[3::2], args[4::2]))
    assert pairs["--run_name"] == "resnet26_caltech256_course" and pairs["--ckpt_path"] == "best.ckpt"
    assert "--trainer.max_epochs" not in pairs and "--seed_everything" not in pairs
    with pytest.raises(ValueError, match="command"):
        training_args("train", _book(tmp_path, fast=False), shapes, "rednet26", 64)
    # Settings left at None keep the recipe's values: nothing is passed for them.
    args = training_args("fit", _book(tmp_path, fast=False), shapes, "rednet26", None, seed=0)
    assert not {"--data.image_size", "--trainer.max_epochs", "--data.batch_size"} & set(args)


def test_training_args_in_fast_mode_run_two_steps_once_each(tmp_path):
    args = training_args("fit", _book(tmp_path, fast=True), DataChoice("sample", False, "sample", ""),
                         "rednet26", 32, epochs=15, seed=0)
    flags = args[3::2]
    assert len(flags) == len(set(flags)), "an option is given twice"
    pairs = dict(zip(args[3::2], args[4::2]))
    assert pairs["--trainer.max_epochs"] == "1" and pairs["--trainer.limit_train_batches"] == "2"
    assert args[2] == "quick_sample"


def test_find_weights_order_and_errors(tmp_path):
    book = _book(tmp_path, fast=True, root=tmp_path / "no-committed-weights")
    names = experiments.KERNEL_RUN_NAMES
    untrained = find_weights(book, run_names=names)
    assert untrained.source == "untrained" and "NONE TRAINED" in untrained.statement
    with pytest.raises(FileNotFoundError, match="CHECKPOINT"):
        find_weights(book, checkpoint=tmp_path / "missing.ckpt")
    with pytest.raises(FileNotFoundError, match="OFFICIAL_WEIGHTS"):
        find_weights(book, official=tmp_path / "missing.pth")

    quick = make_run(tmp_path / "runs", "quick_sample", "20300101-000000")
    sample = make_run(tmp_path / "runs", "rednet26_sample_seed0", "20200101-000000")
    for folder in (quick, sample):
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "best.ckpt").write_bytes(b"")
    chosen = find_weights(book, run_names=names)
    # Notebook 02's seed-0 run wins over the newer quick sample-set run.
    assert chosen.source == "run" and chosen.run.name == "rednet26_sample_seed0"
    assert "sample set (memorisation check), not Caltech-256" in chosen.statement
    explicit = find_weights(book, checkpoint=quick / "checkpoints" / "best.ckpt", run_names=names)
    assert explicit.source == "checkpoint" and explicit.run.path == quick

    official = tmp_path / "rednet26.pth"
    torch.save({"state_dict": {}}, official)
    chosen = find_weights(book, official=official)
    assert chosen.source == "official" and "ImageNet" in chosen.statement
    assert "not by this project" in chosen.statement


def test_committed_weights_are_the_fallback_and_load(tmp_path):
    """A run exported with its float16 weights is what a fresh work directory falls back to."""
    root = tmp_path / "repo"
    folder = make_run(tmp_path / "runs", "rednet26_shapes_seed0", "1", kind="shapes", seed=0)
    model = create_model("rednet26", num_classes=3)
    checkpoint = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}
    (folder / "checkpoints").mkdir()
    torch.save(checkpoint, folder / "checkpoints" / "best.ckpt")
    results = json.loads((folder / "results.json").read_text())
    results["dataset"]["num_classes"] = 3
    (folder / "results.json").write_text(json.dumps(results))
    run = Run.load(folder)
    exported = runs.export_runs({"rednet26_seed0": run}, root / "slides" / "data" / "runs")
    path = runs.export_weights(run, exported["rednet26_seed0"])
    assert path.stat().st_size < 0.6 * (folder / "checkpoints" / "best.ckpt").stat().st_size  # float16

    weights = find_weights(_book(tmp_path / "fresh", fast=True, root=root), run_names=("none",))
    assert weights.source == "committed" and "committed" in weights.statement
    loaded, _ = weights.load()
    first = next(iter(model.state_dict()))
    assert torch.allclose(loaded.state_dict()[first], model.state_dict()[first].half().float())


# -- the repository's address in the notebooks -------------------------------------------------


def test_committed_notebooks_carry_the_generated_colab_lines(tmp_path):
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        copy = tmp_path / notebook.name
        copy.write_text(notebook.read_text())
        assert not colab.write_cells(copy, repository.repository_url()), f"{notebook.name} is out of date"
    assert "raise SystemExit" in colab.setup_lines(repository.PLACEHOLDER_URL)[-1]


def _output_texts(notebook: Path):
    """Every text a committed notebook shows under its cells: streams, results, errors."""
    for cell in json.loads(notebook.read_text())["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("text") or output.get("data", {}).get("text/plain") or output.get("traceback") or ""
            yield cell.get("execution_count"), "".join(text)


def test_batch_run_reads_its_switch(monkeypatch):
    for value, expected in (("1", True), ("yes", True), ("0", False), ("", False)):
        monkeypatch.setenv(workbook.BATCH_ENV, value)
        assert workbook.batch_run() is expected
    monkeypatch.setenv(workbook.BATCH_ENV, "maybe")
    with pytest.raises(ValueError, match="INVOLUTION_BATCH='maybe' is not understood: use 1"):
        workbook.batch_run()
    monkeypatch.setenv(FAST_ENV, "sometimes")
    with pytest.raises(ValueError, match="INVOLUTION_FAST='sometimes' is not understood: use 1 \\(fast mode\\)"):
        fast_mode()


def test_committed_outputs_read_like_a_finished_lesson():
    # No machine's folders, no library warnings, no frozen progress bars, no errors in what readers see.
    # An absolute path (/a/b..., C:\\...) names the folders of the machine that ran the notebook.
    absolute_path = re.compile(r"""(?:^|[\s'"(=\[])(/[\w.-]+/|[A-Za-z]:\\\w)""", re.MULTILINE)
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        for count, text in _output_texts(notebook):
            where = f"{notebook.name}, cell [{count}]"
            assert not absolute_path.search(text), f"{where} names a machine folder: {text}"
            assert "Warning" not in text and "Traceback" not in text, f"{where} shows a warning or error: {text}"
            assert "it/s]" not in text and "%|" not in text, f"{where} shows a progress bar: {text}"


# Where a notebook's results begin: the cell that trains (or falls back to the committed runs).
TRAINING_CELLS = {"02_train_rednet.ipynb": "experiments.train_and_test", "04_course_project.ipynb": "overfitting.train"}


@pytest.mark.parametrize("name", sorted(TRAINING_CELLS))
def test_conclusions_quote_only_numbers_the_notebook_printed(name):
    # Prose explains; it never retypes a result. Every number in a markdown cell after the training
    # cell must appear in the notebook's own code or outputs (a changed run cannot leave a stale
    # number behind). Numbers in `code` and notebook names ("notebook 01") are references, not results.
    notebook = json.loads((REPO / "notebooks" / name).read_text())
    cells = notebook["cells"]
    start = next(i for i, cell in enumerate(cells) if TRAINING_CELLS[name] in "".join(cell["source"]))
    printed = " ".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
    printed += " ".join("".join(text) for cell in cells for output in cell.get("outputs", [])
                        for text in (output.get("text", ""), output.get("data", {}).get("text/plain", "")))
    printed = printed.replace(",", "")
    for cell in cells[start:]:
        if cell["cell_type"] != "markdown":
            continue
        prose = re.sub(r"`[^`]*`|notebook \d+|\d+_\w+\.ipynb", " ", "".join(cell["source"]))
        for number in re.findall(r"\d+(?:[.,]\d+)*", prose):
            assert number.replace(",", "") in printed, f"{name}: {number!r} in prose is printed nowhere: {prose[:200]}"


def test_the_address_is_read_from_pyproject_not_written_in_python():
    links = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]
    assert repository.repository_url() == links["Repository"]
    for module in (REPO / "involution").rglob("*.py"):  # no module holds an address of its own
        assert repository.PLACEHOLDER_URL not in module.read_text() or module.name == "repository.py", module


def test_set_repo_rewrites_the_address_everywhere_and_keeps_outputs(tmp_path):
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    (tmp_path / "notebooks").mkdir()
    original = REPO / "notebooks" / "01_involution_kernel.ipynb"
    (tmp_path / "notebooks" / original.name).write_text(original.read_text())
    url = "https://github.com/someone/involution"
    changed = colab.set_repo(url, root=tmp_path)
    assert [path.name for path in changed] == ["pyproject.toml", original.name]
    links = tomllib.loads((tmp_path / "pyproject.toml").read_text())["project"]["urls"]
    assert links["Repository"] == url and links["Issues"] == f"{url}/issues"
    before, after = (json.loads(path.read_text()) for path in (original, tmp_path / "notebooks" / original.name))
    setup = next("".join(cell["source"]) for cell in after["cells"]
                 if "".join(cell["source"]).startswith(colab.SETUP_MARKER))
    assert f'%pip install "involution[notebooks] @ git+{url}"' in setup
    assert "github/someone/involution/blob/main/notebooks/01_involution_kernel.ipynb" in \
        "".join(after["cells"][0]["source"])
    assert [cell.get("outputs") for cell in after["cells"]] == [cell.get("outputs") for cell in before["cells"]]
    assert colab.set_repo(url, root=tmp_path) == []  # already written: nothing changes
    with pytest.raises(ValueError, match="not a GitHub repository address"):
        colab.set_repo("git@github.com:someone/involution", root=tmp_path)


@pytest.mark.parametrize("url", ["https://github.com/someone/involution\n", "https://github.com/someone/invol\nution",
                                 "https://github.com/someöne/involution"])
def test_set_repo_refuses_an_address_with_a_newline_or_other_characters_and_writes_nothing(tmp_path, url):
    # A trailing newline passed the pattern ("$" matches before it): pyproject.toml stopped being
    # TOML and every notebook's Colab cell became a syntax error.
    (tmp_path / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    (tmp_path / "notebooks").mkdir()
    original = REPO / "notebooks" / "01_involution_kernel.ipynb"
    (tmp_path / "notebooks" / original.name).write_text(original.read_text())
    before = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    with pytest.raises(ValueError, match="not a GitHub repository address"):
        colab.set_repo(url, root=tmp_path)
    assert {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()} == before


# -- notebook 02's plan: time estimate, reuse and resume ------------------------------------------


def test_time_estimate_is_measured_and_gates_long_plans(tmp_path):
    sample = DataChoice("sample", False, "sample", "")
    estimate = experiments.estimate_time(_book(tmp_path, fast=True), sample, ["rednet26"], [0, 1],
                                         measured_steps=1)
    # Fast mode: per run 2 training steps, a third for the validation and the test batch each.
    assert estimate.steps == round(2 * (2 + 1 / 3 + 1 / 3)) and estimate.seconds_per_step > 0
    assert not estimate.too_long and str(estimate).startswith("Time estimate:")
    limit = experiments.LONG_RUN_MINUTES
    long = experiments.TimeEstimate(seconds_per_step=1.0, steps=(limit + 1) * 60, device="CPU")
    assert long.too_long and "ALLOW_LONG_RUN = True" in str(long) and f"over {limit} minutes" in str(long)
    assert not experiments.TimeEstimate(seconds_per_step=1.0, steps=(limit - 1) * 60, device="CPU").too_long


def test_training_speed_is_the_estimates_own_measurement(tmp_path):
    book, sample = _book(tmp_path, fast=True), DataChoice("sample", False, "sample", "")
    estimate = experiments.estimate_time(book, sample, ["test_rednet"], [0], measured_steps=1)
    classes = Caltech256DataModule("sample", num_workers=0).num_classes
    speed = experiments.training_speed(book, sample, "test_rednet", classes, measured_steps=1)
    # Fast mode's image size; the recipe's batch; one measurement shared with the estimate.
    assert speed.image_size == experiments.FAST_IMAGE_SIZE
    assert speed.images_per_s == pytest.approx(speed.batch_size / estimate.seconds_per_step)


def test_train_and_test_reuses_a_finished_run_and_resumes_a_cut_off_one(tmp_path, monkeypatch):
    book, sample = _book(tmp_path, fast=True), DataChoice("sample", False, "sample", "")
    commands = []

    def fake_cli(args):  # records the command; a fit "finishes" the run it resumes
        commands.append(args)
        folder = Path(args[args.index("--ckpt_path") + 1]).parents[1]
        if args[0] == "fit":
            RunResults(model="rednet26", params=1, epochs_trained=1, seed=0).write(folder)
        return SimpleNamespace(trainer=SimpleNamespace(log_dir=folder))
    monkeypatch.setattr(experiments, "run_cli", fake_cli)

    finished = make_run(tmp_path / "runs", "rednet26_sample_seed0", "20260101-000000", seed=0, epochs=1)
    assert experiments.train_and_test(book, sample, "rednet26", 0).path == finished
    assert commands == []  # nothing trained or tested again

    # Finished but untested (an extension moved best.ckpt): tested again, not trained again.
    untested = make_run(tmp_path / "runs", "rednet26_sample_seed0", "20260101-000001", seed=0, epochs=1,
                        tested=False)
    experiments.train_and_test(book, sample, "rednet26", 0)
    (test,) = commands
    assert test[0] == "test" and test[test.index("--ckpt_path") + 1] == str(untested / "checkpoints" / "best.ckpt")
    commands.clear()

    cut_off = tmp_path / "runs" / "rednet26_sample_seed0" / "20260102-000000"
    (cut_off / "checkpoints").mkdir(parents=True)
    (cut_off / "checkpoints" / "last.ckpt").write_bytes(b"")
    experiments.train_and_test(book, sample, "rednet26", 0)
    fit, test = commands
    assert fit[0] == "fit" and fit[fit.index("--ckpt_path") + 1] == str(cut_off / "checkpoints" / "last.ckpt")
    assert test[0] == "test"


@pytest.mark.parametrize("trained", [{"epochs": 3}, {"image_size": 48}])
def test_train_and_test_never_reuses_or_resumes_a_run_of_another_size_or_length(tmp_path, monkeypatch,
                                                                              capsys, trained):
    # A finished run at 64 px for 3 epochs was reused for a plan of 1 epoch, and one at
    # 48 px for a plan at 64 px: the course table then showed another experiment's numbers.
    book, sample = _book(tmp_path, fast=True), DataChoice("sample", False, "sample", "")
    commands = []

    def fake_cli(args):  # records the command; a fit makes a finished run of the plan
        commands.append(args)
        folder = tmp_path / "runs" / "rednet26_sample_seed0" / "20260109-000000"
        if args[0] == "fit":
            RunResults(model="rednet26", params=1, epochs_trained=1, seed=0,
                       dataset={"image_size": 64, "kind": "sample"}).write(folder)
        return SimpleNamespace(trainer=SimpleNamespace(log_dir=folder))
    monkeypatch.setattr(experiments, "run_cli", fake_cli)
    other = make_run(tmp_path / "runs", "rednet26_sample_seed0", "20260101-000000", seed=0,
                     epochs=trained.get("epochs", 1))
    results = json.loads((other / "results.json").read_text())
    results["dataset"]["image_size"] = trained.get("image_size", 64)
    (other / "results.json").write_text(json.dumps(results))
    (other / "checkpoints").mkdir()
    (other / "checkpoints" / "last.ckpt").write_bytes(b"")

    experiments.train_and_test(book, sample, "rednet26", 0)
    fit, test = commands
    assert fit[0] == "fit" and "--ckpt_path" not in fit  # a new run, not this one resumed
    assert test[0] == "test"
    said = capsys.readouterr().out
    assert f"Not reusing {other}" in said and "Reusing the finished run" not in said
