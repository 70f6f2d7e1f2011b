"""Seconds from `python train.py` to >= 98.5 % validation accuracy on the scaffolded digits demo.

    python bench/train_time_to_accuracy.py [--target 98.5] [--rec rec.json] [--threads N] [--json]

Scaffolds the demo the way a user would (`archadvisor scaffold --task classification --images 1437
--classes 10 --image-size 32 --compute cpu --target cloud-cpu --no-pretrained --no-hflip`; or renders
``--rec``), starts `python train.py` in it, and reads its per-epoch lines: the figure is the wall time from
starting the process (interpreter and torch start-up included) to the end of the first epoch whose
validation accuracy reaches the target; the run is stopped there. The project's target: < 30 s on
2 cores; scikit-learn's SVC reaches 98.7 % on the same split. Prints figures only: speed never fails CI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEMO_FLAGS = ["--task", "classification", "--images", "1437", "--classes", "10", "--image-size", "32",
              "--compute", "cpu", "--target", "cloud-cpu", "--no-pretrained", "--no-hflip"]  # fmt: skip
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+) .*val_acc1 ([\d.]+)\s+\(([\d.]+) s\)")


def scaffold_demo(out: Path, rec_path: Path | None) -> None:
    """The demo project in ``out``: from the CLI (what users get), or from a Recommendation JSON."""
    if rec_path is not None:
        from archadvisor.recommendation import Recommendation
        from archadvisor.scaffold import render_project, write_project

        rec = Recommendation.from_json(json.loads(rec_path.read_text(encoding="utf-8")))
        write_project(render_project(rec, name="digits"), out, force=False)
        return
    cmd = [sys.executable, "-m", "archadvisor", "scaffold", *DEMO_FLAGS, "--name", "digits", "--out", str(out)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def time_to_accuracy(project: Path, target: float, max_seconds: float, env: dict[str, str]) -> dict[str, object]:
    """Run train.py until an epoch reaches ``target`` % (or it ends / times out); the timings per epoch."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "train.py", "--out", "runs/bench"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
    )  # fmt: skip
    epochs: list[dict[str, float]] = []
    reached: float | None = None
    planned = None
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            match = EPOCH_LINE.match(line)
            if match is None:
                continue
            planned = int(match[2])
            epochs.append({"epoch": int(match[1]), "val_acc1": float(match[3]), "seconds": float(match[4]),
                           "elapsed": time.perf_counter() - start})  # fmt: skip
            if float(match[3]) >= target:
                reached = epochs[-1]["elapsed"]
                break
            if time.perf_counter() - start > max_seconds:
                break
    finally:
        proc.kill()
        proc.wait()
    return {"seconds_to_target": reached, "epochs": epochs, "total_epochs_planned": planned}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", type=float, default=98.5, help="validation top-1 %% to reach")
    p.add_argument("--rec", type=Path, help="render this Recommendation JSON instead of calling the CLI")
    p.add_argument("--threads", type=int, help="OMP_NUM_THREADS for train.py (default: torch's choice)")
    p.add_argument("--max-seconds", type=float, default=600)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()

    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "digits"
        t0 = time.perf_counter()
        scaffold_demo(project, args.rec)
        scaffold_seconds = time.perf_counter() - t0
        result = time_to_accuracy(project, args.target, args.max_seconds, env)
    result.update(target=args.target, scaffold_seconds=scaffold_seconds, cpus=os.cpu_count(),
                  threads=env.get("OMP_NUM_THREADS", "default"))  # fmt: skip
    if args.json:
        print(json.dumps(result))
        return
    print(f"scaffold: {scaffold_seconds:.2f} s")
    for e in result["epochs"]:
        print(
            f"  epoch {e['epoch']:>3}: val_acc1 {e['val_acc1']:6.2f} %  ({e['seconds']:.1f} s, at {e['elapsed']:.1f} s)"
        )
    if result["seconds_to_target"] is None:
        print(f"time to {args.target} % val accuracy: not reached in {len(result['epochs'])} epochs")
    else:
        epoch = result["epochs"][-1]["epoch"]
        print(
            f"time to {args.target} % val accuracy: {result['seconds_to_target']:.1f} s (epoch {epoch}; target < 30 s)"
        )


if __name__ == "__main__":
    main()
