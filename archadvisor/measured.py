"""`recommend --measure`: rank the top candidates on measurements taken on this machine.

The engine first ranks the catalog without the latency budget; the top candidates are then measured here
(when this machine is the deployment target) and the engine ranks again among the measured ones only, with
the budget checked on the measurements, so an estimate never outranks a measurement. The measuring function
is a parameter: ``archadvisor.measure`` by default (imports torch), anything with the same contract in tests.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

from archadvisor import engine
from archadvisor.catalog import Catalog, Variant
from archadvisor.errors import InputError
from archadvisor.recommendation import Recommendation
from archadvisor.ruleset import RuleSet
from archadvisor.spec import ProblemSpec

# (variants, image size, device, small-input flags) -> {name: LatencyEstimate(measured=True)}, basis line
MeasureFn = Callable[[Sequence[Variant], int | None, str, Sequence[bool]], tuple[dict[str, Any], str]]
TOP_CANDIDATES = 5


def _measure_here(variants: Sequence[Variant], image_size: int | None, device: str, small: Sequence[bool]) -> tuple[dict[str, Any], str]:  # fmt: skip
    from archadvisor import measure

    results = measure.measure_candidates(variants, image_size, device, small_input=small, max_seconds=1.5)
    basis = results[0]["basis"].split(": ", 1)[-1] if results else ""
    summary = "; ".join(f"{r['name']} {r['median_ms']:.1f} ms" for r in results)
    return measure.as_latency_estimates(results), f"{summary} ({basis})"


def where_to_measure(spec: ProblemSpec) -> tuple[str | None, str | None]:
    """The device to measure on, or None with the reason the measurement does not apply."""
    if spec.task != "classification":
        return None, "--measure: only zoo architectures (classification) can be measured"
    if spec.target not in ("cloud-cpu", "cloud-gpu"):
        return None, f"--measure: {spec.target} is not this machine; latencies are device-profile estimates"
    if importlib.util.find_spec("torch") is None:
        raise InputError("--measure", "torch", "an installed torch (pip install 'archadvisor[torch]')")
    if spec.target == "cloud-gpu":
        from archadvisor import measure

        if not measure.cuda_available():
            return None, "--measure: target cloud-gpu but no CUDA device here; latencies are estimates"
        return "cuda", None
    return "cpu", None


def recommend_measured(
    spec: ProblemSpec,
    rules: RuleSet,
    catalog: Catalog,
    *,
    measure: MeasureFn | None = None,
    status: Callable[[str], Any] | None = None,
) -> Recommendation:
    """The recommendation with the top candidates' latencies measured here, when this machine is the target."""
    device, note = where_to_measure(spec)
    if device is None:
        return engine.recommend(spec, rules, catalog, measure_note=note)
    # the top zoo candidates before the latency budget is applied: the budget is then checked on measurements (a
    # library model, e.g. timm's MobileNetV4, has no model here to measure, so it leaves the measured ranking)
    ranked = engine.select(spec._replace(latency_ms=None), rules, catalog).ranked
    top = [v for v in ranked if isinstance(v, Variant)][:TOP_CANDIDATES]
    small = [engine.uses_small_input(v, spec.image_size, rules) for v in top]
    if status is not None:
        status(f"measuring {len(top)} candidates on this machine ({device}) ...")
    measured, summary = (measure or _measure_here)(top, spec.image_size, device, small)
    note = (
        f"--measure: measured {', '.join(v.name for v in top)} on this machine; {summary}; "
        "the latency budget is checked on these"
    )
    return engine.recommend(spec, rules, catalog, measured=measured, measure_note=note)
