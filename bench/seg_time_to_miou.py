"""Seconds from nothing to a target validation mIoU on the semantic-segmentation demo (digit scenes), on CPU.

    python bench/seg_time_to_miou.py                      # unet_small, target 30% mIoU, 2 threads
    python bench/seg_time_to_miou.py --target 50 --threads 2 --max-seconds 1800

Lays the task part out as a generated project would (tests/seg_support.py), writes the bundled demo (320 train
/ 64 val scenes of 64x64 with 1-3 digits, 11 classes), trains ``--arch`` with AdamW at a constant learning rate
through the task's own hooks (data checks, transforms, loss, metrics), validates after each epoch and prints
the seconds (demo writing included) at which the val mIoU first reached ``--target``. Prints figures; never
fails on speed.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from seg_support import project_modules  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="unet_small")
    p.add_argument("--target", type=float, default=30.0, help="val mIoU in percent")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--max-seconds", type=float, default=1200)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp, project_modules(Path(tmp) / "project") as seg:
        start = time.perf_counter()
        root = seg.data.prepare_demo(Path(tmp) / "scenes")
        cfg = {
            "data": {"root": str(root), "image_size": 64, "batch_size": args.batch_size, "num_workers": 0,
                     "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
            "augmentation": {"ops": [{"name": "scale_jitter", "scale": [0.75, 1.25]}, {"name": "random_crop"},
                                     {"name": "horizontal_flip"}]},
            "model": {"arch": args.arch, "num_classes": 11, "norm": "batch", "pretrained": False},
            "loss": {"name": "ce+dice", "class_weights": "none", "aux_weight": 0.5},
            "run": {"seed": 0},
        }  # fmt: skip
        loaded = seg.task.build_data(cfg, 64, rank=0, world_size=1, pin_memory=False)
        meta = seg.task.data_meta(cfg, loaded)
        model = seg.task.build_model(cfg, meta)
        loss_fn = seg.task.build_loss(cfg, meta)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        steps, epoch, miou = 0, 0, 0.0
        print(f"{args.arch}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, {loaded.describe()}")
        while time.perf_counter() - start < args.max_seconds:
            model.train()
            loaded.train_sampler.set_epoch(epoch)
            for images, masks in loaded.train_loader:
                loss = loss_fn(model(images), masks)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                steps += 1
            epoch += 1
            metrics = seg.task.Metrics(meta, torch.device("cpu"))
            model.eval()
            with torch.no_grad():
                for images, masks in loaded.val_loader:
                    metrics.update(model(images), masks)
            miou = metrics.compute()["val_miou"]
            elapsed = time.perf_counter() - start
            print(f"epoch {epoch:3d}  step {steps:5d}  {elapsed:7.1f} s  val mIoU {miou:5.1f}%", flush=True)
            if miou >= args.target:
                print(f"target {args.target:.0f}% val mIoU reached in {elapsed:.1f} s ({steps} steps, "
                      f"{args.threads} threads, {args.arch})")  # fmt: skip
                return
        print(f"target {args.target:.0f}% not reached in {args.max_seconds:.0f} s (best so far {miou:.1f}%)")


if __name__ == "__main__":
    main()
