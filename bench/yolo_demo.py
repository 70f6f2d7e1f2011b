"""Seconds and val mAP of the ultralytics (YOLO) project on its digits demo, trained offline on CPU.

    python bench/yolo_demo.py                              # yolo11n, 30 epochs at 128 px
    python bench/yolo_demo.py --epochs 60 --site /tmp/ul   # ultralytics installed with pip install --target /tmp/ul

Scaffolds the project `archadvisor scaffold` generates for a real-time Jetson detector (the rules' top choice is
YOLO11n), runs its `python train.py --epochs N --imgsz 128` with every proxy pointed at a closed port and
YOLO_OFFLINE set, and prints the project's summary.json (best_val_map and val_map50 in percent, epochs_run,
wall_seconds). ultralytics must be importable by this interpreter, or installed in --site.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from archadvisor.catalog import Catalog
from archadvisor.engine import recommend
from archadvisor.ruleset import load_rules
from archadvisor.scaffold import render_project, write_project
from archadvisor.spec import build_spec

CLOSED = "http://127.0.0.1:9"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default=None, help="a YOLO model of the catalog (default: the rules' choice, yolo11n)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--imgsz", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--site", type=Path, help="a folder ultralytics was pip-installed into (--target)")
    args = p.parse_args()
    rules = load_rules()
    inputs = dict(task="detection", images=480, classes=10, latency_ms=20, target="jetson", arch=args.arch)
    rec = recommend(build_spec(**inputs), rules, Catalog(rules))
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        write_project(render_project(rec, name="yolo_digits"), project)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "YOLO_OFFLINE": "1", "https_proxy": CLOSED,
               "HTTPS_PROXY": CLOSED, "http_proxy": CLOSED, "HTTP_PROXY": CLOSED}  # fmt: skip
        if args.site is not None:
            env["PYTHONPATH"] = str(args.site)
        cmd = [sys.executable, "train.py", "--epochs", str(args.epochs), "--imgsz", str(args.imgsz),
               "--set", "data.workers=0", "--set", "train.device=cpu"]  # fmt: skip
        subprocess.run(cmd, cwd=project, env=env, check=True, stdout=subprocess.DEVNULL)
        summary = json.loads((project / "runs" / "train" / "summary.json").read_text())
    print(f"{rec.generated.name if rec.generated else '?'} on the digits demo, {args.imgsz} px, {args.threads} threads: "
          f"{json.dumps(summary)}")  # fmt: skip


if __name__ == "__main__":
    main()
