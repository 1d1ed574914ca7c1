"""A clear message when an optional part of the package lacks its dependencies.

The library itself (operator, layer, models) needs only torch and torchvision;
training, the notebooks and the tests need the extras of ``pyproject.toml``.
"""
from __future__ import annotations

import importlib.util

__all__ = ["MissingExtraError", "require_extra"]


class MissingExtraError(ModuleNotFoundError):
    """An optional part of the package was used without the extra that it needs."""


def require_extra(extra: str, *modules: str, feature: str) -> None:
    """Raise ModuleNotFoundError naming the pip extra to install if a module is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingExtraError(
            f"{feature} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
            f"not installed: install the '{extra}' extra with pip install 'involution[{extra}]' "
            "(or pip install -e '.[" + extra + "]' in a clone of the repository)",
            name=missing[0])
