"""Export the trained checkpoint to ONNX with ultralytics' exporter, then check the file against onnxruntime.

    python export.py                           # runs/train/weights/best.pt -> runs/train/weights/best.onnx
    python export.py --checkpoint runs/train/weights/last.pt

The file takes ``images`` of shape (1, 3, imgsz, imgsz), RGB scaled to 0..1 (``export.dynamic: true``: any batch,
height and width) and returns ``output0`` (1, 4 + classes, anchors): boxes as cx, cy, w, h in input pixels and one
score per class, before NMS (``ultralytics/engine/exporter.py`` ``export_onnx``). ``simplify`` is off: onnxslim is
not a dependency and ultralytics would try to pip-install it. The check runs the checkpoint and the ONNX file on the
same validation image and compares the raw output (never empty: every anchor has a box and scores).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from config import HERE, load_config, offline_environment, run_dir
from data import dataset_yaml, image_files
from errors import ProjectError, run_main

TOLERANCE = 1e-3  # max |torch - onnxruntime| over the raw output, relative to its largest magnitude (fp32)


def sample_input(cfg: dict[str, Any], size: int) -> np.ndarray:
    """One validation image, letterboxed to ``size`` the way ultralytics' predictor does, as (1, 3, H, W) 0..1."""
    import yaml
    from PIL import Image
    from ultralytics.data.augment import LetterBox

    data = yaml.safe_load(dataset_yaml(cfg).read_text(encoding="utf-8"))
    folder = (dataset_yaml(cfg).parent / data["val"]).resolve()
    image = np.asarray(Image.open(image_files(folder)[0]).convert("RGB"))
    boxed = LetterBox((size, size), auto=False)(image=image)
    return np.ascontiguousarray(boxed.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def max_onnx_diff(checkpoint: Path, onnx_file: Path, images: np.ndarray) -> float:
    """max |checkpoint - ONNX| over the raw output, divided by the output's largest magnitude."""
    import onnxruntime as ort
    import torch
    from ultralytics import YOLO

    model = YOLO(str(checkpoint)).model.float().eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(images))
    expected = (expected[0] if isinstance(expected, (list, tuple)) else expected).numpy()
    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (actual,) = session.run(["output0"], {"images": images})
    if actual.shape != expected.shape:
        raise ProjectError(f"{onnx_file}: output shape {actual.shape}, the checkpoint gives {expected.shape}")
    return float(np.abs(actual - expected).max() / max(1e-6, float(np.abs(expected).max())))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, help="default: <run>/weights/best.pt")
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    checkpoint = (args.checkpoint or run_dir(cfg) / "weights" / "best.pt").resolve()
    if not checkpoint.is_file():
        raise ProjectError(f"checkpoint {checkpoint} does not exist: train first (python train.py)")
    offline_environment()
    from ultralytics import YOLO

    e, size = cfg["export"], cfg["train"]["imgsz"]
    onnx_file = Path(
        YOLO(str(checkpoint)).export(
            format="onnx", imgsz=size, opset=e["opset"], dynamic=e["dynamic"], half=e["half"], simplify=False,
            device=(cfg["train"]["device"] or "0") if e["half"] else "cpu",  # fp16 export needs CUDA (exporter.py)
        )
    )  # fmt: skip
    report: dict[str, Any] = {"onnx": str(onnx_file), "input": [1, 3, size, size], "opset": e["opset"]}
    if not e["half"]:  # an fp16 file is checked by its own tolerance on the target, not against fp32 here
        diff = max_onnx_diff(checkpoint, onnx_file, sample_input(cfg, size))
        if diff > TOLERANCE:
            raise ProjectError(f"{onnx_file} differs from the checkpoint by {diff:.2e} (relative), over {TOLERANCE:g}")
        report["max_relative_diff"] = diff
    (onnx_file.with_suffix(".json")).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"ONNX written: {onnx_file} (input 1x3x{size}x{size}), onnxruntime check: {report.get('max_relative_diff')}")
    return report


if __name__ == "__main__":
    run_main(main)
