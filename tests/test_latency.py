"""Latency estimates for deployment targets (archadvisor/latency.py, rules/devices.yaml): torch-free, labelled as
estimates, fitted on published figures, monotone in compute, and a devices.yaml that is checked."""

from __future__ import annotations

import copy
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from archadvisor.catalog import load_catalog
from archadvisor.errors import InputError
from archadvisor.latency import (
    TARGETS,
    LatencyEstimate,
    device_fit,
    estimate_latency_ms,
    fit_line,
    load_devices,
    validate_devices,
)

REPO = Path(__file__).resolve().parents[1]
CATALOG = load_catalog()


@dataclass(frozen=True)
class FakeVariant:
    """A catalog-like variant with chosen facts (no catalog measurement unless given)."""

    name: str = "fake"
    kind: str = "cnn"
    params: int = 5_000_000
    gmacs: float = 1.0
    input_size: int = 224
    cpu_latency_ms: float | None = None
    small_input: bool = False


# ---------------------------------------------------------------------------------------------------------------
# torch-free


@pytest.mark.parametrize("module", ["archadvisor.latency", "archadvisor.measure", "archadvisor.measure.cli"])
def test_module_imports_no_torch(module):
    """recommend without --measure stays torch-free: latency.py (and the lazy measure modules) never import it."""
    code = (
        f"import {module}\n"
        "from archadvisor.catalog import load_catalog\n"
        "from archadvisor.latency import estimate_latency_ms\n"
        "v = load_catalog().resolve('resnet50')\n"
        "for t in ('cloud-cpu', 'ios', 'browser'):\n"
        "    estimate_latency_ms(v, t, 224)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "torch" not in imported, "torch was imported"
    assert not any(m.startswith("torch.") for m in imported)


# ---------------------------------------------------------------------------------------------------------------
# every catalog variant on every target


@pytest.mark.parametrize("target", TARGETS)
def test_every_variant_gets_a_labelled_estimate(target):
    for v in CATALOG.variants:
        est = estimate_latency_ms(v, target, v.input_size)
        assert isinstance(est, LatencyEstimate)
        assert est.measured is False
        assert est.basis.startswith("estimate")
        assert est.source
        assert math.isfinite(est.ms) and est.ms > 0
        assert est.low_ms <= est.ms <= est.high_ms
        # the band is never narrower than +-25% (see devices.yaml header)
        assert est.low_ms <= 0.75 * est.ms + 1e-9 and est.high_ms >= 1.25 * est.ms - 1e-9
        assert est.as_dict()["measured"] is False


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", ["cnn", "transformer", "hybrid"])
def test_estimate_is_monotone_in_gmacs(target, kind):
    ms = [estimate_latency_ms(FakeVariant(kind=kind, gmacs=g), target, 224).ms for g in (0.05, 0.2, 1, 4, 16, 64)]
    assert ms == sorted(ms)
    assert ms[-1] > ms[0]


@pytest.mark.parametrize("target", TARGETS)
def test_resnet_depths_are_ordered(target):
    names = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
    ms = [estimate_latency_ms(CATALOG.resolve(n), target, 224).ms for n in names]
    assert ms == sorted(ms)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet50", "vit_small_patch16_224"])
def test_larger_images_never_cost_less(target, name):
    """Compute grows with pixels; a memory-bound model (weights streamed once per image) stays flat until then."""
    v = CATALOG.resolve(name)
    ms = [estimate_latency_ms(v, target, s).ms for s in (96, 160, 224, 320, 448, 640)]
    assert ms == sorted(ms)
    assert ms[-1] > ms[0]


def test_cloud_cpu_uses_the_catalog_measurement_and_says_so():
    v = CATALOG.resolve("regnety_008")
    est = estimate_latency_ms(v, "cloud-cpu", v.input_size)
    assert "catalog's" in est.basis and f"{v.cpu_latency_ms:g} ms" in est.basis and est.measured is False
    # a quarter of the pixels costs less, but not a quarter: small inputs keep fewer cores busy (the fitted
    # exponent < 1, bench/cpu_latency_table.py; tests/test_latency_table.py checks it against measurements)
    half = estimate_latency_ms(v, "cloud-cpu", 112).ms
    assert est.ms / 4 < half < est.ms


def test_cloud_cpu_without_a_catalog_measurement_uses_the_device_fit():
    v = CATALOG.resolve("simple_cnn")
    assert v.cpu_latency_ms is None
    est = estimate_latency_ms(v, "cloud-cpu", 32, small_input=True)
    assert est.basis.startswith("estimate for") and "fitted on" in est.basis and "GMACs" in est.basis


def test_unknown_target_is_an_input_error_with_a_suggestion():
    with pytest.raises(InputError, match="did you mean 'jetson'"):
        estimate_latency_ms(CATALOG.resolve("resnet18"), "jetsn", 224)


# ---------------------------------------------------------------------------------------------------------------
# the fit


@pytest.mark.parametrize(
    ("points", "default", "expected"),
    [
        ([(1.0, 3.0), (2.0, 5.0), (4.0, 9.0)], 0.0, (1.0, 2.0)),  # exact line
        ([(1.0, 1.0), (2.0, 3.0)], 0.0, (0.0, 1.4)),  # fitted intercept -1: refit through the origin
        ([(0.3, 30.0)], 1.0, (1.0, 29.0 / 0.3)),  # one point: the default overhead, slope through it
        ([(2.0, 4.0), (2.0, 6.0)], 0.0, (0.0, 2.5)),  # no spread in GMACs: like one point
    ],
)
def test_fit_line(points, default, expected):
    overhead, slope = fit_line(points, default)
    assert overhead == pytest.approx(expected[0])
    assert slope == pytest.approx(expected[1])


def test_fit_line_needs_points():
    with pytest.raises(ValueError):
        fit_line([])


@pytest.mark.parametrize("target", TARGETS)
def test_fit_reproduces_its_benchmarks_within_the_band(target):
    """Each published figure the target was fitted on lies inside the band the fit reports."""
    fit = device_fit(target)
    prof = load_devices()["targets"][target]
    assert 0 < fit.efficiency <= 1, "the fitted throughput cannot exceed the published peak"
    for b in prof["benchmarks"]:
        kind = "cnn" if b.get("base", b["kind"] == "cnn") else b["kind"]
        predicted = fit.overhead_ms + fit.kind_factors[kind] * b["gmacs"] * fit.ms_per_gmac
        assert fit.ratio_low - 1e-9 <= b["latency_ms"] / predicted <= fit.ratio_high + 1e-9


def test_android_fit_is_tight_on_the_efficientnet_lite_series():
    """Five Pixel 4 INT8 latencies lie on one line: every one within 10% of the fit."""
    fit = device_fit("android")
    assert fit.n_base == 5
    assert fit.ratio_low >= 0.9 and fit.ratio_high <= 1.1


@pytest.mark.parametrize(
    ("target", "published"),
    [
        # Ultralytics' Jetson guide, TensorRT (FP16) rows at 640 px: (GMACs = FLOPs / 2, ms)
        ("jetson-orin", [(2.7, 2.62), (10.35, 3.76), (34.1, 6.24), (43.2, 7.93)]),  # YOLO26 n/s/m/l, AGX Orin 64GB
        ("jetson-orin-nano", [(3.25, 4.91), (10.75, 7.30), (34.0, 13.99), (43.45, 17.57), (97.45, 32.94)]),  # YOLO11
    ],
)
def test_orin_fits_hold_the_published_ultralytics_figures(target, published):
    """Every published Orin figure within 5% of the fitted line (published / fitted in 0.95..1.05); an efficiency
    below the peak derived from NVIDIA's TOPS."""
    fit = device_fit(target)
    assert fit.n_base == len(published)
    for gmacs, ms in published:
        est = estimate_latency_ms(FakeVariant(gmacs=gmacs, params=1_000_000, input_size=640), target, 640)
        assert 0.945 <= ms / est.ms <= 1.05
        assert est.low_ms < ms < est.high_ms
    assert 0.2 < fit.efficiency < 0.6
    # the same tables give FP32 at ~2x FP16 (YOLO26l 15.90 / 7.93 ms; YOLO11x 67.32 / 32.94 ms)
    v = CATALOG.resolve("resnet50")
    assert estimate_latency_ms(v, target, 224, precision="fp32").ms == pytest.approx(
        2.0 * estimate_latency_ms(v, target, 224).ms
    )


def test_doubling_every_published_latency_doubles_the_estimate():
    """The estimate really comes from the published figures (least squares is linear in the latencies)."""
    devices = copy.deepcopy(load_devices())
    for b in devices["targets"]["jetson"]["benchmarks"]:
        b["latency_ms"] *= 2
    v = CATALOG.resolve("resnet50")
    base = estimate_latency_ms(v, "jetson", 224)
    doubled = estimate_latency_ms(v, "jetson", 224, devices=devices)
    assert doubled.ms == pytest.approx(2 * base.ms)


def test_transformers_pay_a_fitted_penalty_on_the_iphone_neural_engine():
    """MobileViT-XS is published ~4.5x slower than a CNN-like model of similar GMACs on the iPhone 12."""
    fit = device_fit("ios")
    assert fit.kind_factors["hybrid"] > 3
    assert fit.kind_basis["hybrid"].startswith("fitted on")
    cnn = estimate_latency_ms(FakeVariant(kind="cnn", gmacs=1.0), "ios", 224).ms
    hybrid = estimate_latency_ms(FakeVariant(kind="hybrid", gmacs=1.0), "ios", 224).ms
    assert hybrid > 3 * cnn


def test_an_assumed_kind_factor_widens_the_band():
    fit = device_fit("cloud-gpu")
    assert "transformer" in fit.assumed_kinds
    est = estimate_latency_ms(CATALOG.resolve("vit_base_patch16_224"), "cloud-gpu", 224)
    assert est.high_ms >= 2 * est.ms - 1e-9 and est.low_ms <= est.ms / 2 + 1e-9
    assert "assumed" in est.basis


def test_cloud_cpu_benchmarks_are_the_catalogs_figures():
    prof = load_devices()["targets"]["cloud-cpu"]
    for b in prof["benchmarks"]:
        v = CATALOG.resolve(b["model"])
        assert b["latency_ms"] == v.cpu_latency_ms
        assert b["gmacs"] == v.gmacs
        assert b["kind"] == v.kind


@pytest.mark.parametrize("target", TARGETS)
def test_guide_claim_records_what_the_code_estimates(target):
    """devices.yaml notes where the guide's deployment matrix disagrees; its numbers must be the code's."""
    claim = load_devices()["targets"][target].get("guide_claim")
    if claim is None:
        pytest.skip("no guide claim recorded for this target")
    est = estimate_latency_ms(CATALOG.resolve(claim["catalog_name"]), target, claim["image_size"])
    assert claim["our_estimate_ms"] == pytest.approx(est.ms, rel=0.05)


# ---------------------------------------------------------------------------------------------------------------
# validation


def test_built_in_devices_file_is_valid():
    assert validate_devices(load_devices()) == []


def _mutated(fn):
    data = copy.deepcopy(load_devices())
    fn(data)
    return validate_devices(data)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["targets"].pop("ios"), "targets.ios: missing"),
        (lambda d: d["targets"].__setitem__("jetsn", {}), "did you mean 'jetson'"),
        (lambda d: d["targets"]["jetson"]["benchmarks"][0].__setitem__("gmacs", -1), "benchmarks[0].gmacs"),
        (lambda d: d["targets"]["android"]["benchmarks"][1].__setitem__("source", "nope"), "'nope' is not a key"),
        (lambda d: d["targets"]["ios"].__setitem__("precision", "fp8"), "targets.ios.precision"),
        (lambda d: d["targets"]["browser"].__setitem__("peak_gmac", 1), "did you mean 'peak_gmacs_per_s'"),
        (lambda d: d["targets"]["browser"].__setitem__("kind_factors_from", "browser"), "its own kind factors"),
        (lambda d: d["targets"]["browser"].__setitem__("kind_factors_from", "android"), "no chains"),
        (
            lambda d: d["targets"]["cloud-gpu"]["assumed_kind_factors"]["transformer"].pop("why"),
            "exactly {factor, why}",
        ),
        (
            lambda d: d["targets"]["ios"].__setitem__(
                "benchmarks", [b for b in d["targets"]["ios"]["benchmarks"] if b["kind"] == "hybrid"]
            ),
            "at least one base point",
        ),
        (lambda d: d["targets"]["cloud-cpu"].pop("guide_claim") and None, None),  # optional: still valid
        (lambda d: d.__setitem__("schema", 2), "unsupported schema"),
    ],
)
def test_validate_devices_names_each_problem(mutate, expected):
    problems = _mutated(mutate)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_validate_devices_rejects_a_non_mapping():
    assert validate_devices([1, 2]) != []
