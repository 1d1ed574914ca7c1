"""The GPU check: what a CUDA machine can tell us that CI cannot, in one run of a few minutes.

    bash benchmarks/gpu_check.sh            # on a CUDA machine, with that machine's own Python

CI has no GPU: there the Triton kernels run only under Triton's interpreter. On a
machine with one, this script runs, in order, each step only while the time
budget (``--budget``, 8 minutes by default) lasts:

1. the machine: GPU, torch, CUDA and Triton versions;
2. the tests marked ``gpu`` (``pytest -m gpu``: the Triton kernels against the
   unfold reference on the GPU, in every dtype);
3. the Triton self-check on the GPU in float32, float16 and bfloat16, and the
   implementation ``involution2d`` then picks by default;
4. the benchmark's CUDA tables (``benchmark.py``): Triton vs unfold vs loop per
   RedNet-50 stage, against cuDNN's depthwise 7x7, training speed and peak memory;
5. RedNet-26 against ResNet-26 under automatic mixed precision: training
   images/s and peak memory;
6. a compiled RedNet-26 (``torch.compile``): compile time, a few training steps,
   their losses against eager mode's, and the speed-up.

Everything lands in ``benchmarks/results/cuda.json`` (the benchmark's format,
with this check's parts added) and, when ``--out`` names a folder, a copy there;
``python benchmarks/benchmark.py --device cuda --from-results --update-docs``
turns it into the CUDA section of ``docs/performance.md``. Without a GPU the
check says so, writes nothing, and exits 0.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
import benchmark  # noqa: E402

from involution.models import create_model  # noqa: E402
from involution.ops.functional import default_impl, mixed_precision_dtype  # noqa: E402

BUDGET_SECONDS = 8 * 60
# The models compared under mixed precision and the one compiled; the check's tests
# use the tiny test_* models on the CPU instead.
AMP_MODELS = ("resnet26", "rednet26")
COMPILED_MODEL = "rednet26"
SELF_CHECK_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class Budget:
    """Seconds left of the check's time; a step that does not fit is skipped and said so."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def allows(self, step: str, needs: float) -> bool:
        if self.left() >= needs:
            return True
        print(f"[skipped] {step}: {self.left():.0f} s of the budget left, it needs about {needs:.0f} s")
        return False


def versions() -> dict:
    """The software and the GPU this check ran on."""
    try:
        import triton
        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    capability = ".".join(map(str, torch.cuda.get_device_capability())) if gpu else None
    return {"gpu": gpu, "compute_capability": capability, "torch": torch.__version__,
            "cuda": torch.version.cuda, "triton": triton_version, "python": platform.python_version()}


def gpu_tests(timeout: float) -> dict:
    """``pytest -m gpu`` in a child process, without the suite's CPU-only options (xdist, nbval)."""
    command = [sys.executable, "-m", "pytest", "-m", "gpu", "-o", "addopts=", "-q", "-p", "no:cacheprovider",
               "tests"]
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"passed": False, "summary": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0:
        print(done.stdout[-4000:] + done.stderr[-2000:])
    return {"passed": done.returncode == 0, "summary": lines[-1] if lines else done.stderr.strip()[-300:]}


def self_checks(device: torch.device) -> list[dict]:
    """The Triton kernels' self-check in each dtype, and what ``involution2d`` then uses."""
    from involution.ops import triton_kernels

    rows = []
    for dtype in SELF_CHECK_DTYPES:
        failure = (triton_kernels.self_check_failure(device, dtype) if triton_kernels.available()
                   else "Triton is not installed")
        rows.append({"dtype": str(dtype).removeprefix("torch."), "passed": failure is None,
                     "failure": failure, "default_impl": default_impl(torch.empty(1, device=device, dtype=dtype))})
    return rows


def _training_step(model, images, labels, autocast_dtype):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        with torch.autocast(images.device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def _batch(device: torch.device, batch: int, image_size: int, classes: int):
    generator = torch.Generator(device="cpu").manual_seed(0)
    images = torch.randn(batch, 3, image_size, image_size, generator=generator)
    labels = torch.randint(0, classes, (batch,), generator=generator)
    return (images.to(device).contiguous(memory_format=torch.channels_last), labels.to(device))


def amp_training_cases(device: torch.device, models=AMP_MODELS, batch: int = benchmark.BATCH,
                       image_size: int = 224, classes: int = 1000):
    """(row, step) per model: one mixed-precision SGD step in channels-last, the training default."""
    dtype = mixed_precision_dtype(device)
    for name in models:
        torch.manual_seed(0)
        model = create_model(name, num_classes=classes).to(device, memory_format=torch.channels_last)
        step = _training_step(model, *_batch(device, batch, image_size, classes), dtype)
        step()  # the optimizer's state exists before anything is measured
        yield {"model": name, "dtype": str(dtype).removeprefix("torch."), "batch": batch,
               "image_size": image_size}, step


def amp_training(device: torch.device, min_seconds: float, **sizes) -> list[dict]:
    """Images/s and peak memory of each model's mixed-precision step, timed side by side."""
    rows = benchmark.time_cases(list(amp_training_cases(device, **sizes)), device, min_seconds)
    peaks = benchmark.memory_of_cases(amp_training_cases(device, **sizes), device)
    for row, peak in zip(rows, peaks):
        row["images_per_s"] = row["batch"] / (row["ms"] / 1e3)
        row["peak_mb"] = peak
    return rows


def compiled_training(device: torch.device, name: str = COMPILED_MODEL, steps: int = 5,
                      batch: int = benchmark.BATCH, image_size: int = 224, classes: int = 1000,
                      backend: str = "inductor") -> dict:
    """A few float32 training steps of ``torch.compile(model)`` next to the same steps in eager mode.

    Both start from the same weights and data, so their losses must agree closely
    (not bit for bit: the compiled graph fuses and reorders floating-point work).
    """
    images, labels = _batch(device, batch, image_size, classes)
    losses, seconds = {}, {}
    for mode in ("eager", "compiled"):
        torch.manual_seed(0)
        model = create_model(name, num_classes=classes).to(device, memory_format=torch.channels_last)
        runnable = torch.compile(model, backend=backend) if mode == "compiled" else model
        step = _training_step(runnable, images, labels, None)
        start = time.perf_counter()
        losses[mode] = [step().item()]  # the first step compiles
        first = time.perf_counter() - start
        benchmark._synchronize(device)
        start = time.perf_counter()
        losses[mode] += [step().item() for _ in range(steps - 1)]
        benchmark._synchronize(device)
        seconds[mode] = ((time.perf_counter() - start) / max(steps - 1, 1), first)
    difference = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(losses["compiled"], losses["eager"]))
    return {"model": name, "backend": backend, "steps": steps, "batch": batch, "image_size": image_size,
            "compile_s": seconds["compiled"][1] - seconds["eager"][0],
            "eager_ms": 1e3 * seconds["eager"][0], "compiled_ms": 1e3 * seconds["compiled"][0],
            "losses_eager": losses["eager"], "losses_compiled": losses["compiled"],
            "max_relative_loss_difference": difference}


def run(budget: Budget, min_seconds: float) -> dict:
    """Every step of the check that fits in ``budget``, on the first CUDA GPU."""
    device = torch.device("cuda")
    started = time.monotonic()
    check = {"date": time.strftime("%Y-%m-%d"), "versions": versions(), "skipped": []}
    print(f"GPU check on {check['versions']['gpu']}: torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"Triton {check['versions']['triton']}", flush=True)
    steps = [("gpu tests", 150, lambda: gpu_tests(timeout=budget.left() - 30)),
             ("self_check", 30, lambda: self_checks(device)),
             ("benchmark", 150, lambda: benchmark.run(device, min_seconds, skip_training=False)),
             ("amp_training", 40, lambda: amp_training(device, min_seconds)),
             ("compiled", 90, lambda: compiled_training(device))]
    result = None
    for name, needs, measure in steps:
        if not budget.allows(name, needs):
            check["skipped"].append(name)
            continue
        print(f"== {name}", flush=True)
        try:
            value = measure()
        except Exception as error:  # one failing step must not hide what the others find
            print(f"[failed] {name}: {type(error).__name__}: {error}", flush=True)
            check["skipped"].append(f"{name} (failed: {type(error).__name__}: {str(error)[:300]})")
            continue
        if name == "benchmark":
            result = value
        else:
            check["tests" if name == "gpu tests" else name] = value
    check["seconds"] = time.monotonic() - started
    result = result or {"device": "cuda", "date": check["date"], "machine": None}
    result["gpu_check"] = check
    result["gpu_measured"] = "benchmark" not in check["skipped"]
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=BUDGET_SECONDS,
                        help="seconds the whole check may take (default: %(default)s)")
    parser.add_argument("--min-seconds", type=float, default=0.5,
                        help="time each benchmark measurement for at least this long")
    parser.add_argument("--out", type=Path, help="also copy the results file into this folder")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"no GPU: torch {torch.__version__} sees no CUDA device on this machine "
              f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); nothing to check, "
              "nothing written. Run this on a machine with an NVIDIA GPU.")
        return 0
    result = run(Budget(args.budget), args.min_seconds)
    benchmark.RESULTS.mkdir(parents=True, exist_ok=True)
    path = benchmark.RESULTS / "cuda.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(benchmark.check_markdown(result["gpu_check"])))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, args.out / path.name)
    print(f"Wrote {path.relative_to(REPO)}; `python benchmarks/benchmark.py --device cuda --from-results "
          "--update-docs` puts it on the Performance page.")
    failed = not result["gpu_check"].get("tests", {}).get("passed", True) or any(
        not row["passed"] for row in result["gpu_check"].get("self_check", []))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
