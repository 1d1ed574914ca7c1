"""The run recipes shipped with the package (``involution/configs/*.yaml``).

A recipe holds everything of a run but the model: the data, the trainer, the
optimiser and the schedule, with a default model that the command line can
change (``--model.model_name resnet26``), so one recipe serves every model
and they compare fairly. ``python -m involution fit --config NAME`` finds a
shipped recipe by its name when no file of that name exists; several
``--config`` files compose, later ones overriding earlier ones.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG_FOLDER", "list_configs", "find_config", "resolve_config_args"]

CONFIG_FOLDER = Path(__file__).resolve().parent


def list_configs() -> list[str]:
    """The names of the shipped recipes, sorted."""
    return sorted(path.stem for path in CONFIG_FOLDER.glob("*.yaml"))


def find_config(name_or_path: str | Path) -> Path:
    """An existing config file as it is, else the shipped recipe of that name.

    ``quick_sample`` and ``quick_sample.yaml`` both name the shipped
    ``quick_sample.yaml``; a path to a file that does not exist is an error
    that lists the shipped recipes.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = CONFIG_FOLDER / f"{path.name.removesuffix('.yaml')}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    names = list_configs()
    hint = ""
    for recipe in names:  # the former per-model files, e.g. resnet26_caltech256_course.yaml
        model = path.stem.removesuffix(f"_{recipe}")
        if model != path.stem:
            hint = (f" The recipes are shared by all models now: use --config {recipe} "
                    f"--model.model_name {model}.")
    raise FileNotFoundError(f"no config file {str(name_or_path)!r}, and no shipped recipe of "
                            f"that name; the shipped recipes are {', '.join(names)}.{hint}")


def _resolve(value: str) -> str:
    if Path(value).is_file() or any(mark in value for mark in "{:\n"):
        return value  # a file, or a configuration written inline (jsonargparse accepts both)
    return str(find_config(value))


def resolve_config_args(args: list[str]) -> list[str]:
    """``args`` with each ``--config``/``-c`` value made a file path (:func:`find_config`)."""
    resolved, expects_value = [], False
    for arg in args:
        if expects_value:
            arg, expects_value = _resolve(arg), False
        elif arg in ("--config", "-c"):
            expects_value = True
        elif arg.startswith("--config="):
            arg = "--config=" + _resolve(arg.removeprefix("--config="))
        resolved.append(arg)
    return resolved
