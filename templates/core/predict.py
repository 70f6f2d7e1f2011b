"""Predictions on new inputs, batched, from the best checkpoint or from an exported ONNX model.

    python predict.py photos/ --out runs/predict                          # runs/train/best.pt (EMA weights)
    python predict.py 'shots/*.jpg' a.png --out preds --checkpoint runs/train/last.pt
    python predict.py photos/ --out preds --onnx runs/train/export/model.onnx   # through onnxruntime

INPUT: files, folders (searched recursively) or glob patterns of the task's inputs. The task writes its fixed
outputs under --out (classification: predictions.csv with the top-k labels and probabilities;
semantic segmentation: a class-index mask and an overlay per image, fractions.json). With --onnx the
checkpoint still supplies the labels and the preprocessing; the ONNX file computes the outputs.
"""

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import torch

import task
from checkpoint import default_checkpoint, load, load_model
from errors import ProjectError, run_main
from train import HERE


def onnx_runner(path: Path) -> Any:
    """A function batch -> outputs (numpy) running ``path`` in onnxruntime on the CPU."""
    if not path.is_file():
        raise ProjectError(f"no ONNX model at {path} (export one first: python export.py)")
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise ProjectError("--onnx needs onnxruntime: pip install -e '.[export]'") from e
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x.numpy()})[0]


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description="Predict on new inputs with a checkpoint or an ONNX model.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or glob patterns")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--checkpoint", type=Path, help="default: <run.out>/best.pt from config.yaml")
    p.add_argument("--onnx", type=Path, help="run this ONNX model with onnxruntime instead of PyTorch")
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--top-k", type=int, default=5, help="labels per input (classification)")
    p.add_argument("--no-ema", action="store_true", help="the raw weights instead of the EMA ones")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)

    path = args.checkpoint or default_checkpoint(args.config)
    files = task.predict_files(args.inputs)
    if args.onnx:
        meta = load(path)["meta"]
        forward = onnx_runner(args.onnx)
    else:
        model, ckpt = load_model(path, ema=not args.no_ema)
        meta, device = ckpt["meta"], torch.device(args.device)
        model.to(device)

        def forward(x: torch.Tensor) -> np.ndarray:
            with torch.no_grad():
                return model(x.to(device)).float().cpu().numpy()

    # one array per batch, in file order: the task joins them (segmentation batches are padded to different sizes)
    outputs = [forward(inputs) for inputs, _ in task.predict_loader(files, meta, args.batch_size)]
    written = task.write_predictions(args.out, files, outputs, meta, args.top_k)
    print(f"{len(files)} inputs -> {written} ({'onnxruntime: ' + str(args.onnx) if args.onnx else path})")
    return written


if __name__ == "__main__":
    run_main(main)
