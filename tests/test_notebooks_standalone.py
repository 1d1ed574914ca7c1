"""Each notebook that reads runs works alone, in a fresh work directory with no runs present.

Under nbval (see conftest.py) the notebooks share one work directory in
reading order, so notebook 02 already starts with no runs, but notebook 03
and the appendix find its runs. Here each of them runs on its own, as in a fresh Colab
VM, in fast mode: they must complete and say that their results or weights
come from the committed copies in slides/data/runs.
"""
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from traitlets.config import Config

from involution.train.runs import WEIGHTS_FILE
from involution.workbook.notebook import WORKDIR_ENV
from involution.workbook.weights import KERNEL_RUN_KEY

REPO = Path(__file__).resolve().parents[1]
COMMITTED_WEIGHTS = REPO / "slides" / "data" / "runs" / KERNEL_RUN_KEY / WEIGHTS_FILE


def run_alone(name: str, workdir: Path, monkeypatch) -> str:
    """Execute notebooks/<name> with an empty work directory; return everything it printed."""
    monkeypatch.setenv(WORKDIR_ENV, str(workdir))
    monkeypatch.setenv("INVOLUTION_FAST", "1")
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    config = Config()
    config.KernelManager.transport = "ipc"  # local sockets, not TCP (as in run.sh)
    # The socket files go in a folder of their own, not beside the notebooks (where the
    # packaging tests copy the checkout) nor in tmp_path (a socket's path holds 107 bytes).
    with tempfile.TemporaryDirectory(prefix="ipc-") as sockets:
        config.KernelManager.ip = str(Path(sockets) / "kernel")
        NotebookClient(notebook, timeout=600, resources={"metadata": {"path": str(REPO / "notebooks")}},
                       config=config).execute()
    assert not (workdir / "runs").exists() or not any((workdir / "runs").iterdir()), \
        "the notebook trained runs of its own"
    return "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.outputs)


def weights_statement() -> str:
    return "Weights: the committed" if COMMITTED_WEIGHTS.is_file() else "Weights: NONE TRAINED"


def test_notebook_03_alone_uses_the_committed_weights(tmp_path, monkeypatch):
    printed = run_alone("03_visualise_kernels.ipynb", tmp_path, monkeypatch)
    assert weights_statement() in printed
    # Unattended, the explorer builds no widgets: their cell could hold the executor until its timeout.
    assert "Run unattended: the explorer appears when you run this cell yourself" in printed


def test_the_appendix_alone_uses_the_committed_results(tmp_path, monkeypatch):
    printed = run_alone("appendix_slide_figures.ipynb", tmp_path, monkeypatch)
    assert "Results: the committed copies in slides/data/runs" in printed
    assert weights_statement() in printed
    assert (tmp_path / "slides" / "deck.html").is_file()
