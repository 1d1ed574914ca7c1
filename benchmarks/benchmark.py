"""Speed and memory of involution, one command: ``python benchmarks/benchmark.py``.

Two parts, measured side by side in one run on one machine:

1. The operator: forward+backward time and peak memory of every
   ``involution2d`` implementation at the involution shapes of RedNet-50
   (224x224 input, batch 16), as ratios to the ``unfold`` reference, and how
   close each comes to the machine's memory bandwidth and peak FLOP/s.
2. End to end: training images/s (forward, backward, SGD step) and peak
   memory of RedNet-26/50 against ResNet-26/50 at 224x224, batch 16.

The CPU is always measured; CUDA too when a GPU is present. Results go to
``benchmarks/results/<device>.json`` and, with ``--update-readme``, into the
README's benchmark section. This is a benchmark, not a test: the tests check
correctness only.

Training is measured in both memory formats, NCHW and channels-last: the
convolutions around the involutions are faster in channels-last on many
CPUs, and each model should be compared at its best.

Peak memory on the CPU is the growth of the process's resident set (Linux
``VmHWM``, reset before each measurement) above what the inputs occupy. For
that to be exact, freed memory must go back to the OS at once, which is not
how glibc normally behaves (and would slow the timings down), so memory is
measured in a second process with glibc's mmap threshold fixed
(``MALLOC_MMAP_THRESHOLD_``). On CUDA it is ``torch.cuda.max_memory_allocated``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from involution.functional import default_impl, involution2d  # noqa: E402
from involution.models import create_model  # noqa: E402
from involution.runs import machine_description  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
MMAP_THRESHOLD = "131072"  # glibc's default, but fixed: big blocks are always mmapped

BATCH = 16
# (name, channels, input size, stride) of RedNet-50's bottleneck involutions at
# 224x224 input: one row per distinct shape; K = 7, 16 channels per group.
STAGES = [
    ("stage 1", 64, 56, 1),
    ("stage 2, strided", 128, 56, 2),
    ("stage 2", 128, 28, 1),
    ("stage 3, strided", 256, 28, 2),
    ("stage 3", 256, 14, 1),
    ("stage 4, strided", 512, 14, 2),
    ("stage 4", 512, 7, 1),
]
KERNEL_SIZE, GROUP_CHANNELS = 7, 16
MODELS = ["resnet26", "rednet26", "resnet50", "rednet50"]
MEMORY_FORMATS = {"NCHW": torch.contiguous_format, "channels-last": torch.channels_last}


# -- measuring ----------------------------------------------------------------


class PeakMemory:
    """Peak bytes allocated during a ``with`` block, above what was held before it."""

    def __init__(self, device: torch.device):
        self.device = device
        self.bytes = 0

    @staticmethod
    def _status(field: str) -> int:
        text = Path("/proc/self/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to VmRSS
            self._start = self._status("VmRSS")
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated() - self._start
        else:
            self.bytes = self._status("VmHWM") - self._start


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_call(fn, device: torch.device, min_seconds: float, min_repeats: int = 3) -> float:
    """Median seconds per call, after one warm-up call."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_repeats or time.perf_counter() - start < min_seconds:
        _synchronize(device)
        t0 = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def machine_limits(device: torch.device) -> dict:
    """Measured memory bandwidth (copy of a large tensor) and FLOP/s (large matmul)."""
    n = 64 * 2 ** 20  # 256 MB of float32: far beyond the caches
    source, target = torch.randn(n, device=device), torch.empty(n, device=device)
    copy_seconds = time_call(lambda: target.copy_(source), device, 1.0)
    size = 4096 if device.type == "cuda" else 2048
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    matmul_seconds = time_call(lambda: a @ b, device, 1.0)
    return {"bandwidth_gb_s": 2 * n * 4 / copy_seconds / 1e9,
            "matmul_gflop_s": 2 * size ** 3 / matmul_seconds / 1e9}


# -- the operator -------------------------------------------------------------


def implementations(device: torch.device) -> list[str]:
    impls = ["unfold", "loop"]
    fastest = default_impl(torch.empty(1, device=device))
    if fastest not in impls:
        impls.append(fastest)
    return impls


def operator_case(channels: int, size: int, stride: int, device: torch.device):
    out = (size - 1) // stride + 1
    groups = channels // GROUP_CHANNELS
    generator = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(BATCH, channels, size, size, device=device, generator=generator)
    kernel = torch.randn(BATCH, groups, KERNEL_SIZE, KERNEL_SIZE, out, out, device=device,
                         generator=generator)
    grad = torch.randn(BATCH, channels, out, out, device=device, generator=generator)
    return x.requires_grad_(), kernel.requires_grad_(), grad


def minimum_traffic(x, kernel, grad) -> tuple[int, int]:
    """(bytes, multiply-adds) that forward+backward cannot do without.

    Forward reads x and the kernel and writes the output; backward reads x,
    the kernel and the output gradient and writes both gradients. Each of the
    three products (output, input gradient, kernel gradient) costs K*K
    multiply-adds per output element.
    """
    element = x.element_size()
    nbytes = element * (2 * x.numel() + 2 * kernel.numel() + grad.numel()  # reads
                        + grad.numel() + x.numel() + kernel.numel())       # writes
    macs = 3 * grad.numel() * KERNEL_SIZE ** 2
    return nbytes, macs


def operator_cases(device: torch.device):
    """(row, step) for every stage and implementation; step runs forward+backward."""
    for name, channels, size, stride in STAGES:
        x, kernel, grad = operator_case(channels, size, stride, device)
        nbytes, macs = minimum_traffic(x, kernel, grad)
        for impl in implementations(device):
            def step(x=x, kernel=kernel, grad=grad, stride=stride, impl=impl):
                out = involution2d(x, kernel, stride=stride, impl=impl)
                out.backward(grad)
                x.grad = kernel.grad = None

            yield {"stage": name, "channels": channels, "size": size, "stride": stride,
                   "impl": impl, "bytes": nbytes, "macs": macs}, step


def training_cases(device: torch.device):
    """(row, step) for every model and memory format; step is one SGD training step."""
    for name in MODELS:
        for format_name, memory_format in MEMORY_FORMATS.items():
            torch.manual_seed(0)
            model = create_model(name).to(device, memory_format=memory_format)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            images = torch.randn(BATCH, 3, 224, 224, device=device).contiguous(
                memory_format=memory_format)
            labels = torch.randint(0, 1000, (BATCH,), device=device)

            def step(model=model, optimizer=optimizer, images=images, labels=labels):
                loss = torch.nn.functional.cross_entropy(model(images), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            step()  # creates the optimizer state, so what follows is steady-state
            yield {"model": name, "memory_format": format_name}, step


def time_cases(cases, device: torch.device, min_seconds: float) -> list[dict]:
    rows = []
    for row, step in cases:
        row["ms"] = time_call(step, device, min_seconds) * 1e3
        print(f"  {' '.join(str(row[k]) for k in ('stage', 'model', 'memory_format', 'impl') if k in row):<32}"
              f" {row['ms']:9.1f} ms", flush=True)
        rows.append(row)
    return rows


def memory_of_cases(cases, device: torch.device) -> list[float]:
    """Peak MB of one call of each case's step."""
    peaks = []
    for _, step in cases:
        with PeakMemory(device) as memory:
            step()
        peaks.append(memory.bytes / 2 ** 20)
    return peaks


def measure_memory(device: torch.device, skip_training: bool) -> dict:
    """Peak memory of every case; on the CPU from a child process (see the module docs)."""
    if device.type == "cuda":
        return {"operator": memory_of_cases(operator_cases(device), device),
                "training": [] if skip_training else memory_of_cases(training_cases(device), device)}
    command = [sys.executable, __file__, "--memory-only", "--device", device.type]
    if skip_training:
        command.append("--skip-training")
    child = subprocess.run(command, env={**os.environ, "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD},
                           capture_output=True, text=True, check=True)
    return json.loads(child.stdout.splitlines()[-1])


def add_derived(result: dict) -> None:
    """Ratios to the unfold reference, and shares of the machine's limits."""
    limits = result["limits"]
    for row in result["operator"]:
        seconds = row["ms"] / 1e3
        row["gb_s"] = row["bytes"] / seconds / 1e9
        row["gflop_s"] = 2 * row["macs"] / seconds / 1e9
        row["bandwidth_fraction"] = row["gb_s"] / limits["bandwidth_gb_s"]
        row["flop_fraction"] = row["gflop_s"] / limits["matmul_gflop_s"]
        reference = next(r for r in result["operator"]
                         if r["stage"] == row["stage"] and r["impl"] == "unfold")
        row["speedup"] = reference["ms"] / row["ms"]
        row["memory_ratio"] = reference["peak_mb"] / max(row["peak_mb"], 1e-9)
    for row in result["training"]:
        row["images_per_s"] = BATCH / (row["ms"] / 1e3)


# -- reporting ----------------------------------------------------------------


def markdown(result: dict) -> str:
    machine = result["machine"]
    where = machine["gpu"] if result["device"] == "cuda" else (
        f"{machine['cpu']}, {machine['cpu_threads']} threads")
    limits = result["limits"]
    lines = [
        f"Measured by `python benchmarks/benchmark.py` on {result['date']}: {where}, "
        f"torch {machine['torch']}. Machine limits, measured in the same run: "
        f"{limits['bandwidth_gb_s']:.1f} GB/s memory bandwidth (copy of a 256 MB tensor), "
        f"{limits['matmul_gflop_s']:.0f} GFLOP/s (float32 matmul).",
        "",
        f"**Operator**, forward+backward at RedNet-50's involution shapes (batch {BATCH}, "
        f"K={KERNEL_SIZE}, {GROUP_CHANNELS} channels per group, NCHW), with speed and memory as "
        "ratios to the unfold reference. The last two columns are the share of the machine's "
        "bandwidth and FLOP/s reached, counting only the bytes and multiply-adds that "
        "forward+backward cannot avoid.",
        "",
        "| shape | impl | time (ms) | speed-up | peak memory (MB) | memory saved | "
        "% bandwidth | % FLOP/s |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for row in result["operator"]:
        shape = f"{row['stage']}: C={row['channels']}, {row['size']}x{row['size']}"
        lines.append(
            f"| {shape} | {row['impl']} | {row['ms']:.1f} | {row['speedup']:.1f}x | "
            f"{row['peak_mb']:.0f} | {row['memory_ratio']:.1f}x | "
            f"{100 * row['bandwidth_fraction']:.0f}% | {100 * row['flop_fraction']:.1f}% |")
    lines += ["", *summary(result)]
    if result["training"]:
        lines += [
            "",
            f"**Training**: forward+backward+SGD step at 224x224, batch {BATCH}, "
            "random data, 1000 classes.",
            "",
            "| model | memory format | images/s | step (ms) | peak memory (MB) |",
            "|---|---|--:|--:|--:|",
        ]
        for row in result["training"]:
            lines.append(f"| {row['model']} | {row['memory_format']} | "
                         f"{row['images_per_s']:.2f} | {row['ms']:.0f} | {row['peak_mb']:.0f} |")
    return "\n".join(lines)


def summary(result: dict) -> list[str]:
    """The targets, checked against this run's numbers."""
    fastest = implementations(torch.device(result["device"]))[-1]
    rows = [r for r in result["operator"] if r["impl"] == fastest]
    stage1 = rows[0]
    lines = [
        f"- `{fastest}` vs the unfold reference at stage 1: {stage1['speedup']:.1f}x faster, "
        f"{stage1['memory_ratio']:.1f}x less peak memory; at every stage at least "
        f"{min(r['speedup'] for r in rows):.1f}x faster.",
        f"- `{fastest}` reaches {100 * min(r['bandwidth_fraction'] for r in rows):.0f}-"
        f"{100 * max(r['bandwidth_fraction'] for r in rows):.0f}% of the measured bandwidth and "
        f"{100 * min(r['flop_fraction'] for r in rows):.0f}-"
        f"{100 * max(r['flop_fraction'] for r in rows):.0f}% of the matmul FLOP/s.",
    ]
    speed = {(r["model"], r["memory_format"]): r["images_per_s"] for r in result["training"]}
    for depth in (26, 50):
        ratios = [f"{fmt} {speed[(f'rednet{depth}', fmt)] / speed[(f'resnet{depth}', fmt)]:.2f}"
                  for fmt in MEMORY_FORMATS if (f"rednet{depth}", fmt) in speed]
        if ratios:
            lines.append(f"- RedNet-{depth} trains at this many times ResNet-{depth}'s images/s: "
                         + ", ".join(ratios) + ".")
    return lines


def update_readme(result: dict) -> None:
    readme = REPO / "README.md"
    start, end = (f"<!-- benchmark:{result['device']}:start -->",
                  f"<!-- benchmark:{result['device']}:end -->")
    text = readme.read_text()
    if start not in text:
        raise SystemExit(f"README.md has no {start} ... {end} section to update")
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    readme.write_text(f"{before}{start}\n{markdown(result)}\n{end}{after}")


def run(device: torch.device, min_seconds: float, skip_training: bool) -> dict:
    print(f"Benchmarking on {device} ...", flush=True)
    limits = machine_limits(device)
    print(f"  machine: {limits['bandwidth_gb_s']:.1f} GB/s, {limits['matmul_gflop_s']:.0f} GFLOP/s")
    result = {
        "device": device.type, "date": time.strftime("%Y-%m-%d"),
        "machine": machine_description(), "limits": limits,
        "operator": time_cases(operator_cases(device), device, min_seconds),
        "training": [] if skip_training else time_cases(training_cases(device), device,
                                                        min_seconds),
    }
    print("  measuring peak memory ...", flush=True)
    memory = measure_memory(device, skip_training)
    for part in ("operator", "training"):
        for row, peak in zip(result[part], memory[part]):
            row["peak_mb"] = peak
    add_derived(result)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{device.type}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                        help="'all': the CPU, and CUDA when a GPU is present")
    parser.add_argument("--min-seconds", type=float, default=2.0,
                        help="time each measurement for at least this long")
    parser.add_argument("--skip-training", action="store_true",
                        help="only the operator part")
    parser.add_argument("--update-readme", action="store_true",
                        help="write the tables into README.md's benchmark section")
    parser.add_argument("--memory-only", action="store_true",
                        help=argparse.SUPPRESS)  # the child process of measure_memory
    args = parser.parse_args(argv)
    if args.memory_only:
        device = torch.device(args.device)
        print(json.dumps({
            "operator": memory_of_cases(operator_cases(device), device),
            "training": [] if args.skip_training else memory_of_cases(training_cases(device),
                                                                       device)}))
        return 0
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            raise SystemExit("--device cuda: no CUDA GPU is available here")
        devices.remove("cuda")
    for name in devices:
        result = run(torch.device(name), args.min_seconds, args.skip_training)
        if args.update_readme:
            update_readme(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
