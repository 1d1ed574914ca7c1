"""The run recipes shipped with the package (``involution/train/configs/*.yaml``).

A recipe holds everything of a run but the model: the data, the trainer, the
optimiser and the schedule, with a default model that the command line can
change (``--model.model_name resnet26``), so one recipe serves every model
and they compare fairly. ``python -m involution fit --config NAME`` finds a
shipped recipe by its name when no file of that name exists; several
``--config`` files compose, later ones overriding earlier ones.

The subfolder ``course/`` holds overrides, not recipes: each holds only what
one run of the original course project changed (model, weight decay,
dropout, clipping, epochs, learning rate), and is composed on the course
recipe: ``--config caltech256_course --config course/rednet26_nowd``
(:mod:`involution.workbook.course` runs them by sets).
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG_FOLDER", "OVERRIDE_FOLDERS", "list_configs", "find_config", "compose_configs",
           "resolve_config_args"]

CONFIG_FOLDER = Path(__file__).resolve().parent


# Subfolders of shipped overrides, named ``<folder>/<name>`` (``course/rednet26_nowd``).
OVERRIDE_FOLDERS = ("course",)


def list_configs(folder: str | None = None) -> list[str]:
    """The names of the shipped recipes, sorted; with ``folder``, its overrides as ``folder/name``."""
    if folder is None:
        return sorted(path.stem for path in CONFIG_FOLDER.glob("*.yaml"))
    if folder not in OVERRIDE_FOLDERS:
        raise ValueError(f"no shipped config folder {folder!r}; the folders are {', '.join(OVERRIDE_FOLDERS)}")
    return sorted(f"{folder}/{path.stem}" for path in (CONFIG_FOLDER / folder).glob("*.yaml"))


def _shipped(path: Path) -> Path | None:
    """The shipped file a bare name (``shapes``) or ``<override folder>/<name>`` stands for."""
    name = f"{path.name.removesuffix('.yaml')}.yaml"
    if path.parent == Path("."):
        shipped = CONFIG_FOLDER / name
    elif path.parent.as_posix() in OVERRIDE_FOLDERS:
        shipped = CONFIG_FOLDER / path.parent / name
    else:
        return None
    return shipped if shipped.is_file() else None


def find_config(name_or_path: str | Path) -> Path:
    """An existing config file as it is, else the shipped recipe of that name.

    ``quick_sample`` and ``quick_sample.yaml`` both name the shipped
    ``quick_sample.yaml``, ``course/rednet26_nowd`` a shipped override; a path
    to a file that does not exist is an error that lists the shipped recipes.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = _shipped(path)
    if shipped is not None:
        return shipped
    names = list_configs()
    if path.parent.as_posix() in OVERRIDE_FOLDERS:
        raise FileNotFoundError(f"no shipped override {str(name_or_path)!r}; the overrides in "
                                f"{path.parent.as_posix()}/ are {', '.join(list_configs(path.parent.as_posix()))}.")
    hint = ""
    for recipe in names:  # the former per-model files, e.g. resnet26_caltech256_course.yaml
        model = path.stem.removesuffix(f"_{recipe}")
        if model != path.stem:
            hint = (f" The recipes are shared by all models now: use --config {recipe} "
                    f"--model.model_name {model}.")
    raise FileNotFoundError(f"no config file {str(name_or_path)!r}, and no shipped recipe of "
                            f"that name; the shipped recipes are {', '.join(names)}.{hint}")


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        both_dicts = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if both_dicts else value
    return merged


def compose_configs(names: list[str] | tuple[str, ...]) -> dict:
    """The settings of several config files composed, later ones overriding earlier ones.

    A plain merge of nested YAML mappings, which is what the command line's
    parser does with these files (the tests check that both agree); it lets
    code read a composed run's epochs or learning rate without building a
    parser.
    """
    import yaml  # the training extra's dependency, only needed here

    composed: dict = {}
    for name in names:
        composed = _merge(composed, yaml.safe_load(find_config(name).read_text()) or {})
    return composed


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
