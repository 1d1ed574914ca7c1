"""Test-suite set-up shared by tests/ and the notebooks that pytest runs under nbval.

The notebooks (``notebooks/*.ipynb``, collected with ``--nbval-lax``, see
pyproject.toml) run in FAST mode: the built-in sample set, tiny images and a
step or two of training, so all four take a few minutes on a CPU. nbval's
kernels inherit this process's environment, so setting the variables here,
before any kernel starts, is enough. Everything the notebooks write goes to a
fresh temporary work directory, shared by the four notebooks of one session
(notebook 02 starts there with no runs; notebooks 03 and 04 read its runs) and
deleted at the end: the tests never touch committed files.
tests/test_notebooks_standalone.py runs notebooks 03 and 04 each alone, in an
empty work directory of their own.
"""
import os
import shutil
import tempfile

# Fast mode unless the caller asks otherwise (INVOLUTION_FAST=0 runs the
# notebooks in normal mode, which takes about 20 minutes on a 2-core CPU).
os.environ.setdefault("INVOLUTION_FAST", "1")
_WORKDIR = tempfile.mkdtemp(prefix="involution-tests-")
os.environ["INVOLUTION_WORKDIR"] = _WORKDIR
# Never log test runs to anyone's Weights & Biases project.
os.environ["WANDB_MODE"] = "disabled"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_WORKDIR, ignore_errors=True)
