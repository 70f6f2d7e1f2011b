"""Predictions on new inputs, batched, from the best checkpoint or from an exported ONNX model.

    python predict.py photos/ --out runs/predict                          # runs/train/best.pt (EMA weights)
    python predict.py 'shots/*.jpg' a.png --out preds --checkpoint runs/train/last.pt
    python predict.py photos/ --out preds --onnx runs/train/export/model.onnx   # through onnxruntime
    python predict.py --text "a literal input" --text "another" --out preds   # tasks whose inputs are texts

INPUT: files, folders (searched recursively) or glob patterns of the task's inputs. The task writes its fixed
outputs under --out (classification and text: predictions.csv with the top-k labels and probabilities;
semantic segmentation: a class-index mask and an overlay per image, fractions.json; detection: predictions.json
in the COCO results format and the boxes drawn per image). With --onnx the checkpoint still supplies the labels and
the preprocessing; the ONNX file computes the outputs. --text (repeatable) passes literal inputs to the task beside
the INPUT files, where the task's predict_files takes them (text).
"""

import argparse
import inspect
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


def predict_with_task(args: argparse.Namespace, path: Path, files: list[Path]) -> Path:
    """The task runs the model per input through its own forward (PyTorch or onnxruntime) and writes the outputs."""
    if args.onnx:
        if not args.onnx.is_file():
            raise ProjectError(f"no ONNX model at {args.onnx} (export one first: python export.py)")
        meta, forward = load(path)["meta"], task.onnx_forward(args.onnx)
    else:
        model, ckpt = load_model(path, ema=not args.no_ema)
        meta, forward = ckpt["meta"], task.torch_forward(model, torch.device(args.device))
    written = task.write_predictions(args.out, files, task.predict(forward, files), meta, **task.predict_options(args))
    print(f"{len(files)} inputs -> {written} ({'onnxruntime: ' + str(args.onnx) if args.onnx else path})")
    return written


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description="Predict on new inputs with a checkpoint or an ONNX model.")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="files, folders or glob patterns")
    p.add_argument("--text", action="append", default=[], metavar="TEXT", help="a literal input text (repeatable)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--checkpoint", type=Path, help="default: <run.out>/best.pt from config.yaml")
    p.add_argument("--onnx", type=Path, help="run this ONNX model with onnxruntime instead of PyTorch")
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--top-k", type=int, default=5, help="labels per input (classification)")
    p.add_argument("--no-ema", action="store_true", help="the raw weights instead of the EMA ones")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    if hasattr(task, "add_predict_args"):  # the task's own flags (detection: --score-threshold, --annotations)
        task.add_predict_args(p)
    args = p.parse_args(argv)

    path = args.checkpoint or default_checkpoint(args.config)
    if not args.inputs and not args.text:
        p.error("give at least one INPUT (or --text)")
    if args.text and "texts" not in inspect.signature(task.predict_files).parameters:
        raise ProjectError("--text: this project's inputs are files, not texts; give them as INPUT")
    files = task.predict_files(args.inputs, texts=args.text) if args.text else task.predict_files(args.inputs)
    if hasattr(task, "predict"):  # outputs that are not one array per batch (detection: a list of boxes per image)
        return predict_with_task(args, path, files)
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
    # the task's own predict.py flags (time series: --future, the known covariates over the horizon)
    options = task.predict_options(args) if hasattr(task, "predict_options") else {}
    outputs = [forward(inputs) for inputs, _ in task.predict_loader(files, meta, args.batch_size, **options)]
    written = task.write_predictions(args.out, files, outputs, meta, args.top_k)
    print(f"{len(files)} inputs -> {written} ({'onnxruntime: ' + str(args.onnx) if args.onnx else path})")
    return written


if __name__ == "__main__":
    run_main(main)
