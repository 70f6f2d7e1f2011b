"""Seconds from `python train.py` to the digits-detection demo's target val mAP@.5, and the loop's overhead.

    python bench/det_time_to_map.py                               # the demo's recommendation, target 5 %
    python bench/det_time_to_map.py --arch fasterrcnn_mobilenet_v3_large_320_fpn --target 30 --max-seconds 900

1. Scaffolds the digits-detection demo project (`archadvisor scaffold --task detection --images 480 --classes 10
   --image-size 128 --compute cpu --target cloud-cpu --no-pretrained --no-hflip --permissive [--arch ARCH]`: without
   --arch the demo's permissive recommendation, SSDlite (the YOLO top choice is an ultralytics project, whose
   train.py this bench does not drive); scikit-learn's digits placed on
   128 px canvases, 480 train / 96 val), scores the untrained model on the val split (the floor a run must
   clearly beat), then runs the project's `python train.py` (demo writing included; any `--set` passed on) and
   prints the seconds at which an epoch line first shows val_map50 >= --target, then stops the run.
2. The generated loop (train.train_one_epoch: autocast, accumulation, scheduler, the progress bar) against a
   bare forward/backward/step loop, same model, same batches already in memory, same optimizer, no accumulation
   in both: steps/s of each and their ratio (target >= 0.95).
Prints figures; never fails on speed. Measured (SSDlite, the recipe as scaffolded, 120 optimizer steps an epoch,
1 thread, next to a CI run on the same 2 cores): untrained 0.00 % val mAP@.5; 0.35 / 0.59 / 9.2 % after epochs
1 / 2 / 3 (~20 s each), so the default target of 5 % is reached 72.9 s after `python train.py`. (A run whose
schedule is squeezed into 3 epochs, `--epochs 3`, decays the LR too soon: 0.97 %.)
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _train_runs import time_to_target  # bench/ is on sys.path when a bench runs

REPO = Path(__file__).resolve().parents[1]
DEMO = ["--task", "detection", "--images", "480", "--classes", "10", "--image-size", "128", "--compute", "cpu",
        "--target", "cloud-cpu", "--no-pretrained", "--no-hflip", "--permissive"]  # fmt: skip


def scaffold(arch: str | None, out: Path) -> Path:
    """`archadvisor scaffold` as a user runs it (a YOLO top choice becomes the torchvision model it names)."""
    from typer.testing import CliRunner

    from archadvisor.cli import app

    result = CliRunner().invoke(app, ["scaffold", *DEMO, *(["--arch", arch] if arch else []), "--out", str(out)])
    if result.exit_code != 0:
        raise SystemExit(result.output)
    print(result.output.strip().splitlines()[0], flush=True)
    return out


def project_config(project: Path, sets: list[str]) -> dict:
    sys.path.insert(0, str(project))
    os.chdir(project)
    import train

    return train.load_config(train.parse_args([*(a for s in sets for a in ("--set", s)), "--workers", "0"]))


def untrained_map50(project: Path, sets: list[str], threads: int) -> float:
    """val mAP@.5 of the fresh model, the run's seed (what `python train.py` starts from)."""
    cfg = project_config(project, sets)  # puts the project on sys.path
    import task
    import torch

    torch.set_num_threads(threads)
    loaded = task.build_data(cfg, task.data_stage(cfg, 0), rank=0, world_size=1, pin_memory=False)
    meta = task.data_meta(cfg, loaded, log=lambda *a, **k: None)
    torch.manual_seed(cfg["run"]["seed"])
    model = task.build_model(cfg, meta, log=lambda *a, **k: None).eval()
    metrics = task.Metrics(meta, torch.device("cpu"))
    with torch.no_grad():
        for batch in loaded.val_loader:
            inputs, targets = task.to_device(batch, torch.device("cpu"))
            metrics.update(model(inputs), targets)
    return metrics.compute()["val_map50"]


def loop_overhead(project: Path, threads: int, steps: int, sets: list[str]) -> None:
    cfg = project_config(project, sets)  # puts the project on sys.path
    import task
    import torch
    import train

    torch.set_num_threads(threads)
    loaded = task.build_data(cfg, task.data_stage(cfg, 0), rank=0, world_size=1, pin_memory=False)
    meta = task.data_meta(cfg, loaded, log=lambda *a, **k: None)
    device = torch.device("cpu")
    batches = [b for _, b in zip(range(steps), loaded.train_loader, strict=False)]
    loss_fn = task.build_loss(cfg, meta)
    t = {**cfg["training"], "grad_accum_steps": 1}
    amp_dtype = train.autocast_dtype(device, t["amp"])

    def fresh() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = task.build_model(cfg, meta, log=lambda *a, **k: None)
        return model, train.build_optimizer(model, t)

    def bare() -> float:
        model, opt = fresh()
        model.train()
        start = time.perf_counter()
        for batch in batches:
            inputs, targets = task.to_device(batch, device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = loss_fn(model(inputs), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return len(batches) / (time.perf_counter() - start)

    def generated() -> float:
        model, opt = fresh()
        scheduler = train.build_scheduler(opt, t, len(batches))
        start = time.perf_counter()
        train.train_one_epoch(model, batches, opt, loss_fn, device=device, scheduler=scheduler, amp_dtype=amp_dtype,
                              progress="bench")  # fmt: skip
        return len(batches) / (time.perf_counter() - start)

    bare(), generated()  # warm-up (allocator, oneDNN kernels)
    b = max(bare() for _ in range(3))
    g = max(generated() for _ in range(3))
    print(f"loop overhead ({cfg['model']['arch']} at {cfg['model']['min_size']} px, batch {cfg['data']['batch_size']}, "
          f"{len(batches)} steps, {threads} threads, amp {amp_dtype}): bare {b:.2f} steps/s, train_one_epoch "
          f"{g:.2f} steps/s, ratio {g / b:.3f}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", help="the model (default: the demo's recommendation)")
    p.add_argument("--target", type=float, default=5.0, help="val mAP@.5 in percent")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-seconds", type=float, default=1800)
    p.add_argument("--steps", type=int, default=20, help="batches for the loop-overhead figure")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to train.py")
    p.add_argument("--skip-train", action="store_true", help="only the loop-overhead figure")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = scaffold(args.arch, Path(tmp) / "demo")
        if not args.skip_train:
            print(f"untrained val mAP@.5: {untrained_map50(project, args.set, args.threads):.2f}%", flush=True)
            time_to_target(project, "val_map50", "val mAP@.5", args.target, args.threads, args.max_seconds, args.set)
        loop_overhead(project, args.threads, args.steps, args.set)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
