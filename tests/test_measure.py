"""Measurement (archadvisor/measure/) and the profile / compare commands, on small models.

Honest-numbers checks from the issue: parameters equal the catalog's, GMACs within 2% (attention included),
two runs of the same measurement agree within 10%. Kept small (<= 64 px, or 224 px for counting only).
"""

from __future__ import annotations

import json
import math
import random
import time

import pytest
import torch
from typer.testing import CliRunner

from archadvisor import measure
from archadvisor.catalog import load_catalog
from archadvisor.cli import app
from archadvisor.errors import InputError
from archadvisor.latency import LatencyEstimate
from archadvisor.ruleset import load_rules

CATALOG = load_catalog()
SMALL = load_rules().small_input_max_px  # 64 in the built-in rules


# ---------------------------------------------------------------------------------------------------------------
# pure helpers


@pytest.mark.parametrize(
    ("points", "front"),
    [
        ([(10, 70)], [0]),
        ([(10, 70), (20, 80), (30, 75)], [0, 1]),  # the slower and worse one is dominated
        ([(10, 70), (10, 72)], [1]),  # same latency, higher accuracy wins
        ([(10, 70), (12, 70)], [0]),  # same accuracy, lower latency wins
        ([(10, 70), (10, 70)], [0, 1]),  # identical points do not dominate each other
        ([(30, 80), (20, 75), (10, 70)], [2, 1, 0]),  # all on the front, returned fastest first
        ([(5, 60), (50, 90), (40, 85), (45, 84), (6, 59)], [0, 2, 1]),
        ([], []),
    ],
)
def test_pareto_front(points, front):
    assert measure.pareto_front(points) == front


def test_timing_stats_and_median_ci():
    samples = [float(x) for x in range(1, 102)]  # 1..101 ms, median 51
    t = measure.timing_stats(samples, warmup_runs=3, target_rel_ci=0.5, seconds=1.0)
    assert t.median_ms == 51 and t.min_ms == 1 and t.runs == 101 and t.warmup_runs == 3
    assert t.p90_ms == pytest.approx(91)
    # order statistics 41 and 62 (1-based) bracket the median of 101 samples: (62 - 40) / (2 * 51)
    assert t.rel_ci == pytest.approx((62 - 40) / (2 * 51))
    assert t.converged
    assert measure.median_rel_ci([5.0] * 20) == 0
    assert math.isinf(measure.median_rel_ci([1.0, 2.0]))
    # more samples from the same spread give a tighter interval
    rng = random.Random(0)
    few = sorted(rng.gauss(10, 1) for _ in range(20))
    many = sorted(rng.gauss(10, 1) for _ in range(2000))
    assert measure.median_rel_ci(many) < measure.median_rel_ci(few) / 4


def test_time_calls_converges_on_a_steady_call():
    t = measure.time_calls(lambda: time.sleep(0.003), target_rel_ci=0.05, max_seconds=5, warmup_seconds=0.05)
    assert t.converged and t.rel_ci <= 0.05
    assert t.runs >= measure.MIN_RUNS and t.warmup_runs >= measure.MIN_WARMUP
    assert 3.0 <= t.median_ms < 30  # sleep never returns early


def test_time_calls_stops_at_the_time_cap_and_says_so():
    rng = random.Random(1)
    t = measure.time_calls(
        lambda: time.sleep(rng.choice([0.001, 0.008])), target_rel_ci=1e-6, max_seconds=0.3, warmup_seconds=0
    )
    assert not t.converged
    assert 0.3 <= t.seconds < 1.0


# ---------------------------------------------------------------------------------------------------------------
# parameters and GMACs against the catalog


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "vit_tiny_patch16_224", "mobilevit_xxs"])
def test_params_and_gmacs_match_the_catalog(name):
    v = CATALOG.resolve(name)
    model, small = measure.build_for(v, v.input_size, small_input=v.input_size <= SMALL)
    assert not small
    assert sum(p.numel() for p in model.parameters()) == v.params
    gmacs, attention = measure.count_gmacs(model, torch.randn(1, 3, v.input_size, v.input_size))
    assert gmacs == pytest.approx(v.gmacs, rel=0.02)
    if v.kind == "cnn":
        assert attention == 0
    else:
        assert attention > 0.01 * gmacs  # counted, not the zero plain FlopCounterMode gives on CPU


def test_plain_flop_counter_misses_cpu_attention():
    """Why the custom formula exists: without it, ViT-Ti's attention matmuls are missing (~14% of its MACs)."""
    from torch.utils.flop_counter import FlopCounterMode

    v = CATALOG.resolve("vit_tiny_patch16_224")
    model, _ = measure.build_for(v, 224, small_input=False)
    x = torch.randn(1, 3, 224, 224)
    plain = FlopCounterMode(display=False)
    with torch.inference_mode(), plain:
        model(x)
    ours, attention = measure.count_gmacs(model, x)
    assert plain.get_total_flops() / 2e9 == pytest.approx(ours - attention, rel=1e-6)
    assert plain.get_total_flops() / 2e9 < 0.9 * v.gmacs


def test_gmacs_scale_with_batch_and_image_size():
    v = CATALOG.resolve("resnet18")
    model, _ = measure.build_for(v, 96, small_input=False)
    one, _ = measure.count_gmacs(model, torch.randn(1, 3, 96, 96))
    four, _ = measure.count_gmacs(model, torch.randn(4, 3, 96, 96))
    bigger, _ = measure.count_gmacs(model, torch.randn(1, 3, 192, 192))
    assert four == pytest.approx(4 * one)
    assert bigger == pytest.approx(4 * one, rel=0.01)


# ---------------------------------------------------------------------------------------------------------------
# memory


def test_peak_memory_is_consistent_with_the_model():
    v = CATALOG.resolve("resnet18")
    model, _ = measure.build_for(v, 64, small_input=True)
    param_mb = sum(p.numel() * 4 for p in model.parameters()) / 2**20
    inf1 = measure.peak_memory(model, 1, 64, "cpu", train=False)
    inf16 = measure.peak_memory(model, 8, 64, "cpu", train=False)
    train = measure.peak_memory(model, 4, 64, "cpu", train=True)
    assert inf1["persistent_mb"] >= param_mb
    assert inf16["transient_mb"] > inf1["transient_mb"] > 0  # activations grow with the batch
    # parameters + two AdamW moments persist; gradients and activations are transient
    assert train["persistent_mb"] >= 3 * param_mb
    assert train["transient_mb"] >= param_mb  # at least the gradients
    assert train["peak_mb"] > inf16["peak_mb"]
    assert "profiler" in train["method"]


# ---------------------------------------------------------------------------------------------------------------
# stability and profiling


def _median_ms(name: str, size: int) -> tuple[float, float | None]:
    (r,) = measure.measure_candidates(
        [CATALOG.resolve(name)], image_size=size, small_input=[size <= SMALL], threads=1, max_seconds=2.0
    )
    return r["median_ms"], r["other_processes_cpu"]


def test_two_runs_agree_within_ten_percent():
    """The adaptive run count makes the median repeatable (the issue: within 10% on an idle machine).

    A retry absorbs a burst of load; when other processes kept the CPUs busy through every attempt the claim
    cannot be checked here, and the test says so instead of passing or failing on noise.
    """
    busiest = 0.0
    for _attempt in range(3):
        (a, load_a), (b, load_b) = _median_ms("simple_cnn", 32), _median_ms("simple_cnn", 32)
        if abs(a - b) / min(a, b) <= 0.10:
            return
        busiest = max(busiest, load_a or 0.0, load_b or 0.0)
    if busiest > measure.BUSY:
        pytest.skip(f"machine busy (other processes used up to {busiest:.0%} CPU): medians {a:.3f} vs {b:.3f} ms")
    pytest.fail(f"two medians on a quiet machine differ by more than 10%: {a:.3f} vs {b:.3f} ms")


def test_measure_candidates_reports_how_it_measured():
    variants = [CATALOG.resolve("simple_cnn"), CATALOG.resolve("mobilenet_v3_small")]
    seen = []
    results = measure.measure_candidates(
        variants, image_size=64, small_input=[True, True], max_seconds=0.5, progress=lambda s, d, n: seen.append((d, n))
    )
    assert [r["name"] for r in results] == ["simple_cnn", "mobilenet_v3_small"]
    for r in results:
        assert r["measured"] is True
        assert r["low_ms"] <= r["median_ms"] <= r["high_ms"]
        assert r["median_ms"] <= r["p90_ms"]
        assert "measured here" in r["basis"] and "64 px" in r["basis"] and "batch 1" in r["basis"]
    assert seen[-1] == (2, 2)
    est = measure.as_latency_estimates(results)
    assert isinstance(est["simple_cnn"], LatencyEstimate) and est["simple_cnn"].measured is True


def test_profile_model_end_to_end_with_onnx():
    v = CATALOG.resolve("simple_cnn")
    stages = []
    r = measure.profile_model(
        v,
        small_input_max_px=SMALL,
        image_size=32,
        batch=4,
        threads=1,
        onnx=True,
        max_seconds=0.4,
        progress=lambda s, d, n: stages.append(s),
    )
    assert stages == [*measure.stages(True, 4), "done"]
    assert r["measured"] is True and r["small_input"] is True
    assert r["params"] == v.params and r["params_match_catalog"]
    assert r["gmacs"] == pytest.approx(v.gmacs, rel=0.02)
    assert r["gmacs_delta_pct"] is not None and abs(r["gmacs_delta_pct"]) < 2
    lat = r["latency"]["batch1"]
    assert 0 < lat["min_ms"] <= lat["median_ms"] <= lat["p90_ms"]
    assert r["throughput"]["images_per_s"] == pytest.approx(4 / (r["throughput"]["median_ms"] / 1e3), rel=1e-3)
    assert r["memory"]["train_step"]["peak_mb"] > r["memory"]["inference"]["peak_mb"]
    assert r["onnx"]["max_abs_diff_vs_torch"] < 1e-3
    assert r["onnx"]["latency"]["batch1"]["median_ms"] > 0
    assert r["method"]["threads"] == 1 and r["method"]["torch"] == torch.__version__
    json.dumps(r)  # JSON-ready
    assert torch.get_num_threads() != 0  # restored, not left at 1 by accident of an exception


def test_profile_rejects_bad_inputs():
    v = CATALOG.resolve("resnet18")
    with pytest.raises(InputError, match="--image-size"):
        measure.profile_model(v, small_input_max_px=SMALL, image_size=4)
    with pytest.raises(InputError, match="--batch"):
        measure.profile_model(v, small_input_max_px=SMALL, batch=0)
    with pytest.raises(InputError, match="did you mean 'cuda'"):
        measure.profile_model(v, small_input_max_px=SMALL, device="cude")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            measure.profile_model(v, small_input_max_px=SMALL, device="cuda")


def test_pareto_chart_is_a_png(tmp_path):
    rows = [
        {"name": "a", "latency_ms": 5.0, "top1": 70.0},
        {"name": "b", "latency_ms": 20.0, "top1": 80.0},
        {"name": "c", "latency_ms": 30.0, "top1": 75.0},
        {"name": "d", "latency_ms": 8.0, "top1": None},
    ]
    path = tmp_path / "chart.png"
    assert measure.write_pareto_chart(rows, path) == ["a", "b"]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError):
        measure.write_pareto_chart([{"name": "d", "latency_ms": 8.0, "top1": None}], tmp_path / "x.png")


# ---------------------------------------------------------------------------------------------------------------
# the commands, through the real app (its one error handler included)


@pytest.fixture(scope="module")
def cli():
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_profile_command_json(cli):
    res = cli("profile", "simple_cnn", "--batch", "2", "--threads", "1", "--max-seconds", "0.3", "--format", "json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["arch"] == "simple_cnn" and r["image_size"] == 32 and r["batch"] == 2
    assert r["params_match_catalog"]


def test_profile_command_table(cli):
    res = cli("profile", "simple_cnn", "--batch", "2", "--max-seconds", "0.3")
    assert res.exit_code == 0, res.output
    assert "simple_cnn at 32 px" in res.stdout and "GMACs / image" in res.stdout and "stop:" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["profile", "resnet81"], "did you mean 'resnet18'"),
        (["profile", "resnet18", "--device", "tpu"], "--device"),
        (["profile", "resnet18", "--image-size", "4"], "--image-size"),
        (["profile", "resnet18", "--format", "yml"], "--format"),
        (["compare", "resnet18"], "two or more"),
        (["compare", "resnet18", "resnet18"], "each architecture once"),
        (["compare", "resnet18", "simple_cnn", "--chart", "out.jpg"], "--chart"),
    ],
)
def test_commands_fail_with_one_line(cli, args, message):
    res = cli(*args)
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in res.output


def test_compare_command_writes_the_chart(cli, tmp_path):
    chart = tmp_path / "front.png"
    res = cli(
        "compare", "simple_cnn", "mobilenet_v3_small", "resnet18", "--image-size", "32", "--batch", "2",
        "--max-seconds", "0.3", "--chart", str(chart), "--format", "json",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert [m["arch"] for m in out["models"]] == ["simple_cnn", "mobilenet_v3_small", "resnet18"]
    assert out["chart"] == str(chart) and chart.read_bytes()[:4] == b"\x89PNG"
    # simple_cnn has no ImageNet top-1: not plotted, not on the front
    assert out["pareto_front"] and "simple_cnn" not in out["pareto_front"]
    lat = {m["arch"]: m["latency"]["batch1"]["median_ms"] for m in out["models"]}
    top1 = {m["arch"]: m["catalog"]["imagenet_top1"] for m in out["models"]}
    expected = measure.pareto_front([(lat[n], top1[n]) for n in ("mobilenet_v3_small", "resnet18")])
    assert out["pareto_front"] == [("mobilenet_v3_small", "resnet18")[i] for i in expected]
