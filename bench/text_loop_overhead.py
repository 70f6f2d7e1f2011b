"""Steps/s and tokens/s of a generated text project's training loop against a bare forward/backward/step loop.

    python bench/text_loop_overhead.py [--arch NAME ...] [--steps 40] [--repeats 5] [--threads N]

Scaffolds the fortunes demo as `archadvisor scaffold --task text --samples 471 --classes 4 --compute cpu
--no-pretrained --arch NAME` would, imports its train.py and times, on the demo's real training batches (length-
bucketed, dynamically padded, as the loader yields them):
  bare       autocast forward, loss, backward, optimizer.step, zero_grad
  generated  train.train_one_epoch with what config.yaml turns on (schedule, clipping, AMP, running loss, bar)
  clipped    bare plus clip_grad_norm_(1.0): what gradient clipping alone costs (clip_cost), config or not
alternating them so all see the same machine load. Prints the median steps/s, the ratio generated / bare
(target >= 0.95), the clipping cost and the non-padding training tokens per second of the generated loop. Data
loading is outside the loops. Figures only; never fails on speed.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OWNED = ("fasttext_bag", "text_transformer_small", "bilstm_classifier", "bigru_classifier")
MODULES = ("task", "data", "model", "train", "tokenizer", "pretrained", "checkpoint", "errors", "weights")


def scaffold(arch: str, out: Path) -> None:
    from archadvisor.catalog import Catalog
    from archadvisor.engine import recommend
    from archadvisor.ruleset import load_rules
    from archadvisor.scaffold import render_project, write_project
    from archadvisor.spec import build_spec

    rules = load_rules()
    spec = build_spec(task="text", images=471, classes=4, compute="cpu", target="cloud-cpu", pretrained=False,
                      arch=arch)  # fmt: skip
    write_project(render_project(recommend(spec, rules, Catalog(rules)), name="fortunes"), out)


def measure(arch: str, folder: Path, steps: int, repeats: int, threads: int | None) -> dict[str, object]:
    project = folder / arch
    scaffold(arch, project)
    for name in MODULES:
        sys.modules.pop(name, None)
    sys.path.insert(0, str(project))
    try:
        import torch
        import yaml

        task, train = importlib.import_module("task"), importlib.import_module("train")
        torch.set_num_threads(threads or 1)
        cfg = yaml.safe_load((project / "config.yaml").read_text(encoding="utf-8"))
        cfg["run"]["out"] = str(project / "runs" / "bench")
        t = cfg["training"]
        loaded = task.build_data(cfg, 0, rank=0, world_size=1, pin_memory=False)
        meta = task.data_meta(cfg, loaded, log=lambda *a, **k: None)
        batches = list(loaded.train_loader)
        pad = meta["pad_id"]
        device = torch.device("cpu")
        amp = train.autocast_dtype(device, t["amp"])
        criterion = task.build_loss(cfg, meta)

        def fresh() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
            torch.manual_seed(0)
            model = task.build_model(cfg, meta, log=lambda *a, **k: None)
            return model, train.build_optimizer(model, t)

        bare_model, bare_opt = fresh()

        def bare(n: int, clip: bool = False) -> None:
            bare_model.train()
            for i in range(n):
                ids, targets = batches[i % len(batches)]
                with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
                    loss = criterion(bare_model(ids), targets)
                loss.backward()
                if clip:
                    torch.nn.utils.clip_grad_norm_(bare_model.parameters(), 1.0)
                bare_opt.step()
                bare_opt.zero_grad(set_to_none=True)

        def clipped(n: int) -> None:
            bare(n, clip=True)

        gen_model, gen_opt = fresh()
        scheduler = train.build_scheduler(gen_opt, {**t, "epochs": 10_000}, steps_per_epoch=len(batches))

        def generated(n: int) -> None:
            train.train_one_epoch(gen_model, [batches[i % len(batches)] for i in range(n)], gen_opt, criterion,
                                  device=device, scheduler=scheduler, amp_dtype=amp, accum_steps=1,
                                  clip_norm=t["grad_clip_norm"], progress="bench")  # fmt: skip

        bare(3)
        generated(3)
        bare_rates, gen_rates, clip_rates = [], [], []
        for r in range(repeats):
            loops = ((bare, bare_rates), (generated, gen_rates), (clipped, clip_rates))
            for fn, rates in loops if r % 2 == 0 else loops[::-1]:
                start = time.perf_counter()
                fn(steps)
                rates.append(steps / (time.perf_counter() - start))
        tokens_per_step = sum(int((batches[i % len(batches)][0] != pad).sum()) for i in range(steps)) / steps
        gen = statistics.median(gen_rates)
        return {"arch": arch, "batch": cfg["data"]["batch_size"], "amp": str(amp), "threads": torch.get_num_threads(),
                "bare_steps_per_s": statistics.median(bare_rates), "generated_steps_per_s": gen,
                "ratio": gen / statistics.median(bare_rates), "tokens_per_s": gen * tokens_per_step,
                "clip_norm": t["grad_clip_norm"],
                "clip_cost": 1 - statistics.median(clip_rates) / statistics.median(bare_rates)}  # fmt: skip
    finally:
        sys.path.remove(str(project))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", action="append", choices=OWNED, help="default: every owned text model")
    p.add_argument("--steps", type=int, default=40, help="optimizer steps per timed run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each loop")
    p.add_argument("--threads", type=int, help="torch threads (default 1)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.arch or OWNED:
            r = measure(arch, Path(tmp), args.steps, args.repeats, args.threads)
            print(f"{r['arch']}: batch {r['batch']}, amp {r['amp']}, {r['threads']} thread(s): bare "
                  f"{r['bare_steps_per_s']:.1f} steps/s, generated {r['generated_steps_per_s']:.1f} steps/s, "
                  f"ratio {r['ratio']:.3f} (target >= 0.95); {r['tokens_per_s']:,.0f} train tokens/s; clipping "
                  f"would cost {100 * r['clip_cost']:.1f} % of a bare step (config: grad_clip_norm {r['clip_norm']})",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
