"""Notebook 02's comparison trained again under another CPU's rounding: does its verdict survive?

The same seeds give other numbers on another CPU: oneDNN's convolutions and ATen's
vectorised kernels round differently with other vector instructions, and a training run
carries such differences far. This script trains notebook 02's plan again (the same
recipe, models and seeds, through the same ``experiments.train_and_test``) with the
vector instructions capped, tests every run, and compares the result with the
notebook's runs: each model's mean test top-1 on both, how far it moved against its own
95% interval, and the verdict each gives. Run from the repository root::

    .venv/bin/python scripts/cross_cpu_check.py               # the committed runs' models and seeds
    .venv/bin/python scripts/cross_cpu_check.py --update-docs # and write the table into docs/notebooks.md

The runs go to ``runs-other-cpu/`` (git-ignored, reused when run again). The cap is set
before torch is imported, by starting this script again with the variables set.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

# The other rounding: oneDNN limited to AVX2 (the committed runs come from an AVX-512 CPU;
# their earlier copies from an AVX2 one), and ATen's kernels likewise. (The C++ involution kernel is
# compiled for this machine and keeps its instructions.)
OTHER_CPU = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
RUNS_FOLDER = "runs-other-cpu"
DOCS_PAGE = Path("docs/notebooks.md")
START, END = "<!-- cross-cpu:start -->", "<!-- cross-cpu:end -->"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", help="default: those of notebook 02's committed runs")
    parser.add_argument("--models", nargs="+", help="default: those of notebook 02's committed runs")
    parser.add_argument("--baseline", default=None,
                        help="notebook 02's runs to compare with: a runs folder (default: ./runs if it holds "
                             "them, else the committed copies in slides/data/runs)")
    parser.add_argument("--update-docs", action="store_true", help=f"write the table into {DOCS_PAGE}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if any(os.environ.get(name) != value for name, value in OTHER_CPU.items()):
        os.environ.update(OTHER_CPU)  # read when torch loads: start again with them set
        os.execv(sys.executable, [sys.executable, *sys.argv])

    from involution.workbook import experiments, results
    from involution.workbook.notebook import Workbook, repo_root

    root = repo_root()
    os.chdir(root)
    baseline = _baseline(args, root)
    models = args.models or (list(baseline.runs) if baseline else None)
    seeds = args.seeds or (sorted({run.seed for runs in baseline.runs.values() for run in runs}) if baseline else None)
    if not models or not seeds:
        print("error: notebook 02 has no tested runs to repeat yet: run it first, or name --models and --seeds",
              file=sys.stderr)
        return 2
    book = Workbook(root=root, fast=False, workdir=root / RUNS_FOLDER, colab=False, gpu=None,
                    mode_source="scripts/cross_cpu_check.py")
    data = book.choose_data("shapes")
    print(f"Training {', '.join(models)} x seeds {seeds} with {_caps()} into {book.runs_dir}")
    rerun = {name: [] for name in models}
    for seed in seeds:
        for name in models:
            run = experiments.train_and_test(book, data, name, seed)
            rerun[name].append(run)
            print(f"  -> {run.summary()}: test top-1 {run.results.percent('test_top1'):.1f}%")
    if baseline is None:
        first, second = (results.seed_spread(rerun[name]) for name in models[:2])
        print("Test top-1 under the other rounding, " + str(results.compare_means(first, second)))
        print("No runs of notebook 02 to compare with yet: run it, then this script again (it reuses these runs).")
        return 0
    table = results.format_rerun_table(baseline.runs, rerun, models, other=_caps())
    print(table)
    if args.update_docs:
        _write_docs(root / DOCS_PAGE, table)
        print(f"Wrote the table into {DOCS_PAGE}.")
    return 0


def _caps() -> str:
    return ", ".join(f"{name}={value}" for name, value in OTHER_CPU.items())


def _baseline(args, root: Path):
    from involution.workbook import experiments
    from involution.workbook.notebook import Workbook

    if args.baseline:
        book = Workbook(root=root, fast=False, workdir=Path(args.baseline).resolve().parent, colab=False, gpu=None)
    else:
        book = Workbook(root=root, fast=False, workdir=root, colab=False, gpu=None)
    try:
        comparison = experiments.find_comparison(
            book, tuple(args.models) if args.models else ("rednet26", "resnet26"), kinds=("shapes",))
    except FileNotFoundError:
        return None
    print(comparison.source)
    return comparison


def _write_docs(page: Path, table: str) -> None:
    text = page.read_text()
    block = f"{START}\n{table}\n{END}"
    if START not in text:
        raise SystemExit(f"error: {page} has no {START} ... {END} block to replace")
    page.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))


if __name__ == "__main__":
    sys.exit(main())
