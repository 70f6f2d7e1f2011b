"""Latency ESTIMATES for deployment targets this machine cannot measure (torch-free).

Every figure here is an estimate and says so (``LatencyEstimate.measured`` is False); measurements come from
``archadvisor.measure``. The model is a roofline with a fitted efficiency, one device profile per target in
``rules/devices.yaml``::

    ms = overhead_ms + max(kind_factor * GMACs * ms_per_gmac, params * bytes_per_param / bandwidth)

``overhead_ms`` and ``ms_per_gmac`` are fitted by least squares on published batch-1 latencies of CNNs on that
device (each with its source); ``kind_factor`` is fitted on the published transformer / hybrid latencies, or
borrowed from a target with the same kind of runtime, or an assumption that widens the band. See the header
of rules/devices.yaml for the band rule. ``cloud-cpu`` uses the catalog's own measured CPU latency when it has
one. This module must not import torch: ``recommend`` without ``--measure`` stays torch-free.
"""

import math
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from archadvisor.errors import InputError, RuleError, closest
from archadvisor.resources import rules_dir
from archadvisor.vocab import QUANTIZE_MODES, TARGETS
from archadvisor.vocab import ZOO_KINDS as KINDS

PRECISIONS = ("fp32", "fp16", "int8")
# precision_factors may also be keyed by a quantization mode (int8-static vs int8-dynamic differ on CPUs)
FACTOR_KEYS = (*PRECISIONS, *(mode for mode in QUANTIZE_MODES if mode != "none"))
CONFIDENCE = ("high", "medium", "low")

# The band is never narrower than this: on the catalog's own machine the same architecture differs by up to 22%
# between two implementations (resnet101: torchvision 147.8 ms, timm 180.3 ms, measured on the catalog machine).
MIN_BAND = 0.25
# ... and wider when the fit rests on fewer than 3 published figures or on a low-confidence one.
THIN_FIT_BAND = 0.50
# An assumed (not fitted) kind factor: the truth may be anywhere within 2x either way.
ASSUMED_KIND_BAND = 2.0
# A kind factor borrowed from another device with the same kind of runtime: within 1.5x either way.
BORROWED_KIND_BAND = 1.5


class HasModelFacts(Protocol):
    """What an estimate needs from a catalog variant (``archadvisor.catalog.Variant`` has all of it)."""

    name: str
    kind: str
    params: int
    gmacs: float
    input_size: int
    cpu_latency_ms: float | None
    small_input: bool


class LatencyEstimate(NamedTuple):  # NamedTuples, not dataclasses: cheaper to define at start-up
    """A batch-1 latency figure with its uncertainty band, how it was obtained and where the inputs come from."""

    ms: float
    low_ms: float
    high_ms: float
    basis: str
    source: str
    measured: bool = False

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the ``measured`` flag included, so a reader can never mix the two up)."""
        return {
            "ms": round(self.ms, 3),
            "low_ms": round(self.low_ms, 3),
            "high_ms": round(self.high_ms, 3),
            "measured": self.measured,
            "basis": self.basis,
            "source": self.source,
        }


class DeviceFit(NamedTuple):
    """A target's fitted roofline: what ``estimate_latency_ms`` evaluates."""

    target: str
    device: str
    runtime: str
    overhead_ms: float
    ms_per_gmac: float
    peak_gmacs_per_s: float
    bandwidth_gb_s: float
    bytes_per_param: float
    kind_factors: dict[str, float]
    kind_basis: dict[str, str]  # kind -> "fitted on ..." | "from <target>" | "assumed: ..."
    assumed_kinds: frozenset[str]
    borrowed_kinds: frozenset[str]
    ratio_low: float  # smallest observed / fitted over the benchmarks
    ratio_high: float
    n_base: int
    thin: bool  # fewer than 3 base points, or a low-confidence figure among them
    sources: dict[str, str]

    @property
    def efficiency(self) -> float:
        """Fitted effective throughput as a fraction of the published peak."""
        return (1000.0 / self.ms_per_gmac) / self.peak_gmacs_per_s

    def predict(self, gmacs: float, params: int, kind: str) -> tuple[float, bool]:
        """The point estimate in ms and whether the memory-bandwidth term, not compute, set it."""
        compute = self.kind_factors.get(kind, 1.0) * gmacs * self.ms_per_gmac
        memory = params * self.bytes_per_param / (self.bandwidth_gb_s * 1e9) * 1e3
        return self.overhead_ms + max(compute, memory), memory > compute


# ---------------------------------------------------------------------------------------------------------------
# Loading and validation


def _yaml_load(fh: Any) -> Any:
    import yaml  # lazily: the engine passes the rules loader's (cached) copy, so most runs never parse YAML

    return yaml.safe_load(fh)


def _devices_path() -> Path:
    return rules_dir() / "devices.yaml"


@cache
def _load_default() -> dict[str, Any]:
    path = _devices_path()
    with open(path, encoding="utf-8") as fh:
        data = _yaml_load(fh)
    problems = validate_devices(data)
    if problems:
        raise RuleError(str(path), None, None, problems[0])
    return data


def load_devices(path: Path | None = None) -> dict[str, Any]:
    """The device profiles (``rules/devices.yaml`` by default), validated; RuleError on the first problem."""
    if path is None:
        return _load_default()
    with open(path, encoding="utf-8") as fh:
        data = _yaml_load(fh)
    problems = validate_devices(data)
    if problems:
        raise RuleError(str(path), None, None, problems[0])
    return data


_TARGET_KEYS: dict[str, tuple[str, bool]] = {
    # key: (type, required)
    "device": ("str", True),
    "runtime": ("str", True),
    "precision": ("precision", True),
    "peak_gmacs_per_s": ("positive", True),
    "peak_source": ("source", True),
    "memory_bandwidth_gb_s": ("positive", True),
    "bandwidth_source": ("source", True),
    "bytes_per_param": ("positive", True),
    "sources": ("sources", True),
    "benchmarks": ("benchmarks", True),
    "overhead_ms": ("nonnegative", False),
    "kind_factors_from": ("target", False),
    "assumed_kind_factors": ("assumed", False),
    "notes": ("str", False),
    "guide_claim": ("claim", False),
    "cpu_scaling": ("cpu_scaling", False),
    "precision_factors": ("precision_factors", False),
}
_CPU_SCALING_KEYS = {"overhead_ms", "exponent", "factor", "ms_per_gmac", "fitted_on"}
_BENCH_KEYS = {"model", "kind", "gmacs", "latency_ms", "source", "base", "confidence", "note"}
_CLAIM_KEYS = {"architecture", "catalog_name", "image_size", "latency_ms", "our_estimate_ms", "note"}


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def validate_devices(data: Any) -> list[str]:
    """Every problem in a devices document (``rules/devices.yaml``), one line each; empty when valid.

    Accepts the whole file or the part after ``kind``/``schema`` (what the rules loader passes). Messages name
    the path inside the file (``targets.ios.benchmarks[2].gmacs``) and, when the loader recorded it, the line.
    """
    errors: list[str] = []

    def err(node: Any, where: str, problem: str) -> None:
        line = getattr(node, "line", None)
        errors.append(f"{'line ' + str(line) + ': ' if line else ''}{where}: {problem}")

    if not isinstance(data, Mapping):
        return [f"devices: expected a mapping with 'targets', got {type(data).__name__}"]
    for key in data:
        if key not in ("kind", "schema", "targets"):
            err(data, str(key), "unknown key; expected kind, schema, targets")
    if data.get("kind", "devices") != "devices":
        err(data, "kind", f"expected 'devices', got {data.get('kind')!r}")
    if data.get("schema", 1) != 1:
        err(data, "schema", f"unsupported schema {data.get('schema')!r}; this version reads 1")
    targets = data.get("targets")
    if not isinstance(targets, Mapping):
        err(data, "targets", "missing or not a mapping of target -> device profile")
        return errors
    for name in targets:
        if name not in TARGETS:
            hint = closest(str(name), TARGETS)
            err(targets, f"targets.{name}", "unknown target" + (f" (did you mean {hint!r}?)" if hint else ""))
    for name in TARGETS:
        if name not in targets:
            err(targets, f"targets.{name}", "missing: every target needs a device profile")
    for name, prof in targets.items():
        where = f"targets.{name}"
        if not isinstance(prof, Mapping):
            err(targets, where, "expected a mapping")
            continue
        _validate_target(prof, where, targets, err)
    # kind_factors_from must end at a target that fits its own factors (no chains through assumptions, no cycles)
    for name, prof in targets.items():
        if isinstance(prof, Mapping) and isinstance(prof.get("kind_factors_from"), str):
            src = targets.get(prof["kind_factors_from"])
            if prof["kind_factors_from"] == name:
                err(prof, f"targets.{name}.kind_factors_from", "a target cannot borrow its own kind factors")
            elif isinstance(src, Mapping) and "kind_factors_from" in src:
                err(prof, f"targets.{name}.kind_factors_from", "the source target borrows its factors too (no chains)")
    return errors


def _validate_target(prof: Mapping, where: str, targets: Mapping, err: Any) -> None:
    for key in prof:
        if key not in _TARGET_KEYS:
            hint = closest(str(key), _TARGET_KEYS)
            err(prof, f"{where}.{key}", "unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))
    sources = prof.get("sources")
    source_keys = set(sources) if isinstance(sources, Mapping) else set()
    for key, (typ, required) in _TARGET_KEYS.items():
        here = f"{where}.{key}"
        if key not in prof:
            if required:
                err(prof, here, "missing")
            continue
        value = prof[key]
        if typ == "str" and not (isinstance(value, str) and value.strip()):
            err(prof, here, "expected a non-empty string")
        elif typ == "precision" and value not in PRECISIONS:
            err(prof, here, f"expected one of {', '.join(PRECISIONS)}, got {value!r}")
        elif typ == "positive" and not (_is_number(value) and value > 0):
            err(prof, here, f"expected a positive number, got {value!r}")
        elif typ == "nonnegative" and not (_is_number(value) and value >= 0):
            err(prof, here, f"expected a number >= 0, got {value!r}")
        elif typ == "source" and not (isinstance(value, str) and value in source_keys):
            err(prof, here, f"{value!r} is not a key of {where}.sources")
        elif typ == "sources" and not (
            isinstance(value, Mapping)
            and value
            and all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in value.items())
        ):
            err(prof, here, "expected a non-empty mapping of source key -> citation")
        elif typ == "target" and not (isinstance(value, str) and value in targets):
            err(prof, here, f"unknown target {value!r}")
        elif typ == "assumed":
            _validate_assumed(value, here, err)
        elif typ == "claim":
            _validate_claim(value, here, err)
        elif typ == "benchmarks":
            _validate_benchmarks(value, here, source_keys, err)
        elif typ == "precision_factors" and not (
            isinstance(value, Mapping) and all(k in FACTOR_KEYS and _is_factor(v) for k, v in value.items())
        ):
            err(
                prof,
                here,
                f"expected a mapping of precision or quantization ({', '.join(FACTOR_KEYS)}) -> latency factor > 0 "
                "or {factor, why}",
            )
        elif typ == "cpu_scaling" and not (
            isinstance(value, Mapping)
            and set(value) == _CPU_SCALING_KEYS
            and all(_is_number(value[k]) and value[k] >= 0 for k in _CPU_SCALING_KEYS - {"fitted_on"})
            and isinstance(value["fitted_on"], str)
        ):
            err(prof, here, f"expected {{{', '.join(sorted(_CPU_SCALING_KEYS))}}} with numbers >= 0")


def _is_factor(value: Any) -> bool:
    """A precision factor: a number > 0, or {factor: number > 0, why: non-empty text}."""
    if isinstance(value, Mapping):
        return (
            set(value) == {"factor", "why"}
            and _is_factor(value["factor"])
            and isinstance(value["why"], str)
            and bool(value["why"].strip())
        )
    return _is_number(value) and value > 0


def _validate_assumed(value: Any, here: str, err: Any) -> None:
    if not isinstance(value, Mapping):
        err(value, here, "expected a mapping of kind -> {factor, why}")
        return
    for kind, entry in value.items():
        if kind not in KINDS or kind == "cnn":
            err(value, f"{here}.{kind}", "expected transformer or hybrid (cnn is the reference, factor 1)")
        if not (isinstance(entry, Mapping) and set(entry) == {"factor", "why"}):
            err(value, f"{here}.{kind}", "expected exactly {factor, why}")
            continue
        if not (_is_number(entry["factor"]) and entry["factor"] > 0):
            err(entry, f"{here}.{kind}.factor", f"expected a positive number, got {entry['factor']!r}")
        if not (isinstance(entry["why"], str) and entry["why"].strip()):
            err(entry, f"{here}.{kind}.why", "an assumption must say why")


def _validate_claim(value: Any, here: str, err: Any) -> None:
    if not isinstance(value, Mapping):
        err(value, here, "expected a mapping")
        return
    for key in value:
        if key not in _CLAIM_KEYS:
            err(value, f"{here}.{key}", "unknown key")
    for key in _CLAIM_KEYS:
        if key not in value:
            err(value, f"{here}.{key}", "missing")
    for key in ("latency_ms", "our_estimate_ms", "image_size"):
        if key in value and not (_is_number(value[key]) and value[key] > 0):
            err(value, f"{here}.{key}", f"expected a positive number, got {value[key]!r}")


def _validate_benchmarks(value: Any, here: str, source_keys: set[str], err: Any) -> None:
    if not isinstance(value, list) or not value:
        err(value, here, "expected a non-empty list of published latencies")
        return
    n_base = 0
    for i, b in enumerate(value):
        at = f"{here}[{i}]"
        if not isinstance(b, Mapping):
            err(value, at, "expected a mapping")
            continue
        for key in b:
            if key not in _BENCH_KEYS:
                err(b, f"{at}.{key}", "unknown key")
        for key in ("model", "kind", "gmacs", "latency_ms", "source"):
            if key not in b:
                err(b, f"{at}.{key}", "missing")
        if "kind" in b and b["kind"] not in KINDS:
            err(b, f"{at}.kind", f"expected one of {', '.join(KINDS)}, got {b['kind']!r}")
        for key in ("gmacs", "latency_ms"):
            if key in b and not (_is_number(b[key]) and b[key] > 0):
                err(b, f"{at}.{key}", f"expected a positive number, got {b[key]!r}")
        if "source" in b and not (isinstance(b["source"], str) and b["source"] in source_keys):
            err(b, f"{at}.source", f"{b['source']!r} is not a key of the target's sources")
        if "base" in b and not isinstance(b["base"], bool):
            err(b, f"{at}.base", "expected true or false")
        if "confidence" in b and b["confidence"] not in CONFIDENCE:
            err(b, f"{at}.confidence", f"expected one of {', '.join(CONFIDENCE)}")
        n_base += _is_base(b)
    if n_base == 0:
        err(value, here, "needs at least one base point (a cnn, or an entry marked base: true) to fit the roofline")


def _is_base(bench: Mapping) -> bool:
    return bool(bench.get("base", bench.get("kind") == "cnn"))


# ---------------------------------------------------------------------------------------------------------------
# Fitting


def fit_line(points: Sequence[tuple[float, float]], default_overhead: float = 0.0) -> tuple[float, float]:
    """Least-squares ``ms = overhead + slope * gmacs`` over (gmacs, ms) points, with overhead >= 0.

    One point (or points at a single GMAC value) cannot separate the two terms: the overhead is then
    ``default_overhead`` and the slope goes through the point(s). A negative fitted overhead is not physical:
    the fit is then redone through the origin.
    """
    if not points:
        raise ValueError("fit_line needs at least one (gmacs, ms) point")
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    n = len(points)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if n >= 2 and sxx > 1e-12:
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
        overhead = my - slope * mx
        if overhead >= 0 and slope > 0:
            return overhead, slope
        # through the origin
        return 0.0, sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs)
    overhead = min(default_overhead, 0.9 * min(ys))
    return overhead, sum((y - overhead) / x for x, y in zip(xs, ys, strict=True)) / n


def _fit(name: str, targets: Mapping[str, Any], _seen: tuple[str, ...] = ()) -> DeviceFit:
    prof = targets[name]
    benches = prof["benchmarks"]
    base = [b for b in benches if _is_base(b)]
    overhead, slope = fit_line([(b["gmacs"], b["latency_ms"]) for b in base], prof.get("overhead_ms", 0.0))
    factors: dict[str, float] = {"cnn": 1.0}
    basis: dict[str, str] = {"cnn": f"the base line, fitted on {len(base)} published latencies"}
    assumed: set[str] = set()
    lent: set[str] = set()
    borrowed = None
    if "kind_factors_from" in prof and prof["kind_factors_from"] not in _seen:
        borrowed = _fit(prof["kind_factors_from"], targets, (*_seen, name))
    for kind in ("transformer", "hybrid"):
        pts = [b for b in benches if b["kind"] == kind and not _is_base(b)]
        if pts:
            # least squares for the factor on the compute term, the overhead held at the base fit's: big models
            # weigh most, which is right, since small ones are mostly overhead (a ratio per point would explode
            # for a model faster than the fitted overhead, e.g. vit_tiny on the catalog's CPU)
            num = sum(b["gmacs"] * (b["latency_ms"] - overhead) for b in pts)
            den = slope * sum(b["gmacs"] ** 2 for b in pts)
            factors[kind] = max(num / den, 0.05)
            basis[kind] = f"fitted on {', '.join(b['model'] for b in pts)}"
        elif borrowed is not None and kind not in borrowed.assumed_kinds:
            factors[kind] = borrowed.kind_factors[kind]
            basis[kind] = f"borrowed from {borrowed.target} ({borrowed.kind_basis[kind]}): same kind of runtime"
            lent.add(kind)
        elif kind in prof.get("assumed_kind_factors", {}):
            entry = prof["assumed_kind_factors"][kind]
            factors[kind] = float(entry["factor"])
            basis[kind] = f"assumed: {entry['why']}"
            assumed.add(kind)
        else:
            factors[kind] = 1.0
            basis[kind] = "assumed 1 (no published figure for this kind on this device)"
            assumed.add(kind)
    fit = DeviceFit(
        target=name,
        device=prof["device"],
        runtime=prof["runtime"],
        overhead_ms=overhead,
        ms_per_gmac=slope,
        peak_gmacs_per_s=float(prof["peak_gmacs_per_s"]),
        bandwidth_gb_s=float(prof["memory_bandwidth_gb_s"]),
        bytes_per_param=float(prof["bytes_per_param"]),
        kind_factors=factors,
        kind_basis=basis,
        assumed_kinds=frozenset(assumed),
        borrowed_kinds=frozenset(lent),
        ratio_low=1.0,
        ratio_high=1.0,
        n_base=len(base),
        thin=len(base) < 3 or any(b.get("confidence") == "low" for b in benches),
        sources=dict(prof["sources"]),
    )
    # residuals over every benchmark, each with its own kind (base points use the CNN line)
    ratios = []
    for b in benches:
        kind = "cnn" if _is_base(b) else b["kind"]
        predicted = fit.overhead_ms + fit.kind_factors[kind] * b["gmacs"] * fit.ms_per_gmac
        ratios.append(b["latency_ms"] / predicted)
    return fit._replace(ratio_low=min(ratios), ratio_high=max(ratios))


@cache
def _fit_default(target: str) -> DeviceFit:
    return _fit(target, load_devices()["targets"])


def device_fit(target: str, devices: Mapping[str, Any] | None = None) -> DeviceFit:
    """The fitted roofline of ``target`` from ``devices`` (default: the built-in rules/devices.yaml)."""
    _check_target(target)
    if devices is None:
        return _fit_default(target)
    targets = devices.get("targets", devices)
    # one fit per profile set and target: the engine estimates every candidate against the same loaded rules
    # (refitting per candidate was most of `recommend`'s engine time); the entry keeps ``targets`` alive, so
    # its id cannot be reused by another mapping while cached
    key = (id(targets), target)
    hit = _FITS.get(key)
    if hit is None or hit[0] is not targets:
        if len(_FITS) >= 64:  # callers that build a new mapping per call: stay small
            _FITS.clear()
        hit = _FITS[key] = (targets, _fit(target, targets))
    return hit[1]


_FITS: dict[tuple[int, str], tuple[Mapping[str, Any], DeviceFit]] = {}


def estimate_latency_ms(
    variant: HasModelFacts,
    target: str,
    image_size: int,
    devices: Mapping[str, Any] | None = None,
    *,
    small_input: bool = False,
    zoo: bool = True,
    precision: str | None = None,
    quantize: str | None = None,
) -> LatencyEstimate:
    """Estimated batch-1 latency of ``variant`` on ``target`` at ``image_size`` px: an estimate, never a measurement
    (see ``_estimate_latency_ms`` for the arguments); in the plan's ``precision`` where the profile's differs. The
    profile's factor for the plan's ``quantize`` mode (int8-static) wins over the one for its precision (int8)."""
    est = _estimate_latency_ms(variant, target, image_size, devices, small_input=small_input, zoo=zoo)
    prof = _profile(target, devices)
    if precision is None or precision == prof.get("precision"):
        return est
    factors = prof.get("precision_factors", {})
    key = quantize if quantize in factors else precision
    entry = factors.get(key)
    if entry is None:
        return est._replace(
            basis=est.basis + f"; the profile is {prof.get('precision')}, the plan {precision}: not converted"
        )
    # a bare factor, or {factor, why} where the factor needs its reason said (e.g. x1: no faster than the profile)
    factor, why = (entry["factor"], f": {entry['why']}") if isinstance(entry, Mapping) else (entry, "")
    return est._replace(
        ms=est.ms * factor,
        low_ms=est.low_ms * factor,
        high_ms=est.high_ms * factor,
        basis=est.basis + f"; x{factor:g} for the plan's {key} (the profile is {prof.get('precision')}){why}",
    )


def _profile(target: str, devices: Mapping[str, Any] | None) -> Mapping[str, Any]:
    targets = load_devices()["targets"] if devices is None else devices.get("targets", devices)
    return targets.get(target, {})


def _cpu_scaled(
    variant: HasModelFacts, image_size: int, gmacs: float, small: bool, s: Mapping[str, Any]
) -> LatencyEstimate:
    """cloud-cpu: the catalog's own 224 px measurement scaled to this input by compute with a sub-linear exponent
    (small inputs keep less of the cores busy), plus a fixed per-call overhead; without a catalog measurement,
    the same power law on the GMACs alone. Both fitted on measurements of `archadvisor profile` (bench/cpu_latency_table.py)."""
    stem = ", small-input stem" if small else ""
    if variant.cpu_latency_ms and variant.gmacs > 0:
        ms = s["overhead_ms"] + s["factor"] * variant.cpu_latency_ms * (gmacs / variant.gmacs) ** s["exponent"]
        how = (f"{s['overhead_ms']:g} ms + {s['factor']:g} x the catalog's {variant.cpu_latency_ms:g} ms at "
               f"{variant.input_size} px x (GMACs ratio)^{s['exponent']:g}")  # fmt: skip
    else:
        ms = s["overhead_ms"] + s["ms_per_gmac"] * gmacs ** s["exponent"]
        how = f"{s['overhead_ms']:g} ms + {s['ms_per_gmac']:g} x ({gmacs:.3g} GMACs)^{s['exponent']:g}"
    low, high = _band(ms, 0.5, 2.0, MIN_BAND)
    basis = (
        f"estimate for a 2-vCPU cloud VM (PyTorch eager, fp32, batch 1) at {image_size} px{stem}: {how}; fitted on "
        "measurements of `archadvisor profile` (band x0.5..x2); measure here with `archadvisor profile`"
    )
    return LatencyEstimate(ms=ms, low_ms=low, high_ms=high, basis=basis, source=f"fitted on {s['fitted_on']}")


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise InputError("--target", target, TARGETS)


# ---------------------------------------------------------------------------------------------------------------
# Estimating


def _gmacs_at(variant: HasModelFacts, image_size: int, small_input: bool) -> tuple[float, bool]:
    small = small_input and bool(variant.small_input)
    gmacs_at = getattr(variant, "gmacs_at", None)
    if callable(gmacs_at):
        return float(gmacs_at(image_size, small_input=small)), small
    return variant.gmacs * (image_size / variant.input_size) ** 2, small


def _band(ms: float, low_ratio: float, high_ratio: float, floor: float) -> tuple[float, float]:
    low = min(low_ratio, 1.0 - floor)
    high = max(high_ratio, 1.0 + floor)
    return ms * low, ms * high


def _estimate_latency_ms(
    variant: HasModelFacts,
    target: str,
    image_size: int,
    devices: Mapping[str, Any] | None = None,
    *,
    small_input: bool = False,
    zoo: bool = True,
    precision: str | None = None,
) -> LatencyEstimate:
    """Estimated batch-1 latency of ``variant`` on ``target`` at ``image_size`` px: an estimate, never a measurement.

    Args:
        variant: a catalog variant (name, kind, params, gmacs at input_size, cpu_latency_ms, small_input).
        target: one of ``TARGETS``.
        image_size: input side in pixels; compute is scaled from the catalog's input size by pixel count
            (and by 16 when a small-input stem is used, as ``Variant.gmacs_at`` does).
        devices: device profiles to use instead of rules/devices.yaml (e.g. the rules loader's merged set).
        small_input: the model is built with its small-input stem (the caller decides, from the rules'
            small-input threshold).
        zoo: a classification-zoo model; the cloud-cpu scaling was fitted on those only, so models outside the
            zoo (detectors, segmenters) take the device profile's roofline.
        precision: the deployment plan's precision; where it differs from the profile's, the estimate is scaled
            by the profile's ``precision_factors`` and says so (the plan and the estimate must agree).

    Returns:
        A ``LatencyEstimate`` with ``measured=False``, its band, the basis (model and fitted constants) and sources.
    """
    _check_target(target)
    if image_size <= 0:
        raise InputError("--image-size", image_size, "a positive number of pixels")
    gmacs, small = _gmacs_at(variant, image_size, small_input)
    stem = ", small-input stem" if small else ""
    scaling = _profile(target, devices).get("cpu_scaling")
    if target == "cloud-cpu" and scaling is not None and zoo:
        return _cpu_scaled(variant, image_size, gmacs, small, scaling)
    if target == "cloud-cpu" and variant.cpu_latency_ms:
        scale = gmacs / variant.gmacs if variant.gmacs > 0 else (image_size / variant.input_size) ** 2
        ms = variant.cpu_latency_ms * scale
        low, high = _band(ms, 1.0, 1.0, MIN_BAND)
        basis = (
            f"estimate: the catalog's measurement of {variant.name} on its reference 2-core CPU "
            f"({variant.cpu_latency_ms:g} ms at {variant.input_size} px, fp32 PyTorch eager, batch 1)"
            + (f", scaled by compute to {image_size} px{stem}" if abs(scale - 1.0) > 1e-9 else "")
            + "; not measured on this machine (recommend --measure or archadvisor profile measure here)"
        )
        source = "the catalog's cpu_latency_ms (measured: 2-core Xeon, fp32 eager, batch 1, median of 10)"
        return LatencyEstimate(ms=ms, low_ms=low, high_ms=high, basis=basis, source=source)

    fit = device_fit(target, devices)
    kind = variant.kind if variant.kind in KINDS else "cnn"
    ms, memory_bound = fit.predict(gmacs, variant.params, kind)
    floor = THIN_FIT_BAND if fit.thin else MIN_BAND
    low, high = _band(ms, fit.ratio_low, fit.ratio_high, floor)
    if kind in fit.assumed_kinds:
        low, high = min(low, ms / ASSUMED_KIND_BAND), max(high, ms * ASSUMED_KIND_BAND)
    elif kind in fit.borrowed_kinds:
        low, high = min(low, ms / BORROWED_KIND_BAND), max(high, ms * BORROWED_KIND_BAND)
    term = (
        f"memory-bound: {variant.params / 1e6:.1f} M params x {fit.bytes_per_param:g} B / {fit.bandwidth_gb_s:g} GB/s"
        if memory_bound
        else f"{gmacs:.3g} GMACs x {fit.ms_per_gmac:.3g} ms/GMAC"
        + (f" x {fit.kind_factors[kind]:.2g} ({kind}: {fit.kind_basis[kind]})" if kind != "cnn" else "")
    )
    basis = (
        f"estimate for {fit.device} ({fit.runtime}) at {image_size} px{stem}: "
        f"{fit.overhead_ms:.2g} ms overhead + {term}; roofline fitted on {fit.n_base} published latencies "
        f"(efficiency {fit.efficiency:.2f} of the {fit.peak_gmacs_per_s:g} GMAC/s peak); "
        f"band x{low / ms:.2f}..x{high / ms:.2f} (the fit's residuals, widened by the device profile's band rules)"
    )
    source = "; ".join(dict.fromkeys(fit.sources.values()))
    return LatencyEstimate(ms=ms, low_ms=low, high_ms=high, basis=basis, source=source)
