"""Export a checkpoint for deployment: ONNX (checked against onnxruntime) and TorchScript, at the target's precision.

    python export.py                        # runs/train/best.pt (EMA weights) -> runs/train/export/
    python export.py runs/train/last.pt --out exported/ --no-ema

Writes model.onnx (dynamic batch, fixed image size), model.ts (TorchScript, traced) and, as the export section of
config.yaml asks: model.int8.onnx (onnxruntime INT8: dynamic, or static with calibration) with the validation
accuracy before and after, or model.fp16.onnx. Every file is checked against the PyTorch model on fresh random
inputs; report.json keeps the figures. Needs the export extra: pip install -e ".[export]".
"""

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from data import DataError, error_line, val_loader
from evaluate import open_checkpoint
from train import HERE

# max |logit difference| between PyTorch and onnxruntime / TorchScript in fp32, for logits within +-1; larger
# logits get the same relative tolerance (fp32 keeps ~7 significant digits: logits of 600 differ by ~1e-3 after
# a deep network's reordered sums, which is rounding, not a wrong export)
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 1e-2  # fp16 keeps ~3 significant digits


def scaled_diff(got: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(max |got - expected|, the same divided by max(1, max |expected|)): the second is what is checked."""
    diff = float(np.abs(got.astype(np.float32) - expected).max())
    return diff, diff / max(1.0, float(np.abs(expected).max()))


NEXT_STEPS = {
    "coreml": "Core ML: coremltools.convert(torch.export.export(model, (example,))); "
    "int8-weights with coremltools.optimize.coreml.linear_quantize_weights",
    "tflite": "TFLite / LiteRT: ai_edge_torch.convert(model, (example,)) with its int8 quantizer, "
    "or ONNX -> TF with onnx2tf",
    "torchscript": "PyTorch serving: torch.jit.load('model.ts'); on GPU, torch.compile or TensorRT "
    "(torch_tensorrt) for fp16",
}


def random_inputs(image_size: int, batch: int, seed: int) -> torch.Tensor:
    """Fresh inputs, unrelated to the example the exporter traced with."""
    return torch.randn(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))


def export_onnx(model: nn.Module, path: Path, image_size: int, opset: int) -> None:
    """ONNX through torch.export (the dynamo exporter, torch's default since 2.9), dynamic batch dimension."""
    example = random_inputs(image_size, 2, seed=0)
    # one self-contained file, unless the weights pass protobuf's 2 GB limit (then model.onnx.data beside it)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        opset_version=opset,
        external_data=weight_bytes > 1.8e9,
        verbose=False,
    )


def onnx_session(path: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def max_onnx_diff(path: Path, model: nn.Module, image_size: int) -> tuple[float, float]:
    """The largest |logit difference| between onnxruntime and PyTorch over two fresh batches (sizes 1 and 3):
    absolute, and scaled by the logits' magnitude (see FP32_TOLERANCE)."""
    session = onnx_session(path)
    worst = (0.0, 0.0)
    for batch, seed in ((1, 1), (3, 2)):
        x = random_inputs(image_size, batch, seed)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {"images": x.numpy()})[0]
        worst = max(worst, scaled_diff(got, expected), key=lambda d: d[1])
    return worst


def export_torchscript(model: nn.Module, path: Path, image_size: int) -> tuple[float, float]:
    """A traced TorchScript file; returns its max |logit difference| from the model on fresh inputs
    (absolute, scaled)."""
    with warnings.catch_warnings():
        # torch 2.14 marks TorchScript deprecated in favour of torch.export; runtimes still load it
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=Warning)
        # shape checks in forward (e.g. ViT's position-embedding resize) are frozen at this fixed image size
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(model, random_inputs(image_size, 2, seed=0))
        traced.save(str(path))
        loaded = torch.jit.load(str(path))
    x = random_inputs(image_size, 3, seed=3)
    with torch.no_grad():
        return scaled_diff(loaded(x).numpy(), model(x).numpy())


class CalibrationImages:
    """onnxruntime's CalibrationDataReader over validation images (activation ranges only: no labels are used)."""

    def __init__(self, loader: Any, limit: int = 256) -> None:
        self.batches = iter(loader)
        self.left = limit

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        if batch is None or self.left <= 0:
            return None
        images = batch[0][: self.left]
        self.left -= len(images)
        return {"images": images.numpy()}


def quantize(src: Path, dst: Path, mode: str, loader: Any) -> None:
    """INT8 with onnxruntime: dynamic (weights int8, activation ranges per batch at run time) or static (QDQ,
    activation ranges calibrated beforehand on validation images; per-channel weights)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_dynamic, quantize_static

    prepared = dst.with_name(dst.stem + ".prep.onnx")
    quant_pre_process(str(src), str(prepared))  # shape inference + graph cleanup, as onnxruntime recommends
    if mode in ("int8-dynamic", "int8-weights"):
        quantize_dynamic(str(prepared), str(dst), weight_type=QuantType.QInt8)
    elif mode == "int8-static":
        quantize_static(
            str(prepared),
            str(dst),
            CalibrationImages(loader),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
    else:
        raise ValueError(f"export.quantize {mode!r}: supported are none, int8-dynamic, int8-static, int8-weights")
    prepared.unlink()


def onnx_accuracy(path: Path, loader: Any) -> float:
    """Top-1 accuracy (%) of an ONNX model on the validation loader, run by onnxruntime."""
    session = onnx_session(path)
    correct = total = 0
    for batch in loader:
        if batch is None:
            continue
        images, targets = batch
        logits = session.run(None, {"images": images.numpy()})[0]
        correct += int((logits.argmax(1) == targets.numpy()).sum())
        total += len(targets)
    return 100.0 * correct / max(1, total)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description="Export a checkpoint to ONNX and TorchScript.")
    p.add_argument("checkpoint", nargs="?", type=Path, help="default: <run.out>/best.pt from config.yaml")
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--out", type=Path, help="default: <checkpoint folder>/export")
    p.add_argument("--data", type=Path, help="ImageFolder for calibration and the accuracy check (default: the run's)")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA ones")
    args = p.parse_args(argv)

    path, model, ckpt, cfg, config = open_checkpoint(args)
    spec, size = config["export"], ckpt["image_size"]
    out = args.out or path.parent / "export"
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "checkpoint": str(path),
        "arch": ckpt["arch"],
        "image_size": size,
        "target": spec["target"],
    }

    onnx_path = out / "model.onnx"
    for stale in ("model.onnx", "model.onnx.data", "model.int8.onnx", "model.fp16.onnx"):
        (out / stale).unlink(missing_ok=True)  # a weights file of an earlier export must not outlive it
    export_onnx(model, onnx_path, size, spec["opset"])
    diff, scaled = max_onnx_diff(onnx_path, model, size)
    report["onnx_max_abs_diff"], report["onnx_max_scaled_diff"] = diff, scaled
    print(f"{onnx_path}: onnxruntime vs PyTorch max |diff| {diff:.2e}, scaled {scaled:.2e} (tol {FP32_TOLERANCE:g})")
    if not scaled <= FP32_TOLERANCE:
        raise SystemExit(f"error: {onnx_path} disagrees with the PyTorch model (max |diff| {diff:.3g})")

    ts_path = out / "model.ts"
    diff, scaled = export_torchscript(model, ts_path, size)
    report["torchscript_max_abs_diff"], report["torchscript_max_scaled_diff"] = diff, scaled
    print(f"{ts_path}: TorchScript vs PyTorch max |diff| {diff:.2e}, scaled {scaled:.2e}")
    if not scaled <= FP32_TOLERANCE:
        raise SystemExit(f"error: {ts_path} disagrees with the PyTorch model (max |diff| {diff:.3g})")

    if spec["precision"] == "fp16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        fp16_path = out / "model.fp16.onnx"
        # fp16 inside, fp32 inputs/outputs: callers keep feeding float32 arrays
        onnx.save(convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True), str(fp16_path))
        report["fp16_max_abs_diff"], report["fp16_max_scaled_diff"] = diff, _ = max_onnx_diff(fp16_path, model, size)
        print(f"{fp16_path}: fp16 vs PyTorch fp32 max |diff| {diff:.2e} (tolerance {FP16_TOLERANCE:g})")

    if spec["quantize"] != "none":
        loader, _ = val_loader(cfg, size)
        int8_path = out / "model.int8.onnx"
        quantize(onnx_path, int8_path, spec["quantize"], loader)
        fp32_acc, int8_acc = onnx_accuracy(onnx_path, loader), onnx_accuracy(int8_path, loader)
        report.update(quantize=spec["quantize"], val_acc1_fp32=fp32_acc, val_acc1_int8=int8_acc)
        sizes = [sum(f.stat().st_size for f in out.glob(p.name + "*")) / 1e6 for p in (onnx_path, int8_path)]
        print(
            f"{int8_path} ({spec['quantize']}): val acc1 {fp32_acc:.2f} % fp32 -> {int8_acc:.2f} % int8 "
            f"({int8_acc - fp32_acc:+.2f}); {sizes[0]:.1f} MB -> {sizes[1]:.1f} MB"
        )
    if spec["format"] in NEXT_STEPS:
        print(f"next step for {spec['target']} ({spec['runtime']}): {NEXT_STEPS[spec['format']]}")

    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    try:
        main()
    except DataError as e:
        sys.exit(f"error: {error_line(e)}")
