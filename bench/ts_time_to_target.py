"""Seconds to the time-series demos' targets on 2 cores, with the task parts and model files of templates/.

    python bench/ts_time_to_target.py [--threads 2] [--only gunpoint|co2|loop] [--json]

* GunPoint (classification): each model in CLASSIFIERS trained on the stratified 80% of TRAIN (seed 0) with
  AdamW at the recipe's batch min(N_train / 10, 16) = 5 (the UCR baselines' rule, Wang et al. 2017); the figure
  is the seconds of training until the validation split (the other 20% of TRAIN) first reaches TARGET_ACC
  (100%), and the TEST accuracy of that checkpoint, scored once, against the 1-NN Euclidean baseline on the same
  split (Wang et al. 2017, arXiv:1611.06455, report 100% test accuracy on GunPoint for FCN and ResNet).
* Mauna Loa CO2 monthly (forecasting, lookback 36, horizon 12, the last 60 months as validation): each model in
  FORECASTERS trained with L1 loss at the recipe's batch 16; the figure is the seconds until validation MASE
  first goes below TARGET_MASE (0.5, i.e. half the in-sample seasonal-naive error; the seasonal naive itself
  scores ~1.27 here).

The time-to-target runs use the task parts and model files directly (a plain loop, so each model's figure is its
own); the loop figure scaffolds each task's project (``archadvisor scaffold``: GunPoint with FCN, CO2 with DLinear)
and times its ``train.train_one_epoch`` (schedule, clipping, augmentation, running loss, progress bar), and the
same without the recipe's augmentation (the loop's own overhead), against a bare forward/backward/step loop on the
same model and a real batch from its loader, alternating them (the project's target: >= 0.95). The recipe's
augmentation stays inside the generated loop's figure, wherever the task does it: a batch transform between the
steps is timed with the loop; the forecasting task draws jitter and scaling for a whole epoch at once in its
training dataset (``task.EpochAugmented``, seeded by (run seed, epoch) for exact --resume), and the generated
loop's timed region includes one such draw per epoch's worth of steps (``len(train_loader)``), so the
augmentation's cost is amortized over the steps as in training, not left out as data loading.
``ratio_without_augmentation`` shows the loop's own overhead beside it. It prints figures only: speed never fails
CI.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from ts_support import task_dir, task_module  # noqa: E402

from archadvisor.resources import load_model_module  # noqa: E402

CLASSIFIERS = [
    ("conv1d_baselines", "fcn", 1e-3),
    ("conv1d_baselines", "resnet1d", 1e-3),
    ("rnn_classifier", "gru", 3e-3),
]
FORECASTERS = [("dlinear", "nlinear", 1e-2), ("dlinear", "dlinear", 1e-2), ("rnn_forecaster", "lstm_forecaster", 1e-3),
               ("patchtst", "patchtst_small", 1e-3)]  # fmt: skip
TARGET_ACC, TARGET_MASE = 100.0, 0.5


def classification(max_epochs: int = 150) -> list[dict]:
    data = task_module("time-series-classification", "data")
    train, test = data.load_split(task_dir("time-series-classification") / "demo" / "GunPoint")
    tr, va = data.stratified_split(train.y, 0.2, seed=0)
    fit, val = train.subset(tr), train.subset(va)
    baseline = data.one_nn_accuracy(fit, test)
    mean, std = data.channel_stats(fit)

    def tensors(s):
        return torch.from_numpy((s.X - mean[:, None]) / std[:, None]), torch.from_numpy(s.y)

    (X, y), (Xv, yv), (Xt, yt) = tensors(fit), tensors(val), tensors(test)
    batch = max(2, min(len(train.y) // 10, 16))  # rules/recipes.yaml lr.task.time_series_classification
    rows = []
    for file, arch, lr in CLASSIFIERS:
        torch.manual_seed(0)
        model = load_model_module(file).build_model(arch, len(train.classes), 1)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
        start, steps, row = time.perf_counter(), 0, {"model": arch, "baseline_test_acc1": baseline}
        for epoch in range(1, max_epochs + 1):
            model.train()
            for idx in torch.randperm(len(y)).split(batch):
                loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                steps += 1
            model.eval()
            with torch.no_grad():
                val_acc = 100 * (model(Xv).argmax(1) == yv).float().mean().item()
            if val_acc >= TARGET_ACC or epoch == max_epochs:
                with torch.no_grad():
                    test_acc = 100 * (model(Xt).argmax(1) == yt).float().mean().item()
            if val_acc >= TARGET_ACC:
                row |= {"seconds": time.perf_counter() - start, "epochs": epoch, "steps": steps,
                        "val_acc1": val_acc, "test_acc1": test_acc}  # fmt: skip
                break
        else:
            row |= {"seconds": None, "epochs": max_epochs, "steps": steps, "val_acc1": val_acc, "test_acc1": test_acc}
        rows.append(row)
    return rows


def forecasting(max_steps: int = 1500) -> list[dict]:
    fc = task_module("time-series", "data")
    data = fc.read_csv(task_dir("time-series") / "demo" / "co2_monthly.csv")
    w = fc.make_windows(data, lookback=36, horizon=12, val_steps=60)
    x_train, y_train, _ = fc.window_arrays(data, w, w.train)
    x_val, y_val, series = fc.window_arrays(data, w, w.val)
    actual, scale = fc.denormalize(y_val, w, series), w.scale[series]
    naive = fc.seasonal_naive(data, w, w.val)
    base = {"baseline_val_mase": fc.mase(naive, actual, scale), "baseline_val_smape": fc.smape(naive, actual)}
    X, Y, Xv = torch.from_numpy(x_train), torch.from_numpy(y_train), torch.from_numpy(x_val)
    rows = []
    for file, arch, lr in FORECASTERS:
        torch.manual_seed(0)
        model = load_model_module(file).build_model(arch, lookback=36, horizon=12)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        start, row = time.perf_counter(), {"model": arch, **base}
        for step in range(1, max_steps + 1):
            model.train()
            idx = torch.randint(0, len(X), (16,))
            loss = torch.nn.functional.l1_loss(model(X[idx]), Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 25 == 0:
                model.eval()
                with torch.no_grad():
                    forecast = fc.denormalize(model(Xv).numpy(), w, series)
                score = fc.mase(forecast, actual, scale)
                if score < TARGET_MASE:
                    row |= {"seconds": time.perf_counter() - start, "steps": step, "val_mase": score,
                            "val_smape": fc.smape(forecast, actual), "val_mae": fc.mae(forecast, actual)}  # fmt: skip
                    break
        else:
            row |= {"seconds": None, "steps": max_steps, "val_mase": score}
        rows.append(row)
    return rows


# run inside a generated project (its modules on sys.path): bare vs generated steps/s on one real batch
LOOP_CODE = """
import json, statistics, sys, time, torch, task, train
torch.set_num_threads(int(sys.argv[1]))
cfg = train.load_config(train.parse_args([]))
t = cfg["training"]
d = task.build_data(cfg, 0, rank=0, world_size=1, pin_memory=False)
meta = task.data_meta(cfg, d, log=lambda *a, **k: None)
batch = next(iter(d.train_loader))
x, y = task.to_device(batch, torch.device("cpu"))
amp = train.autocast_dtype(torch.device("cpu"), t["amp"])
loss_fn, steps = task.build_loss(cfg, meta), 200
def model():
    torch.manual_seed(0)
    return task.build_model(cfg, meta, log=lambda *a, **k: None)
bm = model(); bo = train.build_optimizer(bm, t)
def bare(n):
    bm.train()
    for _ in range(n):
        with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
            loss = loss_fn(bm(x), y)
        loss.backward(); bo.step(); bo.zero_grad(set_to_none=True)
gm = model(); go = train.build_optimizer(gm, t)
sched = train.build_scheduler(go, {**t, "epochs": 10_000}, steps_per_epoch=steps)
mix = task.train_batch_transform(cfg, meta)
def run(n, aug):
    train.train_one_epoch(gm, [batch] * n, go, loss_fn, device=torch.device("cpu"), scheduler=sched,
                          amp_dtype=amp, batch_transform=aug, clip_norm=t["grad_clip_norm"], progress="bench")
ds, epoch_steps = d.train_loader.dataset, len(d.train_loader)
def generated(n):
    if hasattr(ds, "draw"):  # augmentation drawn per epoch in the dataset: one draw per epoch's worth of steps
        for e in range(-(-n // epoch_steps)):
            ds.draw(e)
    run(n, mix)
def no_aug(n): run(n, None)  # the loop's own overhead: the recipe's augmentation is work the bare loop skips
bare(3); generated(3)
rates = {"bare": [], "generated": [], "no_aug": []}
for i in range(9):
    trio = [("bare", bare), ("generated", generated), ("no_aug", no_aug)]
    for name, fn in trio if i % 2 == 0 else trio[::-1]:
        start = time.perf_counter(); fn(steps); rates[name].append(steps / (time.perf_counter() - start))
b, g, a = (statistics.median(rates[k]) for k in ("bare", "generated", "no_aug"))
print(json.dumps({"arch": cfg["model"]["arch"], "batch": cfg["data"]["batch_size"], "bare_steps_per_s": b,
                  "generated_steps_per_s": g, "ratio": g / b, "ratio_without_augmentation": a / b}))
"""


def loop_ratio(threads: int) -> list[dict]:
    """The generated loop against a bare loop, in a scaffolded project of each task."""
    import subprocess
    import tempfile

    flags = {"time-series-classification": ["--samples", "50", "--classes", "2", "--length", "150", "--arch", "fcn1d"],
             "time-series": ["--samples", "444", "--frequency", "MS", "--arch", "dlinear"]}  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in flags.items():
            project = Path(tmp) / name.replace("-", "_")
            subprocess.run([sys.executable, "-m", "archadvisor", "scaffold", "--task", name, *extra, "--compute", "cpu",
                            "--target", "cloud-cpu", "--out", str(project)], check=True, capture_output=True)  # fmt: skip
            out = subprocess.run([sys.executable, "-c", LOOP_CODE, str(threads)], cwd=project, check=True,
                                 capture_output=True, text=True).stdout  # fmt: skip
            rows.append({"task": name, **json.loads(out.strip().splitlines()[-1])})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--only", choices=("gunpoint", "co2", "loop"), help="run one of the three measurements")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    runs = {"gunpoint": classification, "co2": forecasting, "loop": lambda: loop_ratio(args.threads)}
    result = {"threads": args.threads, **{k: fn() if args.only in (None, k) else [] for k, fn in runs.items()}}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for r in result["gunpoint"]:
        took = f"{r['seconds']:.1f} s" if r["seconds"] is not None else "not reached"
        print(f"GunPoint {r['model']:>15}: test {r['test_acc1']:.1f}% (1-NN {r['baseline_test_acc1']:.1f}%), "
              f"val >= {TARGET_ACC}% after {r['epochs']} epochs / {r['steps']} steps: {took}")  # fmt: skip
    for r in result["co2"]:
        took = f"{r['seconds']:.1f} s" if r["seconds"] is not None else "not reached"
        print(f"CO2 {r['model']:>20}: val MASE {r['val_mase']:.3f} (seasonal naive {r['baseline_val_mase']:.3f}), "
              f"< {TARGET_MASE} after {r['steps']} steps: {took}")  # fmt: skip

    for r in result["loop"]:
        print(
            f"loop {r['task']} ({r['arch']}, batch {r['batch']}): bare {r['bare_steps_per_s']:.1f} steps/s, generated "
            f"{r['generated_steps_per_s']:.1f} steps/s, ratio {r['ratio']:.3f} (target >= 0.95; without the "
            f"recipe's augmentation {r['ratio_without_augmentation']:.3f})"
        )


if __name__ == "__main__":
    main()
