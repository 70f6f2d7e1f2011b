"""Measure a model on this machine: parameters, GMACs, peak memory, latency and throughput.

Used by ``archadvisor profile``, ``compare`` and ``recommend --measure``. One concern per module:

* ``timing``: adaptive repeated timing, the median's confidence interval, CPU contention (torch-free);
* ``limits``: the valid ranges of batch, threads, image size and time cap (torch-free);
* ``device``: the torch import, device checks and names, intra-op threads;
* ``flops``, ``memory``, ``onnx_timing``: GMACs, peak memory, ONNX Runtime timing;
* ``profile``: building a model for a variant and ``profile_model``;
* ``candidates``: ``measure_candidates`` and ``as_latency_estimates`` for ``recommend --measure``;
* ``chart``: the Pareto front and its PNG (torch-free until a chart is drawn);
* ``cli`` and ``tables``: the ``profile`` and ``compare`` commands and their tables.

The names below are loaded on first use (PEP 562), so ``import archadvisor.measure`` costs nothing and imports
no torch; torch itself is imported only inside the functions that run a model.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "timing": (
        "BUSY", "MAX_RUNS", "MAX_SECONDS", "MIN_RUNS", "MIN_WARMUP", "TARGET_REL_CI", "WARMUP_SECONDS",
        "CpuContention", "Timing", "busy_warning", "median_rel_ci", "time_calls", "timing_stats",
    ),
    "limits": ("DEVICES", "check_run_options"),
    "device": ("check_device", "cuda_available", "device_name"),
    "flops": ("count_gmacs", "sdpa_flop_mapping"),
    "memory": ("peak_memory",),
    "profile": ("ProgressFn", "build_for", "profile_model", "stages"),
    "candidates": ("as_latency_estimates", "measure_candidates"),
    "chart": ("check_chart_path", "pareto_front", "write_pareto_chart"),
}  # fmt: skip
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
_SUBMODULES = {*_EXPORTS, "onnx_timing", "cli", "tables"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
