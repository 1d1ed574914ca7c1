"""Speed and memory of involution, one command: ``python benchmarks/benchmark.py``.

Two parts, measured side by side in one run on one machine:

1. The operator: forward+backward time and peak memory of every
   ``involution2d`` implementation at the involution shapes of RedNet-50
   (224x224 input, batch 16), as ratios to the ``unfold`` reference, and how
   close each comes to the machine's memory bandwidth and peak FLOP/s.
   Beside it, PyTorch's depthwise 7x7 convolution at the same shapes (same
   multiply-adds, a static kernel) in its faster memory format: the
   practical limit for an operator of this size.
2. End to end: training images/s (forward, backward, SGD step) and peak
   memory of RedNet-26/50 (with and without recomputation in backward)
   against ResNet-26/50 at 224x224, batch 16.
3. Where a training step's time goes: a torch.profiler breakdown of one
   RedNet-26, ResNet-26, RedNet-50 and ResNet-50 step.
4. The performance targets, each with its measured value (``targets``).

The CPU is always measured; CUDA too when a GPU is present. Results go to
``benchmarks/results/<device>.json`` and, with ``--update-docs``, into the
benchmark section of the documentation's Performance page
(``docs/performance.md``). This is a benchmark, not a test: the tests check
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
import copy
import itertools
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
import main_job  # noqa: E402  (beside this file)

from involution.models import create_model  # noqa: E402
from involution.ops.functional import default_impl, involution2d  # noqa: E402
from involution.train.runs import machine_description  # noqa: E402

RESULTS = REPO / "benchmarks" / "results"
# The same measurements (and main job), made with the code before the last speed-up: the
# Targets table shows them beside today's.
BEFORE = RESULTS / "before"
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
# (model, options): RedNets as by default (no recomputation) and with recomputation in backward.
MODELS = [("resnet26", {}), ("rednet26", {}), ("rednet26", {"recompute": True}),
          ("resnet50", {}), ("rednet50", {}), ("rednet50", {"recompute": True})]
# The format the training module uses by default (ImageClassifier(channels_last=True)).
DEFAULT_FORMAT = "channels-last"
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
    for name, options in MODELS:
        for format_name, memory_format in MEMORY_FORMATS.items():
            torch.manual_seed(0)
            model = create_model(name, **options).to(device, memory_format=memory_format)
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
            recompute = getattr(model, "recompute", None)
            yield {"model": name, "depth": int(name.removeprefix("resnet").removeprefix(
                "rednet")), "recompute": recompute, "memory_format": format_name}, step


def depthwise_cases(device: torch.device):
    """(row, step): at every stage, in both memory formats, the depthwise 7x7
    convolution and the fastest involution forward+backward."""
    fastest = implementations(device)[-1]
    for name, channels, size, stride in STAGES:
        x, kernel, grad = operator_case(channels, size, stride, device)
        conv = torch.nn.Conv2d(channels, channels, KERNEL_SIZE, stride, KERNEL_SIZE // 2,
                               groups=channels, bias=False).to(device)
        for format_name, memory_format in MEMORY_FORMATS.items():
            xf, gf = (t.detach().contiguous(memory_format=memory_format) for t in (x, grad))
            xf.requires_grad_()
            convf = copy.deepcopy(conv).to(memory_format=memory_format)

            def depthwise(x=xf, grad=gf, conv=convf):
                conv(x).backward(grad)
                x.grad = conv.weight.grad = None

            def involution(x=xf, kernel=kernel, grad=gf, stride=stride):
                involution2d(x, kernel, stride=stride, impl=fastest).backward(grad)
                x.grad = kernel.grad = None

            for op, step in (("depthwise 7x7", depthwise), (f"involution ({fastest})", involution)):
                yield {"stage": name, "op": op, "memory_format": format_name}, step


def low_precision_cases(device: torch.device):
    """(row, step): stage 1 forward+backward of the fastest implementation in 16-bit floats,
    with the largest deviation from float32 on the same inputs (relative to the largest value)."""
    fastest = implementations(device)[-1]
    name, channels, size, stride = STAGES[0]
    x32, kernel32, grad32 = operator_case(channels, size, stride, device)
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        x, kernel, grad = (t.detach().to(dtype).requires_grad_(t.requires_grad)
                           for t in (x32, kernel32, grad32))
        reference = [t.detach().float().requires_grad_(t.requires_grad) for t in (x, kernel)]
        wanted = involution2d(*reference, stride=stride, impl=fastest)
        wanted = [wanted, *torch.autograd.grad(wanted, reference, grad.float())]
        got = involution2d(x, kernel, stride=stride, impl=fastest)
        got = [got, *torch.autograd.grad(got, (x, kernel), grad)]
        error = max(((g.float() - w).abs().max() / w.abs().max()).item()
                    for g, w in zip(got, wanted))

        def step(x=x, kernel=kernel, grad=grad):
            involution2d(x, kernel, stride=stride, impl=fastest).backward(grad)
            x.grad = kernel.grad = None

        yield {"stage": name, "dtype": str(dtype).removeprefix("torch."), "impl": fastest,
               "max_relative_error": error}, step


# -- where the time goes ----------------------------------------------------------

CATEGORIES = ["involution forward", "involution backward", "kernel generation forward",
              "kernel generation backward", "other convolutions forward",
              "other convolutions backward", "batch norm forward", "batch norm backward",
              "the rest (ReLU, pooling, additions, loss, optimizer, autograd)"]
PROFILED = ["rednet26", "resnet26", "rednet50", "resnet50"]


def _category(event, kernel_generation: set, backward: bool) -> str:
    """The category of a profiler event's own time: the innermost ancestor that names one.

    Kernel generation is what runs under a ``kernel generation`` range (forward hooks on
    every ``KernelGenerator``, so a recomputation in backward counts there too) and the
    backward nodes of its forward operations (matched by autograd sequence number).
    """
    side = "backward" if backward else "forward"
    chain, node = [], event
    while node is not None:
        chain.append(node)
        node = node.cpu_parent
    for node in chain:
        if node.name.startswith("involution::"):
            return "involution backward" if "backward" in node.name else "involution forward"
    for node in chain:
        if node.name == "kernel generation" or (
                node.name.startswith("autograd::engine::evaluate_function")
                and node.sequence_nr in kernel_generation):
            return f"kernel generation {side}"
    for node in chain:
        if node.name in ("aten::convolution", "aten::convolution_backward"):
            return f"other convolutions {side}"
        if "batch_norm" in node.name:
            return f"batch norm {side}"
    return CATEGORIES[-1]


def profile_step(name: str, device: torch.device) -> dict:
    """Milliseconds per category (see ``CATEGORIES``) of one training step, default options,
    in the training module's default memory format."""
    from torch.profiler import ProfilerActivity, profile, record_function

    from involution.layers import KernelGenerator

    memory_format = MEMORY_FORMATS[DEFAULT_FORMAT]
    torch.manual_seed(0)
    model = create_model(name).to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(BATCH, 3, 224, 224, device=device).contiguous(
        memory_format=memory_format)
    labels = torch.randint(0, 1000, (BATCH,), device=device)
    ranges = {}

    def enter(module, args):
        ranges[id(module)] = record_function("kernel generation")
        ranges[id(module)].__enter__()

    def leave(module, args, output):
        ranges.pop(id(module)).__exit__(None, None, None)

    for module in model.modules():
        if isinstance(module, KernelGenerator):
            module.register_forward_pre_hook(enter)
            module.register_forward_hook(leave)

    def step():
        with record_function("forward step"):
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        with record_function("backward step"):
            loss.backward()
            optimizer.step()

    step()
    step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda"
                                           else [])
    _synchronize(device)
    with profile(activities=activities) as prof:
        step()
        _synchronize(device)
    events = [e for e in prof.events() if not e.is_async]
    top = {}
    for event in events:
        node = event
        while node.cpu_parent is not None:
            node = node.cpu_parent
        top[id(event)] = node.name
    kernel_generation = {e.sequence_nr for e in events if e.sequence_nr >= 0
                         and _category(e, set(), False) == "kernel generation forward"}
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for event in events:
        if top[id(event)] not in ("forward step", "backward step"):
            continue
        backward = top[id(event)] == "backward step"
        totals[_category(event, kernel_generation, backward)] += event.self_cpu_time_total / 1e3
    return {"model": name, "memory_format": DEFAULT_FORMAT, "ms": totals}


def time_cases(cases, device: torch.device, min_seconds: float, group_by: str | None = None,
               min_repeats: int = 3) -> list[dict]:
    """Median ms of each case's step. Cases compared with each other (the same stage, or
    the same depth) are timed interleaved, one call of each in turn, so a change in the
    machine's load (it may be shared) falls on all of them alike."""
    rows = []
    # Consecutive cases with the same row[group_by] are one group (group_by None: all).
    for _, grouped in itertools.groupby(cases, key=lambda case: case[0].get(group_by)):
        group = list(grouped)
        for _, step in group:
            step()  # warm-up
        times = [[] for _ in group]
        start = time.perf_counter()
        while (len(times[0]) < min_repeats
               or time.perf_counter() - start < min_seconds * len(group)):
            for (_, step), samples in zip(group, times):
                _synchronize(device)
                t0 = time.perf_counter()
                step()
                _synchronize(device)
                samples.append(time.perf_counter() - t0)
        for (row, _), samples in zip(group, times):
            row["ms"] = statistics.median(samples) * 1e3
            row["repeats"] = len(samples)
            label = " ".join(str(row[k]) for k in ("stage", "model", "recompute", "op", "dtype",
                                                   "memory_format", "impl") if k in row)
            print(f"  {label:<56} {row['ms']:9.1f} ms", flush=True)
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
    result["versus_depthwise"] = []
    for name, *_ in STAGES:
        rows = [r for r in result["depthwise"] if r["stage"] == name]
        best = {op: min((r for r in rows if r["op"] == op), key=lambda r: r["ms"])
                for op in dict.fromkeys(r["op"] for r in rows)}
        (depthwise,) = [r for op, r in best.items() if op.startswith("depthwise")]
        (involution,) = [r for op, r in best.items() if op.startswith("involution")]
        result["versus_depthwise"].append({
            "stage": name, "depthwise_ms": depthwise["ms"],
            "depthwise_format": depthwise["memory_format"], "involution_ms": involution["ms"],
            "involution_format": involution["memory_format"],
            "ratio": involution["ms"] / depthwise["ms"]})
        for row in result["operator"]:
            if row["stage"] == name:
                row["depthwise_ms"] = depthwise["ms"]
                row["depthwise_format"] = depthwise["memory_format"]
                row["versus_depthwise"] = row["ms"] / depthwise["ms"]


# -- reporting ----------------------------------------------------------------


def _training(result: dict, model: str, recompute=None, memory_format=DEFAULT_FORMAT) -> dict:
    """The training row of ``model`` (a RedNet's with the given ``recompute``)."""
    return next(r for r in result["training"] if r["model"] == model
                and r["memory_format"] == memory_format
                and (recompute is None or r["recompute"] == recompute))


def _load_note(result: dict) -> str:
    load, threads = result.get("load_average", []), result["machine"]["cpu_threads"]
    if not load:
        return ""
    # The benchmark's own threads keep about `threads` tasks running: more than that
    # (plus a margin for the odd daemon) means other processes shared the CPUs.
    shared = max(load) > threads + 0.5
    return (f" 1-minute load average {min(load):.1f} to {max(load):.1f} on {threads} CPU threads"
            + (": **the machine was shared with other processes during this run**, so the "
               "times are noisy and slower than on an idle machine; the ratios, measured side "
               "by side, hold better than the absolute values." if shared else
               ", the benchmark's own threads: nothing else ran."))


def markdown(result: dict) -> str:
    check = result.get("gpu_check")
    if "operator" not in result:  # a GPU check whose benchmark step did not run
        return "\n".join(check_markdown(check))
    machine = result["machine"]
    where = machine["gpu"] if result["device"] == "cuda" else (
        f"{machine['cpu']}, {machine['cpu_threads']} threads")
    limits = result["limits"]
    lines = [
        f"Measured by `python benchmarks/benchmark.py` on {result['date']}: {where}, "
        f"torch {machine['torch']}. Machine limits, measured in the same run: "
        f"{limits['bandwidth_gb_s']:.1f} GB/s memory bandwidth (copy of a 256 MB tensor), "
        f"{limits['matmul_gflop_s']:.0f} GFLOP/s (float32 matmul)." + _load_note(result),
        "",
        *targets_table(result),
        "",
        f"**Operator**, forward+backward at RedNet-50's involution shapes (batch {BATCH}, "
        f"K={KERNEL_SIZE}, {GROUP_CHANNELS} channels per group, NCHW), with speed and memory as "
        "ratios to the unfold reference. The bandwidth and FLOP/s columns are the share of the "
        "machine's reached, counting only the bytes and multiply-adds that forward+backward "
        "cannot avoid. The last two: PyTorch's depthwise 7x7 convolution (`nn.Conv2d(C, C, 7, "
        "stride, 3, groups=C)`: the same multiply-adds with a static kernel) forward+backward "
        "at the same shape, in its faster memory format, and each row's time over it.",
        "",
        "| shape | impl | time (ms) | speed-up | peak memory (MB) | memory saved | "
        "% bandwidth | % FLOP/s | depthwise 7x7 (ms) | time / depthwise |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in result["operator"]:
        shape = f"{row['stage']}: C={row['channels']}, {row['size']}x{row['size']}"
        lines.append(
            f"| {shape} | {row['impl']} | {row['ms']:.1f} | {row['speedup']:.1f}x | "
            f"{row['peak_mb']:.0f} | {row['memory_ratio']:.1f}x | "
            f"{100 * row['bandwidth_fraction']:.0f}% | {100 * row['flop_fraction']:.1f}% | "
            f"{row['depthwise_ms']:.1f} ({row['depthwise_format']}) | "
            f"{row['versus_depthwise']:.2f} |")
    lines += ["", *summary(result)]
    lines += [
        "",
        "**Involution against depthwise convolution**, forward+backward, each operator in "
        "both memory formats:",
        "",
        "| shape | op | NCHW (ms) | channels-last (ms) |",
        "|---|---|--:|--:|",
    ]
    for name, *_ in STAGES:
        for op in dict.fromkeys(r["op"] for r in result["depthwise"]):
            ms = {r["memory_format"]: r["ms"] for r in result["depthwise"]
                  if r["stage"] == name and r["op"] == op}
            lines.append(f"| {name} | {op} | {ms['NCHW']:.1f} | {ms['channels-last']:.1f} |")
    if result.get("low_precision"):
        lines += [
            "",
            "**16-bit floats**: stage 1 forward+backward (NCHW) through the compiled kernel, "
            "which stores float16/bfloat16 and computes in float32; the error is the largest "
            "deviation of the output and both gradients from float32 on the same inputs, "
            "relative to the largest value.",
            "",
            "| dtype | impl | time (ms) | max relative error |",
            "|---|---|--:|--:|",
        ]
        for row in result["low_precision"]:
            lines.append(f"| {row['dtype']} | {row['impl']} | {row['ms']:.1f} | "
                         f"{row['max_relative_error']:.1e} |")
    if result["training"]:
        lines += [
            "",
            f"**Training**: forward+backward+SGD step at 224x224, batch {BATCH}, "
            "random data, 1000 classes. `recompute`: the RedNet option that recomputes the "
            "generated kernels and the stem's maps in backward instead of keeping them.",
            "",
            "| model | recompute | memory format | images/s | step (ms) | peak memory (MB) |",
            "|---|---|---|--:|--:|--:|",
        ]
        for row in result["training"]:
            recompute = {None: "", False: "off", True: "on"}[row["recompute"]]
            lines.append(f"| {row['model']} | {recompute} | {row['memory_format']} | "
                         f"{row['images_per_s']:.2f} | {row['ms']:.0f} | {row['peak_mb']:.0f} |")
    if result.get("profile"):
        lines += [
            "",
            f"**Where a training step's time goes** (torch.profiler, one step, batch {BATCH}, "
            f"224x224, {DEFAULT_FORMAT}, default options; CPU time of the main thread, which "
            "waits for the worker threads of each operator; the profiler adds some overhead):",
            "",
            "| part | " + " | ".join(p["model"] for p in result["profile"]) + " |",
            "|---|" + "--:|" * len(result["profile"]),
        ]
        totals = [sum(p["ms"].values()) for p in result["profile"]]
        for category in CATEGORIES:
            cells = [f"{p['ms'][category]:.0f} ms ({100 * p['ms'][category] / total:.0f}%)"
                     for p, total in zip(result["profile"], totals)]
            lines.append(f"| {category} | " + " | ".join(cells) + " |")
        lines.append("| total | " + " | ".join(f"{t:.0f} ms" for t in totals) + " |")
    if check:
        lines += ["", *check_markdown(check)]
    return "\n".join(lines)


def check_markdown(check: dict) -> list[str]:
    """The tables of ``benchmarks/gpu_check.py``'s own steps, which follow the benchmark's."""
    found = check["versions"]
    lines = [f"**GPU check** (`bash benchmarks/gpu_check.sh`, {check['date']}): {found['gpu']} (compute "
             f"capability {found['compute_capability']}), torch {found['torch']}, CUDA {found['cuda']}, "
             f"Triton {found['triton']}; it took {check['seconds']:.0f} s."]
    if check.get("skipped"):
        lines.append(f"Steps that did not fit in its time budget: {', '.join(check['skipped'])}.")
    tests = check.get("tests")
    if tests:
        lines += ["", f"- `pytest -m gpu`: {'passed' if tests['passed'] else '**failed**'} ({tests['summary']})."]
    for row in check.get("self_check", []):
        verdict = "passed" if row["passed"] else f"**failed**: {row['failure']}"
        lines.append(f"- Triton self-check in {row['dtype']}: {verdict}; `involution2d` uses "
                     f"`{row['default_impl']}` by default.")
    if check.get("amp_training"):
        first = check["amp_training"][0]
        lines += ["", f"**Mixed-precision training** ({first['dtype']} autocast, channels-last, batch "
                  f"{first['batch']}, {first['image_size']} px, SGD step):", "",
                  "| model | images/s | step (ms) | peak memory (MB) |", "|---|--:|--:|--:|"]
        lines += [f"| {r['model']} | {r['images_per_s']:.0f} | {r['ms']:.1f} | {r['peak_mb']:.0f} |"
                  for r in check["amp_training"]]
        speed = {r["model"]: r["images_per_s"] for r in check["amp_training"]}
        if {"rednet26", "resnet26"} <= set(speed):
            lines += ["", f"RedNet-26 trains at {speed['rednet26'] / speed['resnet26']:.2f}x ResNet-26's "
                      "images/s under mixed precision on this GPU."]
    compiled = check.get("compiled")
    if compiled:
        lines += ["", f"**Compiled {compiled['model']}** (`torch.compile`, {compiled['backend']}, float32, "
                  f"batch {compiled['batch']}, {compiled['image_size']} px): compiling took "
                  f"{compiled['compile_s']:.0f} s; a step takes {compiled['compiled_ms']:.1f} ms against "
                  f"{compiled['eager_ms']:.1f} ms in eager mode "
                  f"({compiled['eager_ms'] / compiled['compiled_ms']:.2f}x); "
                  f"over {compiled['steps']} steps the losses differ from eager mode's by at most "
                  f"{compiled['max_relative_loss_difference']:.1e} (relative)."]
    return lines


def _loader_images_per_s() -> tuple[float, str] | None:
    """The best median images/s of benchmarks/loader_benchmark.py's saved run."""
    path = RESULTS / "loader_cpu.json"
    if not path.exists():
        return None
    loader = json.loads(path.read_text())
    name, values = max(loader["images_per_second"].items(),
                       key=lambda item: statistics.median(item[1]))
    return statistics.median(values), (f"{loader['cpu_count']} CPUs, {loader['workers']} "
                                       f"workers, {name}")


def _recompute_cost(cost: float, profile: dict | None) -> str:
    """What recomputation costs: measured in this run, and expected from the profile."""
    measured = (f"Recomputation changed RedNet-26's step time by {100 * cost:+.0f}% in this "
                "run" + (" (it does more work, not less: that is run-to-run noise)"
                         if cost < 0 else ""))
    expected = ""
    if profile:
        share = profile["kernel generation forward"] / sum(profile.values())
        expected = (f"; it runs the kernel generation's forward a second time, "
                    f"{100 * share:.0f}% of the step in the profile below, plus the stem's "
                    "first layers")
    return (measured + expected + ". Not small, so it is an option "
            "(`create_model('rednet26', recompute=True)`), off by default.")


def _training_gap(profile: dict, depth: int) -> str:
    """Why RedNet-``depth`` misses 1.3x ResNet-``depth``, from the two models' step profiles."""
    red, res = profile.get(f"rednet{depth}"), profile.get(f"resnet{depth}")
    if not (red and res):
        return f"RedNet-{depth}'s step was not profiled in this run."
    ms = {name: {part: sum(v for k, v in parts.items() if k.startswith(part))
                 for part in ("involution", "kernel generation", "other convolutions")}
          for name, parts in (("red", red), ("res", res))}
    red_total, res_total = sum(red.values()), sum(res.values())
    operator = ms["red"]["involution"] + ms["red"]["kernel generation"]
    without, budget = red_total - operator, res_total / 1.3
    found = (f"Profile below (one step; there RedNet-{depth} runs at "
             f"{res_total / red_total:.2f}x ResNet-{depth}): its other convolutions take "
             f"{ms['red']['other convolutions']:.0f} ms against ResNet-{depth}'s "
             f"{ms['res']['other convolutions']:.0f} ms (the multiply-add saving arrives), but "
             f"its involutions ({ms['red']['involution']:.0f} ms) and their kernel generation "
             f"({ms['red']['kernel generation']:.0f} ms) spend it again. 1.3x needs a step of "
             f"{budget:.0f} ms or less; ")
    if without > budget:
        return found + (f"without involution and kernel generation at all it would still take "
                        f"{without:.0f} ms, so the rest of the network (its convolutions, batch "
                        "norms and ReLUs) has to get faster too.")
    return found + (f"the rest of the step takes {without:.0f} ms, so involution and its kernel "
                    f"generation together would have to drop from {operator:.0f} to "
                    f"{budget - without:.0f} ms ({100 * (budget - without) / operator:.0f}% of "
                    "their time now).")


def saved_results(device: str, folder: Path = RESULTS) -> dict | None:
    """The results saved for ``device`` in ``folder`` (None without them)."""
    path = folder / f"{device}.json"
    return json.loads(path.read_text()) if path.exists() else None


def targets_table(result: dict) -> list[str]:
    """Every target with this run's value (beside the value before the last speed-up, where
    ``benchmarks/results/before/`` has it), met or not; what stands in the way of each target
    not met is a numbered note under the table (the table's cells stay short)."""
    before = saved_results(result["device"], BEFORE)
    if before is None:
        intro, earlier = "**Targets**, from this run's numbers:", None
    else:
        intro = (f"**Targets**, from this run's numbers, beside those measured before the last speed-up "
                 f"(commit {(before.get('commit') or 'unrecorded')[:7]}, on {before['date']}: "
                 f"{before['machine']['cpu']}, {before['machine']['cpu_threads']} threads; "
                 "`benchmarks/results/before/`):")
        earlier = {target: measured for target, measured, *_ in target_rows(before, main_job.saved_run(BEFORE))}
    value_columns = ["measured"] if earlier is None else ["before", "now"]
    header = ["target", *value_columns, "status", "note"]
    lines = [intro, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes: dict[str, int] = {}  # what stands in the way -> its number (targets with one cause share it)
    for target, measured, status, why in target_rows(result, main_job.saved_run()):
        values = [measured] if earlier is None else [earlier.get(target, "not measured"), measured]
        if why:
            notes.setdefault(why, len(notes) + 1)
        lines.append("| " + " | ".join([target, *values, status, f"{notes[why]}" if why else ""]) + " |")
    if notes:
        lines += ["", "What stands in the way, by the table's notes:", ""]
        lines += [f"{number}. {why}" for why, number in notes.items()]
    return lines


def target_rows(result: dict, job: dict | None) -> list[tuple[str, str, str, str]]:
    """(target, measured, status, what stands in the way) for each target, from one run's results
    and (on the CPU) one timed main job."""
    rows = []
    mark = {True: "met", False: "**not met**"}
    profile = {p["model"]: p["ms"] for p in result.get("profile", [])}
    if result["training"]:
        for depth in (26, 50):
            ratio = (_training(result, f"rednet{depth}", False)["images_per_s"]
                     / _training(result, f"resnet{depth}")["images_per_s"])
            # RedNet-26's first goal is parity, then the multiply-add ratio's promise.
            goals = (1.0, 1.3) if depth == 26 else (1.3,)
            met = [g for g in goals if ratio >= g]
            status = (mark[True] if len(met) == len(goals) else
                      f"{mark[True]} for {max(met)}x, {mark[False]} for 1.3x" if met else mark[False])
            rows.append((f"RedNet-{depth} training images/s >= "
                         + " then ".join(f"{g}x" for g in goals) + f" ResNet-{depth} "
                         f"({result['device'].upper()}, {DEFAULT_FORMAT}, the training default)",
                         f"{ratio:.2f}x", status,
                         "" if ratio >= 1.3 else _training_gap(profile, depth)))
        red_on, red_off = _training(result, "rednet26", True), _training(result, "rednet26", False)
        res = _training(result, "resnet26")
        cost = red_on["ms"] / red_off["ms"] - 1
        met = red_on["peak_mb"] <= res["peak_mb"]
        rows.append(("RedNet-26 peak training memory <= ResNet-26 (batch 16, 224 px)",
                     f"{red_on['peak_mb']:.0f} MB with `recompute=True` (without: "
                     f"{red_off['peak_mb']:.0f} MB) vs {res['peak_mb']:.0f} MB",
                     mark[met] + (" with `recompute=True`" if met else ""),
                     _recompute_cost(cost, profile.get("rednet26"))))
    for row in result["versus_depthwise"]:
        met = row["ratio"] <= 1
        rows.append((f"Involution <= depthwise 7x7 conv, {row['stage']} (forward+backward)",
                     f"{row['ratio']:.2f}x ({row['involution_ms']:.1f} ms "
                     f"{row['involution_format']} vs {row['depthwise_ms']:.1f} ms "
                     f"{row['depthwise_format']})", mark[met],
                     "" if met else "The kernel is read per pixel (K*K*G values per output "
                     "pixel, which a depthwise conv does not read at all) and its gradient is "
                     "a 16-channel reduction per pixel and offset."))
    rows.append(_traffic_limit_row(result))
    low = {r["dtype"]: r for r in result.get("low_precision", [])}
    if low:
        f32 = low["float32"]["ms"]
        met = all(r["impl"] == "cpu" and r["max_relative_error"] < 1e-2 for r in low.values())
        rows.append(("float16/bfloat16 on the CPU through the compiled kernel, float32 "
                     "accumulation", ", ".join(
                         f"{d} {r['ms'] / f32:.2f}x float32's time, error {r['max_relative_error']:.0e}"
                         for d, r in low.items() if d != "float32"), mark[met], ""))
    loader = _loader_images_per_s()
    if loader:
        speed, where = loader
        rows.append(("Data loader >= 1,000 images/s", f"{speed:.0f} images/s ({where}; "
                     "`benchmarks/loader_benchmark.py`, `benchmarks/results/loader_cpu.md`)",
                     mark[speed >= 1000], "" if speed >= 1000 else
                     "JPEG decoding and augmentation on 2 shared CPU cores: about "
                     f"{speed / 2:.0f} images/s per core, so 1,000 images/s needs about "
                     f"{1000 / (speed / 2):.0f} such cores (or decoding on the GPU)."))
    if result["device"] == "cpu" and (job_row := main_job.target_row(job)):
        rows.append(job_row)
    if result["device"] != "cuda":
        rows.append(("GPU targets (Triton kernels: operator and RedNet/ResNet training speed "
                     "and memory on CUDA)", "not measured", "**outstanding**",
                     "No GPU was available. The Triton kernels pass their tests under Triton's "
                     "interpreter (`tests/test_triton.py`); on a CUDA machine `bash "
                     "benchmarks/gpu_check.sh` tests and measures them."))
    return rows


def _traffic_limit_row(result: dict) -> tuple[str, str, str, str]:
    """Stage 1's fastest operator time against the time its unavoidable memory traffic takes."""
    fastest, rows = _fastest_operator_rows(result)
    stage1 = rows[0]
    # The share of the bandwidth reached (add_derived) is the traffic limit's share of the time.
    ratio = 1 / stage1["bandwidth_fraction"]
    limit_ms = stage1["ms"] / ratio
    return (f"Involution within 3x of its memory-traffic limit, stage 1 (forward+backward, `{fastest}`)",
            f"{ratio:.1f}x ({stage1['ms']:.1f} ms vs {limit_ms:.1f} ms: {stage1['bytes'] / 1e6:.0f} MB "
            f"at {result['limits']['bandwidth_gb_s']:.1f} GB/s)", "met" if ratio <= 3 else "**not met**",
            "" if ratio <= 3 else
            f"It reaches {100 * stage1['bandwidth_fraction']:.0f}% of the bandwidth and "
            f"{100 * stage1['flop_fraction']:.0f}% of the matmul's FLOP/s (its multiply-adds alone "
            f"would take {2 * stage1['macs'] / (result['limits']['matmul_gflop_s'] * 1e6):.1f} ms at "
            "that rate), so neither limits it: the time goes to the work beyond them (tile copies, "
            "the kernel gradient's cross-channel sums, the input gradient's read-modify-write).")


def _fastest_operator_rows(result: dict) -> tuple[str, list[dict]]:
    """The fastest implementation on the run's device, and its operator rows, stage 1 first."""
    fastest = implementations(torch.device(result["device"]))[-1]
    return fastest, [r for r in result["operator"] if r["impl"] == fastest]


def summary(result: dict) -> list[str]:
    """The targets, checked against this run's numbers."""
    fastest, rows = _fastest_operator_rows(result)
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
    speed = {(r["model"], r["memory_format"]): r["images_per_s"] for r in result["training"]
             if not r["recompute"]}
    for depth in (26, 50):
        ratios = [f"{fmt} {speed[(f'rednet{depth}', fmt)] / speed[(f'resnet{depth}', fmt)]:.2f}"
                  for fmt in MEMORY_FORMATS if (f"rednet{depth}", fmt) in speed]
        if ratios:
            lines.append(f"- RedNet-{depth} trains at this many times ResNet-{depth}'s images/s: "
                         + ", ".join(ratios) + ".")
    return lines


def headline(result: dict) -> str:
    """The README's three lines on the CPU operator and training speed, from this run."""
    rows = [r for r in result["operator"] if r["impl"] == "cpu"]
    speed = {(r["model"], r["memory_format"]): r["images_per_s"] for r in result["training"]
             if not r["recompute"]}
    ratios = [speed[("rednet26", fmt)] / speed[("resnet26", fmt)] for fmt in MEMORY_FORMATS
              if ("rednet26", fmt) in speed]
    machine = f"{result['machine']['cpu']}, {result['machine']['cpu_threads']} threads, {result['date']}"

    def span(values, digits=0):
        return f"{min(values):.{digits}f} to {max(values):.{digits}f}"

    return "\n".join([
        f"- On the CPU the C++ kernel runs forward+backward {span([r['speedup'] for r in rows])} times "
        f"faster than the unfold reference, with {span([r['memory_ratio'] for r in rows])} times less peak "
        f"memory, at RedNet-50's shapes ({machine}).",
        f"- It takes {span([r['versus_depthwise'] for r in rows], 2)} times as long as PyTorch's depthwise "
        f"7x7 convolution (the same multiply-adds with a static kernel); RedNet-26, with fewer "
        f"multiply-adds than ResNet-26, trains at {span(ratios, 2)} times its images/s on that CPU.",
        "- The Triton kernels pass their tests under Triton's interpreter; "
        + ("they are timed on the Performance page." if result.get("gpu_measured")
           else "they have not yet been timed on a GPU."),
    ])


def _write_between(page: Path, name: str, text: str) -> None:
    start, end = f"<!-- benchmark:{name}:start -->", f"<!-- benchmark:{name}:end -->"
    content = page.read_text()
    if start not in content:
        raise SystemExit(f"{page} has no {start} ... {end} section to update")
    before, rest = content.split(start, 1)
    page.write_text(f"{before}{start}\n{text}\n{end}{rest.split(end, 1)[1]}")


def update_docs(result: dict) -> None:
    """Write the tables into docs/performance.md and, for the CPU, the headline into README.md."""
    _write_between(REPO / "docs" / "performance.md", result["device"], markdown(result))
    if result["device"] == "cpu" and result["training"]:
        _write_between(REPO / "README.md", "headline", headline(result))
    if result["device"] == "cpu" and (line := main_job.sentence()):
        _write_between(REPO / "README.md", "main-job", line)


def _commit() -> str | None:
    """The commit measured (None outside a git checkout)."""
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or None


def run(device: torch.device, min_seconds: float, skip_training: bool) -> dict:
    print(f"Benchmarking on {device} ...", flush=True)
    limits = machine_limits(device)
    print(f"  machine: {limits['bandwidth_gb_s']:.1f} GB/s, {limits['matmul_gflop_s']:.0f} GFLOP/s")
    load = [os.getloadavg()[0]]
    result = {
        "device": device.type, "date": time.strftime("%Y-%m-%d"), "commit": _commit(),
        "machine": machine_description(), "limits": limits,
        "operator": time_cases(operator_cases(device), device, min_seconds, "stage"),
        "depthwise": time_cases(depthwise_cases(device), device, min_seconds, "stage"),
        "low_precision": (time_cases(low_precision_cases(device), device, min_seconds)
                          if device.type == "cpu" else []),
    }
    load.append(os.getloadavg()[0])
    result["training"] = [] if skip_training else time_cases(training_cases(device), device,
                                                             min_seconds, "depth")
    load.append(os.getloadavg()[0])
    print("  profiling one training step ...", flush=True)
    result["profile"] = [] if skip_training else [profile_step(name, device)
                                                  for name in PROFILED]
    load.append(os.getloadavg()[0])
    result["load_average"] = load
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
    parser.add_argument("--update-docs", action="store_true",
                        help="write the tables into the benchmark section of docs/performance.md")
    parser.add_argument("--from-results", action="store_true",
                        help="measure nothing: write the docs section from the saved "
                             "benchmarks/results/<device>.json")
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
    if args.from_results:
        for name in ["cpu", "cuda"] if args.device == "all" else [args.device]:
            if result := saved_results(name):
                update_docs(result)
        return 0
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            raise SystemExit("--device cuda: no CUDA GPU is available here")
        devices.remove("cuda")
    for name in devices:
        result = run(torch.device(name), args.min_seconds, args.skip_training)
        if args.update_docs:
            update_docs(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
