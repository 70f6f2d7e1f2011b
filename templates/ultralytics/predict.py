"""Detect objects in images with a trained checkpoint (or the exported ONNX file).

    python predict.py IMAGE_OR_FOLDER... --out predictions
    python predict.py demo/digits_yolo/images/val --onnx runs/train/weights/best.onnx --out predictions

Writes ``OUT/predictions.json`` in the COCO results format (``image_id`` the 1-based index in input order,
``file_name``, ``category_id`` the class index of data.yaml's ``names`` with ``category_name``, ``bbox`` as
``[x, y, w, h]`` in input-image pixels, ``score``) and ``OUT/<stem>.png`` per image with the boxes drawn.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from config import HERE, load_config, offline_environment, run_dir
from data import IMAGE_SUFFIXES, image_files
from errors import ProjectError, run_main


def input_files(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = image_files(path)
            if not found:
                raise ProjectError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            files.append(path)
        else:
            raise ProjectError(f"{item} is neither an image ({', '.join(IMAGE_SUFFIXES)}) nor a folder of images")
    return files


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, help="default: <run>/weights/best.pt")
    p.add_argument("--onnx", type=Path, help="run this exported ONNX file (onnxruntime) instead of the checkpoint")
    p.add_argument("--score-threshold", type=float, help="default: config predict.conf")
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    args = p.parse_args(argv)
    overrides = [] if args.score_threshold is None else [f"predict.conf={args.score_threshold}"]
    cfg = load_config(args.config, overrides)
    weights = (args.onnx or args.checkpoint or run_dir(cfg) / "weights" / "best.pt").resolve()
    if not weights.is_file():
        raise ProjectError(f"{weights} does not exist: train first (python train.py), or export (python export.py)")
    files = input_files(args.inputs)
    offline_environment()
    import cv2
    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    pr = cfg["predict"]
    args.out.mkdir(parents=True, exist_ok=True)
    predictions: list[dict[str, Any]] = []
    for image_id, file in enumerate(files, 1):
        # one image per call: the ONNX file is exported for batch 1 (export.dynamic: false)
        (result,) = model.predict(
            str(file), imgsz=cfg["train"]["imgsz"], conf=pr["conf"], iou=pr["iou"], max_det=pr["max_det"],
            verbose=False,
        )  # fmt: skip
        for (x0, y0, x1, y1), cls, score in zip(
            result.boxes.xyxy.tolist(), result.boxes.cls.tolist(), result.boxes.conf.tolist(), strict=True
        ):
            predictions.append(
                {
                    "image_id": image_id,
                    "file_name": str(file),
                    "category_id": int(cls),
                    "category_name": result.names[int(cls)],
                    "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                    "score": round(float(score), 5),
                }
            )
        cv2.imwrite(str(args.out / f"{file.stem}.png"), result.plot())  # OpenCV drawing: no font download
    (args.out / "predictions.json").write_text(json.dumps(predictions, indent=1) + "\n", encoding="utf-8")
    print(f"{len(predictions)} detections in {len(files)} images -> {args.out / 'predictions.json'}")
    return predictions


if __name__ == "__main__":
    run_main(main)
