"""Train the detector with ultralytics' own trainer, from the model YAML (nothing is downloaded).

    python train.py                         # config.yaml as generated (the bundled digits demo)
    python train.py --epochs 30 --imgsz 128 # shorthands for --set train.epochs=30 --set train.imgsz=128
    python train.py --set train.lr0=0.005   # any config key, checked like config.yaml
    python train.py --resume                # continue runs/train from its last completed epoch
    python train.py --overwrite             # start runs/train over

This project does not use archadvisor's PyTorch training core: ``ultralytics.YOLO(...).train`` owns the loop
(``ultralytics/engine/trainer.py``). What this script adds around it: config.yaml checked before anything runs
(``config.py``), the dataset checked and copied without a ``download`` key (``data.py``), a run folder that is
never silently replaced or renumbered, the offline settings, and ``summary.json`` (best_val_map and val_map50 in
percent, epochs_run, wall_seconds, checkpoint). The README lists what ultralytics' trainer does differently.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from config import HERE, load_config, offline_environment, run_dir
from data import check_dataset, dataset_yaml
from errors import ProjectError, run_main

# config.yaml's train section -> the argument of YOLO.train of the same name (ultralytics/cfg/default.yaml);
# device is passed only when set (None lets ultralytics pick the first GPU, else the CPU)
TRAIN_KEYS = ("epochs", "imgsz", "batch", "nbs", "optimizer", "lr0", "lrf", "momentum", "weight_decay",
              "warmup_epochs", "cos_lr", "patience", "mosaic", "close_mosaic", "mixup", "hsv_h", "hsv_s", "hsv_v",
              "scale", "translate", "fliplr", "amp", "seed", "deterministic", "plots")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--epochs", type=int)
    p.add_argument("--imgsz", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--device", help="cpu, 0, 0,1 ... (default: config train.device)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--resume", action="store_true", help="continue the run in run.project/run.name")
    what.add_argument("--overwrite", action="store_true", help="replace the run in run.project/run.name")
    return p.parse_args(argv)


def train_arguments(cfg: dict[str, Any], data: Path, run: Path) -> dict[str, Any]:
    """The keyword arguments of ``YOLO.train``: config.yaml's values, plus what this project fixes."""
    t = cfg["train"]
    kwargs: dict[str, Any] = {key: t[key] for key in TRAIN_KEYS}
    if t["device"] is not None:
        kwargs["device"] = t["device"]
    kwargs.update(
        data=str(data),
        workers=cfg["data"]["workers"],
        project=str(run.parent),
        name=run.name,
        exist_ok=True,  # the folder is ours: train.py has already refused to replace a run unasked
        pretrained=False,  # from the model YAML (or model.weights), never a downloaded checkpoint
        val=True,
    )
    return kwargs


def summarize(trainer: Any, metrics: Any, run: Path, seconds: float) -> dict[str, Any]:
    """summary.json: the final validation of best.pt (ultralytics' DetMetrics), in percent."""
    best = Path(trainer.best)
    summary = {
        "best_val_map": round(100 * float(metrics.box.map), 3),
        "val_map50": round(100 * float(metrics.box.map50), 3),
        "epochs_run": int(trainer.epoch) + 1,
        "wall_seconds": round(seconds, 1),
        "checkpoint": str(best.relative_to(HERE)) if best.is_relative_to(HERE) else str(best),
    }
    (run / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def check_unfinished(run: Path) -> None:
    """--resume on a run that completed all its epochs: one line, before ultralytics' own assertion (a traceback).

    Read from ultralytics' text files (args.yaml: the epochs asked for; results.csv: one row per epoch done), not
    from last.pt, which is a pickle."""
    import yaml

    try:
        epochs = int(yaml.safe_load((run / "args.yaml").read_text(encoding="utf-8"))["epochs"])
        done = len((run / "results.csv").read_text(encoding="utf-8").strip().splitlines()) - 1
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return  # ultralytics reads last.pt itself and says what is wrong
    if done >= epochs:
        raise ProjectError(
            f"--resume: {run} finished all its {epochs} epochs, nothing to resume; --overwrite starts over "
            "(ultralytics cannot extend a finished run)"
        )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    shorthands = [f"train.{k}={getattr(args, k)}" for k in ("epochs", "imgsz", "batch") if getattr(args, k)]
    if args.device is not None:
        shorthands.append(f"train.device={json.dumps(args.device)}")
    cfg = load_config(args.config, [*args.overrides, *shorthands])
    run = run_dir(cfg)
    last = run / "weights" / "last.pt"
    if args.resume and not last.is_file():
        raise ProjectError(f"--resume: {last} does not exist (nothing to continue); run python train.py first")
    if args.resume:
        check_unfinished(run)
    if run.exists() and any(run.iterdir()) and not (args.resume or args.overwrite):
        raise ProjectError(f"{run} holds a run: --resume continues it, --overwrite starts over")
    if args.overwrite and run.exists():
        shutil.rmtree(run)
    checked = check_dataset(dataset_yaml(cfg), run / "data.yaml")
    print(
        f"data: {checked['images']['train']} train / {checked['images']['val']} val images, "
        f"{checked['boxes']['train']} / {checked['boxes']['val']} boxes, {len(checked['names'])} classes"
    )
    offline_environment()
    from ultralytics import YOLO  # after offline_environment: ultralytics reads it on import

    start = time.perf_counter()
    if args.resume:
        # ultralytics restores its own arguments from last.pt; a resumed run keeps the original schedule
        model = YOLO(str(last))
        metrics = model.train(resume=True)
    else:
        weights = cfg["model"]["weights"]
        if weights is not None and not (HERE / weights).is_file():
            raise ProjectError(f"config model.weights: {HERE / weights} does not exist")
        model = YOLO(str(HERE / weights) if weights is not None else cfg["model"]["yaml"])
        metrics = model.train(**train_arguments(cfg, checked["yaml"], run))
    summary = summarize(model.trainer, metrics, run, time.perf_counter() - start)
    print(f"best val mAP@[.5:.95] {summary['best_val_map']:.2f} %, mAP@.5 {summary['val_map50']:.2f} % -> {run}")
    return summary


if __name__ == "__main__":
    run_main(main)
