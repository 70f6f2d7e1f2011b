"""Seconds from `python train.py` to the demo's target validation mIoU, and the generated loop's overhead.

    python bench/seg_time_to_miou.py                              # unet_small, target 30 % mIoU, 2 threads
    python bench/seg_time_to_miou.py --target 50 --max-seconds 1800 --set loss.name=ce+dice

1. Scaffolds the digit-scenes demo project (`archadvisor scaffold --task semantic-segmentation --images 1800
   --classes 11 --image-size 32 --compute cpu --target cloud-cpu --no-pretrained --no-hflip --arch ARCH`), runs
   its `python train.py` (demo writing included; any `--set` passed on) and prints the seconds at which the
   epoch line first shows val_miou >= --target, then stops the run.
2. The generated loop (train.train_one_epoch: autocast, accumulation, scheduler, the progress bar) against a
   bare forward/backward/step loop, same model, same batches already in memory, same optimizer, fp32 and no
   accumulation in both: steps/s of each and their ratio (target >= 0.95).
Prints figures; never fails on speed.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _train_runs import time_to_target  # bench/ is on sys.path when a bench runs

REPO = Path(__file__).resolve().parents[1]


def scaffold(arch: str, out: Path) -> Path:
    from archadvisor.catalog import Catalog
    from archadvisor.engine import recommend
    from archadvisor.ruleset import load_rules
    from archadvisor.scaffold import render_project, write_project
    from archadvisor.spec import build_spec

    rules = load_rules()
    spec = build_spec(task="semantic-segmentation", images=1800, classes=11, image_size=32, compute="cpu",
                      target="cloud-cpu", pretrained=False, hflip=False, arch=arch)  # fmt: skip
    write_project(render_project(recommend(spec, rules, Catalog(rules)), name="demo"), out)
    return out


def loop_overhead(project: Path, threads: int, steps: int) -> None:
    import torch

    torch.set_num_threads(threads)
    sys.path.insert(0, str(project))
    os.chdir(project)
    import task
    import train

    cfg = train.load_config(train.parse_args(["--set", "data.num_workers=0"]))
    loaded = task.build_data(cfg, task.data_stage(cfg, 0), rank=0, world_size=1, pin_memory=False)
    meta = task.data_meta(cfg, loaded, log=lambda *a, **k: None)
    batches = [b for _, b in zip(range(steps), loaded.train_loader, strict=False)]
    loss_fn = task.build_loss(cfg, meta)
    device = torch.device("cpu")
    t = {**cfg["training"], "grad_accum_steps": 1}

    def fresh() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = task.build_model(cfg, meta, log=lambda *a, **k: None)
        return model, train.build_optimizer(model, t)

    def bare() -> float:
        model, opt = fresh()
        model.train()
        start = time.perf_counter()
        for images, masks in batches:
            loss = loss_fn(model(images), masks)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return len(batches) / (time.perf_counter() - start)

    def generated() -> float:
        model, opt = fresh()
        scheduler = train.build_scheduler(opt, t, len(batches))
        start = time.perf_counter()
        train.train_one_epoch(model, batches, opt, loss_fn, device=device, scheduler=scheduler, progress="bench")
        return len(batches) / (time.perf_counter() - start)

    bare(), generated()  # warm-up (allocator, oneDNN kernels)
    b = max(bare() for _ in range(3))
    g = max(generated() for _ in range(3))
    print(f"loop overhead ({cfg['model']['arch']}, batch {cfg['data']['batch_size']}, {len(batches)} steps, "
          f"{threads} threads, fp32): bare {b:.2f} steps/s, train_one_epoch {g:.2f} steps/s, ratio {g / b:.3f}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="unet_small")
    p.add_argument("--target", type=float, default=30.0, help="val mIoU in percent")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-seconds", type=float, default=1200)
    p.add_argument("--steps", type=int, default=20, help="batches for the loop-overhead figure")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to train.py")
    p.add_argument("--skip-train", action="store_true", help="only the loop-overhead figure")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = scaffold(args.arch, Path(tmp) / "demo")
        if not args.skip_train:
            time_to_target(project, "val_miou", "val mIoU", args.target, args.threads, args.max_seconds, args.set)
        loop_overhead(project, args.threads, args.steps)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
