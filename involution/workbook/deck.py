"""The slide deck: ``python -m involution deck`` builds ``slides/deck.html`` and ``slides/deck.pdf``.

The deck is one HTML file with its own CSS and JavaScript (no CDN, so it
opens offline), rendered from the template ``templates/deck.html.j2``. Its
print stylesheet lays out each slide as one 1280x720 page, so headless
Chromium prints it to a 16:9 PDF with one page per slide (:func:`print_pdf`).
In the browser, arrow keys, space, Page Up/Down, Home/End or a click move
between slides, and the address ends in ``#N`` for slide N. It is built from
what the appendix notebook (:data:`SLIDES_NOTEBOOK`) writes into ``slides/``:

* ``slides/figures/*.png``: the figures;
* ``slides/data/deck.json``: the complexity table, which data and weights the
  figures come from, and the list of runs;
* ``slides/data/runs/<key>/results.json`` and ``metrics.csv``: copies of the
  runs' results, so the deck can be rebuilt from the committed repository;
* ``slides/settings.toml``: the title slide's title, authors and occasion.

No number on a slide is typed by hand: each comes from those files, from
:mod:`involution.workbook.reference` (labelled "reported by ...") or from the models'
own defaults. Results on the built-in sample set say so on the slide.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

import jinja2
import tomllib

from involution.data.constants import DATA_KINDS
from involution.train.runs import RESULTS_FILE, Run, export_runs
from involution.workbook.diagrams import rednet_defaults
from involution.workbook.repository import SLIDES, repo_root
from involution.workbook.results import SeedSpread, compare_means, plateau_gain, results_rows, seed_spread

__all__ = ["DECK_DATA", "FONT_KEY", "SMALLEST_TEXT_PX", "save_figure", "figure_text_px",
           "COURSE_DATA", "FIGURES", "COURSE_FIGURES", "write_deck_data", "write_course_findings",
           "load_deck_data", "read_settings", "recipe_rows", "render_deck", "build_deck", "find_browser", "print_pdf",
           "main"]

# The notebook that writes the figures and data the deck is built from (./run.sh runs it last).
SLIDES_NOTEBOOK = "notebooks/appendix_slide_figures.ipynb"
DECK_DATA = Path("data") / "deck.json"
# Notebook 04's findings (involution.workbook.overfitting.findings), written beside it when its runs exist.
COURSE_DATA = Path("data") / "course.json"
RUNS_FOLDER = Path("data") / "runs"
SETTINGS = "settings.toml"
TEMPLATE = "deck.html.j2"

# The deck's figures: key -> file name under slides/figures/.
FIGURES = {
    "involution_operation": "involution_operation.png",
    "kernel_generation": "kernel_generation.png",
    "operator_costs": "operator_costs.png",
    "bottlenecks": "bottlenecks.png",
    "dataset_examples": "dataset_examples.png",
    "augmentations": "augmentations.png",
    "complexity_table": "complexity_table.png",
    "kernel_heatmaps": "kernel_heatmaps.png",
    "kernels_at_pixels": "kernels_at_pixels.png",
    "training_curves": "training_curves.png",
    "test_top1": "test_top1.png",
}
# Figures the notebook still saves (its readers see them) but whose numbers a slide shows as an HTML table,
# readable at 18 px where a 10-inch table figure is not.
SHOWN_AS_TABLES = {"complexity_table"}
# Figures of slides that show only when their data exists: key -> file name.
COURSE_FIGURES = {"course_overfitting": "course_overfitting.png"}


# The PNG text key under which a saved figure records its smallest font size, in points
# (:func:`save_figure`): with the image's resolution and the size a slide shows it at, the height of its
# smallest text on the slide follows (tests/test_deck.py checks it against :data:`SMALLEST_TEXT_PX`).
FONT_KEY = "Smallest font (pt)"
# The smallest text, in CSS pixels of the 1280 px wide slide, that a slide or its figures may show.
SMALLEST_TEXT_PX = 18


def save_figure(figure, path: str | os.PathLike, dpi: float = 110, minimum_pt: float | None = None) -> Path:
    """Save a slide's figure as PNG, recording its smallest font size (:data:`FONT_KEY`) in the file.

    ``minimum_pt``: first raise any smaller text to this size
    (:func:`involution.workbook.figures.enlarge_text`).
    """
    from involution.workbook.figures import enlarge_text, smallest_font_pt
    if minimum_pt is not None:
        enlarge_text(figure, minimum_pt)
    path = Path(path)
    figure.savefig(path, dpi=dpi, metadata={FONT_KEY: f"{smallest_font_pt(figure):g}"})
    return path


# The width, in CSS pixels of a 1280 px wide window, at which the slides show each figure (its box in the
# template and its aspect ratio decide it), as tests/test_deck.py measures it, rounded down. slide_text_pt sizes
# a figure's text from it; the test fails when a change of layout makes a figure's text smaller than the rule.
SHOWN_WIDTH_PX = {"operator_costs": 706, "augmentations": 1105, "kernel_heatmaps": 1105, "kernels_at_pixels": 1031,
                  "training_curves": 1105, "test_top1": 537, "course_overfitting": 677, "dataset_examples": 632}


def slide_text_pt(figure, key: str) -> float | None:
    """The smallest font size, in points, that makes ``figure``'s text :data:`SMALLEST_TEXT_PX` tall where
    the deck shows it (None for a figure without a measured width: its text is kept as drawn)."""
    if key not in SHOWN_WIDTH_PX:
        return None
    return SMALLEST_TEXT_PX * 72 * figure.get_size_inches()[0] / SHOWN_WIDTH_PX[key]


def figure_text_px(path: str | os.PathLike, shown_width_px: float) -> float | None:
    """How tall, in CSS pixels, the smallest text of a figure saved by :func:`save_figure` is when the
    slide shows it ``shown_width_px`` wide; None for a figure that did not record its font size."""
    from PIL import Image
    with Image.open(path) as image:
        font = image.info.get(FONT_KEY)
        dpi = image.info.get("dpi", (72, 72))[0]
        width = image.width
    if font is None:
        return None
    return float(font) * dpi / 72 * shown_width_px / width


# -- the data ------------------------------------------------------------------------


def write_deck_data(slides_dir: str | os.PathLike, *, runs: Mapping[str, Run],
                    data_statement: str, complexity_rows: Sequence[Mapping],
                    complexity_input_size: Sequence[int], kernels: Mapping[str, object],
                    fast_mode: bool = False) -> Path:
    """Write ``slides/data/deck.json`` and copy the runs' results beside it.

    Args:
        runs: ``{key: Run}``, e.g. ``{"rednet": ..., "resnet": ...}``; their
            results.json and metrics.csv are copied to ``data/runs/<key>/``.
        data_statement: the notebook's one-line statement of the data used.
        complexity_rows: :func:`involution.analysis.complexity.complexity_table` rows.
        kernels: what the kernel figures show: ``weights`` (the statement of
            :class:`involution.workbook.weights.Weights`), ``image``, ``image_size``,
            ``summary``, ``layer`` (the layer of the pixel figure).
    """
    slides_dir = Path(slides_dir)
    missing = [name for name in FIGURES.values() if not (slides_dir / "figures" / name).is_file()]
    if missing:
        raise FileNotFoundError(f"figures missing from {slides_dir / 'figures'}: {missing}; "
                                f"write them first ({SLIDES_NOTEBOOK})")
    _remove_other_runs(slides_dir / RUNS_FOLDER, keep=set(runs))
    folders = {key: folder.relative_to(slides_dir).as_posix()
               for key, folder in export_runs(runs, slides_dir / RUNS_FOLDER).items()}
    deck = {
        "generated_by": SLIDES_NOTEBOOK,
        "fast_mode": bool(fast_mode),
        "data_statement": data_statement,
        "runs": folders,
        "complexity": {"input_size": list(complexity_input_size), "rows": list(complexity_rows)},
        "kernels": dict(kernels),
    }
    path = slides_dir / DECK_DATA
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(deck, indent=2, default=str) + "\n")
    return path


def write_course_findings(slides_dir: str | os.PathLike, findings: Mapping) -> Path:
    """Write ``slides/data/course.json``: what notebook 04's runs found
    (:func:`involution.workbook.overfitting.findings`).

    Its figure, ``figures/course_overfitting.png``, must be there first: the slide that
    shows the findings needs both.
    """
    slides_dir = Path(slides_dir)
    figure = slides_dir / "figures" / COURSE_FIGURES["course_overfitting"]
    if not figure.is_file():
        raise FileNotFoundError(f"{figure} is missing: save the overfitting figure first ({SLIDES_NOTEBOOK})")
    path = slides_dir / COURSE_DATA
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(findings, indent=1) + "\n")
    return path


def _load_course_findings(slides_dir: Path) -> dict | None:
    """The findings of notebook 04's runs, when they and their figure were written; None otherwise."""
    path, figure = slides_dir / COURSE_DATA, slides_dir / "figures" / COURSE_FIGURES["course_overfitting"]
    if not (path.is_file() and figure.is_file()):
        return None
    findings = json.loads(path.read_text())
    return findings if "verdicts" in findings else None  # an older deck's findings: not shown


def _course_sentences(findings: Mapping) -> list[str]:
    """Each difference notebook 04 measured, with its interval and verdict, and the chance reading, as
    printed there."""
    return [f"{what.capitalize()}, {found['text']}" for what, found in findings["verdicts"].items()] + \
        ([findings["chance"]] if "chance" in findings else [])


def _model_comparison(runs: Sequence[Run]):
    """Test top-1 of the two models compared (:func:`compare_means`); None unless two models with 2+ seeds each."""
    by_model: dict[str, list[Run]] = {}
    for run in runs:
        if run.results.percent("test_top1") is not None:
            by_model.setdefault(run.model, []).append(run)
    if len(by_model) != 2 or min(len(group) for group in by_model.values()) < 2:
        return None
    return compare_means(*(seed_spread(group) for group in by_model.values()))


def _seed_verdict(runs: Sequence[Run]) -> str:
    """What the seeds say about the two models, as a person would say it."""
    difference = _model_comparison(runs)
    if difference is None:
        return ""
    first, second = difference.first.label, difference.second.label
    if difference.higher:
        return (f"With {len(difference.first.values)} seeds each, {difference.higher} "
                f"reached the higher test accuracy: the 95% interval of the difference excludes zero "
                f"(on this data, variant and recipe).")
    return (f"Over {len(difference.first.values)} seeds each, the 95% interval of the difference of their test "
            f"accuracies includes zero: our runs cannot tell {first} from {second}.")


def _plateau_note(runs: Sequence[Run]) -> str:
    """Whether the runs stopped on a plateau (under 1 point of validation top-1 over the last quarter)."""
    gains = [plateau_gain(run.metrics()) for run in runs]
    learning = sum(not gain < 1 for gain in gains)
    if not learning:
        return f"All {len(gains)} runs stopped on a plateau (under 1 point of validation top-1 gained over the " \
               "last quarter of their epochs)."
    measured = [gain for gain in gains if gain == gain]  # NaN: a run of one epoch shows no plateau
    most = f", up to {max(measured):.1f}" if measured else ""
    return (f"{learning} of {len(gains)} runs {'was' if learning == 1 else 'were'} not shown to be on a plateau at "
            f"their last epoch (1 point or "
            f"more of validation top-1 gained over the last quarter{most}, or too few epochs): their scores depend "
            "on when training stopped, so this comparison cannot answer the question yet.")


def _overfitting_verdict(findings: Mapping | None) -> str:
    """What notebook 04's weight-decay runs say, in one sentence."""
    if not findings:
        return ""
    if findings.get("all_at_chance"):
        return (f"On a fixed {findings['train_images']} training images for {findings['epochs']} epochs, the "
                f"{findings['model']} variant's test top-1 was at chance in every run, with or without weight "
                "decay: these runs cannot test whether weight decay cures overfitting.")
    higher = findings["verdicts"]["test top-1"]["higher"]
    if higher:
        return (f"On a small fixed training set, {higher} reached the higher test "
                "accuracy, beyond the spread of the seeds.")
    return ("On a small fixed training set, weight decay made no difference to test accuracy that the seeds "
            "could detect.")


def _takeaways(runs: Sequence[Run], findings: Mapping | None, kinds: Sequence[str]) -> list[str]:
    """The closing slide's points, each a sentence a speaker would say (not a repeat of a table)."""
    points = ["Involution moves a layer's cost from its weights to the input: the kernels are computed per pixel, "
              "so a RedNet is smaller than its ResNet and can afford 7×7 windows in every block.",
              "Fewer multiply-adds need not mean faster training: an involution reads a different kernel at "
              "every pixel and first has to generate it; notebook 02 prints both models' multiply-adds and their "
              "measured training speeds."]
    # Whether the runs stopped on a plateau first: it decides whether the verdict after it answers anything.
    points += [sentence for sentence in (_plateau_note(runs), _seed_verdict(runs), _overfitting_verdict(findings))
               if sentence]
    if "caltech256" not in kinds:
        points.append("All of our training ran on small offline data in minutes on a CPU; how RedNet does on "
                      "Caltech-256 needs a GPU and 150 epochs per run, which the notebooks run unchanged.")
    return points


def _question(runs: Sequence[Run]) -> dict:
    """What the question slide says, read from the runs: the models, their depth, the seeds and the data."""
    labels = list(dict.fromkeys(run.label for run in runs))
    seeds = sorted({run.seed for run in runs})
    return {"labels": labels, "depths": sorted({"".join(filter(str.isdigit, run.model)) for run in runs}),
            "seeds": len(seeds)}


def _fraction(share: float) -> str:
    """0.25 -> "a quarter"; other shares as a percentage."""
    words = {0.25: "a quarter", 0.5: "half", 0.125: "an eighth", 0.75: "three quarters"}
    return words.get(round(share, 3), f"{share:.0%}")


def _limitations(runs: Sequence[Run], deck: Mapping, findings: Mapping | None, kinds: Sequence[str],
                 data_label: str) -> list[str]:
    """The limitations slide's points, every number read from the runs, deck.json or notebook 04's findings."""
    import inspect

    from involution.models.rednet import RedNet
    points = []
    if "caltech256" not in kinds:
        datasets = {json.dumps(run.results.dataset.get("images", {}), sort_keys=True): run.results.dataset
                    for run in runs}
        dataset = next(iter(datasets.values()))
        images = dataset.get("images", {})
        facts = [f"{dataset['num_classes']} classes" if dataset.get("num_classes") else "",
                 f"{images['train']:,} training images" if images.get("train") else "",
                 f"at {dataset['image_size']} px" if dataset.get("image_size") else ""]
        points.append("Data: " + ", ".join(fact for fact in facts if fact).replace(", at", " at")
                      + (", from" if any(facts) else "") + f" the {data_label}. Caltech-256, where the course "
                      "project trained, is not what these runs measure.")
    full = inspect.signature(RedNet.__init__).parameters["planes"].default
    planes = sorted({_setting(run.results.config or {}, "model.planes") for run in runs} - {_MISSING, None})
    if planes and planes != [full]:
        widths = ", ".join(str(value) for value in planes)
        fraction = ", ".join(_fraction(value / full) for value in planes)
        by_model = {row["model"]: row for row in deck["complexity"]["rows"]}
        sizes = "; ".join(f"{run.label} {run.results.params / 1e6:.2f}M parameters against the official "
                          f"{by_model[run.model]['params'] / 1e6:.2f}M"
                          for run in {run.model: run for run in runs}.values() if run.model in by_model)
        points.append(f"Width: {widths} base channels, {fraction} of the full models' {full} ({sizes}, whose "
                      "1000-class ImageNet head and stem max pool also differ from the variant trained here).")
    difference = _model_comparison(runs)
    if difference is not None:
        points.append(f"Seeds: {len(difference.first.values)} per model. The 95% interval of the difference of "
                      f"test top-1 runs from {difference.low:+.1f} to {difference.high:+.1f} points, so these runs "
                      "cannot tell apart models whose true difference lies anywhere in that range.")
    epochs = ", ".join(sorted({str(run.results.epochs_trained) for run in runs}))
    machines = "; ".join(sorted({run.machine() for run in runs}))
    on_cpu = all(not (run.results.machine or {}).get("gpu") for run in runs)
    points.append(f"Budget: {epochs} epochs per run on {machines}" + (
        ": a CPU budget, far from the paper's long training on GPUs." if on_cpu else "."))
    if findings:
        points.append(f"Of the course project's findings, only weight decay against overfitting was retried, at "
                      f"small scale: {findings['model']} on "
                      f"{findings['train_images']} training images for {findings['epochs']} epochs, "
                      f"{findings['rows'][0]['seeds']} seeds per setting.")
    return points


def _remove_other_runs(folder: Path, keep: set[str]) -> None:
    """Delete copies of runs the deck no longer quotes, so that slides/data holds only its data."""
    if not folder.is_dir():
        return
    for copy in folder.iterdir():
        if copy.name not in keep and (copy / RESULTS_FILE).is_file():
            shutil.rmtree(copy)


def load_deck_data(slides_dir: str | os.PathLike) -> tuple[dict, dict[str, Run]]:
    """(deck.json, {key: Run read from the copies}) for ``slides_dir``."""
    slides_dir = Path(slides_dir)
    path = slides_dir / DECK_DATA
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: run {SLIDES_NOTEBOOK} first, which "
                                "writes the figures and the deck's data into slides/")
    deck = json.loads(path.read_text())
    runs = {key: Run.load(slides_dir / folder) for key, folder in deck["runs"].items()}
    missing = [name for name in FIGURES.values() if not (slides_dir / "figures" / name).is_file()]
    if missing:
        raise FileNotFoundError(f"figures missing from {slides_dir / 'figures'}: {missing}; "
                                f"run {SLIDES_NOTEBOOK} again")
    return deck, runs


# -- what the slides say ---------------------------------------------------------------------


def read_settings(slides_dir: Path) -> dict:
    """The title slide's settings: ``slides/settings.toml`` (title, authors, occasion), if any."""
    path = slides_dir / SETTINGS
    settings = {"title": "Involution and RedNet", "authors": [], "occasion": ""}
    if path.is_file():
        read = tomllib.loads(path.read_text(encoding="utf-8"))
        unknown = sorted(set(read) - set(settings))
        if unknown:
            raise ValueError(f"{path}: unknown settings {unknown}; the deck reads {sorted(settings)}")
        settings.update(read)
    return settings


def _image_source(path: Path, relative_to: Path, embed: bool) -> str:
    if embed:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return Path(os.path.relpath(path, relative_to)).as_posix()


def _generator_sentence(channels: int = 256, kernel_sizes=(3, 7, 11)) -> str:
    """How a kernel generator's weights split between its K-free and its K²-dependent conv.

    Counted on real :class:`~involution.layers.involution.Involution2d` modules with RedNet's settings.
    """
    from involution.layers import Involution2d
    defaults = rednet_defaults()
    del defaults["kernel_size"]
    span = {k: sum(p.numel() for p in Involution2d(channels, k, **defaults).kernel_generator.span
                   .parameters()) for k in kernel_sizes}
    reduce = sum(p.numel() for p in Involution2d(channels, 3, **defaults).kernel_generator.reduce
                 .parameters())
    sizes = ", ".join(f"{value:,} at K = {k}" for k, value in span.items())
    return (f"At C = {channels}, the generator's first conv (C → C/r) holds {reduce:,} weights "
            f"whatever K; its second (C/r → K²G) holds {sizes}. Both grow with C², "
            f"and from K = 5 on the K²-dependent part is the larger one. Applying the kernels "
            "costs C·K² multiply-adds per pixel and holds no weights.")


def _complexity_sentence(rows: Sequence[Mapping]) -> str:
    by_model = {row["model"]: row for row in rows}
    red, res = by_model.get("rednet26"), by_model.get("resnet26")
    if not red or not res:
        return ""
    return (f"Counted here: RedNet-26 has {red['params'] / res['params']:.0%} of ResNet-26's "
            f"parameters ({red['params'] / 1e6:.2f}M vs {res['params'] / 1e6:.2f}M) and "
            f"{red['gmacs'] / res['gmacs']:.0%} of its multiply-adds ({red['gmacs']:.2f} vs "
            f"{res['gmacs']:.2f} GMACs). Reported by Li et al.: {red['reported_params_m']}M "
            f"parameters, {red['reported_gflops']} GFLOPs.")


def _complexity_rows(rows: Sequence[Mapping]) -> list[dict]:
    """deck.json's complexity rows as the slide's table shows them (what plot_complexity_table drew)."""
    from involution.models.registry import model_info

    def shown(value, spec):
        return "–" if value is None else format(value, spec)
    return [{"model": row["model"], "rednet": model_info(row["model"]).family == "rednet",
             "params": f"{row['params']:,}", "gmacs": f"{row['gmacs']:.2f}",
             "mmcv": f"{row['mmcv_style_gflops']:.2f}", "reported_params": shown(row["reported_params_m"], ".2f"),
             "reported_gflops": shown(row["reported_gflops"], ".2f"),
             "gap": "–" if row["gap_percent"] is None else f"{row['gap_percent']:+.1f}%",
             "by": {"paper": "Li et al. 2021", "torchvision": "torchvision"}.get(row["reported_by"], "–")}
            for row in rows]


def _results_table(runs: Sequence[Run]) -> list[dict]:
    """This project's runs, one row per model: :func:`results_rows` summarised over seeds."""
    by_label: dict[str, list[dict]] = {}
    for row in results_rows(runs):
        by_label.setdefault(row["label"], []).append(row)
    table = []
    for label, rows in by_label.items():
        spreads = {}
        for key in ("best_val_top1", "test_top1", "test_top5"):
            values = tuple(row[key] for row in rows if row[key] is not None)
            spreads[key] = SeedSpread(label, values) if values else None
        table.append({"label": label, "params_m": rows[0]["params_m"], "seeds": len(rows),
                      "epochs": ", ".join(sorted({str(row["epochs"]) for row in rows})),
                      "image_size": rows[0]["image_size"], "data": rows[0]["data"], **spreads})
    return table


def _imagenet_rows() -> list[dict]:
    """RedNet's and ResNet's ImageNet top-1 as reported (the paper, torchvision), by depth."""
    from involution.models.registry import list_models, model_info
    infos = [info for info in map(model_info, list_models()) if info.family in ("rednet", "resnet")
             and info.reported is not None and info.reported.top1 is not None]
    return [{"label": info.label, "params_m": info.reported.params_m, "top1": info.reported.top1,
             "source": info.reported.citation.removeprefix("reported ").removeprefix("by ").removeprefix("in ")}
            for info in sorted(infos, key=lambda info: (info.depth, info.family))]


def _comparison_sentence(runs: Sequence[Run]) -> str:
    difference = _model_comparison(runs)
    return "" if difference is None else "Test top-1, " + str(difference)


# The recipe settings a slide shows, in this order: (config section, key, label).
# (setting in the recorded config, label): "section.key" or "section.key.field".
RECIPE = [("model.optimizer.name", "optimiser"), ("model.optimizer.lr", "learning rate"),
          ("model.optimizer.momentum", "momentum"), ("model.optimizer.nesterov", "Nesterov"),
          ("model.optimizer.weight_decay", "weight decay"), ("model.schedule.name", "schedule"),
          ("model.schedule.warmup_epochs", "warm-up epochs"), ("model.drop_rate", "dropout"),
          ("model.label_smoothing", "label smoothing"), ("data.batch_size", "batch size"),
          ("data.image_size", "image size (px)"), ("data.transforms", "augmentations"),
          ("trainer.max_epochs", "epochs"), ("trainer.gradient_clip_val", "gradient clipping")]
_SGD_ONLY = {"model.optimizer.momentum", "model.optimizer.nesterov"}
_MISSING = object()


def _setting(config: Mapping, dotted: str):
    """``config["model"]["optimizer"]["lr"]`` for ``"model.optimizer.lr"``; _MISSING where absent."""
    value = config
    for key in dotted.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _shown(value) -> str:
    """A setting as a slide shows it: 1 warm-up epoch, not 1.0."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def recipe_rows(runs: Sequence[Run]) -> list[tuple[str, str]]:
    """(setting, value) of the training recipe, read from the runs' recorded configuration.

    A setting that differs between the runs lists every value; ``model_name``
    and the seed, which differ by design, are not part of the recipe.
    """
    rows = []
    configs = [run.results.config or {} for run in runs]
    optimisers = {str(_setting(config, "model.optimizer.name")).lower() for config in configs}
    for setting, label in RECIPE:
        values = list(dict.fromkeys(_shown(value) for value in (_setting(c, setting) for c in configs)
                                    if value is not _MISSING))
        if values and not (setting in _SGD_ONLY and "sgd" not in optimisers):
            rows.append((label, " / ".join(values)))
    epochs = sorted({str(run.results.epochs_trained) for run in runs})
    rows.append(("epochs trained", ", ".join(epochs)))
    return rows


def _recipe_steps(findings: Sequence[Mapping]) -> list[str]:
    """What each step of the course project's recipe changed, as the differences it reported."""
    steps = []
    for before, after in zip(findings, findings[1:]):
        if (before["model"] == after["model"] and before["val_top1"] is not None
                and after["val_top1"] is not None):
            steps.append(f"{after['model']}, {after['recipe'].lstrip('+ ')}: "
                         f"{after['val_top1'] - before['val_top1']:+.2f} points "
                         f"({before['val_top1']}% → {after['val_top1']}%)")
    return steps


# -- rendering -------------------------------------------------------------------------------


def _template():
    environment = jinja2.Environment(loader=jinja2.PackageLoader("involution.workbook", "templates"),
                                     autoescape=jinja2.select_autoescape(["j2", "html"]),
                                     trim_blocks=True, lstrip_blocks=True,
                                     undefined=jinja2.StrictUndefined)
    return environment.get_template(TEMPLATE)


def render_deck(slides_dir: str | os.PathLike | None = None, embed_images: bool = False,
                relative_to: str | os.PathLike | None = None,
                authors: Sequence[str] | None = None) -> str:
    """The deck's HTML, built from ``slides_dir`` (default: the repository's ``slides/``).

    Images are referenced relative to ``relative_to`` (default: ``slides_dir``,
    where ``deck.html`` lives), or embedded as data URIs with ``embed_images``.
    ``authors`` replaces the authors of ``slides/settings.toml``.
    """
    from involution.workbook.reference import (
        COURSE_PROJECT_FINDINGS,
        COURSE_PROJECT_SOURCE,
        OFFICIAL_REDNET,
        OFFICIAL_REDNET_SOURCE,
    )
    slides_dir = Path(slides_dir) if slides_dir is not None else repo_root() / SLIDES
    relative_to = Path(relative_to) if relative_to is not None else slides_dir
    deck, runs = load_deck_data(slides_dir)
    settings = read_settings(slides_dir)
    if authors is not None:
        settings["authors"] = list(authors)
    ordered = list(runs.values())
    kinds = sorted({run.kind for run in ordered})
    data_label = " + ".join(DATA_KINDS[kind].label for kind in kinds)
    machines = sorted({run.machine() for run in ordered})
    epochs = sorted({str(run.results.epochs_trained) for run in ordered})
    # The data is named once per slide, by its badge; where there is no badge (Caltech-256), here.
    badge = None if kinds == ["caltech256"] else data_label
    source_note = ("Runs: " + ("" if badge else f"{data_label}; ") +
                   f"seeds {', '.join(sorted({str(run.seed) for run in ordered}))}; "
                   f"{', '.join(epochs)} epoch{'' if epochs == ['1'] else 's'} at "
                   f"{', '.join(sorted({str(run.image_size) for run in ordered}))}px; machine: "
                   f"{'; '.join(machines)}."
                   + (" FAST-MODE SMOKE TEST, not a result." if deck.get("fast_mode") else ""))
    recipe = recipe_rows(ordered)
    course = _load_course_findings(slides_dir)
    shown = {key: name for key, name in {**FIGURES, **(COURSE_FIGURES if course else {})}.items()
             if key not in SHOWN_AS_TABLES}
    figures = {key: _image_source(slides_dir / "figures" / name, relative_to, embed_images)
               for key, name in shown.items()}
    return _template().render(
        settings=settings, deck=deck, figures=figures, source_note=source_note,
        data_label=data_label, kinds=kinds,
        # A warning badge on the slides whose content comes from data other than Caltech-256.
        badge=badge,
        labels=" vs ".join(dict.fromkeys(run.label for run in ordered)),
        defaults=rednet_defaults(), generator_sentence=_generator_sentence(),
        complexity_sentence=_complexity_sentence(deck["complexity"]["rows"]),
        complexity=_complexity_rows(deck["complexity"]["rows"]),
        results=_results_table(ordered), comparison=_comparison_sentence(ordered), plateau=_plateau_note(ordered),
        recipe=recipe, recipe_differs=any(" / " in value for _, value in recipe),
        augmentations=dict(recipe).get("augmentations", ""), findings=COURSE_PROJECT_FINDINGS,
        steps=_recipe_steps(COURSE_PROJECT_FINDINGS),
        course_source=COURSE_PROJECT_SOURCE,
        official=OFFICIAL_REDNET[26], official_source=OFFICIAL_REDNET_SOURCE, imagenet=_imagenet_rows(),
        course=course, course_sentences=_course_sentences(course) if course else [],
        takeaways=_takeaways(ordered, course, kinds), question=_question(ordered),
        limitations=_limitations(ordered, deck, course, kinds, data_label))


def build_deck(slides_dir: str | os.PathLike | None = None,
               output: str | os.PathLike | None = None, embed_images: bool = False,
               authors: Sequence[str] | None = None) -> Path:
    """Write the deck to ``output`` (default ``slides_dir/deck.html``) and return its path."""
    slides_dir = Path(slides_dir) if slides_dir is not None else repo_root() / SLIDES
    output = Path(output) if output is not None else slides_dir / "deck.html"
    if not slides_dir.is_dir():  # checked before anything is made: a mistyped --slides leaves no folder behind
        raise FileNotFoundError(f"the slides folder {slides_dir} does not exist; give the folder that "
                                f"{SLIDES_NOTEBOOK} wrote (--slides), by default the repository's slides/")
    page = render_deck(slides_dir, embed_images=embed_images, authors=authors,
                       relative_to=None if embed_images else output.parent.resolve())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output


# -- the PDF ---------------------------------------------------------------------------------

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER_FIX = ("install Debian's Chromium: `sudo apt-get install -y chromium chromium-driver`, "
               "or set CHROME_BINARY to a Chromium or Chrome")


def find_browser() -> str:
    """A headless-capable Chromium: $CHROME_BINARY, or the first of :data:`BROWSERS` on the PATH."""
    for candidate in (os.environ.get("CHROME_BINARY"), *map(shutil.which, BROWSERS)):
        if candidate:
            return candidate
    raise FileNotFoundError(f"the PDF needs a Chromium or Chrome browser and found none: {BROWSER_FIX}")


def print_pdf(html_path: str | os.PathLike, pdf_path: str | os.PathLike | None = None,
              timeout: float = 120) -> Path:
    """Print a deck to a PDF with headless Chromium: one 16:9 page per slide.

    The page size and the one-slide-per-page layout come from the deck's own
    print stylesheet (``@page`` 1280x720 px); Chromium's header and footer are off.
    """
    html_path = Path(html_path).resolve()
    pdf_path = Path(pdf_path) if pdf_path is not None else html_path.with_suffix(".pdf")
    command = [find_browser(), "--headless", "--disable-gpu", "--no-pdf-header-footer",
               "--disable-background-networking", "--no-first-run", "--hide-scrollbars",
               f"--print-to-pdf={pdf_path.resolve()}", html_path.as_uri()]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    pdf_path.unlink(missing_ok=True)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not pdf_path.is_file():
        raise RuntimeError(f"{command[0]} could not print {html_path} (exit {done.returncode}):\n"
                           + done.stderr[-2000:])
    return pdf_path


def main(argv: list[str] | None = None) -> int:
    """``python -m involution deck``."""
    parser = argparse.ArgumentParser(
        prog="python -m involution deck",
        description="Build the slide deck from slides/figures and slides/data (as written by "
                    f"{SLIDES_NOTEBOOK}): one offline HTML file and its 16:9 PDF.")
    parser.add_argument("--slides", default=None, help="the slides folder (default: the "
                                                       "repository's slides/)")
    parser.add_argument("--output", default=None, help="the HTML file (default: SLIDES/deck.html)")
    parser.add_argument("--embed", action="store_true",
                        help="embed the figures in the HTML (one file to send around)")
    parser.add_argument("--author", action="append", dest="authors", default=None,
                        help="an author for the title slide (repeat for several); default: "
                             "the authors in SLIDES/settings.toml")
    parser.add_argument("--no-pdf", action="store_true",
                        help="only the HTML (the PDF needs a Chromium or Chrome browser)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        path = build_deck(args.slides, args.output, args.embed, authors=args.authors)
        written = [path]
        if not args.no_pdf:
            written.append(print_pdf(path))
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    sizes = ", ".join(f"{p} ({p.stat().st_size / 1024:.0f} KiB)" for p in written)
    slides_dir = Path(args.slides) if args.slides else repo_root() / SLIDES
    print(f"Wrote {sizes} in {time.perf_counter() - start:.1f} s; open the HTML in a browser "
          "(arrow keys move between slides).")
    print(f"The title slide's author: `authors` in {slides_dir / SETTINGS}, or --author NAME for one build.")
    return 0
