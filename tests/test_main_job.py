"""The main-job timer reads run.sh's own report of its parts; a run that did not finish is refused."""
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import main_job  # noqa: E402

FINISHED_RUN = """\
Creating ./.venv with Python 3.11.7 ...
Ready after 150 s (install and checks)
Parameters and multiply-adds per 224x224 image (counted by involution.analysis.complexity)
Executing notebooks/01_involution_kernel.ipynb ...
  done in 40 s
Executing notebooks/02_train_rednet.ipynb ...
  done in 3000 s
Executing notebooks/appendix_slide_figures.ipynb ...
  done in 35 s
Main job done in 3260 s
"""


def test_each_part_is_read_from_run_sh_and_the_rest_is_what_no_part_claims():
    parts = main_job.parse_log(FINISHED_RUN)
    assert parts["install_s"] == 150 and parts["total_s"] == 3260
    assert parts["notebooks_s"] == {"notebooks/01_involution_kernel.ipynb": 40,
                                    "notebooks/02_train_rednet.ipynb": 3000,
                                    "notebooks/appendix_slide_figures.ipynb": 35}
    assert parts["rest_s"] == 3260 - 150 - 3075  # the size table and the deck
    assert parts["main_job_s"] == 3110  # the goal does not count the install


def test_the_output_of_an_unfinished_run_is_refused_with_what_is_missing():
    with pytest.raises(ValueError, match="'Main job done in' line"):
        main_job.parse_log(FINISHED_RUN.rsplit("Main job", 1)[0])
    with pytest.raises(ValueError, match="starts notebooks/02_train_rednet.ipynb but never finishes"):
        main_job.parse_log(FINISHED_RUN.replace("  done in 3000 s\n", ""))


def test_the_targets_table_reads_the_saved_run_and_says_where_the_time_went(tmp_path, monkeypatch):
    import benchmark
    run = {"date": "2026-01-02", "commit": "abcdef0123", "load_average": [0.1, 2.0],
           "machine": {"cpu": "Some CPU", "cpu_threads": 2}, **main_job.parse_log(FINISHED_RUN)}
    (tmp_path / "main_job.json").write_text(json.dumps(run))
    monkeypatch.setattr(main_job, "RESULTS", tmp_path)
    target, measured, status, why = main_job.target_row(main_job.saved_run())
    assert "25 minutes" in target and "`02_train_rednet` <= 15, `04_course_project` <= 8" in target
    assert status == "**not met**"
    assert measured.startswith("51.8 min; `02_train_rednet` 50.0 min (goal 15) (install 2.5 min more")
    assert "commit abcdef0" in measured
    # The parts, largest first: notebook 02's 50 minutes lead.
    assert why.startswith("Where the time goes: `02_train_rednet` 50.0 min, `01_involution_kernel` 0.7 min")
    assert "each run meant to reach a plateau" in why
    assert main_job.sentence() == ("From a fresh clone on a 2-thread Some CPU CPU the main job took 52 "
                                   "minutes after 2 minutes of install (2026-01-02, measured by "
                                   "`benchmarks/main_job.py`).")
    saved = json.loads((REPO / "benchmarks" / "results" / "cpu.json").read_text())
    rows = "\n".join(benchmark.targets_table(saved))
    assert "| Main job (`./run.sh`) from a fresh clone <= 25 minutes" in rows
    assert "Involution within 3x of its memory-traffic limit, stage 1" in rows
    # Short cells: each target not met points to its numbered note under the table.
    table = [line for line in rows.splitlines() if line.startswith("| ")]
    notes = [line for line in rows.splitlines() if re.match(r"\d+\. ", line)]
    referenced = {line.rsplit("|", 2)[1].strip() for line in table[1:]} - {""}
    assert notes and referenced == {note.split(". ", 1)[0] for note in notes}
    assert "Where the time goes: `02_train_rednet`" not in "".join(table)
    assert any(note.split(". ", 1)[1].startswith("Where the time goes: ") for note in notes)


def test_without_a_saved_run_there_is_no_row(tmp_path, monkeypatch):
    monkeypatch.setattr(main_job, "RESULTS", tmp_path)
    assert main_job.target_row(main_job.saved_run()) is None and main_job.sentence() is None


def test_the_targets_table_shows_each_value_before_the_speed_up_beside_todays(tmp_path, monkeypatch):
    import benchmark
    saved = json.loads((REPO / "benchmarks" / "results" / "cpu.json").read_text())
    earlier = json.loads(json.dumps(saved))
    earlier.update(commit="0123456789abcdef", date="2026-01-02")
    for row in earlier["versus_depthwise"]:
        row["ratio"] = 9.87  # a value today's results cannot hold
    run = {"date": "2026-01-02", "commit": "0123456789abcdef", "load_average": [0.1, 2.0],
           "machine": {"cpu": "Some CPU", "cpu_threads": 2}, **main_job.parse_log(FINISHED_RUN)}
    (tmp_path / "cpu.json").write_text(json.dumps(earlier))
    (tmp_path / "main_job.json").write_text(json.dumps(run))
    monkeypatch.setattr(benchmark, "BEFORE", tmp_path)
    lines = benchmark.targets_table(saved)
    assert "commit 0123456, on 2026-01-02" in lines[0]
    assert lines[2] == "| target | before | now | status | note |"
    stage1 = next(line for line in lines if "depthwise 7x7 conv, stage 1 " in line)
    before, now = stage1.split(" | ")[1:3]
    assert before.startswith("9.87x") and now.startswith(f"{saved['versus_depthwise'][0]['ratio']:.2f}x")
    job = next(line for line in lines if line.startswith("| Main job"))
    assert job.split(" | ")[1].startswith("51.8 min")  # the main job timed before, from its own file
    # Without saved results from before, one column of values, as before any speed-up.
    monkeypatch.setattr(benchmark, "BEFORE", tmp_path / "absent")
    assert benchmark.targets_table(saved)[2] == "| target | measured | status | note |"
