"""Seconds from a fresh model to the digits-detection demo's target mAP@.5 on CPU, and the loop's steps/s.

    python bench/det_time_to_map.py                       # Faster R-CNN MobileNetV3-FPN at 128 px, target 50 %
    python bench/det_time_to_map.py --target 30 --max-seconds 300 --arch ssdlite320_mobilenet_v3_large

Assembles the detection task part as a generated project holds it (tests/test_detection.py's assemble), writes
the bundled demo (scikit-learn's digits placed on 128 px canvases, 10 classes), measures the untrained model's
val mAP@.5, then trains with the task's hooks (SGD, momentum 0.9, linear warmup) and validates every
--eval-every steps until the target or --max-seconds. Prints one line per validation and a final summary;
validation time is excluded from the training seconds and the steps/s.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_detection import assemble  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--arch", default="fasterrcnn_mobilenet_v3_large_fpn")
    p.add_argument("--size", type=int, default=128, help="model.min_size = max_size (SSDlite: its square side)")
    p.add_argument("--target", type=float, default=50.0, help="val mAP@.5 in percent")
    p.add_argument("--max-seconds", type=float, default=900)
    p.add_argument("--eval-every", type=int, default=120, help="optimizer steps between validations")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.04)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    project = assemble(Path(tempfile.mkdtemp(prefix="det-bench-")) / "project")
    sys.path.insert(0, str(project))
    data, task = importlib.import_module("data"), importlib.import_module("task")
    spec = importlib.util.spec_from_file_location("det_conftest", project / "tests" / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    TINY_CONFIG = conftest.TINY_CONFIG  # noqa: N806 (the task part's test configuration: every knob it reads)

    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["data"].update(root=None, batch_size=args.batch_size)
    cfg["model"].update(arch=args.arch, min_size=args.size, max_size=args.size)
    if not task.VARIANTS[args.arch].two_stage:
        cfg["model"]["detector_kwargs"] = {}
    cfg["augmentation"]["ops"] = [{"name": "photometric"}, {"name": "horizontal_flip"}]
    loaded = data.load_data(cfg)
    meta = task.data_meta(cfg, loaded)
    torch.manual_seed(0)
    model = task.build_model(cfg, meta)
    cpu = torch.device("cpu")

    def val_map50() -> float:
        metrics = task.Metrics(meta, cpu)
        model.eval()
        with torch.no_grad():
            for batch in loaded.val_loader:
                inputs, targets = task.to_device(batch, cpu)
                metrics.update(model(inputs), targets)
        model.train()
        return metrics.compute()["val_map50"]

    untrained = val_map50()
    print(f"{args.arch} at {args.size} px, {loaded.describe()}; untrained val mAP@.5 {untrained:.2f} %", flush=True)
    params = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=0.9, weight_decay=1e-4)
    warmup = 100  # linear warmup iterations, as torchvision's references/detection (lr_warmup_epochs)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    loss_fn = task.build_loss(cfg)
    train_seconds, steps, best, reached, epoch = 0.0, 0, 0.0, None, 0
    model.train()
    while train_seconds < args.max_seconds and reached is None:
        loaded.train_sampler.set_epoch(epoch)
        for batch in loaded.train_loader:
            start = time.perf_counter()
            inputs, targets = task.to_device(batch, cpu)
            loss = loss_fn(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimizer.step()
            schedule.step()
            train_seconds += time.perf_counter() - start
            steps += 1
            if steps % args.eval_every == 0:
                m50 = val_map50()
                best = max(best, m50)
                print(f"step {steps} ({train_seconds:.0f} s training, {steps / train_seconds:.2f} steps/s): "
                      f"loss {loss.item():.3f}, val mAP@.5 {m50:.2f} %", flush=True)  # fmt: skip
                if m50 >= args.target:
                    reached = train_seconds
                    break
            if train_seconds >= args.max_seconds:
                break
        epoch += 1
    outcome = (
        f"reached {args.target:.0f} % in {reached:.0f} s" if reached else f"best {best:.2f} % (target not reached)"
    )
    print(f"summary: {args.arch} {args.size} px, batch {args.batch_size}, {args.threads} threads: untrained "
          f"{untrained:.2f} % -> {outcome}; {steps} steps, {steps / max(train_seconds, 1e-9):.2f} steps/s")  # fmt: skip


if __name__ == "__main__":
    main()
