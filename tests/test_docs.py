"""The documentation site builds in strict mode, holds the notebooks, and agrees with the code."""
import re
import subprocess
import sys
from pathlib import Path

from involution.__main__ import COMMANDS

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
