"""Steps/s of the generated training loop against a bare forward/backward/step loop, same model and batch.

    python bench/train_loop_overhead.py [--rec rec.json] [--steps 50] [--repeats 6] [--threads N] [--json]

Scaffolds the digits demo (the CLI's recommendation, or ``--rec``), imports its train.py and times:
  bare       channels-last copy of the batch, autocast forward, loss, backward, optimizer.step, zero_grad
  generated  train.train_one_epoch with everything config.yaml turns on (EMA update, LR schedule, clipping,
             MixUp/CutMix, accumulation, channels-last, loss scaler, running loss, progress bar)
on one fixed batch of the configured size, alternating bare/generated runs so both see the same machine
load, and prints the median steps/s of each and the ratio (the project's target: >= 0.95). Data
loading is out of both loops: this measures the loop's own overhead. Prints figures only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from train_time_to_accuracy import scaffold_demo


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rec", type=Path, help="render this Recommendation JSON instead of calling the CLI")
    p.add_argument("--steps", type=int, default=50, help="optimizer steps per timed run")
    p.add_argument("--repeats", type=int, default=6, help="timed runs of each loop")
    p.add_argument("--threads", type=int, help="torch threads (default: what train.py picks beside its loader workers)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "digits"
        scaffold_demo(project, args.rec)
        sys.path.insert(0, str(project))
        result = measure(project, args.steps, args.repeats, args.threads)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['arch']} batch {result['batch']} @ {result['image_size']} px, {result['threads']} threads, "
          f"amp {result['amp']}, channels_last {result['channels_last']}, features: {', '.join(result['features'])}")  # fmt: skip
    print(f"bare loop:      {result['bare_steps_per_s']:.2f} steps/s")
    print(f"generated loop: {result['generated_steps_per_s']:.2f} steps/s")
    print(f"ratio generated/bare: {result['ratio']:.3f} (target >= 0.95)")


def measure(project: Path, steps: int, repeats: int, threads: int | None) -> dict[str, object]:
    import task  # the generated project's task part and core loop (on sys.path)
    import torch
    import train
    import yaml
    from data import default_num_workers
    from torch import nn
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    if threads:
        torch.set_num_threads(threads)
    else:  # the same policy as a training run: the CPUs left beside the default loader workers
        train.size_cpu_threads(default_num_workers(1), world=1)
    cfg = yaml.safe_load((project / "config.yaml").read_text(encoding="utf-8"))
    m, t, d = cfg["model"], cfg["training"], cfg["data"]
    device = torch.device("cpu")
    num_classes = m["num_classes"]
    torch.manual_seed(0)
    images = torch.randn(d["batch_size"], 3, d["image_size"], d["image_size"])
    targets = torch.randint(0, num_classes, (d["batch_size"],))
    amp_dtype = train.autocast_dtype(device, t["amp"])

    meta = {"arch": m["arch"], "num_classes": num_classes, "classes": [str(c) for c in range(num_classes)],
            "small_input": m["small_input"], "image_size": d["image_size"]}  # fmt: skip
    cfg["model"]["pretrained"] = False  # a benchmark never downloads weights

    def fresh_model() -> nn.Module:
        torch.manual_seed(0)
        model = task.build_model(cfg, meta, log=lambda *a, **k: None)
        return model.to(memory_format=torch.channels_last) if t["channels_last"] else model

    # bare: the least a training step can do with this model, optimizer and precision
    bare_model = fresh_model()
    bare_opt = train.build_optimizer(bare_model, t)
    criterion = task.build_loss(cfg)

    def bare(n: int) -> None:
        bare_model.train()
        for _ in range(n):
            # a loader yields NCHW batches: any channels-last loop converts each one
            x = images.contiguous(memory_format=torch.channels_last) if t["channels_last"] else images
            with torch.autocast("cpu", dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = criterion(bare_model(x), targets)
            loss.backward()
            bare_opt.step()
            bare_opt.zero_grad(set_to_none=True)

    # generated: train_one_epoch with the run's own optimizer, schedule, EMA, scaler and MixUp/CutMix
    gen_model = fresh_model()
    gen_opt = train.build_optimizer(gen_model, t)
    scheduler = train.build_scheduler(gen_opt, {**t, "epochs": 10_000}, steps_per_epoch=steps)
    ema = None
    if t["ema_decay"]:
        ema = AveragedModel(gen_model, multi_avg_fn=get_ema_multi_avg_fn(t["ema_decay"]), use_buffers=True)
    scaler = torch.amp.GradScaler("cpu", enabled=amp_dtype == torch.float16)
    mix = task.train_batch_transform(cfg, meta)

    def generated(n: int) -> None:
        batches = [(images, targets)] * (n * t["grad_accum_steps"])
        train.train_one_epoch(
            gen_model, batches, gen_opt, criterion, device=device, scheduler=scheduler, ema=ema, scaler=scaler,
            amp_dtype=amp_dtype, batch_transform=mix, accum_steps=t["grad_accum_steps"], clip_norm=t["grad_clip_norm"],
            channels_last=t["channels_last"], progress="bench",
        )  # fmt: skip

    bare(3)
    generated(3)
    bare_rates, gen_rates = [], []
    for i in range(repeats):
        pair = ((bare, bare_rates), (generated, gen_rates))
        for fn, rates in pair if i % 2 == 0 else pair[::-1]:  # alternate which loop goes first
            start = time.perf_counter()
            fn(steps)
            rates.append(steps / (time.perf_counter() - start))
    features = [name for name, on in (("ema", ema is not None), ("schedule", True), ("clip", bool(t["grad_clip_norm"])),
                ("mix", mix is not None), (f"accum x{t['grad_accum_steps']}", t["grad_accum_steps"] > 1))
                if on]  # fmt: skip
    bare_rate, gen_rate = statistics.median(bare_rates), statistics.median(gen_rates)
    return {
        "arch": m["arch"], "batch": d["batch_size"], "image_size": d["image_size"], "threads": torch.get_num_threads(),
        "amp": str(amp_dtype), "channels_last": t["channels_last"], "features": features,
        "bare_steps_per_s": bare_rate, "generated_steps_per_s": gen_rate, "ratio": gen_rate / bare_rate,
        "bare_runs": bare_rates, "generated_runs": gen_rates,
    }  # fmt: skip


if __name__ == "__main__":
    main()
