"""Sphinx configuration of the documentation site: ``sphinx-build -W docs docs/_build/html``.

Sphinx, not MkDocs: the package's docstrings are reStructuredText (roles such as
``:func:``, literal blocks, tables), which autodoc renders as written; MyST-NB
renders the notebooks with their committed outputs (never executing them) and
lets the pages be Markdown. The build is strict (``-W``, nitpicky for this
package's own names): a broken link or a reference to a name that does not
exist fails it.
"""
import shutil
from pathlib import Path

import involution

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent

project = "involution"
author = "the involution workbook's authors"
copyright = "the involution workbook's authors, MIT licence"
release = version = involution.__version__

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.autosummary", "sphinx.ext.napoleon",
              "sphinx.ext.viewcode"]
myst_enable_extensions = ["colon_fence", "deflist"]
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


def _copy_notebooks(app) -> None:
    """The notebooks live in notebooks/; Sphinx reads only its source folder, so copy them in."""
    target = DOCS / "notebooks"
    target.mkdir(exist_ok=True)
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        destination = target / notebook.name
        if not destination.exists() or destination.read_bytes() != notebook.read_bytes():
            shutil.copyfile(notebook, destination)


def setup(app):
    app.connect("builder-inited", _copy_notebooks)
    return {"parallel_read_safe": True}

