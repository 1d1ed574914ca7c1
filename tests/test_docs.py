"""The documentation site builds in strict mode, holds the notebooks, and agrees with the code."""
import re
import subprocess
import sys
from pathlib import Path

import involution
from involution.__main__ import COMMANDS
from involution.models import list_models

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
# Files a reader meets first or that the product ships: none cites a ticket or the build machines.
PRODUCT = ["README.md", "run.sh", "test.sh", "pyproject.toml", "hubconf.py", "data/README.md"]
PRODUCT_FOLDERS = ["involution", "docs", "benchmarks", "notebooks", "tests", "scripts"]


def test_the_site_builds_in_strict_mode_with_the_notebooks(tmp_path):
    # -W: any warning fails the build (a broken link, a reference to a name of this package
    # that does not exist, a malformed docstring); -n (in conf.py) checks the references.
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           str(DOCS), str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        page = (tmp_path / "notebooks" / f"{notebook.stem}.html").read_text()
        assert "<img" in page, f"{notebook.name} is rendered without its committed figures"
    api = (tmp_path / "_api" / "involution.models.factory.html").read_text()
    assert "Build a registered model by name" in api  # generated from the docstring
    assert "Targets" in (tmp_path / "performance.html").read_text()  # the benchmark's tables
    # Math: MyST's dollarmath renders $...$ and $$...$$ (pages and notebooks); none is left as text.
    pages = sorted(tmp_path.rglob("*.html"))
    assert [page.relative_to(tmp_path) for page in pages if "$$" in page.read_text()] == []
    assert 'class="math' in (tmp_path / "notebooks" / "01_involution_kernel.html").read_text()
    # Each notebook's Colab set-up cell is folded away (its code under a "show" toggle).
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        page = (tmp_path / "notebooks" / f"{notebook.stem}.html").read_text()
        cells = page.split('<div class="cell ')
        setup = [cell for cell in cells if "Colab: install this project" in cell]
        assert setup and all(cell.startswith("tag_hide-input") and "<details" in cell for cell in setup), \
            notebook.name
    # The public names have their own entries in the API reference, and the model table is there.
    api = (tmp_path / "api.html").read_text()
    assert all(f'id="involution.{name}"' in api for name in involution.__all__)
    models = (tmp_path / "models.html").read_text()
    assert all(f"<code class=\"docutils literal notranslate\"><span class=\"pre\">{name}</span></code>" in models
               for name in list_models())


def test_the_install_page_lists_every_command_as_the_command_line_does():
    page = (DOCS / "install.md").read_text()
    for name, command in COMMANDS.items():
        assert re.search(rf"^  {re.escape(name)} +{re.escape(command.summary)}$", page, re.M), name


def test_the_readme_is_a_front_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) <= 12 * 1024
    for page in re.findall(r"\]\((docs/[\w-]+\.md)\)", readme):  # its links into the docs exist
        assert (REPO / page).is_file(), page


def test_no_product_file_cites_a_ticket_or_the_build_machines():
    files = [REPO / name for name in PRODUCT]
    files += [path for folder in PRODUCT_FOLDERS for path in (REPO / folder).rglob("*")
              if path.suffix in (".py", ".md", ".ipynb", ".yaml", ".j2", ".sh", ".toml")
              and not {"_build", "_api", "notebooks"} & set(path.relative_to(REPO).parts[1:2])]
    citing = re.compile(r"\b(issue|ticket) #?\d+|build machines?\b|shared reference", re.I)
    offenders = [f"{path.relative_to(REPO)}: {match.group(0)}" for path in files
                 for match in [citing.search(path.read_text())] if match and path != Path(__file__)]
    assert offenders == []


def test_the_performance_figures_are_what_the_benchmark_writes_from_its_saved_results():
    # Every number on the Performance page and in the README's headline comes from the saved
    # results: a hand edit, or results saved without --update-docs, shows up here.
    import json
    sys.path.insert(0, str(REPO / "benchmarks"))
    import benchmark
    import main_job
    result = json.loads((REPO / "benchmarks" / "results" / "cpu.json").read_text())
    page = (DOCS / "performance.md").read_text()
    section = page.split("<!-- benchmark:cpu:start -->\n", 1)[1].split("\n<!-- benchmark:cpu:end -->", 1)[0]
    assert section == benchmark.markdown(result)
    readme = (REPO / "README.md").read_text()
    assert benchmark.headline(result) in readme
    if main_job.sentence():
        assert main_job.sentence() in readme


def docs_conf():
    """docs/conf.py as a module (what the build runs)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("docs_conf", DOCS / "conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_site_folds_each_notebooks_colab_set_up_cell_and_nothing_else():
    import json

    from involution.workbook.colab import SETUP_MARKER
    conf = docs_conf()
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        original = json.loads(notebook.read_text())
        copy = json.loads(conf.site_copy(notebook.read_text()))
        tagged = [i for i, cell in enumerate(copy["cells"]) if "hide-input" in cell["metadata"].get("tags", [])]
        setup = [i for i, cell in enumerate(original["cells"]) if cell["cell_type"] == "code"
                 and "".join(cell["source"]).startswith(SETUP_MARKER)]
        assert tagged == setup and len(setup) == 1, notebook.name
        for i in tagged:  # only the tag differs
            copy["cells"][i]["metadata"]["tags"].remove("hide-input")
        assert [c["source"] for c in copy["cells"]] == [c["source"] for c in original["cells"]]


def test_the_model_table_lists_every_registered_model_with_the_reported_accuracies():
    from involution.analysis.complexity import format_model_table, model_table
    from involution.models import model_info
    rows = model_table()
    assert [row["model"] for row in rows] == list_models()
    table = format_model_table(rows)
    assert "<!-- models:table -->" in (DOCS / "models.md").read_text()
    for name in list_models():
        line = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
        reported = model_info(name).reported
        if reported is not None and reported.top1 is not None:
            assert f"{reported.top1:.2f}% ({reported.source})" in line
            assert reported.citation in table
        else:
            assert line.endswith("| - |")


def test_the_api_page_lists_the_package_face_under_its_public_names():
    page = (DOCS / "api.md").read_text()
    documented = re.findall(r"^\.\. auto(?:function|class):: involution\.(\w+)$", page, re.M)
    assert documented == list(involution.__all__)


def test_the_index_opens_with_the_install_and_an_example_that_runs(tmp_path):
    import torch
    from PIL import Image

    from involution.models import create_model
    page = (DOCS / "index.md").read_text()
    assert page.index("pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu") \
        < page.index("```python") < page.index("./run.sh")
    assert "(install.md)" in page.split("```python")[0]
    example = page.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(example.strip().splitlines()) <= 5
    # Run it as written, in a folder with a photo and a checkpoint (random weights in the official
    # mmcls names: the example loads the official file the same way).
    Image.new("RGB", (320, 240), (200, 120, 40)).save(tmp_path / "cat.jpg")
    state = {("backbone." + key if not key.startswith("fc.") else "head." + key): value
             for key, value in create_model("rednet26").state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "rednet26.pth")
    printed = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True, cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr[-3000:]
    assert "values=" in printed.stdout and "indices=" in printed.stdout


def test_the_performance_page_leads_with_its_tables_in_short_cells():
    page = (DOCS / "performance.md").read_text()
    opening = page.split("<!-- benchmark:cpu:start -->", 1)[0].strip().split("\n\n")
    assert len(opening) == 2 and opening[0].startswith("# ")  # the title and one short paragraph
    cells = [cell.strip() for line in page.splitlines() if line.startswith("|")
             for cell in line.strip().strip("|").split("|")]
    assert max(map(len, cells)) <= 200  # the reasons behind each target are notes under the table
    # The kernel's internals and how the targets are measured live on the development page.
    assert "## The CPU kernel and the performance targets" in (DOCS / "development.md").read_text()
