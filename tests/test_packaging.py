"""The package as pip installs it: outside the repository, and without extras.

The source distribution is built from a copy of the checkout, the wheel from
that source distribution (so the sdist is known to build), then the wheel is
installed into a temporary folder and used from another folder: the shipped
recipes are found by name, a short fit runs, and nothing is written into the
installed package.
"""
import email
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import involution
from involution.train.configs import list_configs

REPO = Path(__file__).resolve().parents[1]
# What a checkout holds that is no part of the source: local environments, data, runs, builds.
NOT_SOURCE = {REPO: {".git", ".venv", "build", "dist", "runs", "wandb", "lightning_logs",
                     "checkpoints", ".pytest_cache"},
              REPO / "data": {"caltech256", "downloads"},
              REPO / "docs": {"_build", "_api", "notebooks"}}  # written by the docs build, maybe right now
NEVER_SOURCE = shutil.ignore_patterns("__pycache__", "*.egg-info", ".ipynb_checkpoints")
# Requirements that belong in extras: a plain `pip install involution` (in Colab, say)
# must not replace the Jupyter it runs in, nor pull training or logging frameworks.
NOT_CORE = ("jupyter", "nbconvert", "wandb", "lightning", "torchmetrics", "jsonargparse",
            "matplotlib", "scikit-image", "pytest")


def not_source(folder: str, names: list[str]) -> set[str]:
    """What copying the checkout leaves out of ``folder``: the above, and socket files
    (a running Jupyter kernel's: they cannot be copied)."""
    return (set(NEVER_SOURCE(folder, names)) | (NOT_SOURCE.get(Path(folder), set()) & set(names))
            | {name for name in names if Path(folder, name).is_socket()})


def run(*command, cwd, env=None):
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel, built (without network) from a copy of the checkout."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=not_source)
    # --no-isolation: the build requirements (setuptools) come from this environment.
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp / "dist"), str(source),
        cwd=tmp)
    (sdist,) = (tmp / "dist").glob("*.tar.gz")
    (wheel,) = (tmp / "dist").glob("*.whl")
    return {"sdist": sdist, "wheel": wheel, "tmp": tmp}


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_wheel_metadata_has_a_light_core_without_upper_bounds(built):
    metadata = wheel_metadata(built["wheel"])
    assert metadata["Version"] == involution.__version__  # the version is written once
    assert metadata["License-Expression"] == "MIT"
    assert "LICENSE" in " ".join(metadata.get_all("License-File"))
    assert any(c.startswith("Programming Language :: Python :: 3")
               for c in metadata.get_all("Classifier"))
    assert metadata.get_all("Project-URL")
    requires = metadata.get_all("Requires-Dist")
    core = [r for r in requires if "extra ==" not in r]
    core_names = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in core}
    assert core_names == {"torch", "torchvision", "numpy", "pillow", "tqdm"}, core
    assert not [r for r in core if "<" in r or "==" in r], core  # no upper bound, no pin
    assert not core_names & set(NOT_CORE)
    extras = set(metadata.get_all("Provides-Extra"))
    assert {"train", "wandb", "notebooks", "test", "all"} <= extras
    train = " ".join(r for r in requires if 'extra == "train"' in r)
    # Runs log to CSV without W&B: wandb (and what it pulls in) is its own extra, kept in [all].
    assert "lightning" in train and "wandb" not in train
    assert "wandb" in " ".join(r for r in requires if 'extra == "wandb"' in r)
    assert "wandb" in " ".join(r for r in requires if 'extra == "all"' in r)


def test_wheel_ships_the_recipes_and_typing_marker(built):
    with zipfile.ZipFile(built["wheel"]) as archive:
        names = set(archive.namelist())
    shipped = {n.removeprefix("involution/train/configs/").removesuffix(".yaml") for n in names
               if n.startswith("involution/train/configs/") and n.endswith(".yaml")}
    recipes = {"quick_sample", "shapes", "caltech256_course", "caltech256_official", "finetune_caltech256"}
    assert shipped == recipes | set(list_configs("course"))
    assert "course/rednet26_nowd" in shipped  # the course project's runs compose on the wheel's recipes
    assert "involution/py.typed" in names and "involution/ops/csrc/involution_cpu.cpp" in names


def test_sdist_carries_what_its_tests_need(built):
    with tarfile.open(built["sdist"]) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    needed = ["LICENSE", "README.md", "pyproject.toml", "conftest.py", "test.sh",
              "scripts/bootstrap.sh", "tests/test_packaging.py",
              "tests/data/official_rednet_state_dict.json", "notebooks/01_involution_kernel.ipynb",
              "involution/train/configs/quick_sample.yaml", "docs/conf.py", "docs/index.md"]
    assert [name for name in needed if name not in names] == []


def files_with_sizes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def test_installed_wheel_trains_a_shipped_recipe_from_another_folder(built):
    tmp = built["tmp"]
    target, elsewhere = tmp / "site", tmp / "elsewhere"
    elsewhere.mkdir()
    run(sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
        "--target", str(target), str(built["wheel"]), cwd=tmp)
    package = target / "involution"
    before = files_with_sizes(package)
    # Only the installed copy is importable (not the checkout); the rest of the
    # environment supplies the dependencies. `python -m involution fit`, as runpy runs
    # it, then (in the same process: each start costs seconds) a test of the best
    # checkpoint and the check-data command: the data module's every stage.
    home = tmp / "home"
    env = dict(os.environ, PYTHONPATH=str(target), WANDB_MODE="disabled", HOME=str(home),
               INVOLUTION_DATA_HOME=str(home / "data"))
    command = """
import runpy, sys
from pathlib import Path
import involution
print("imported", involution.__file__)
try:
    runpy.run_module("involution", run_name="__main__", alter_sys=True)
except SystemExit as done:
    assert not done.code, done.code
from involution.__main__ import main
from involution.data import main_check_data
(best,) = Path("runs").rglob("best.ckpt")
assert main(["test", "--config", "quick_sample", "--ckpt_path", str(best), *sys.argv[2:]]) == 0
assert main_check_data("sample") == 0
"""
    # Two batches of each: jsonargparse reads a limit of "1" as 1.0, which Lightning takes for 100%.
    done = run(sys.executable, "-c", command, "fit", "--config", "quick_sample",
               "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
               "--trainer.limit_val_batches", "2", "--trainer.num_sanity_val_steps", "0",
               "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
               "--data.image_size", "32", "--data.batch_size", "4",
               cwd=elsewhere, env=env)
    assert f"imported {package / '__init__.py'}" in done.stdout
    assert "args parameter" not in done.stderr  # Lightning's warning about how we call it
    (run_dir,) = (elsewhere / "runs" / "rednet26_quick_sample").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["epochs_trained"] == 1 and "test_top1" in results
    assert results["dataset"]["split_file"] == "<sample>/split.csv"  # the set's own, shipped split
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    # An installed package never writes into itself (pip uninstall would leave it behind).
    after = files_with_sizes(package)
    written = {name for name in after if before.get(name) != after[name]
               and "__pycache__" not in name}
    assert written == set()


def test_bare_core_install_works_and_says_what_is_missing(tmp_path):
    # The core package alone, on a machine without a C++ compiler: no train extra
    # (Lightning), no Triton (CPU-only PyTorch), no compiler on PATH. One process
    # for the three, since each start costs seconds.
    code = """
import sys, warnings
sys.modules["lightning"] = None  # makes 'import lightning' fail
sys.modules["triton"] = None
import torch
import involution
from involution.ops import triton_kernels
from involution.ops.functional import default_impl, involution2d

x, k = torch.randn(1, 4, 6, 6), torch.randn(1, 2, 3, 3, 6, 6)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    print("default impl:", default_impl(x))
print("warned:", [str(w.message) for w in caught if "no C++ compiler" in str(w.message)] != [])
torch.testing.assert_close(involution2d(x, k), involution2d(x, k, impl="unfold"))
print("triton available:", triton_kernels.available())
try:
    involution2d(x, k, impl="triton")
except RuntimeError as error:
    print("triton:", error)
model = involution.create_model("rednet26", num_classes=3).eval()
print("logits", tuple(model(torch.randn(1, 3, 32, 32)).shape))
from involution.__main__ import main
print("exit", main(["fit", "--config", "quick_sample"]))
try:
    import involution.train.module
except ModuleNotFoundError as error:
    print("training:", error)
"""
    env = dict(os.environ, PYTHONPATH=str(REPO), PATH=str(tmp_path), CXX="no-such-compiler",
               INVOLUTION_CACHE=str(tmp_path / "cache"))  # no kernel compiled earlier either
    printed = run(sys.executable, "-c", code, cwd=tmp_path, env=env)
    out = printed.stdout
    # Without a compiler the default is the loop implementation, with a warning; same results.
    assert "default impl: loop" in out and "warned: True" in out
    assert "triton available: False" in out and "needs the triton package" in out
    assert "logits (1, 3)" in out and "exit 1" in out
    assert "pip install 'involution[train]'" in printed.stderr  # main's message
    assert "training: Training (involution.train.module) needs lightning" in out


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_neither_torch_nor_lightning(flag):
    # They took 10-12 s: the whole package, torch and Lightning were imported to print a line.
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "involution", flag], capture_output=True,
                          text=True, check=True, cwd=REPO)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "involution" in imported and not imported & {"torch", "lightning", "torchvision", "numpy"}
    assert "involution" in done.stdout


def test_importing_the_package_still_brings_its_face_and_registers_its_operators():
    # The command line's lazy start must not change `import involution` anywhere else.
    code = ("import sys, torch, involution; print(sorted(k for k in vars(involution) if not k.startswith('_'))); "
            "print(hasattr(torch.ops.involution, 'cpu_forward'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert all(name in out.splitlines()[0] for name in involution.__all__)
    assert out.splitlines()[1] == "True"


def test_maintainer_commands_are_listed_only_in_a_checkout_and_fail_cleanly_outside_one(monkeypatch, capsys):
    # set-repo, installed from a wheel, was listed and printed a traceback.
    from involution import __main__ as cli
    from involution.workbook import colab
    assert "set-repo" in cli.help_text()
    monkeypatch.setattr(cli, "checkout_of_this_package", lambda: None)
    assert "set-repo" not in cli.help_text() and "fit" in cli.help_text()

    def no_clone(*args):
        raise FileNotFoundError("no checkout")
    monkeypatch.setattr(colab, "repo_root", no_clone)
    assert cli.main(["set-repo", "https://github.com/me/involution"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: set-repo rewrites a clone of the repository") and "\n" not in err


def test_installing_beside_this_environments_torch_keeps_it(tmp_path):
    # What the install pages promise: torch >= 2.4 with its torchvision >= 0.19 already installed
    # is kept. pip is asked (dry run, no index: nothing beyond what is installed may be needed)
    # to install the package with its core requirements into this environment; its report must
    # list the package alone, no torch, torchvision or nvidia-* wheel.
    import setuptools
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip("the build needs setuptools >= 77 in this environment (--no-build-isolation)")
    source = tmp_path / "source"
    shutil.copytree(REPO / "involution", source / "involution", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copyfile(REPO / name, source / name)
    report = tmp_path / "report.json"
    run(sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-index", "--no-build-isolation",
        "--report", str(report), str(source), cwd=tmp_path)
    installs = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert installs == ["involution"]
