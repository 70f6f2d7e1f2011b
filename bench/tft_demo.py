"""The Temporal Fusion Transformer project (pytorch-forecasting) on the CO2 demo: its validation MASE against
seasonal naive's on the same windows, epochs and seconds, on CPU.

    python bench/tft_demo.py --python /path/to/venv/bin/python          # a venv with the project's pins
    python bench/tft_demo.py --python ... --epochs 30 --set training.early_stopping_patience=10

Scaffolds the project as `archadvisor scaffold --task time-series --images 444 --frequency MS --compute cpu
--target cloud-cpu --arch temporal_fusion_transformer` does, runs its train.py with ``--python`` (an interpreter
that has pytorch-forecasting 1.8.0 installed: `pip install -e PROJECT` in a venv; this one by default), and prints
summary.json's figures. The demo's recipe as generated is 50 epochs with early stopping after 20 without a
lower val_loss.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from archadvisor.catalog import Catalog  # noqa: E402
from archadvisor.engine import recommend  # noqa: E402
from archadvisor.ruleset import load_rules  # noqa: E402
from archadvisor.scaffold import render_project, write_project  # noqa: E402
from archadvisor.spec import build_spec  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--python", default=sys.executable, help="an interpreter with the project's dependencies")
    p.add_argument("--epochs", type=int, help="overrides training.epochs (default: the recipe's)")
    p.add_argument("--set", action="append", default=[], help="passed to train.py --set")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()

    rules = load_rules()
    spec = build_spec(task="time-series", images=444, frequency="MS", compute="cpu", target="cloud-cpu",
                      arch="temporal_fusion_transformer")  # fmt: skip
    rec = recommend(spec, rules, Catalog(rules))
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "tft"
        write_project(render_project(rec, name="tft_demo"), project)
        cmd = [args.python, "train.py", *(["--epochs", str(args.epochs)] if args.epochs else [])]
        for item in args.set:
            cmd += ["--set", item]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        env.pop("PYTHONPATH", None)
        subprocess.run(cmd, cwd=project, env=env, check=True, capture_output=True, text=True)
        s = json.loads((project / "runs" / "train" / "summary.json").read_text(encoding="utf-8"))
    print(f"TFT on CO2 (CPU, {args.threads} threads): val MASE {s['best_val_mase']:.3f} vs seasonal naive "
          f"{s['baseline_val_mase']:.3f} (ratio {s['best_val_mase'] / s['baseline_val_mase']:.2f}), sMAPE "
          f"{s['val_smape']:.2f}% vs {s['baseline_val_smape']:.2f}%, {s['epochs_run']} epochs, "
          f"{s['wall_seconds']:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
