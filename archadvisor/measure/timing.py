"""Timing statistics: adaptive repeated timing, the median and its confidence interval, machine contention.

Torch-free. Latency is ``time.perf_counter`` around each call, after warm-up. Runs repeat until the 95%
confidence interval of the median is within +-``target_rel_ci`` of it (a distribution-free order-statistic
interval), or a time cap is hit; the result says which.
"""

from __future__ import annotations

import bisect
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

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
BUSY = 0.15  # other processes using more than this share of the CPUs make a CPU latency figure unreliable


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


def warmup_seconds_for(max_seconds: float) -> float:
    """The warm-up for a time cap: a short cap (tests, quick looks) also shortens it, never below MIN_WARMUP calls."""
    return min(WARMUP_SECONDS, max_seconds / 2)


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


def busy_warning(fraction: float | None, device: str) -> list[str]:
    """The warning for a CPU latency measured while other processes kept the CPUs busy (empty when they did not)."""
    if device != "cpu" or fraction is None or fraction <= BUSY:
        return []
    return [
        f"other processes used {fraction:.0%} of the CPUs during the measurement: the latencies are not those of "
        "an idle machine (expect them to be higher and to vary between runs; with several threads PyTorch's "
        "OpenMP barriers can stall for a whole scheduler slice per op, so on a shared machine --threads 1 is far "
        "steadier)"
    ]
