"""The command line: ``python -m involution COMMAND`` (or ``involution COMMAND`` once installed).

Every command is one row of :data:`COMMANDS`: its name, what it does, and the
function that runs it. The help is generated from that table, and each
command's own ``--help`` comes from the module that implements it, so nothing
is written twice. The four training commands are Lightning's (LightningCLI);
the others are small tools of the data, the workbook and the deck.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import sys
from dataclasses import dataclass

from involution._checkout import checkout_of_this_package
from involution._extras import MissingExtraError
from involution._notices import new_command


@dataclass(frozen=True)
class Command:
    """One command: its usage after the name, a one-line summary, and ``module:function``."""

    usage: str
    summary: str
    target: str
    maintainer: bool = False  # works on a clone of the repository: listed only where the package runs from one

    def load(self):
        module, function = self.target.split(":")
        return getattr(importlib.import_module(module), function)


_TRAIN = "involution.train.cli:main"
COMMANDS = {
    "fit": Command("--config RECIPE [--model.model_name NAME]",
                   "train a model (a new run, or resume one with --ckpt_path RUN/checkpoints/last.ckpt)", _TRAIN),
    "validate": Command("--config RECIPE --ckpt_path CKPT", "evaluate a checkpoint on the validation split",
                        _TRAIN),
    "test": Command("--config RECIPE --ckpt_path CKPT", "evaluate a checkpoint on the test split", _TRAIN),
    "predict": Command("--ckpt_path CKPT IMAGES... | --config RECIPE --ckpt_path CKPT",
                       "top-5 classes of image files, folders or globs (or the test split's), written to CSV", _TRAIN),
    "export": Command("--ckpt_path CKPT --to FOLDER", "save a checkpoint's model to share (safetensors + config.json)",
                      "involution.train.apply:export_main"),
    "check-data": Command("ROOT", "decode every image of a data folder and list the unreadable ones",
                          "involution.data.check:main"),
    "resize-data": Command("ROOT DESTINATION", "make a pre-resized copy of a data folder, for faster loading",
                           "involution.data.resized:main"),
    "demo": Command("[--model NAME] [--image FILE]", "build a RedNet, print its size table, run it on a photo",
                    "involution.workbook.demo:main"),
    "course": Command("list | run SET [--data shapes]", "the original course project's runs, by named sets",
                      "involution.workbook.course:main"),
    "deck": Command("[--slides FOLDER] [--no-pdf]", "build the slide deck (HTML and PDF) from slides/",
                    "involution.workbook.deck:main"),
    "set-repo": Command("[URL]", "write the repository's address into pyproject.toml and the notebooks' "
                                 "Colab lines", "involution.workbook.colab:main", maintainer=True),
}
TRAINING_COMMANDS = ("fit", "validate", "test", "predict")


def version() -> str:
    """The installed distribution's version, read without importing the package's heavy parts."""
    try:
        return importlib.metadata.version("involution")
    except importlib.metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        from involution import __version__
        return __version__


def help_text() -> str:
    """The top-level help, generated from :data:`COMMANDS`."""
    shown = {name: command for name, command in COMMANDS.items()
             if not command.maintainer or checkout_of_this_package() is not None}
    width = max(map(len, shown))
    rows = "\n".join(f"  {name:<{width}}  {command.summary}" for name, command in shown.items())
    return (f"usage: python -m involution COMMAND [ARGUMENTS]   (involution {version()})\n\n"
            f"Commands:\n{rows}\n\n"
            "Add --help after a command for its arguments, e.g. python -m involution fit --help\n"
            "(which also lists the shipped recipes). Example:\n"
            "  python -m involution fit --config shapes --model.model_name resnet26")


def names_no_settings(arguments: list[str]) -> bool:
    """True for a training command's arguments that give neither a config nor the data: nothing to run."""
    return not any(a in ("-h", "--help", "-c", "--config", "--print_config") or
                   a.startswith(("--config=", "--print_config", "--data.root", "--data=", "--data "))
                   for a in arguments)


def main(argv: list[str] | None = None) -> int:
    """Run a command: ``argv`` as on the command line, or the command line itself when None."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments or arguments[0] in ("-h", "--help"):
        print(help_text())
        return 0
    if arguments[0] == "--version":
        print(f"involution {version()}")
        return 0
    name, rest = arguments[0], arguments[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose one of {', '.join(COMMANDS)} "
              "(python -m involution --help says what each does)", file=sys.stderr)
        return 2
    # `predict --ckpt_path CKPT photo.jpg ...` needs no recipe: the checkpoint carries its settings.
    predicts_files = name == "predict" and any(a == "--ckpt_path" or a.startswith("--ckpt_path=") for a in rest)
    if name in TRAINING_COMMANDS and not predicts_files and names_no_settings(rest):
        # jsonargparse would say only "required: fit.data.root", after seconds of importing
        # Lightning: the usual start is a recipe (the recipes' folder is read without torch).
        from involution.train.configs import list_configs
        print(f"error: {name} needs a recipe: add --config RECIPE, one of {', '.join(list_configs())} "
              "(or a YAML file of your own), or at least --data.root FOLDER; "
              f"python -m involution {name} --help says more", file=sys.stderr)
        return 2
    new_command()  # its notices (the sample set's disclaimer) are said once in this command
    try:
        run = COMMANDS[name].load()
        if name in TRAINING_COMMANDS:
            # None, not the list, from the real command line: LightningCLI then reads it
            # itself (given both, it warns that they might disagree).
            return run(None if argv is None else arguments)
        return run(rest) or 0
    except MissingExtraError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
