"""``recommend --measure``: batch-1 latency of the engine's top candidates on this machine, as latency estimates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from archadvisor.measure.device import check_device, device_name, torch_module, torch_threads
from archadvisor.measure.limits import check_image_size, check_run_options
from archadvisor.measure.profile import ProgressFn, build_for
from archadvisor.measure.timing import CpuContention, busy_warning, time_calls, warmup_seconds_for

if TYPE_CHECKING:  # pragma: no cover
    from archadvisor.catalog import Variant


def measure_candidates(
    variants: Sequence[Variant],
    image_size: int | None = None,
    device: str = "cpu",
    *,
    small_input: Sequence[bool],
    threads: int | None = None,
    max_seconds: float = 3.0,
    progress: ProgressFn | None = None,
) -> list[dict[str, Any]]:
    """Measure batch-1 latency of each variant here, for ``recommend --measure``; results in input order.

    Each result: ``name, image_size, median_ms, p90_ms, low_ms, high_ms`` (the median's 95% CI), ``runs``,
    ``converged``, ``measured: True`` and ``basis`` (one line saying what was measured and how, for the trace).
    ``image_size`` None means each variant's catalog input size. ``small_input``: one flag per variant, the
    caller's (the engine's) decision that the image is small enough for the small-input stem.
    """
    if len(small_input) != len(variants):
        raise ValueError(f"{len(variants)} variants but {len(small_input)} small_input flags")
    check_run_options(image_size=image_size, batch=1, threads=threads, max_seconds=max_seconds)
    check_device(device)
    out = []
    with torch_threads(threads) as n_threads:
        where = device_name(device)
        if device == "cpu":
            where += f", {n_threads} thread{'s' if n_threads != 1 else ''}"
        for i, (v, small) in enumerate(zip(variants, small_input, strict=True)):
            size = image_size or v.input_size
            check_image_size(size)
            if progress is not None:
                progress(f"measuring {v.name} at {size} px", i, len(variants))
            out.append(_measure_one(v, size, small, device, max_seconds, where))
    if progress is not None:
        progress("done", len(variants), len(variants))
    return out


def _measure_one(v: Variant, size: int, small_input: bool, device: str, max_seconds: float, where: str) -> dict:
    torch = torch_module()
    model, small = build_for(v, size, small_input=small_input)
    dev = torch.device(device)
    model = model.to(dev)
    x = torch.randn(1, 3, size, size, device=dev)

    def call() -> Any:
        with torch.inference_mode():
            return model(x)

    with CpuContention() as contention:
        t = time_calls(
            call,
            sync=torch.cuda.synchronize if device == "cuda" else None,
            max_seconds=max_seconds,
            warmup_seconds=warmup_seconds_for(max_seconds),
        )
    busy = busy_warning(contention.fraction, device)
    half = t.rel_ci * t.median_ms if math.isfinite(t.rel_ci) else t.median_ms
    return {
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
