"""The validation metrics of a checkpoint (its EMA weights unless told otherwise), and the task's report.

    python evaluate.py                                # runs/train/best.pt on the val split of its run
    python evaluate.py runs/train/last.pt --no-ema    # the raw (non-averaged) weights of the last epoch
    python evaluate.py --data DIR                     # another dataset in the same layout

Prints the task's report (classification: precision, recall and F1 per class) and, last, one JSON line with
the metrics; writes the report's files (classification: per_class.json, confusion_matrix.png) into --out,
by default the checkpoint's run folder.
"""

import argparse
import json
from pathlib import Path
from typing import Any

import torch

import task
from checkpoint import default_checkpoint, load_model
from errors import run_main
from train import HERE, evaluate


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description="Evaluate a checkpoint on the validation split.")
    p.add_argument("checkpoint", nargs="?", type=Path, help="default: <run.out>/best.pt from config.yaml")
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--data", type=Path, help="dataset root (default: the checkpoint's data.root)")
    p.add_argument("--out", type=Path, help="folder for the report files (default: the checkpoint's folder)")
    p.add_argument("--no-ema", action="store_true", help="evaluate the raw weights instead of the EMA ones")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)

    path = args.checkpoint or default_checkpoint(args.config)
    model, ckpt = load_model(path, ema=not args.no_ema)
    cfg = ckpt["config"]  # the run's own data settings (normalization, crop)
    if args.data:
        cfg["data"]["root"] = str(args.data)
    loader = task.val_loader(cfg, ckpt["meta"])
    device = torch.device(args.device)
    metrics = task.Metrics(ckpt["meta"], device)
    values = evaluate(model.to(device), loader, metrics, device=device)
    report = task.write_report(metrics, args.out or path.parent)
    result = {"checkpoint": str(path), "ema": ckpt["model_ema"] is not None and not args.no_ema, **values,
              "samples": len(loader.dataset), **report}  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run_main(main)
