"""How long the workbook's main job takes from a fresh clone: ``python benchmarks/main_job.py``.

Clones this repository's last commit into a new folder, runs ``./run.sh`` there and
records how long each part took, as ``run.sh`` reports it: the install of ``.venv``
(with the browser check), each notebook, and the rest (the size table and the deck).
The result goes to ``benchmarks/results/main_job.json``, which the benchmark's Targets
table reads (``python benchmarks/benchmark.py --from-results --update-docs``).

The run trains every model of notebooks 02 and 04 from scratch, so it takes as long as
the main job itself. Start it on an otherwise idle machine:
anything running beside it slows it down. Uncommitted changes are not measured, since
the clone has only the last commit.

This is a measurement, not a test: the tests check only that a run's output is read
correctly (``tests/test_main_job.py``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from involution.train.runs import machine_description  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
TARGET_MINUTES = 25  # the main job's goal on 2 cores, the install not counted
# The goals of the notebooks that train, within it (minutes on 2 cores).
NOTEBOOK_TARGETS = {"02_train_rednet": 15, "04_course_project": 8}

# The lines of run.sh's own output that time its parts.
READY = re.compile(r"^Ready after (\d+) s")
EXECUTING = re.compile(r"^Executing (\S+) \.\.\.")
NOTEBOOK_DONE = re.compile(r"^\s+done in (\d+) s")
FINISHED = re.compile(r"^Main job done in (\d+) s")


def _check_finished(notebook: str | None) -> None:
    if notebook:
        raise ValueError(f"this run.sh output starts {notebook} but never finishes it")


def parse_log(text: str) -> dict:
    """The parts of one run.sh run, in seconds, from its output.

    Raises ValueError, naming what is missing, for the output of a run that did not finish.
    """
    ready, total, notebooks, current = None, None, {}, None
    for line in text.splitlines():
        if match := READY.match(line):
            ready = int(match[1])
        elif match := EXECUTING.match(line):
            _check_finished(current)
            current = match[1]
        elif (match := NOTEBOOK_DONE.match(line)) and current:
            notebooks[current], current = int(match[1]), None
        elif match := FINISHED.match(line):
            total = int(match[1])
    if ready is None or total is None:
        missing = "its 'Ready after' line" if ready is None else "its 'Main job done in' line"
        raise ValueError(f"this run.sh output lacks {missing}: the run did not finish "
                         f"(or came from a run.sh older than this script)")
    _check_finished(current)
    rest = total - ready - sum(notebooks.values())
    return {"install_s": ready, "notebooks_s": notebooks, "rest_s": rest, "total_s": total,
            "main_job_s": total - ready}


def saved_run(folder: Path | None = None) -> dict | None:
    """The run saved in ``folder`` (by default the last one this script saved; None without one)."""
    path = (folder or RESULTS) / "main_job.json"
    return json.loads(path.read_text()) if path.exists() else None


def target_row(run: dict | None) -> tuple[str, str, str, str] | None:
    """The main job's row of the benchmark's Targets table, from a saved run (None without one)."""
    if run is None:
        return None
    minutes = run["main_job_s"] / 60
    trained = {Path(name).stem: s / 60 for name, s in run["notebooks_s"].items() if Path(name).stem in NOTEBOOK_TARGETS}
    met = minutes <= TARGET_MINUTES and all(trained[name] <= goal for name, goal in NOTEBOOK_TARGETS.items()
                                            if name in trained)
    goals = "; ".join(f"`{name}` {trained[name]:.1f} min (goal {goal})" for name, goal in NOTEBOOK_TARGETS.items()
                      if name in trained)
    parts = sorted([(f"`{Path(name).stem}`", s) for name, s in run["notebooks_s"].items()]
                   + [("the size table and the deck", run["rest_s"])], key=lambda p: -p[1])
    where = ", ".join(f"{name} {s / 60:.1f} min" for name, s in parts)
    return (f"Main job (`./run.sh`) from a fresh clone <= {TARGET_MINUTES} minutes, the install "
            "not counted; " + ", ".join(f"`{name}` <= {goal}" for name, goal in NOTEBOOK_TARGETS.items()),
            f"{minutes:.1f} min{'; ' + goals if goals else ''} (install {run['install_s'] / 60:.1f} min more; "
            "measured by "
            f"`benchmarks/main_job.py` on {run['date']}, {run['machine']['cpu']}, "
            f"{run['machine']['cpu_threads']} threads, commit {run['commit'][:7]})",
            "met" if met else "**not met**",
            "" if met else (f"Where the time goes: {where}. Notebooks 02 and 04 train every model "
                            "from scratch over several seeds, each run meant to reach a plateau "
                            "(notebook 02 checks whether it did)."))


def sentence() -> str | None:
    """The README's line on how long the main job takes, from the saved run (None without one)."""
    run = saved_run()
    if run is None:
        return None
    return (f"From a fresh clone on a {run['machine']['cpu_threads']}-thread {run['machine']['cpu']} "
            f"CPU the main job took {run['main_job_s'] / 60:.0f} minutes after "
            f"{run['install_s'] / 60:.0f} minutes of install ({run['date']}, measured by "
            "`benchmarks/main_job.py`).")


def run_fresh_clone(log: Path | None) -> tuple[str, int, str, Path]:
    """Clone the last commit, run ./run.sh in it; (commit, return code, output, log)."""
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.strip()
    if subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True,
                      text=True, check=True).stdout.strip():
        print("note: the working tree has uncommitted changes; the clone measures the last "
              f"commit, {commit[:7]}", file=sys.stderr)
    folder = Path(tempfile.mkdtemp(prefix="main-job-")) / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(folder)], check=True)
    log = log or folder.parent / "run.log"
    # The notebooks' settings decide everything; run.sh unsets the variables that would
    # change them, the rest of the caller's environment passes through.
    with log.open("w") as out:
        process = subprocess.Popen(["./run.sh"], cwd=folder, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        lines = []
        for line in process.stdout:
            print(line, end="", flush=True)
            out.write(line)
            lines.append(line)
        process.wait()
    print(f"The clone stays in {folder} (its runs, notebooks and deck), the output in {log}")
    return commit, process.returncode, "".join(lines), log


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, default=None,
                        help="where run.sh's output goes (default: run.log beside the clone)")
    args = parser.parse_args(argv)
    load = [os.getloadavg()[0]]
    commit, returncode, output, log = run_fresh_clone(args.log)
    load.append(os.getloadavg()[0])
    if returncode:
        raise SystemExit(f"run.sh failed (exit {returncode}); its output is in {log}")
    result = {"date": time.strftime("%Y-%m-%d"), "commit": commit,
              "machine": machine_description(), "load_average": load, **parse_log(output)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "main_job.json").write_text(json.dumps(result, indent=2) + "\n")
    minutes = result["main_job_s"] / 60
    print(f"Main job from a fresh clone: {minutes:.1f} min without the install "
          f"({result['install_s']} s); goal {TARGET_MINUTES} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
