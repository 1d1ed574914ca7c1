"""The package's shape: a folder per role, imports one way, a light core.

Read from the source (every import statement, those inside functions too),
so a new import that runs against the layering fails here, not in a reader's head.
"""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "involution"

# Each folder's place: a module may import its own folder and those ranked lower, never higher.
# ops and data need nothing of each other; the models read data's constants (the normalisation).
RANKS = {"_extras": 0, "_checkout": 0, "_notices": 0, "ops": 1, "data": 1, "layers": 2, "models": 3, "analysis": 4,
         "inference": 4, "train": 5, "workbook": 6, "__main__": 7}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def imported_modules(name: str) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its source."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            for alias in node.names:  # `from package import module` imports the module itself
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {module for module in found if module in MODULES and module != name}


def role(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_at_most_eight_modules_sit_directly_in_the_package():
    direct = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(direct) <= 8, direct


def test_every_module_belongs_to_a_ranked_folder():
    assert {role(name) for name in MODULES} - {"__init__"} <= set(RANKS)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_run_one_way(name):
    if role(name) == "__init__":
        return  # the package's face imports the public names from the folders below it
    higher = [other for other in imported_modules(name)
              if role(other) != "__init__" and RANKS[role(other)] > RANKS[role(name)]]
    assert higher == [], f"{name} imports {higher}, which sit above it"


def test_no_import_circle_between_modules():
    graph = {name: imported_modules(name) for name in MODULES}
    done, on_path = set(), []

    def visit(name):
        if name in on_path:
            raise AssertionError("import circle: " + " -> ".join(on_path[on_path.index(name):] + [name]))
        if name in done:
            return
        on_path.append(name)
        for other in sorted(graph[name]):
            visit(other)
        on_path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_nothing_but_the_command_line_imports_the_workbook():
    importers = sorted(name for name in MODULES if role(name) not in ("workbook", "__main__")
                       and any(role(other) == "workbook" for other in imported_modules(name)))
    assert importers == []


def test_the_core_imports_no_training_plotting_or_notebook_library():
    code = ("import sys, involution\n"
            "from involution import create_model, involution2d, Involution2d, list_models, "
            "load_official_checkpoint\n"
            "create_model('rednet26')\n"
            "heavy = ('lightning', 'torchmetrics', 'matplotlib', 'jupyter', 'jupyter_client', 'IPython', 'jinja2')\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
