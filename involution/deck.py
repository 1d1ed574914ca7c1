"""The slide deck: ``python -m involution.deck`` builds ``slides/deck.html``.

The deck is one HTML file with its own CSS and JavaScript (no CDN, so it
opens offline): arrow keys, space, Page Up/Down, Home/End or a click move
between slides, and the address ends in ``#N`` for slide N. It is built from
what ``notebooks/04_slide_figures.ipynb`` writes into ``slides/``:

* ``slides/figures/*.png``: the figures;
* ``slides/data/deck.json``: the complexity table, which data and weights the
  figures come from, and the list of runs;
* ``slides/data/runs/<key>/results.json`` and ``metrics.csv``: copies of the
  runs' results, so the deck can be rebuilt from the committed repository.

No number on a slide is typed by hand: each comes from those files, from
:mod:`involution.reference` (labelled "reported by ...") or from the models'
own defaults. Results on the built-in sample set say so on the slide.
"""
from __future__ import annotations

import argparse
import base64
import html
import inspect
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

from .results import compare_spreads, reference_rows, seed_spread
from .runs import DATA_LABELS, Run, export_runs
from .workbook import repo_root

__all__ = ["DECK_DATA", "FIGURES", "write_deck_data", "load_deck_data", "render_deck",
           "build_deck", "main"]

DECK_DATA = Path("data") / "deck.json"
RUNS_FOLDER = Path("data") / "runs"

# The deck's figures: key -> file name under slides/figures/.
FIGURES = {
    "operator_costs": "operator_costs.png",
    "complexity_table": "complexity_table.png",
    "kernel_heatmaps": "kernel_heatmaps.png",
    "kernels_at_pixels": "kernels_at_pixels.png",
    "training_curves": "training_curves.png",
    "accuracy_vs_params": "accuracy_vs_params.png",
}


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
        complexity_rows: :func:`involution.complexity.complexity_table` rows.
        kernels: what the kernel figures show: ``weights`` (the statement of
            :class:`involution.workbook.Weights`), ``image``, ``image_size``,
            ``summary``, ``layer`` (the layer of the pixel figure).
    """
    slides_dir = Path(slides_dir)
    missing = [name for name in FIGURES.values() if not (slides_dir / "figures" / name).is_file()]
    if missing:
        raise FileNotFoundError(f"figures missing from {slides_dir / 'figures'}: {missing}; "
                                "write them first (notebooks/04_slide_figures.ipynb)")
    _remove_other_runs(slides_dir / RUNS_FOLDER, keep=set(runs))
    folders = {key: folder.relative_to(slides_dir).as_posix()
               for key, folder in export_runs(runs, slides_dir / RUNS_FOLDER).items()}
    deck = {
        "generated_by": "notebooks/04_slide_figures.ipynb",
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


def _remove_other_runs(folder: Path, keep: set[str]) -> None:
    """Delete copies of runs the deck no longer quotes, so that slides/data holds only its data."""
    if not folder.is_dir():
        return
    for copy in folder.iterdir():
        if copy.name not in keep and (copy / "results.json").is_file():
            shutil.rmtree(copy)


def load_deck_data(slides_dir: str | os.PathLike) -> tuple[dict, dict[str, Run]]:
    """(deck.json, {key: Run read from the copies}) for ``slides_dir``."""
    slides_dir = Path(slides_dir)
    path = slides_dir / DECK_DATA
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: run notebooks/04_slide_figures.ipynb first, which "
                                "writes the figures and the deck's data into slides/")
    deck = json.loads(path.read_text())
    runs = {key: Run.load(slides_dir / folder) for key, folder in deck["runs"].items()}
    missing = [name for name in FIGURES.values() if not (slides_dir / "figures" / name).is_file()]
    if missing:
        raise FileNotFoundError(f"figures missing from {slides_dir / 'figures'}: {missing}; "
                                "run notebooks/04_slide_figures.ipynb again")
    return deck, runs


# -- rendering -----------------------------------------------------------------------

_CSS = """
:root { --ink: #1d1d1f; --muted: #5f6368; --accent: #c0392b; --paper: #ffffff; }
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; background: #2b2b2e; font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: var(--ink); }
#deck { position: fixed; inset: 0; display: flex; align-items: center; justify-content: center; }
.slide { display: none; position: relative; width: 1280px; height: 720px; background: var(--paper); padding: 44px 64px 56px; overflow: hidden; transform-origin: center center; flex-direction: column; }
.slide.current { display: flex; }
.slide h1 { font-size: 46px; margin: 120px 0 18px; }
.slide h2 { font-size: 32px; margin: 0 0 14px; border-bottom: 3px solid var(--accent); padding-bottom: 8px; }
.slide p, .slide li { font-size: 21px; line-height: 1.4; }
.slide ul { margin: 6px 0; padding-left: 28px; }
.slide .sub { color: var(--muted); font-size: 20px; }
.slide figure { margin: 0; flex: 1; min-height: 0; display: flex; flex-direction: column; align-items: center; }
.slide figure img { max-width: 100%; max-height: 100%; min-height: 0; object-fit: contain; flex: 1; }
.slide figcaption, .slide .note { font-size: 15px; color: var(--muted); margin-top: 6px; line-height: 1.35; }
.slide .badge { display: inline-block; background: #fff3cd; border: 1px solid #e0b800; color: #6b5200; border-radius: 4px; padding: 1px 8px; font-size: 15px; margin-left: 6px; vertical-align: middle; }
.slide table { border-collapse: collapse; font-size: 17px; margin: 8px 0; }
.slide th, .slide td { border-bottom: 1px solid #ddd; padding: 6px 12px; text-align: right; }
.slide td:first-child { white-space: nowrap; }
.slide th:first-child, .slide td:first-child, .slide td.text { text-align: left; }
.slide tr.reported td { color: var(--muted); font-style: italic; }
.slide .range { font-size: 13px; color: var(--muted); }
.slide code, .slide pre { font-family: "DejaVu Sans Mono", Menlo, monospace; font-size: 17px; }
.slide pre { background: #f5f5f7; padding: 12px 16px; border-radius: 6px; margin: 8px 0; white-space: pre-wrap; }
.slide .footer { position: absolute; left: 64px; right: 64px; bottom: 16px; font-size: 13px; color: var(--muted); display: flex; justify-content: space-between; }
@media print {
  html, body { background: none; height: auto; }
  #deck { position: static; display: block; }
  .slide { display: flex !important; transform: none !important; page-break-after: always; margin: 0 auto; }
}
"""

_JS = """
(function () {
  var slides = Array.prototype.slice.call(document.querySelectorAll('.slide'));
  var current = 0;
  function fit() {
    var scale = Math.min(window.innerWidth / 1280, window.innerHeight / 720);
    slides.forEach(function (s) { s.style.transform = 'scale(' + scale + ')'; });
  }
  function show(n) {
    current = Math.max(0, Math.min(slides.length - 1, n));
    slides.forEach(function (s, i) { s.classList.toggle('current', i === current); });
    if (location.hash !== '#' + (current + 1)) { history.replaceState(null, '', '#' + (current + 1)); }
    document.title = document.body.getAttribute('data-title') + ' (' + (current + 1) + '/' + slides.length + ')';
  }
  function fromHash() {
    var n = parseInt(location.hash.slice(1), 10);
    show(isNaN(n) ? 0 : n - 1);
  }
  document.addEventListener('keydown', function (e) {
    var forward = ['ArrowRight', 'ArrowDown', 'PageDown', ' ', 'Enter'];
    var back = ['ArrowLeft', 'ArrowUp', 'PageUp', 'Backspace'];
    if (forward.indexOf(e.key) >= 0) { show(current + 1); e.preventDefault(); }
    else if (back.indexOf(e.key) >= 0) { show(current - 1); e.preventDefault(); }
    else if (e.key === 'Home') { show(0); e.preventDefault(); }
    else if (e.key === 'End') { show(slides.length - 1); e.preventDefault(); }
  });
  document.addEventListener('click', function (e) {
    if (e.target.closest('a')) { return; }
    show(e.clientX < window.innerWidth / 3 ? current - 1 : current + 1);
  });
  window.addEventListener('hashchange', fromHash);
  window.addEventListener('resize', fit);
  window.deck = { show: show, current: function () { return current; }, count: slides.length };
  fit();
  fromHash();
})();
"""


def _e(value) -> str:
    return html.escape(str(value))


def _pct(value) -> str:
    return "&ndash;" if value is None else f"{value:.1f}%"


def _image_source(path: Path, relative_to: Path, embed: bool) -> str:
    if embed:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return Path(os.path.relpath(path, relative_to)).as_posix()


def _rednet_defaults() -> dict:
    """The RedNet involution settings, read from the model's own signature."""
    from .models import RedNet
    parameters = inspect.signature(RedNet).parameters
    return {name: parameters[name].default
            for name in ("kernel_size", "group_channels", "reduction_ratio")}


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


def _by_model(runs: Sequence[Run]) -> dict[str, list[Run]]:
    grouped: dict[str, list[Run]] = {}
    for run in runs:
        grouped.setdefault(run.model, []).append(run)
    return grouped


def _spread_cell(runs: Sequence[Run], key: str) -> str:
    try:
        spread = seed_spread(runs, key)
    except ValueError:
        return "&ndash;"
    if len(spread.values) == 1:
        return f"{spread.mean:.1f}%"
    return (f"{spread.mean:.1f}% &plusmn; {spread.std:.1f}<br><span class='range'>"
            f"{min(spread.values):.1f}&ndash;{max(spread.values):.1f}</span>")


def _results_table(runs: Sequence[Run]) -> str:
    """This project's runs, one row per model (mean +- sd over seeds), then reported rows apart."""
    from .reference import COURSE_PROJECT_SOURCE, OFFICIAL_REDNET, OFFICIAL_REDNET_SOURCE
    head = ("<tr><th>model</th><th>params</th><th>seeds</th><th>epochs</th><th>image</th>"
            "<th>best val top-1</th><th>test top-1</th><th>test top-5</th><th>data</th></tr>")
    body = []
    for model_runs in _by_model(runs).values():
        first = model_runs[0]
        epochs = sorted({str(run.results.epochs_trained) for run in model_runs})
        body.append(
            f"<tr><td>{_e(first.label)}</td><td>{first.results.params / 1e6:.2f}M</td>"
            f"<td>{len(model_runs)}</td><td>{', '.join(epochs)}</td><td>{first.image_size}px</td>"
            f"<td>{_spread_cell(model_runs, 'best_val_top1')}</td>"
            f"<td>{_spread_cell(model_runs, 'test_top1')}</td>"
            f"<td>{_spread_cell(model_runs, 'test_top5')}</td>"
            f"<td class='text'>{_e(first.data_label)}</td></tr>")
    table = (f"<table>{head}{''.join(body)}</table>"
             "<p class='note'>This project's runs: mean &plusmn; standard deviation over seeds, and "
             "the range from the worst to the best run.</p>")
    # Other people's numbers come from other data: a table of their own, never a shared column.
    course = "".join(
        f"<tr class='reported'><td>{_e(row['label'])}</td><td>{row['params_m']:.1f}M</td>"
        f"<td>{row['epochs']}</td><td>{row['best_val_top1']:.2f}% (val)</td>"
        "<td class='text'>Caltech-256, reported by the course project</td></tr>"
        for row in reference_rows())
    official = OFFICIAL_REDNET[26]
    reported = (
        "<table><tr><th>reported by others</th><th>params</th><th>epochs</th><th>top-1</th>"
        f"<th>data</th></tr>{course}"
        f"<tr class='reported'><td>RedNet-26</td><td>{official['params_m']:.2f}M</td><td>&ndash;</td>"
        f"<td>{official['top1']:.2f}% (ImageNet val)</td><td class='text'>ImageNet-1k, reported by "
        "Li et al.</td></tr></table>"
        f"<p class='note'>Not ours: {_e(COURSE_PROJECT_SOURCE)}; {_e(OFFICIAL_REDNET_SOURCE)}. "
        "Different data sets from each other and from ours: compare within a row's data set only.</p>")
    return table + reported


def _comparison_sentence(runs: Sequence[Run]) -> str:
    grouped = list(_by_model(runs).values())
    if len(grouped) != 2:
        return ""
    try:
        return "Test top-1: " + compare_spreads(seed_spread(grouped[0]), seed_spread(grouped[1]))
    except ValueError:
        return ""


def _slide(body: str, footer: str) -> str:
    return f'<section class="slide">{body}<div class="footer">{footer}</div></section>'


def render_deck(slides_dir: str | os.PathLike | None = None, embed_images: bool = False,
                relative_to: str | os.PathLike | None = None) -> str:
    """The deck's HTML, built from ``slides_dir`` (default: the repository's ``slides/``).

    Images are referenced relative to ``relative_to`` (default: ``slides_dir``,
    where ``deck.html`` lives), or embedded as data URIs with ``embed_images``.
    """
    slides_dir = Path(slides_dir) if slides_dir is not None else repo_root() / "slides"
    relative_to = Path(relative_to) if relative_to is not None else slides_dir
    deck, runs = load_deck_data(slides_dir)
    ordered = list(runs.values())
    kinds = sorted({run.kind for run in ordered})
    data_label = " + ".join(DATA_LABELS[kind] for kind in kinds)
    sample = "sample" in kinds
    built_in = set(kinds) <= {"sample", "shapes"}
    caltech = kinds == ["caltech256"]
    machines = sorted({run.machine() for run in ordered})
    epochs = sorted({str(run.results.epochs_trained) for run in ordered})
    sizes = sorted({str(run.image_size) for run in ordered})
    labels = " vs ".join(dict.fromkeys(run.label for run in ordered))
    seeds = sorted({str(run.seed) for run in ordered})
    fast = " FAST-MODE SMOKE TEST, not a result." if deck.get("fast_mode") else ""
    plural = "" if epochs == ["1"] else "s"
    source_note = (f"Runs: {data_label}; seeds {', '.join(seeds)}; {', '.join(epochs)} epoch{plural} "
                   f"at {', '.join(sizes)}px; machine: {'; '.join(machines)}.{fast}")
    footer = (f"<span>Involution &amp; RedNet &middot; built by python -m involution.deck from "
              f"slides/data</span><span>{_e(data_label)}</span>")

    def figure(key: str, caption: str) -> str:
        source = _image_source(slides_dir / "figures" / FIGURES[key], relative_to, embed_images)
        return (f'<figure><img src="{_e(source)}" alt="{_e(key)}">'
                f"<figcaption>{caption}</figcaption></figure>")

    kernel_info = deck.get("kernels", {})
    defaults = _rednet_defaults()
    complexity = deck["complexity"]
    size = complexity["input_size"]
    slides = [
        _slide(
            "<h1>Involution and RedNet</h1>"
            "<p class='sub'>Li et al., <i>Involution: Inverting the Inherence of Convolution for "
            "Visual Recognition</i>, CVPR 2021 &mdash; a workbook that began as a course project "
            "training RedNets and ResNets on Caltech-256.</p>"
            f"<p class='note'>{_e(deck['data_statement'])}</p>"
            f"<p class='note'>{_e(source_note)}</p>"
            "<p class='note'>Every number here comes from this project's runs and counters, or is "
            "labelled &ldquo;reported by&rdquo; its source. Keys: &rarr; / space next, &larr; back.</p>",
            footer),
        _slide(
            "<h2>Convolution vs involution</h2><ul>"
            "<li><b>Convolution</b>: one K&times;K kernel per (output, input) channel pair, the same "
            "at every pixel &mdash; <i>spatial-agnostic, channel-specific</i>.</li>"
            "<li><b>Involution</b>: one K&times;K kernel per pixel, generated from that pixel's "
            "features and shared by the channels of a group &mdash; <i>spatial-specific, "
            "channel-agnostic</i>.</li></ul>"
            + figure("operator_costs",
                     "Parameters and multiply-adds of one C&rarr;C layer, counted by "
                     "involution.complexity on real modules: convolution grows with C&sup2;K&sup2;, "
                     "involution's kernel generator with C&sup2; and its kernels with CK&sup2;."),
            footer),
        _slide(
            "<h2>Generating the kernels</h2>"
            "<pre>x: (B, C, H, W)\n"
            "  &rarr; avg-pool s&times;s (strided layers only)\n"
            "  &rarr; 1&times;1 conv C &rarr; C/r, BN, ReLU\n"
            "  &rarr; 1&times;1 conv C/r &rarr; K&middot;K&middot;G      kernel: (B, G, K, K, H/s, W/s)\n"
            "out[b, c, i, j] = &Sigma;<sub>u,v</sub> kernel[b, c // (C/G), u, v, i, j] "
            "&middot; x[b, c, i&middot;s+u&minus;p, j&middot;s+v&minus;p]</pre>"
            f"<ul><li>RedNet's settings (read from the model code): K = {defaults['kernel_size']} in "
            f"the bottlenecks, {defaults['group_channels']} channels per group, reduction "
            f"r = {defaults['reduction_ratio']}.</li>"
            "<li>Like self-attention, the weights that mix a neighbourhood are computed from the "
            "input; unlike it, they come from the centre pixel alone (no query&ndash;key products) "
            "and cover a fixed K&times;K window.</li></ul>",
            footer),
        _slide(
            "<h2>Parameters and FLOPs: counted vs reported</h2>"
            + figure("complexity_table",
                     f"Per {size[1]}&times;{size[2]} image, 1000-class heads, counted by "
                     "involution.complexity; reported figures from Li et al. (CVPR 2021) and "
                     "torchvision. " + _e(_complexity_sentence(complexity["rows"]))),
            footer),
        _slide(
            "<h2>What the generated kernels look like</h2>"
            + figure("kernel_heatmaps",
                     f"{_e(kernel_info.get('weights', ''))} Image: "
                     f"{_e(kernel_info.get('image', ''))} at {_e(kernel_info.get('image_size', ''))}px. "
                     f"Each map: the per-pixel kernel summary &ldquo;{_e(kernel_info.get('summary', ''))}"
                     "&rdquo; of one involution layer (bright = the kernel there differs most from "
                     "the layer's average kernel; a convolution would be flat)."),
            footer),
        _slide(
            "<h2>Kernels at a few pixels</h2>"
            + figure("kernels_at_pixels",
                     "The K&times;K kernels (group 0) generated at the marked pixels, one row per "
                     "layer: different pixels of the same image get different kernels. "
                     f"{_e(kernel_info.get('weights', ''))}"),
            footer),
        _slide(
            f"<h2>Training {_e(labels)}"
            + (f' <span class="badge">{_e(data_label)}</span>' if not caltech else "") + "</h2>"
            + figure("training_curves",
                     "Loss and top-1 accuracy per epoch (solid: training, dashed: validation), read "
                     f"from the runs' metrics.csv. {_e(source_note)}"),
            footer),
        _slide(
            "<h2>Results</h2>" + _results_table(ordered)
            + f"<p class='note'><b>{_e(_comparison_sentence(ordered))}</b> {_e(source_note)}</p>",
            footer),
        _slide(
            "<h2>Accuracy vs parameters</h2>"
            + figure("accuracy_vs_params",
                     f"Filled: this project ({_e(data_label)}), best validation top-1. Hollow: "
                     "reported by the course project on Caltech-256 with its own RedNet variant. "
                     "Different data: read each series on its own."),
            footer),
        _slide(
            "<h2>Take-aways</h2><ul>"
            "<li>Involution swaps convolution's two inductive biases: kernels that vary over space "
            "and are shared over channels. The kernel maps change with image content.</li>"
            f"<li>{_e(_complexity_sentence(complexity['rows']))}</li>"
            + (f"<li>{_e(_comparison_sentence(ordered))}</li>" if _comparison_sentence(ordered) else "")
            + ("<li>The training runs here are on the built-in sample set, which measures "
               "memorisation: they show that the pipeline works end to end, <b>not</b> how RedNet "
               "learns. </li>" if sample else
               "<li>The training runs here are on the built-in shapes set (generated offline; test "
               "images from photographs no training image used): they compare how the two models "
               "learn in minutes on a CPU, <b>not</b> how they do on Caltech-256. For that, run "
               "notebook 02 with Caltech-256 and a GPU.</li>" if built_in else
               "<li>Training results are on Caltech-256 with this project's split; the course "
               "project's reported numbers used a different split and RedNet variant.</li>"
               if caltech else f"<li>Training results are on {_e(data_label)}.</li>")
            + "</ul><h2>Reproduce</h2>"
            "<pre>./run.sh                      # demo, the four notebooks (3 seeds per model), this deck\n"
            "python -m involution.deck     # rebuild the deck from slides/\n"
            "./test.sh                     # tests, notebooks under nbval, the deck in a browser</pre>",
            footer),
    ]
    title = "Involution and RedNet"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<meta name=\"generator\" content=\"python -m involution.deck\">\n"
            f"<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n"
            f"<body data-title=\"{title}\">\n<div id=\"deck\">\n" + "\n".join(slides)
            + f"\n</div>\n<script>{_JS}</script>\n</body>\n</html>\n")


def build_deck(slides_dir: str | os.PathLike | None = None,
               output: str | os.PathLike | None = None, embed_images: bool = False) -> Path:
    """Write the deck to ``output`` (default ``slides_dir/deck.html``) and return its path."""
    slides_dir = Path(slides_dir) if slides_dir is not None else repo_root() / "slides"
    output = Path(output) if output is not None else slides_dir / "deck.html"
    output.parent.mkdir(parents=True, exist_ok=True)
    page = render_deck(slides_dir, embed_images=embed_images, relative_to=output.parent.resolve()
                       if not embed_images else None)
    output.write_text(page, encoding="utf-8")
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m involution.deck",
        description="Build the slide deck (one offline HTML file) from slides/figures and "
                    "slides/data, as written by notebooks/04_slide_figures.ipynb.")
    parser.add_argument("--slides", default=None, help="the slides folder (default: the "
                                                       "repository's slides/)")
    parser.add_argument("--output", default=None, help="the HTML file (default: SLIDES/deck.html)")
    parser.add_argument("--embed", action="store_true",
                        help="embed the figures in the HTML (one file to send around)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        path = build_deck(args.slides, args.output, args.embed)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {path} ({path.stat().st_size / 1024:.0f} KiB) in {time.perf_counter() - start:.1f} s; "
          "open it in a browser (arrow keys move between slides).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
