"""Test-suite set-up shared by tests/ and the notebooks that pytest runs under nbval.

The notebooks (``notebooks/*.ipynb``, collected with ``--nbval-lax``, see
pyproject.toml) run in FAST mode: the built-in sample set, tiny images and a
step or two of training, so all of them take a few minutes on a CPU. nbval's
kernels inherit this process's environment, so setting the variables here,
before a kernel starts, is enough. Everything the notebooks write goes to fresh
temporary work directories, deleted at the end: the tests never touch
committed files. Notebooks 02, 03 and the appendix share one, in that order (02
starts there with no runs; the others read its runs); 01 and 04 each have their own.
tests/test_notebooks_standalone.py runs notebook 03 and the appendix each alone, in an
empty work directory of their own.

The suite runs on every core with pytest-xdist (``-n auto``, see pyproject.toml).
Each unit of work goes whole to one worker: a test file (its module fixtures are
built once), a lone notebook, or the notebooks that read notebook 02's runs together, in order. The
slowest units start first, so that no worker is left running a long one alone
at the end while the other has nothing to do.
"""
import os
import shutil
import tempfile
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One OpenMP thread per worker (and per process a test starts): PyTorch's
    # threads spin while they wait for each other, so two workers of two threads
    # each on two cores would slow each other down many times over.
    os.environ["OMP_NUM_THREADS"] = "1"

# Fast mode unless the caller asks otherwise (INVOLUTION_FAST=0 runs the
# notebooks in normal mode, which takes about 20 minutes on a 2-core CPU).
os.environ.setdefault("INVOLUTION_FAST", "1")
_WORKDIR = Path(tempfile.mkdtemp(prefix="involution-tests-"))
os.environ["INVOLUTION_WORKDIR"] = str(_WORKDIR)  # each notebook unit gets a folder inside
# Unattended: notebook 03 builds no widgets (a widget cell can stall a headless executor).
os.environ["INVOLUTION_BATCH"] = "1"
# Never log test runs to anyone's Weights & Biases project.
os.environ["WANDB_MODE"] = "disabled"

# Notebook 03 and the appendix read the runs notebook 02 wrote: one unit, one work directory
# (collected in that order: file names sort so).
_READS_NOTEBOOK_02 = ("02_", "03_", "appendix_")
# The units that take longest (15 s to 35 s each on 2 cores, against a few seconds
# for most others; measured with --durations), slowest first. The rest follow in file order.
_SLOWEST_FIRST = ["tests/test_run_record.py", "notebooks/reading-02", "tests/test_notebooks_standalone.py",
                  "tests/test_training.py", "notebooks/04_course_project.ipynb",
                  "tests/test_docs.py", "tests/test_packaging.py", "tests/test_triton.py", "tests/test_gpu_check.py",
                  "tests/test_ops_ecosystem.py"]


def _unit(nodeid: str) -> str:
    """The unit of work that one worker runs whole: a test file, a notebook, or those reading notebook 02."""
    path = nodeid.split("::", 1)[0]
    if path.endswith(".ipynb") and Path(path).name.startswith(_READS_NOTEBOOK_02):
        return "notebooks/reading-02"
    return path


def pytest_collection_modifyitems(config, items):
    rank = {unit: index for index, unit in enumerate(_SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(_unit(item.nodeid), len(rank)))  # stable: order within a unit kept


@pytest.hookimpl(tryfirst=True)  # before nbval starts the notebook's kernel, which inherits the variable
def pytest_runtest_setup(item):
    if item.path.suffix == ".ipynb":
        os.environ["INVOLUTION_WORKDIR"] = str(_WORKDIR / _unit(item.nodeid).replace("/", "-"))


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unknown where it is not installed
def pytest_xdist_make_scheduler(config, log):
    """Hand out the units above whole, in collection order (slowest first).

    (pytest-xdist's own ``loadgroup`` would group through markers, but its
    renaming of test ids does not take on pytest 9; and ``loadscope`` alone would
    reorder the units by their number of tests, not by their time.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class WholeUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    config.option.loadscopereorder = False
    return WholeUnits(config, log)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_WORKDIR, ignore_errors=True)
