"""The GPU check's CPU-side parts: it starts and says "no GPU" cleanly, and each of its
measurements runs (on the CPU, with the tiny test models) and reaches its tables."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import benchmark  # noqa: E402
import gpu_check  # noqa: E402

CPU = torch.device("cpu")
TINY = {"batch": 2, "image_size": 32, "classes": 10}


def test_without_a_gpu_it_says_so_writes_nothing_and_exits_0():
    results = REPO / "benchmarks" / "results" / "cuda.json"
    before = results.read_bytes() if results.exists() else None
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHON=sys.executable, CUDA_VISIBLE_DEVICES=""), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("no GPU: ") and "Traceback" not in done.stderr
    assert (results.read_bytes() if results.exists() else None) == before


def test_steps_that_do_not_fit_the_budget_are_skipped_and_named():
    result = gpu_check.run(gpu_check.Budget(0), min_seconds=0)
    check = result["gpu_check"]
    assert check["skipped"] == ["gpu tests", "self_check", "benchmark", "amp_training", "compiled"]
    assert result["gpu_measured"] is False
    page = benchmark.markdown(result)  # what --from-results writes for such a run
    assert "did not fit in its time budget: gpu tests, self_check, benchmark, amp_training, compiled" in page


def test_mixed_precision_training_rows_reach_the_table():
    rows = gpu_check.amp_training(CPU, min_seconds=0, models=("test_resnet", "test_rednet"), **TINY)
    assert [r["model"] for r in rows] == ["test_resnet", "test_rednet"]
    assert all(r["dtype"] == "bfloat16" and r["images_per_s"] > 0 and r["peak_mb"] >= 0 for r in rows)
    lines = benchmark.check_markdown({"date": "today", "seconds": 1.0, "versions": gpu_check.versions(),
                                      "amp_training": rows, "skipped": []})
    assert "**Mixed-precision training** (bfloat16 autocast" in "\n".join(lines)
    assert sum(line.startswith("| test_re") for line in lines) == 2


def test_a_compiled_model_trains_like_the_eager_one():
    # aot_eager traces forward and backward as inductor does, without generating code (seconds, not minutes).
    compiled = gpu_check.compiled_training(CPU, "test_rednet", steps=3, backend="aot_eager", **TINY)
    assert len(compiled["losses_compiled"]) == len(compiled["losses_eager"]) == 3
    assert compiled["losses_compiled"] == pytest.approx(compiled["losses_eager"], rel=1e-4)
    assert compiled["losses_eager"][-1] < compiled["losses_eager"][0]  # it does train
    text = "\n".join(benchmark.check_markdown({"date": "today", "seconds": 1.0, "skipped": [],
                                               "versions": gpu_check.versions(), "compiled": compiled}))
    assert "**Compiled test_rednet** (`torch.compile`, aot_eager, float32" in text


def test_a_failed_self_check_or_test_run_is_shown_as_failed():
    check = {"date": "today", "seconds": 1.0, "skipped": [], "versions": gpu_check.versions(),
             "tests": {"passed": False, "summary": "1 failed in 3.2s"},
             "self_check": [{"dtype": "float16", "passed": False, "default_impl": "unfold",
                             "failure": "their output differs from the loop implementation's by up to 0.5"}]}
    text = "\n".join(benchmark.check_markdown(check))
    assert "`pytest -m gpu`: **failed** (1 failed in 3.2s)" in text
    assert "self-check in float16: **failed**: their output differs" in text and "uses `unfold`" in text
