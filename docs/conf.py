"""Sphinx configuration of the documentation site: ``sphinx-build -W docs docs/_build/html``.

Sphinx, not MkDocs: the package's docstrings are reStructuredText (roles such as
``:func:``, literal blocks, tables), which autodoc renders as written; MyST-NB
renders the notebooks with their committed outputs (never executing them) and
lets the pages be Markdown. The build is strict (``-W``, nitpicky for this
package's own names): a broken link or a reference to a name that does not
exist fails it.
"""
import json
from pathlib import Path

import involution
from involution.workbook.colab import SETUP_MARKER

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent

project = "involution"
author = "the involution workbook's authors"
copyright = "the involution workbook's authors, MIT licence"
release = version = involution.__version__

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.napoleon",
              "sphinx.ext.viewcode"]
# $...$ and $$...$$ (in the pages and the notebooks' markdown cells) render as math (MathJax).
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath", "amsmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the committed outputs, as ./run.sh wrote them
nb_merge_streams = True
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
# .rst first: autosummary writes its generated API pages with the first suffix.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

autosummary_generate = True
autodoc_inherit_docstrings = False  # Lightning's own docstrings refer to pages of its site
# Each object is documented once, in the module that defines it (not again where a package re-exports it).
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autoclass_content = "both"
# The package's own references must resolve; other libraries' cannot be checked offline
# (no intersphinx inventories), so only names outside the package are exempt.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!involution\b).*"), (r"py:.*", r"involution\.\w+\.\w+\.\w+\.\w+.*")]
suppress_warnings = ["myst.header"]

html_theme = "furo"
html_title = f"involution {release}"
html_static_path = []


# The cell tag MyST-NB folds a cell's code under (its output stays shown).
SETUP_CELL_TAG = "hide-input"


def site_copy(text: str) -> str:
    """A notebook as the site shows it: its Colab set-up cell (the install lines Colab needs,
    useless on a web page) folded away under MyST-NB's ``hide-input`` tag."""
    data = json.loads(text)
    for cell in data["cells"]:
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        if cell["cell_type"] == "code" and source.startswith(SETUP_MARKER):
            tags = cell.setdefault("metadata", {}).setdefault("tags", [])
            if SETUP_CELL_TAG not in tags:
                tags.append(SETUP_CELL_TAG)
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _copy_notebooks(app) -> None:
    """The notebooks live in notebooks/; Sphinx reads only its source folder, so copy them in
    (as :func:`site_copy` makes them)."""
    target = DOCS / "notebooks"
    target.mkdir(exist_ok=True)
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        destination = target / notebook.name
        text = site_copy(notebook.read_text())
        if not destination.exists() or destination.read_text() != text:
            destination.write_text(text)


# Where a page asks for a table the code writes at build time: the marker, and what replaces it.
GENERATED = {"<!-- models:table -->": "model_table"}


def generated_markdown(what: str) -> str:
    """The Markdown a marker of :data:`GENERATED` stands for, computed from the package."""
    from involution.analysis.complexity import format_model_table, model_table
    if what == "model_table":
        return format_model_table(model_table())
    raise KeyError(what)


def _fill_generated(app, docname: str, source: list[str]) -> None:
    for marker, what in GENERATED.items():
        if marker in source[0]:
            source[0] = source[0].replace(marker, generated_markdown(what))


def setup(app):
    app.connect("builder-inited", _copy_notebooks)
    app.connect("source-read", _fill_generated)
    return {"parallel_read_safe": True}

