"""Export a checkpoint for deployment: ONNX (checked against onnxruntime) and TorchScript, at the target's precision.

    python export.py                        # runs/train/best.pt (EMA weights) -> runs/train/export/
    python export.py runs/train/last.pt --out exported/ --no-ema
    python export.py --force                # replace an earlier export in runs/train/export/

Writes model.onnx (dynamic batch; dynamic length, height and width too where task.EXPORT says so), model.ts
(TorchScript, traced) and, as the export section of config.yaml asks: model.int8.onnx (onnxruntime INT8:
dynamic, or static with calibration) with the monitored validation metric before and after, or model.fp16.onnx.
Every file is checked against the PyTorch model on fresh random inputs; report.json keeps the figures. The ONNX
exporter is torch.export-based (``dynamo=True``) unless export.dynamo or model.py's ONNX_DYNAMO says a model
exports only with the TorchScript-based one; the line printed says which ran. Needs the export extra: pip
install -e '.[export]'.
"""

import argparse
import importlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import model as model_file
import task
from checkpoint import default_checkpoint, load_model
from config_schema import load_config
from errors import ProjectError, run_main
from train import HERE, evaluate

# max |output difference| between PyTorch and onnxruntime / TorchScript in fp32, for outputs within +-1; larger
# outputs get the same relative tolerance (fp32 keeps ~7 significant digits: logits of 600 differ by ~1e-3 after
# a deep network's reordered sums, which is rounding, not a wrong export)
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 1e-2  # fp16 keeps ~3 significant digits
EXPORT_PACKAGES = ("onnx", "onnxscript", "onnxruntime")

NEXT_STEPS = {
    "coreml": "Core ML: coremltools.convert(torch.export.export(model, (example,))); "
    "int8-weights with coremltools.optimize.coreml.linear_quantize_weights",
    "tflite": "TFLite / LiteRT: ai_edge_torch.convert(model, (example,)) with its int8 quantizer, "
    "or ONNX -> TF with onnx2tf",
    "torchscript": "PyTorch serving: torch.jit.load('model.ts'); on GPU, torch.compile or TensorRT "
    "(torch_tensorrt) for fp16",
}


def require_export_packages() -> None:
    """One line naming what to install, instead of an ImportError deep inside torch.onnx."""
    missing = []
    for name in EXPORT_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ProjectError(f"export.py needs {', '.join(missing)}: pip install -e '.[export]'")


def scaled_diff(got: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(max |got - expected|, the same divided by max(1, max |expected|)): the second is what is checked."""
    diff = float(np.abs(got.astype(np.float32) - expected).max())
    return diff, diff / max(1.0, float(np.abs(expected).max()))


def use_dynamo(spec: dict[str, Any], model: nn.Module | None = None) -> bool:
    """export.dynamo when set, else what the model class or model.py says it needs (``onnx_dynamo`` /
    ``ONNX_DYNAMO``), else the task's default."""
    if spec.get("dynamo") is not None:
        return bool(spec["dynamo"])
    default = getattr(model_file, "ONNX_DYNAMO", task.EXPORT["dynamo"])
    return bool(getattr(model, "onnx_dynamo", default))


def dynamic_axes() -> dict[int, str]:
    """The input axes that vary at run time, {axis: name}: the batch, and for some tasks more (text: the length;
    time series: the length where model.py says the model takes any). task.EXPORT["dynamic_axes"] names the
    leading axes as a list, or any axes as {axis: name}."""
    axes = task.EXPORT.get("dynamic_axes", ["batch"])
    return dict(axes) if isinstance(axes, dict) else dict(enumerate(axes))


def dynamic_hw() -> bool:
    """Whether the exported model takes any height and width (task.EXPORT["dynamic_hw"]), not only any batch."""
    return bool(task.EXPORT.get("dynamic_hw", False))


def export_onnx(model: nn.Module, path: Path, meta: dict[str, Any], opset: int, dynamo: bool) -> str:
    """ONNX with a dynamic batch dimension (the task's other dynamic axes, and height and width where the task
    says so); returns which exporter ran."""
    example = task.export_example(meta, 2, seed=0)
    inputs, outputs = task.EXPORT["input_names"], task.EXPORT["output_names"]
    if dynamo:  # torch.export-based, torch's default since 2.9
        # one self-contained file, unless the weights pass protobuf's 2 GB limit (then model.onnx.data beside it)
        weight_bytes = sum(p.numel() * p.element_size() for p in model.state_dict().values())
        dims = {i: torch.export.Dim(name) for i, name in dynamic_axes().items()}
        if dynamic_hw():
            dims.update({2: torch.export.Dim("height", min=16), 3: torch.export.Dim("width", min=16)})
        torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=inputs, output_names=outputs,
                          dynamic_shapes=(dims,), opset_version=opset,
                          external_data=weight_bytes > 1.8e9, verbose=False)  # fmt: skip
        return "torch.onnx.export(dynamo=True) (torch.export)"
    input_axes = dynamic_axes() | ({2: "height", 3: "width"} if dynamic_hw() else {})
    output_axes = {0: "batch"} | ({2: "height", 3: "width"} if dynamic_hw() else {})
    axes = {name: output_axes for name in outputs} | {name: input_axes for name in inputs}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter is deprecated
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=inputs, output_names=outputs,
                          dynamic_axes=axes, opset_version=opset)  # fmt: skip
    return "torch.onnx.export(dynamo=False) (TorchScript-based)"


def onnx_session(path: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def max_onnx_diff(path: Path, model: nn.Module, meta: dict[str, Any]) -> tuple[float, float]:
    """The largest output difference between onnxruntime and PyTorch over two fresh batches (sizes 1 and 3; the
    second at another height and width when the export is dynamic in them): absolute, and scaled by the outputs'
    magnitude (see FP32_TOLERANCE)."""
    session = onnx_session(path)
    name = session.get_inputs()[0].name
    worst = (0.0, 0.0)
    for batch, seed in ((1, 1), (3, 2)):
        x = task.export_example(meta, batch, seed)
        if batch > 1 and dynamic_hw() and x.ndim == 4 and min(x.shape[-2:]) > 32:
            x = x[..., : x.shape[-2] - 5, : x.shape[-1] - 11].contiguous()  # sizes no network stride divides
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {name: x.numpy()})[0]
        worst = max(worst, scaled_diff(got, expected), key=lambda d: d[1])
    return worst


def export_torchscript(model: nn.Module, path: Path, meta: dict[str, Any]) -> tuple[float, float]:
    """A traced TorchScript file; returns its output difference from the model on fresh inputs (abs, scaled)."""
    with warnings.catch_warnings():
        # torch 2.14 marks TorchScript deprecated in favour of torch.export; runtimes still load it
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=Warning)
        # shape checks in forward (e.g. ViT's position-embedding resize) are frozen at this fixed input size
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # check_trace=False: the re-trace check compares graphs by their mangled module type names, which differ
        # between two traces of nn.TransformerEncoder; the outputs are checked below, on fresh inputs
        traced = torch.jit.trace(model, task.export_example(meta, 2, seed=0), check_trace=False)
        traced.save(str(path))
        loaded = torch.jit.load(str(path))
    x = task.export_example(meta, 3, seed=3)
    with torch.no_grad():
        return scaled_diff(loaded(x).numpy(), model(x).numpy())


class Calibration:
    """onnxruntime's CalibrationDataReader over validation inputs (activation ranges only: no targets used)."""

    def __init__(self, loader: Any, input_name: str, limit: int = 256) -> None:
        self.batches = iter(loader)
        self.input_name = input_name
        self.left = limit

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        if batch is None or self.left <= 0:
            return None
        inputs = batch[0][: self.left]
        self.left -= len(inputs)
        return {self.input_name: inputs.numpy()}


def quantize(src: Path, dst: Path, mode: str, loader: Any) -> None:
    """INT8 with onnxruntime: dynamic (weights int8, activation ranges per batch at run time) or static (QDQ,
    activation ranges calibrated beforehand on validation inputs; per-channel weights)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_dynamic, quantize_static

    prepared = dst.with_name(dst.stem + ".prep.onnx")
    try:
        quant_pre_process(str(src), str(prepared))  # shape inference + graph cleanup, as onnxruntime recommends
    except Exception:  # noqa: BLE001 - its symbolic shape inference fails on some graphs (an EmbeddingBag's Loop,
        # a height and width that are dynamic through padding and resizing): ONNX's own shape inference only
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    if mode in ("int8-dynamic", "int8-weights"):
        quantize_dynamic(str(prepared), str(dst), weight_type=QuantType.QInt8)
    elif mode == "int8-static":
        # U8S8 (uint8 activations, int8 weights): onnxruntime's fast integer path on x86-64 (its quantization
        # docs, "Data type selection": VPMADDUBSW / VNNI); S8S8 activations measured 1.5-3x slower on a 2-vCPU
        # AVX-512 VM (archadvisor bench/cpu_int8_static.py). Where accuracy drops (saturation on AVX2 without
        # VNNI), the docs advise reduce_range=True or U8U8
        quantize_static(str(prepared), str(dst), Calibration(loader, task.EXPORT["input_names"][0]),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)  # fmt: skip
    else:
        raise ProjectError(f"export.quantize {mode!r}: supported are none, int8-dynamic, int8-static, int8-weights")
    prepared.unlink()


class OnnxModel(nn.Module):
    """An ONNX file run by onnxruntime behind a module's call, so train.evaluate measures it like the model."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.session = onnx_session(path)
        self.input_name = self.session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {self.input_name: x.numpy()})[0])


EXPORT_FILES = ("model.onnx", "model.onnx.data", "model.int8.onnx", "model.fp16.onnx", "model.ts", "report.json")


def prepare_out(out: Path, *, force: bool) -> Path:
    """The export folder, created; a file there, or an earlier export, is replaced only with --force."""
    earlier = [name for name in EXPORT_FILES if (out / name).exists()] if out.is_dir() else []
    if (out.exists() and not out.is_dir()) or earlier:
        what = "is a file" if not out.is_dir() else f"holds an earlier export ({', '.join(earlier)})"
        if not force:
            raise ProjectError(f"--out {out} {what}; pass --force to replace it, or another --out")
        if not out.is_dir():
            out.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def export_with_task(model: nn.Module, meta: dict[str, Any], cfg: dict[str, Any], spec: dict[str, Any], out: Path,
                     report: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Tasks whose model is not one tensor in, tensors out (detection: NMS, a variable number of boxes) export
    through their own hooks, and are checked on real validation images (random noise gives no detections, and a
    check with nothing to compare would pass vacuously), detections matched by content rather than position."""
    loader = task.val_loader(cfg, meta, batch_size=1)
    images = [batch[0][0] for batch, _ in zip(loader, range(8), strict=False)]
    onnx_path = out / "model.onnx"
    report["exporter"] = "torch.onnx.export(dynamo=False) (TorchScript-based)"
    report["accepts"] = task.export_onnx(model, onnx_path, meta, images[0][None], opset=spec["opset"])
    report["onnx_check"] = check = task.check_onnx(onnx_path, model, images)
    print(f"{onnx_path} [{report['exporter']}], {report['accepts']}: onnxruntime vs PyTorch on {check['images']} "
          f"val images: {check['matched']}/{check['expected']} detections matched (IoU >= {check['min_iou']:.3f}, "
          f"score within {check['max_score_diff']:.1e})")  # fmt: skip
    report["torchscript"] = "not written: torch.jit.trace cannot follow the detector's per-image lists and NMS"
    if spec["precision"] != "fp32" or spec["quantize"] != "none":
        report["precision"] = f"fp32 only: no {spec['precision']} / {spec['quantize']} conversion of detectors"
        print(f"note: {report['precision']}")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description="Export a checkpoint to ONNX and TorchScript.")
    p.add_argument("checkpoint", nargs="?", type=Path, help="default: <run.out>/best.pt from config.yaml")
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--out", type=Path, help="default: <checkpoint folder>/export")
    p.add_argument("--data", type=Path, help="dataset for calibration and the metric check (default: the run's)")
    p.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA ones")
    p.add_argument("--force", action="store_true", help="replace an earlier export (or a file) at --out")
    args = p.parse_args(argv)

    require_export_packages()
    path = args.checkpoint or default_checkpoint(args.config)
    model, ckpt = load_model(path, ema=not args.no_ema)
    meta, cfg = ckpt["meta"], ckpt["config"]
    if args.data:
        cfg["data"]["root"] = str(args.data)
    spec = load_config(args.config)["export"]
    out = prepare_out(args.out or path.parent / "export", force=args.force)
    report: dict[str, Any] = {"checkpoint": str(path), "arch": meta["arch"], "target": spec["target"]}
    if hasattr(task, "check_onnx"):
        for stale in ("model.onnx", "model.ts"):
            (out / stale).unlink(missing_ok=True)
        return export_with_task(model, meta, cfg, spec, out, report)

    # --- ONNX, checked against onnxruntime
    onnx_path = out / "model.onnx"
    for stale in ("model.onnx", "model.onnx.data", "model.int8.onnx", "model.fp16.onnx"):
        (out / stale).unlink(missing_ok=True)  # a weights file of an earlier export must not outlive it
    report["exporter"] = export_onnx(model, onnx_path, meta, spec["opset"], dynamo=use_dynamo(spec, model))
    diff, scaled = max_onnx_diff(onnx_path, model, meta)
    report["onnx_max_abs_diff"], report["onnx_max_scaled_diff"] = diff, scaled
    print(f"{onnx_path} [{report['exporter']}]: onnxruntime vs PyTorch max |diff| {diff:.2e}, scaled {scaled:.2e} "
          f"(tol {FP32_TOLERANCE:g})")  # fmt: skip
    if not scaled <= FP32_TOLERANCE:
        raise ProjectError(f"{onnx_path} disagrees with the PyTorch model (max |diff| {diff:.3g})")

    # --- TorchScript
    ts_path = out / "model.ts"
    diff, scaled = export_torchscript(model, ts_path, meta)
    report["torchscript_max_abs_diff"], report["torchscript_max_scaled_diff"] = diff, scaled
    print(f"{ts_path}: TorchScript vs PyTorch max |diff| {diff:.2e}, scaled {scaled:.2e}")
    if not scaled <= FP32_TOLERANCE:
        raise ProjectError(f"{ts_path} disagrees with the PyTorch model (max |diff| {diff:.3g})")

    # --- the target's precision
    if spec["precision"] == "fp16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        fp16_path = out / "model.fp16.onnx"
        # fp16 inside, fp32 inputs/outputs: callers keep feeding float32 arrays
        onnx.save(convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True), str(fp16_path))
        report["fp16_max_abs_diff"], report["fp16_max_scaled_diff"] = diff, _ = max_onnx_diff(fp16_path, model, meta)
        print(f"{fp16_path}: fp16 vs PyTorch fp32 max |diff| {diff:.2e} (tolerance {FP16_TOLERANCE:g})")

    if spec["quantize"] != "none":
        loader = task.val_loader(cfg, meta)
        int8_path = out / "model.int8.onnx"
        quantize(onnx_path, int8_path, spec["quantize"], loader)
        metric = (cfg["training"].get("monitor") or task.MONITOR)["metric"]
        cpu = torch.device("cpu")
        fp32, int8 = (evaluate(OnnxModel(f), loader, task.Metrics(meta, cpu), device=cpu)[metric]
                      for f in (onnx_path, int8_path))  # fmt: skip
        report.update({"quantize": spec["quantize"], "metric": metric, f"{metric}_fp32": fp32, f"{metric}_int8": int8})
        sizes = [sum(f.stat().st_size for f in out.glob(p.name + "*")) / 1e6 for p in (onnx_path, int8_path)]
        print(f"{int8_path} ({spec['quantize']}): {metric} {fp32:.4f} fp32 -> {int8:.4f} int8 ({int8 - fp32:+.4f}); "
              f"{sizes[0]:.1f} MB -> {sizes[1]:.1f} MB")  # fmt: skip
    if spec["format"] in NEXT_STEPS:
        print(f"next step for {spec['target']} ({spec['runtime']}): {NEXT_STEPS[spec['format']]}")

    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    run_main(main)
