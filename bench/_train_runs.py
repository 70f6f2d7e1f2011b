"""Shared by the task benches: time a scaffolded project's `python train.py` until its val metric reaches a target."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path


def time_to_target(
    project: Path, metric: str, label: str, target: float, threads: int, max_seconds: float, sets: list[str]
) -> None:
    """Run ``python train.py`` in ``project`` (each ``--set`` passed on) and print the seconds at which an epoch
    line first shows ``metric`` >= ``target`` (percent), then stop the run; or the best value when the time runs out."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "train.py", "--out", "runs/bench", "--overwrite", *(a for s in sets for a in ("--set", s))]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    best = 0.0
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line.rstrip(), flush=True)
            m = re.search(rf"{metric} (\d+\.\d+)", line)
            if m:
                best = max(best, float(m.group(1)))
                elapsed = time.perf_counter() - start
                if best >= target:
                    print(f"target {target:.0f}% {label} reached {elapsed:.1f} s after `python train.py` "
                          f"({threads} threads)")  # fmt: skip
                    return
                if elapsed > max_seconds:
                    break
        print(f"target {target:.0f}% not reached ({time.perf_counter() - start:.0f} s; best {best:.2f}%)")
    finally:
        proc.kill()
        proc.wait()
