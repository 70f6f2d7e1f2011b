"""Measure batch-1 CPU latency of the smallest variant of every zoo family at 32, 64 and 224 px, the way
`archadvisor profile` measures (eval + inference_mode, fp32, warm-up, median with its 95% CI), and fit the
cloud-cpu latency model of rules/devices.yaml (`cpu_scaling`) to it.

    python bench/cpu_latency_table.py            # measure, print the table and the fit, write the JSON
    python bench/cpu_latency_table.py --fit-only # refit from the committed bench/results/cpu_latency.json

The table is committed (bench/results/cpu_latency.json); tests/test_latency_table.py checks that the estimates
stay within x2 of it, without timing anything. Small images get the small-input stem where the family has one
(the rules' threshold), as `profile` and the generated project build them. Run it on an idle machine: two cores
shared with another process slow PyTorch's two threads by far more than 2x.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "results" / "cpu_latency.json"
SIZES = (32, 64, 224)


def measure() -> list[dict]:
    import torch

    from archadvisor.catalog import Catalog
    from archadvisor.engine import uses_small_input
    from archadvisor.measure import measure_candidates
    from archadvisor.ruleset import load_rules

    rules = load_rules()
    catalog = Catalog(rules)
    smallest: dict[str, object] = {}
    for v in catalog.variants:
        if v.family not in smallest or v.params < smallest[v.family].params:
            smallest[v.family] = v
    rows = []
    for v in smallest.values():
        for size in SIZES:
            small = uses_small_input(v, size, rules)
            if size < 64 and not v.small_input:
                continue  # an ImageNet stem on a 32 px image: not a configuration anyone runs
            r = measure_candidates([v], size, "cpu", small_input=[small], threads=2, max_seconds=3.0)[0]
            rows.append({"model": v.name, "family": v.family, "kind": v.kind, "image_size": size, "small_input": small,
                         "gmacs_at_input": round(v.gmacs_at(size, small), 5), "median_ms": r["median_ms"],
                         "p90_ms": r["p90_ms"], "runs": r["runs"], "busy": r["other_processes_cpu"]})  # fmt: skip
            print(
                f"{v.name:24s} {size:4d}px small={small!s:5s} {rows[-1]['gmacs_at_input']:9.4f} GMACs  "
                f"{r['median_ms']:8.2f} ms (p90 {r['p90_ms']:.2f}, {r['runs']} runs)",
                flush=True,
            )
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "threads": 2,
            "torch": torch.__version__}  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n", encoding="utf-8")
    return rows


def fit(rows: list[dict]) -> dict:
    """Least squares on log latency: ms = overhead + factor * ref_ms * (gmacs / ref_gmacs) ** exponent for
    variants with a catalog measurement at 224 px (ref), ms = overhead + ms_per_gmac * gmacs ** exponent otherwise."""
    from archadvisor.catalog import Catalog
    from archadvisor.ruleset import load_rules

    catalog = Catalog(load_rules())
    best = None
    for overhead in [x / 20 for x in range(0, 21)]:
        for exponent in [x / 40 for x in range(4, 41)]:
            logs = []
            for r in rows:
                v = catalog.get(r["model"])
                if v.cpu_latency_ms:
                    base = v.cpu_latency_ms * (r["gmacs_at_input"] / v.gmacs) ** exponent
                    logs.append(math.log(max(r["median_ms"] - overhead, 1e-3) / base))
            factor = math.exp(sum(logs) / len(logs))
            err = 0.0
            for r in rows:
                v = catalog.get(r["model"])
                if v.cpu_latency_ms:
                    est = overhead + factor * v.cpu_latency_ms * (r["gmacs_at_input"] / v.gmacs) ** exponent
                    err += math.log(est / r["median_ms"]) ** 2
            if best is None or err < best[0]:
                best = (err, overhead, exponent, factor)
    _, overhead, exponent, factor = best
    rest = [r for r in rows if not catalog.get(r["model"]).cpu_latency_ms]
    # the same power law on GMACs alone, its scale the geometric mean over the variants without a catalog figure
    ms_per_gmac = (
        math.exp(
            sum(math.log(max(r["median_ms"] - overhead, 1e-3) / r["gmacs_at_input"] ** exponent) for r in rest)
            / len(rest)
        )
        if rest
        else 20.0
    )
    return {"overhead_ms": round(overhead, 3), "exponent": round(exponent, 3), "factor": round(factor, 4),
            "ms_per_gmac": round(ms_per_gmac, 3), "fitted_on": "bench/results/cpu_latency.json"}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-only", action="store_true", help="refit from the committed table")
    args = parser.parse_args()
    rows = json.loads(OUT.read_text())["rows"] if args.fit_only else measure()
    params = fit(rows)
    print("\ncpu_scaling for rules/devices.yaml (targets.cloud-cpu):")
    print("    cpu_scaling: " + json.dumps(params).replace('"', ""))
    from archadvisor.catalog import Catalog
    from archadvisor.latency import estimate_latency_ms
    from archadvisor.ruleset import load_rules

    catalog = Catalog(load_rules())
    worst = 1.0
    print(f"\n{'model':24s} {'px':>4s} {'measured':>9s} {'estimate':>9s} {'ratio':>6s}")
    for r in rows:
        est = estimate_latency_ms(
            catalog.get(r["model"]), "cloud-cpu", r["image_size"], small_input=r["small_input"]
        ).ms
        ratio = max(est / r["median_ms"], r["median_ms"] / est)
        worst = max(worst, ratio)
        print(f"{r['model']:24s} {r['image_size']:4d} {r['median_ms']:9.2f} {est:9.2f} {est / r['median_ms']:6.2f}")
    print(f"\nworst estimate / measurement: x{worst:.2f} (target: within x2)")


if __name__ == "__main__":
    main()
