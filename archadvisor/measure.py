"""Measure a model on this machine: parameters, GMACs, peak memory, latency and throughput.

Used by ``archadvisor profile``, ``compare`` and ``recommend --measure``. torch (and onnxruntime, matplotlib) are
imported inside the functions that need them, so importing this module stays cheap and torch-free; the pure
helpers (``timing_stats``, ``median_rel_ci``, ``pareto_front``) need no torch at all.

How each figure is obtained (also returned in every result under ``method``):

* GMACs: ``torch.utils.flop_counter.FlopCounterMode`` on one image, FLOPs / 2. On CPU, torch 2.14 dispatches
  ``F.scaled_dot_product_attention`` to ``aten._scaled_dot_product_flash_attention_for_cpu``, which has no flop
  formula and would count as zero; we register torch's own SDPA formula (QK^T and AV matmuls) for it, so ViT and
  MobileViT match the catalog (which counted attention).
* Latency: eval mode under ``torch.inference_mode``, after warm-up, ``time.perf_counter`` around each call (CUDA:
  synchronized). Runs repeat until the 95% confidence interval of the median is within +-``target_rel_ci`` of it
  (a distribution-free order-statistic interval), or a time cap is hit; the result says which.
* Peak memory: CUDA from ``torch.cuda.max_memory_allocated``. CPU from the torch profiler's allocator events
  (every allocation and free through c10's CPU allocator, so temporaries inside kernels count): the running sum's
  maximum during the step, plus the tensors alive before it (parameters, buffers, optimizer state, input).
  Memory that libraries allocate outside torch's allocator (oneDNN scratchpads, the Python heap) is not included.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archadvisor.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from archadvisor.catalog import Variant

DEVICES = ("cpu", "cuda")
# Stop when the median's 95% CI is within +-2%: two such medians then agree within a few % on an idle machine.
TARGET_REL_CI = 0.02
MIN_RUNS = 10
MAX_RUNS = 10_000
# Time caps per timed figure (seconds): a ViT-L at 700 ms/run stops here with fewer runs, and says so.
MAX_SECONDS = 6.0
WARMUP_SECONDS = 0.5
MIN_WARMUP = 3
# 95% two-sided normal quantile, for the order-statistic CI of the median.
_Z95 = 1.96

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage_description, stages_done, stages_total)``: called when each stage starts and once at the end."""


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers (no torch)


def median_rel_ci(sorted_ms: Sequence[float]) -> float:
    """Half-width of the 95% confidence interval of the median, relative to the median (``inf`` below 3 samples).

    Distribution-free: the interval between order statistics ``j`` and ``k`` with ``j, k = n/2 -+ 1.96 sqrt(n)/2``
    (Conover, Practical Nonparametric Statistics, 3rd ed., sec. 3.2), so no normality is assumed; latency samples
    are skewed (a few slow runs when the OS schedules something else).
    """
    n = len(sorted_ms)
    if n < 3:
        return math.inf
    half = _Z95 * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2 + half))
    med = statistics.median(sorted_ms)
    if med <= 0:
        return math.inf
    return (sorted_ms[hi] - sorted_ms[lo]) / (2 * med)


@dataclass(frozen=True)
class Timing:
    """Summary of repeated timed runs, in milliseconds per call."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    runs: int
    warmup_runs: int
    rel_ci: float  # half-width of the median's 95% CI / median
    converged: bool  # rel_ci reached the target (False: stopped by the time or run cap)
    seconds: float  # wall time of the timed runs

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded to what the timer can resolve."""
        d = asdict(self)
        for k in ("median_ms", "p90_ms", "mean_ms", "min_ms"):
            d[k] = round(d[k], 4)
        d["rel_ci"] = round(d["rel_ci"], 4) if math.isfinite(d["rel_ci"]) else None
        d["seconds"] = round(d["seconds"], 3)
        return d


def timing_stats(samples_ms: Sequence[float], warmup_runs: int, target_rel_ci: float, seconds: float) -> Timing:
    """Median, p90 (inclusive quantile), mean, min and the median's relative CI of ``samples_ms``."""
    if not samples_ms:
        raise ValueError("timing_stats needs at least one sample")
    xs = sorted(samples_ms)
    p90 = statistics.quantiles(xs, n=10, method="inclusive")[-1] if len(xs) >= 2 else xs[0]
    rel = median_rel_ci(xs)
    return Timing(
        median_ms=statistics.median(xs),
        p90_ms=p90,
        mean_ms=statistics.fmean(xs),
        min_ms=xs[0],
        runs=len(xs),
        warmup_runs=warmup_runs,
        rel_ci=rel,
        converged=rel <= target_rel_ci,
        seconds=seconds,
    )


def time_calls(
    fn: Callable[[], Any],
    *,
    sync: Callable[[], None] | None = None,
    target_rel_ci: float = TARGET_REL_CI,
    min_runs: int = MIN_RUNS,
    max_runs: int = MAX_RUNS,
    max_seconds: float = MAX_SECONDS,
    warmup_seconds: float = WARMUP_SECONDS,
    min_warmup: int = MIN_WARMUP,
) -> Timing:
    """Time ``fn()`` adaptively: warm up, then repeat until the median is known to +-``target_rel_ci``.

    Warm-up runs at least ``min_warmup`` calls and ``warmup_seconds`` (first calls pay for oneDNN primitive
    creation, allocator growth, cuDNN autotuning). Timed runs stop at the first of: the median's 95% CI within
    ``target_rel_ci`` (after ``min_runs``), ``max_runs``, or ``max_seconds`` (after at least 3 runs). ``sync`` is
    called after each call before the clock stops (``torch.cuda.synchronize`` on GPU).
    """
    sync = sync or (lambda: None)
    warm = 0
    t_end = time.perf_counter() + warmup_seconds
    while warm < min_warmup or time.perf_counter() < t_end:
        fn()
        sync()
        warm += 1
        if warm >= 10 * min_warmup and time.perf_counter() >= t_end:
            break
    samples: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        sync()
        bisect.insort(samples, (time.perf_counter() - t0) * 1e3)
        n = len(samples)
        elapsed = time.perf_counter() - start
        if n >= max_runs:
            break
        if n >= min_runs and median_rel_ci(samples) <= target_rel_ci:
            break
        if elapsed >= max_seconds and n >= 3:
            break
    return timing_stats(samples, warm, target_rel_ci, time.perf_counter() - start)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: lower latency (x) and higher accuracy (y).

    A point is dominated when another has latency <= and accuracy >= with at least one strict. Identical points
    do not dominate each other, so both stay. Indices come back sorted by latency.
    """
    front = []
    for i, (xi, yi) in enumerate(points):
        dominated = any((xj <= xi and yj >= yi) and (xj < xi or yj > yi) for j, (xj, yj) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


# ---------------------------------------------------------------------------------------------------------------
# torch helpers


def _torch() -> Any:
    # Kineto (the profiler backend) prints status lines unless told otherwise; this only helps when torch is
    # imported here first, _quiet_fd2 below covers the rest.
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    import torch

    return torch


def cuda_available() -> bool:
    """Whether torch sees a working CUDA device here (imports torch)."""
    return bool(_torch().cuda.is_available())


def check_device(device: str) -> None:
    """InputError unless ``device`` is cpu, or cuda on a machine where CUDA works."""
    if device not in DEVICES:
        raise InputError("--device", device, DEVICES)
    if device == "cuda":
        torch = _torch()
        if not torch.cuda.is_available():
            raise InputError(
                "--device", device, "cpu (CUDA is not available on this machine)", hint=f"torch {torch.__version__}"
            )


def device_name(device: str) -> str:
    """A readable name of the device measured on (GPU model, or CPU model and core count)."""
    if device == "cuda":
        return str(_torch().cuda.get_device_name())
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name} ({os.cpu_count()} logical CPUs)"


@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[int]:
    torch = _torch()
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


class CpuContention:
    """How busy the machine was with OTHER processes while a block ran (Linux: /proc/stat minus our own CPU time).

    ``fraction`` is the share of all CPUs that other processes used, 0..1, or None where /proc/stat is missing.
    A latency measured while it is high is not the latency of an idle machine, and the results say so.
    """

    def __init__(self) -> None:
        self.fraction: float | None = None

    @staticmethod
    def _busy_seconds() -> float | None:
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        except OSError:
            return None
        jiffies = [int(x) for x in fields]
        idle = jiffies[3] + (jiffies[4] if len(jiffies) > 4 else 0)  # idle + iowait
        return (sum(jiffies[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> CpuContention:
        self._busy0 = self._busy_seconds()
        self._own0 = sum(os.times()[:2])
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        busy1 = self._busy_seconds()
        wall = time.perf_counter() - self._wall0
        if self._busy0 is None or busy1 is None or wall <= 0:
            return
        others = (busy1 - self._busy0) - (sum(os.times()[:2]) - self._own0)
        self.fraction = min(1.0, max(0.0, others / (wall * (os.cpu_count() or 1))))


BUSY = 0.15  # other processes using more than this share of the CPUs make a CPU latency figure unreliable


# Kineto's status lines around every profiling session, and its complaint that a CPU-only machine has no GPU.
_KINETO_NOISE = re.compile(
    rb"^(USDT:\S+ \S+ \d+:\d+ \S+\.cpp:\d+\] profiler_(start|stop)"
    rb"|ERROR:\S+ \S+ \d+:\d+ DeviceProperties\.cpp:\d+\] gpuGetDeviceCount failed)"
)


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    """Hide the status lines Kineto writes straight to fd 2; replay everything else byte for byte afterwards
    (including a progress display's redraws that happened meanwhile)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [seg for seg in tmp.read().splitlines(keepends=True) if not _KINETO_NOISE.match(seg)]
            if kept:
                os.write(2, b"".join(kept))


def sdpa_flop_mapping() -> dict[Any, Callable[..., int]]:
    """Flop formulas for the CPU attention kernels FlopCounterMode does not know (torch's own SDPA formulas)."""
    torch = _torch()
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    aten = torch.ops.aten
    mapping: dict[Any, Callable[..., int]] = {}

    def fwd(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return sdpa_flop_count(q, k, v)

    def bwd(grad: Any, q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return sdpa_backward_flop_count(grad, q, k, v)

    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = fwd
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = bwd
    return mapping


def count_gmacs(model: nn.Module, example: torch.Tensor) -> tuple[float, float]:
    """(total GMACs, attention GMACs) of one forward pass of ``model`` on ``example`` (divide by batch yourself).

    Counts what FlopCounterMode counts (convolutions, matmuls, attention), not elementwise ops, norms or pooling:
    the convention of the catalog, fvcore and the papers' "MAdds".
    """
    torch = _torch()
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=sdpa_flop_mapping())
    was_training = model.training
    model.eval()
    with torch.inference_mode(), counter:
        model(example)
    model.train(was_training)
    per_op = counter.get_flop_counts().get("Global", {})
    attention = sum(v for k, v in per_op.items() if "scaled_dot_product" in str(k) or "attention" in str(k))
    return counter.get_total_flops() / 2e9, attention / 2e9


def _tensor_bytes(tensors: Any) -> int:
    seen: set[int] = set()
    total = 0
    for t in tensors:
        if t is None:
            continue
        key = t.untyped_storage().data_ptr()
        if key in seen:
            continue
        seen.add(key)
        total += t.untyped_storage().nbytes()
    return total


def _optimizer_state_tensors(opt: Any) -> Iterator[Any]:
    torch = _torch()
    for state in opt.state.values():
        for v in state.values():
            if isinstance(v, torch.Tensor):
                yield v


def _peak_transient_cpu(fn: Callable[[], Any]) -> int:
    """Peak of (allocated - freed) bytes through torch's CPU allocator while ``fn`` runs."""
    torch = _torch()
    from torch.profiler import ProfilerActivity, profile

    with _quiet_fd2(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    cpu = torch.autograd.DeviceType.CPU
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type() == cpu]
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        running += e.nbytes()
        peak = max(peak, running)
    return peak


def peak_memory(
    model: nn.Module, batch: int, image_size: int, device: str, *, train: bool, num_classes: int = 1000
) -> dict[str, Any]:
    """Peak memory of one inference (eval, inference_mode) or one training step (forward, backward, AdamW step).

    Returns ``{"peak_mb", "persistent_mb", "transient_mb", "method"}``: persistent is what lives before the step
    (parameters, buffers, input, and for training the optimizer state created by a first, unmeasured step);
    transient is the measured peak on top of it.
    """
    torch = _torch()
    dev = torch.device(device)
    x = torch.randn(batch, 3, image_size, image_size, device=dev)
    mib = 2**20
    if train:
        model.train()
        y = torch.randint(0, num_classes, (batch,), device=dev)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        step()  # creates AdamW's state (exp_avg, exp_avg_sq): persistent from now on
        persistent = [*model.parameters(), *model.buffers(), *_optimizer_state_tensors(opt), x, y]
        fn: Callable[[], Any] = step
    else:
        model.eval()

        def fn() -> None:
            with torch.inference_mode():
                model(x)

        fn()
        persistent = [*model.parameters(), *model.buffers(), x]
    persistent_bytes = _tensor_bytes(persistent)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        transient = max(0, peak - base)
        method = "torch.cuda.max_memory_allocated during the step (CUDA caching allocator, all tensors)"
        total = peak
    else:
        transient = _peak_transient_cpu(fn)
        total = persistent_bytes + transient
        method = (
            "torch.profiler CPU allocator events: peak of allocations minus frees during the step, plus the "
            "tensors alive before it (parameters, buffers, input" + (", AdamW state)" if train else ")")
        )
    model.eval()
    return {
        "peak_mb": round(total / mib, 2),
        "persistent_mb": round(persistent_bytes / mib, 2),
        "transient_mb": round(transient / mib, 2),
        "batch": batch,
        "method": method,
    }


# ---------------------------------------------------------------------------------------------------------------
# Building and profiling


def build_for(variant: Variant, image_size: int, num_classes: int = 1000) -> tuple[nn.Module, bool]:
    """The zoo model of ``variant`` (random init), with the small-input stem when the image is <= 64 px."""
    from archadvisor.resources import load_model_module

    small = image_size <= 64 and bool(variant.small_input)
    module = load_model_module(variant.module)
    model = module.build_model(variant.name, num_classes=num_classes, small_input=small)
    return model.eval(), small


def _check_sizes(image_size: int, batch: int, threads: int | None) -> None:
    if not 8 <= image_size <= 2048:
        raise InputError("--image-size", image_size, "an integer in 8..2048")
    if batch < 1:
        raise InputError("--batch", batch, "an integer >= 1")
    if threads is not None and threads < 1:
        raise InputError("--threads", threads, "an integer >= 1")


def stages(onnx: bool, batch: int) -> list[str]:
    """The stage descriptions ``profile_model`` reports through ``progress``, in order."""
    out = [
        "build model",
        "count parameters and GMACs",
        f"peak memory: inference (batch {batch})",
        f"peak memory: training step (batch {max(batch, 2)})",
        "latency (batch 1)",
        f"throughput (batch {batch})",
    ]
    if onnx:
        out += ["ONNX export", "ONNX Runtime latency (batch 1)", f"ONNX Runtime throughput (batch {batch})"]
    return out


def _method(device: str, threads: int, target_rel_ci: float, max_seconds: float) -> dict[str, Any]:
    torch = _torch()
    return {
        "device": device,
        "device_name": device_name(device),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "mode": "model.eval() under torch.inference_mode(), fp32, random weights, random input",
        "timer": "time.perf_counter per call" + (" after torch.cuda.synchronize()" if device == "cuda" else ""),
        "warmup": f">= {MIN_WARMUP} calls and >= {min(WARMUP_SECONDS, max_seconds / 2):g} s",
        "stop_rule": (
            f"median's 95% CI (order statistics) within +-{target_rel_ci:.0%} after >= {MIN_RUNS} runs, "
            f"or {max_seconds:g} s per figure"
        ),
        "gmacs": "torch.utils.flop_counter.FlopCounterMode on one image, FLOPs/2, CPU attention kernel counted "
        "with torch's SDPA formula",
        "train_step": "AdamW, cross-entropy on random labels, forward + backward + optimizer step",
    }


def profile_model(
    variant: Variant,
    *,
    image_size: int | None = None,
    batch: int = 8,
    device: str = "cpu",
    threads: int | None = None,
    onnx: bool = False,
    progress: ProgressFn | None = None,
    target_rel_ci: float = TARGET_REL_CI,
    max_seconds: float = MAX_SECONDS,
) -> dict[str, Any]:
    """Measure ``variant`` here: params, GMACs, peak memory (inference, training step), latency and throughput.

    Args:
        variant: the catalog variant (built from the zoo's model file, random weights).
        image_size: input side in px (default: the catalog's input size, so figures compare with the catalog).
        batch: batch size of the throughput and memory figures (latency is always batch 1).
        device: ``cpu`` or ``cuda``.
        threads: torch intra-op threads (and ONNX Runtime's) for CPU runs; default: torch's current setting.
        onnx: also export to ONNX and time it with ONNX Runtime.
        progress: ``progress(stage, done, total)``, called as each stage starts and at the end.
        target_rel_ci, max_seconds: the adaptive run count's stop rule (see ``time_calls``).

    Returns:
        A JSON-ready dict: figures, the catalog's figures beside them, and ``method`` (how each was measured).
    """
    torch = _torch()
    size = image_size or variant.input_size
    _check_sizes(size, batch, threads)
    check_device(device)
    names = stages(onnx, batch)
    done = 0

    def stage() -> None:
        nonlocal done
        if progress is not None:
            progress(names[done], done, len(names))
        done += 1

    with _threads(threads) as n_threads, CpuContention() as contention:
        stage()
        model, small = build_for(variant, size)
        dev = torch.device(device)
        model = model.to(dev)
        sync = torch.cuda.synchronize if device == "cuda" else None

        stage()
        params = sum(p.numel() for p in model.parameters())
        gmacs, attn = count_gmacs(model, torch.randn(1, 3, size, size, device=dev))
        expected = variant.gmacs_at(size, small_input=small)

        stage()
        mem_infer = peak_memory(model, batch, size, device, train=False)
        stage()
        # BatchNorm cannot train on one value per channel (batch 1 at a 1x1 map), so the training step uses >= 2.
        # The step updates the random weights; that changes no speed figure measured after it.
        mem_train = peak_memory(model, max(batch, 2), size, device, train=True)

        x1 = torch.randn(1, 3, size, size, device=dev)
        xb = torch.randn(batch, 3, size, size, device=dev)
        # a short time cap (tests, quick looks) also shortens the warm-up, never below MIN_WARMUP calls
        warmup = min(WARMUP_SECONDS, max_seconds / 2)
        timing = {"target_rel_ci": target_rel_ci, "max_seconds": max_seconds, "sync": sync, "warmup_seconds": warmup}

        def run(x: Any) -> Callable[[], Any]:
            def call() -> Any:
                with torch.inference_mode():
                    return model(x)

            return call

        stage()
        lat = time_calls(run(x1), **timing)
        stage()
        thr = time_calls(run(xb), **timing)

        onnx_result = None
        if onnx:
            onnx_result = _profile_onnx(model, x1, xb, device, n_threads, stage, timing)

    if progress is not None:
        progress("done", len(names), len(names))
    return {
        "arch": variant.name,
        "family": variant.family,
        "kind": variant.kind,
        "image_size": size,
        "batch": batch,
        "small_input": small,
        "measured": True,
        "params": params,
        "params_m": round(params / 1e6, 3),
        "gmacs": round(gmacs, 4),
        "attention_gmacs": round(attn, 4),
        "catalog": {
            "params": variant.params,
            "gmacs": variant.gmacs,
            "input_size": variant.input_size,
            "gmacs_at_image_size": round(expected, 4),
            "imagenet_top1": variant.imagenet_top1,
            "cpu_latency_ms": variant.cpu_latency_ms,
        },
        "params_match_catalog": params == variant.params,
        # exact only at the catalog's input size (the same build it counted); elsewhere its figure is only scaled
        "gmacs_delta_pct": round(100 * (gmacs / variant.gmacs - 1), 3) if size == variant.input_size else None,
        "memory": {"inference": mem_infer, "train_step": mem_train},
        "latency": {"batch1": lat.as_dict()},
        "throughput": {
            "batch": batch,
            "images_per_s": round(batch / (thr.median_ms / 1e3), 2),
            **thr.as_dict(),
        },
        "onnx": onnx_result,
        "method": {
            **_method(device, n_threads, target_rel_ci, max_seconds),
            "other_processes_cpu": None if contention.fraction is None else round(contention.fraction, 3),
        },
        "warnings": _busy_warning(contention.fraction, device),
    }


def _busy_warning(fraction: float | None, device: str) -> list[str]:
    if device != "cpu" or fraction is None or fraction <= BUSY:
        return []
    return [
        f"other processes used {fraction:.0%} of the CPUs during the measurement: the latencies are not those of "
        "an idle machine (expect them to be higher and to vary between runs; with several threads PyTorch's "
        "OpenMP barriers can stall for a whole scheduler slice per op, so on a shared machine --threads 1 is far "
        "steadier)"
    ]


def _profile_onnx(
    model: nn.Module,
    x1: torch.Tensor,
    xb: torch.Tensor,
    device: str,
    threads: int,
    stage: Callable[[], None],
    timing: dict[str, Any],
) -> dict[str, Any]:
    """Export to ONNX (dynamo exporter, dynamic batch), check against torch, time with ONNX Runtime."""
    torch = _torch()
    import io

    import numpy as np
    import onnxruntime as ort

    stage()
    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise InputError("--onnx", "cuda", "an onnxruntime build with CUDAExecutionProvider (onnxruntime-gpu)")
        providers = ["CUDAExecutionProvider"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        t0 = time.perf_counter()
        # torch.export specializes any dimension that is 1 in the example, so trace with a batch of 2
        example = torch.randn(2, *x1.shape[1:], device=x1.device)
        batch_dim = torch.export.Dim("batch", min=1, max=4096)
        with contextlib.redirect_stdout(io.StringIO()), _quiet_fd2():
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=True,
                input_names=["images"],
                output_names=["logits"],
                dynamic_shapes=({0: batch_dim},),
            )
        export_s = time.perf_counter() - t0
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(path), opts, providers=providers)
        in_name = sess.get_inputs()[0].name
        a1, ab = x1.cpu().numpy(), xb.cpu().numpy()
        with torch.inference_mode():
            ref = model(xb).float().cpu().numpy()
        diff = float(np.abs(sess.run(None, {in_name: ab})[0] - ref).max())
        stage()
        lat = time_calls(lambda: sess.run(None, {in_name: a1}), **{**timing, "sync": None})
        stage()
        thr = time_calls(lambda: sess.run(None, {in_name: ab}), **{**timing, "sync": None})
    batch = int(xb.shape[0])
    return {
        "onnxruntime": ort.__version__,
        "providers": sess.get_providers(),
        "exporter": "torch.onnx.export(dynamo=True), dynamic batch",
        "export_s": round(export_s, 2),
        "max_abs_diff_vs_torch": diff,
        "threads": threads,
        "latency": {"batch1": lat.as_dict()},
        "throughput": {"batch": batch, "images_per_s": round(batch / (thr.median_ms / 1e3), 2), **thr.as_dict()},
        "note": "includes host-to-device copies" if device == "cuda" else "fp32, CPUExecutionProvider",
    }


def measure_candidates(
    variants: Sequence[Variant],
    image_size: int | None = None,
    device: str = "cpu",
    *,
    threads: int | None = None,
    max_seconds: float = 3.0,
    progress: ProgressFn | None = None,
) -> list[dict[str, Any]]:
    """Measure batch-1 latency of each variant here, for ``recommend --measure``; results in input order.

    Each result: ``name, image_size, median_ms, p90_ms, low_ms, high_ms`` (the median's 95% CI), ``runs``,
    ``converged``, ``measured: True`` and ``basis`` (one line saying what was measured and how, for the trace).
    ``image_size`` None means each variant's catalog input size.
    """
    torch = _torch()
    check_device(device)
    out = []
    with _threads(threads) as n_threads:
        where = (
            f"{device_name(device)}, {n_threads} thread{'s' if n_threads != 1 else ''}"
            if device == "cpu"
            else device_name(device)
        )
        for i, v in enumerate(variants):
            size = image_size or v.input_size
            _check_sizes(size, 1, threads)
            if progress is not None:
                progress(f"measuring {v.name} at {size} px", i, len(variants))
            model, small = build_for(v, size)
            dev = torch.device(device)
            model = model.to(dev)
            x = torch.randn(1, 3, size, size, device=dev)

            def call(model: Any = model, x: Any = x) -> Any:
                with torch.inference_mode():
                    return model(x)

            with CpuContention() as contention:
                t = time_calls(
                    call,
                    sync=torch.cuda.synchronize if device == "cuda" else None,
                    max_seconds=max_seconds,
                    warmup_seconds=min(WARMUP_SECONDS, max_seconds / 2),
                )
            busy = _busy_warning(contention.fraction, device)
            half = t.rel_ci * t.median_ms if math.isfinite(t.rel_ci) else t.median_ms
            out.append(
                {
                    "name": v.name,
                    "image_size": size,
                    "small_input": small,
                    "median_ms": round(t.median_ms, 3),
                    "p90_ms": round(t.p90_ms, 3),
                    "low_ms": round(max(t.median_ms - half, t.min_ms), 3),
                    "high_ms": round(t.median_ms + half, 3),
                    "runs": t.runs,
                    "converged": t.converged,
                    "measured": True,
                    "basis": (
                        f"measured here on {where}: torch {torch.__version__}, eval + inference_mode, fp32, batch 1, "
                        f"{size} px, median of {t.runs} runs after {t.warmup_runs} warm-up "
                        f"(95% CI +-{t.rel_ci:.1%}{'' if t.converged else ', time cap reached'})"
                        + (f"; machine busy: other processes used {contention.fraction:.0%} CPU" if busy else "")
                    ),
                    "other_processes_cpu": contention.fraction,
                }
            )
            del model
    if progress is not None:
        progress("done", len(variants), len(variants))
    return out


def as_latency_estimates(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``measure_candidates`` results as ``{name: LatencyEstimate(measured=True)}``, the engine's latency values."""
    from archadvisor.latency import LatencyEstimate

    return {
        r["name"]: LatencyEstimate(
            ms=r["median_ms"],
            low_ms=r["low_ms"],
            high_ms=r["high_ms"],
            basis=r["basis"],
            source="archadvisor.measure.measure_candidates on this machine",
            measured=True,
        )
        for r in results
    }


# ---------------------------------------------------------------------------------------------------------------
# Chart


def write_pareto_chart(rows: Sequence[dict[str, Any]], path: Path | str, *, title: str | None = None) -> list[str]:
    """PNG of ImageNet top-1 against measured batch-1 latency, the Pareto front drawn and labelled.

    ``rows``: dicts with ``name``, ``latency_ms`` and ``top1`` (rows whose top1 is None are left out).
    Returns the names on the front, fastest first. Uses matplotlib's Agg canvas directly (no GUI, no global
    backend switch).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pts = [r for r in rows if r.get("top1") is not None and r.get("latency_ms")]
    if not pts:
        raise ValueError("no model with both an ImageNet top-1 and a latency to plot")
    xy = [(float(r["latency_ms"]), float(r["top1"])) for r in pts]
    front = pareto_front(xy)
    fig = Figure(figsize=(7.5, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    on_front = set(front)
    ax.scatter(
        [x for i, (x, _) in enumerate(xy) if i not in on_front],
        [y for i, (_, y) in enumerate(xy) if i not in on_front],
        color="0.55",
        label="dominated",
        zorder=2,
    )
    fx = [xy[i][0] for i in front]
    fy = [xy[i][1] for i in front]
    ax.plot(fx, fy, "-o", color="tab:red", label="Pareto front", zorder=3, drawstyle="steps-post")
    for r, (x, y) in zip(pts, xy, strict=True):
        ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    xs = [x for x, _ in xy]
    if max(xs) / max(min(xs), 1e-9) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("latency, batch 1 (ms, measured here; lower is better)")
    ax.set_ylabel("ImageNet top-1 (%, catalog)")
    ax.set_title(title or "accuracy vs latency")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(str(path))
    return [pts[i]["name"] for i in front]
