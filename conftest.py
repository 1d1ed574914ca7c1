"""Test-suite set-up shared by tests/ and the notebooks that pytest runs under nbval.

The notebooks (``notebooks/*.ipynb``, collected with ``--nbval-lax``, see
pyproject.toml) run in FAST mode: the built-in sample set, tiny images and a
step or two of training, so all five take a few minutes on a CPU. nbval's
kernels inherit this process's environment, so setting the variables here,
before any kernel starts, is enough. Everything the notebooks write goes to a
fresh temporary work directory, shared by the notebooks of one session
(notebook 02 starts there with no runs; notebooks 03 and 04 read its runs) and
deleted at the end: the tests never touch committed files.
tests/test_notebooks_standalone.py runs notebooks 03 and 04 each alone, in an
empty work directory of their own.

The suite runs on every core with pytest-xdist (``-n auto``, see pyproject.toml):
each test file goes whole to one worker (its module fixtures are built once), and
the notebooks go together, in order, to one worker, since notebooks 03 and 04 read
the runs notebook 02 wrote into that worker's work directory.
"""
import os
import shutil
import tempfile

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One OpenMP thread per worker (and per process a test starts): PyTorch's
    # threads spin while they wait for each other, so two workers of two threads
    # each on two cores would slow each other down many times over.
    os.environ["OMP_NUM_THREADS"] = "1"

# Fast mode unless the caller asks otherwise (INVOLUTION_FAST=0 runs the
# notebooks in normal mode, which takes about 20 minutes on a 2-core CPU).
os.environ.setdefault("INVOLUTION_FAST", "1")
_WORKDIR = tempfile.mkdtemp(prefix="involution-tests-")
os.environ["INVOLUTION_WORKDIR"] = _WORKDIR
# Never log test runs to anyone's Weights & Biases project.
os.environ["WANDB_MODE"] = "disabled"


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: unknown where it is not installed
def pytest_xdist_make_scheduler(config, log):
    """Hand out whole test files, and all the notebooks as one unit (run in their order).

    (pytest-xdist's own ``loadgroup`` would do this through markers, but its
    renaming of test ids does not take on pytest 9.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class WholeFiles(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "notebooks" if path.endswith(".ipynb") else path

    return WholeFiles(config, log)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_WORKDIR, ignore_errors=True)
