"""Evaluate a trained checkpoint on the validation split with ultralytics' validator.

    python evaluate.py                                  # runs/train/weights/best.pt on the config's data
    python evaluate.py --checkpoint runs/train/weights/last.pt

Writes ``<run>/evaluate.json``: COCO-style mAP@[.5:.95] and mAP@.5 over all classes (percent) and the
mAP@[.5:.95] of each class by name, as ``ultralytics.utils.metrics.DetMetrics`` computes them (101-point
interpolated AP over IoU 0.50:0.95; close to, not identical with, pycocotools' figures).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from config import HERE, load_config, offline_environment, run_dir
from data import check_dataset, dataset_yaml
from errors import ProjectError, run_main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--checkpoint", type=Path, help="default: <run>/weights/best.pt")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    run = run_dir(cfg)
    checkpoint = (args.checkpoint or run / "weights" / "best.pt").resolve()
    if not checkpoint.is_file():
        raise ProjectError(f"checkpoint {checkpoint} does not exist: train first (python train.py)")
    checked = check_dataset(dataset_yaml(cfg), run / "evaluate_data.yaml")
    offline_environment()
    from ultralytics import YOLO

    t = cfg["train"]
    device = {"device": t["device"]} if t["device"] is not None else {}
    metrics = YOLO(str(checkpoint)).val(
        data=str(checked["yaml"]), imgsz=t["imgsz"], batch=t["batch"], workers=cfg["data"]["workers"],
        plots=False, project=str(run.parent), name=f"{run.name}_val", exist_ok=True, **device,
    )  # fmt: skip
    names = checked["names"]
    report = {
        "checkpoint": str(checkpoint),
        "val_map": round(100 * float(metrics.box.map), 3),
        "val_map50": round(100 * float(metrics.box.map50), 3),
        "per_class_map": {names[i]: round(100 * float(v), 3) for i, v in enumerate(metrics.box.maps)},
    }
    (run / "evaluate.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"val mAP@[.5:.95] {report['val_map']:.2f} %, mAP@.5 {report['val_map50']:.2f} % -> {run / 'evaluate.json'}")
    return report


if __name__ == "__main__":
    run_main(main)
