"""How long `archadvisor recommend` takes, against the floor any typer + rich CLI pays.

    python bench/cli_latency.py [--runs 20] [--cold] [--json]

Measures, in the same run and interleaved (A B A B ...) so both see the same machine load:
  A  archadvisor recommend --task classification --images 8000 --target jetson --format json
  B  python -c "import typer, rich"
and prints the median and p90 wall time of each and the ratio of the medians (the
project's start-up target: ratio <= 1.5). Each sample is a fresh process, as a user's shell would start it. The rules
cache (~/.cache/archadvisor, or $XDG_CACHE_HOME) is warmed first; ``--cold`` also measures A with an
empty cache every time. Prints figures only: speed never fails CI.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARGS = ["recommend", "--task", "classification", "--images", "8000", "--target", "jetson", "--format", "json"]


def advisor_command() -> list[str]:
    """The installed console script beside this interpreter, else ``python -m archadvisor``."""
    script = Path(sys.executable).with_name("archadvisor")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "archadvisor"]


def wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    """Seconds for one run of ``cmd`` (output discarded); raises if it fails."""
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=True)
    return time.perf_counter() - t0


def percentile(xs: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))
    return s[k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="samples per command (at least 10)")
    parser.add_argument("--cold", action="store_true", help="also time recommend with an empty rules cache")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    runs = max(10, args.runs)

    advisor = [*advisor_command(), *ARGS]
    floor = [sys.executable, "-c", "import typer, rich"]
    # pip writes bytecode for installed packages, so typer and rich start from .pyc; an editable checkout
    # under PYTHONDONTWRITEBYTECODE=1 (as on this project's machines) would recompile archadvisor from
    # source on every run and time the compiler, not the tool. Compile it once, as an install would.
    import archadvisor

    compileall.compile_dir(Path(archadvisor.__file__).parent, quiet=1)
    # one checked run: the command works and prints a recommendation (and the rules cache is warm)
    out = subprocess.run(advisor, capture_output=True, text=True, check=True).stdout
    arch = json.loads(out)["architecture"]["name"]
    for _ in range(2):  # warm-up: page cache, .pyc files
        wall(advisor)
        wall(floor)

    samples: dict[str, list[float]] = {"recommend": [], "floor": [], "recommend_cold": []}
    cold_dir = Path(tempfile.mkdtemp(prefix="archadvisor-bench-"))
    try:
        for _ in range(runs):
            samples["recommend"].append(wall(advisor))
            samples["floor"].append(wall(floor))
            if args.cold:
                shutil.rmtree(cold_dir / "archadvisor", ignore_errors=True)
                samples["recommend_cold"].append(wall(advisor, env={**os.environ, "XDG_CACHE_HOME": str(cold_dir)}))
    finally:
        shutil.rmtree(cold_dir, ignore_errors=True)

    def stats(xs: list[float]) -> dict[str, float]:
        return {"median_s": statistics.median(xs), "p90_s": percentile(xs, 90), "min_s": min(xs)}

    result = {
        "runs": runs,
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "recommend": {"command": " ".join(advisor), **stats(samples["recommend"]), "architecture": arch},
        "floor": {"command": " ".join(floor), **stats(samples["floor"])},
    }
    result["ratio_median"] = result["recommend"]["median_s"] / result["floor"]["median_s"]
    if args.cold:
        result["recommend_cold"] = {"command": "same, empty rules cache", **stats(samples["recommend_cold"])}
        result["ratio_median_cold"] = result["recommend_cold"]["median_s"] / result["floor"]["median_s"]

    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"archadvisor CLI latency: {runs} interleaved runs each, {result['cpus']} CPUs, "
          f"load average {result['load_avg_1m']:.2f}")  # fmt: skip
    rows = [("recommend", result["recommend"]), ("floor", result["floor"])]
    if args.cold:
        rows.insert(1, ("recommend (cold cache)", result["recommend_cold"]))
    for label, r in rows:
        print(f"  {label:24s} median {r['median_s'] * 1000:7.1f} ms   p90 {r['p90_s'] * 1000:7.1f} ms   "
              f"min {r['min_s'] * 1000:7.1f} ms   $ {r['command']}")  # fmt: skip
    print(f"  ratio recommend / floor (medians): {result['ratio_median']:.2f}  (target <= 1.5)")
    if args.cold:
        print(f"  ratio with a cold rules cache:     {result['ratio_median_cold']:.2f}")
    print(f"  (recommended: {arch})")


if __name__ == "__main__":
    main()
