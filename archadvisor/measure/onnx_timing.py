"""ONNX Runtime timing of a model: export (dynamo exporter, dynamic batch), check against torch, time."""

from __future__ import annotations

import contextlib
import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from archadvisor.errors import InputError
from archadvisor.measure.device import quiet_fd2, torch_module
from archadvisor.measure.limits import BATCH
from archadvisor.measure.timing import time_calls

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn


def _export(model: nn.Module, example: torch.Tensor, path: Path) -> float:
    """Export ``model`` to ``path`` with a dynamic batch dimension; returns the seconds it took."""
    torch = torch_module()
    t0 = time.perf_counter()
    batch_dim = torch.export.Dim("batch", min=BATCH[0], max=BATCH[1])
    with contextlib.redirect_stdout(io.StringIO()), quiet_fd2():
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=({0: batch_dim},),
        )
    return time.perf_counter() - t0


def _session(path: Path, device: str, threads: int) -> Any:
    """An ONNX Runtime session on ``device`` with ``threads`` intra-op threads and every graph optimization."""
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise InputError("--onnx", "cuda", "an onnxruntime build with CUDAExecutionProvider (onnxruntime-gpu)")
        providers = ["CUDAExecutionProvider"]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=providers)


def profile_onnx(
    model: nn.Module,
    x1: torch.Tensor,
    xb: torch.Tensor,
    device: str,
    threads: int,
    stage: Callable[[], None],
    timing: dict[str, Any],
) -> dict[str, Any]:
    """Export to ONNX (dynamo exporter, dynamic batch), check against torch, time with ONNX Runtime.

    ``stage()`` is called as export, batch-1 latency and throughput start; ``timing`` holds ``time_calls``'s
    keyword arguments.
    """
    torch = torch_module()
    import numpy as np
    import onnxruntime as ort

    stage()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        # torch.export specializes any dimension that is 1 in the example, so trace with a batch of 2
        export_s = _export(model, torch.randn(2, *x1.shape[1:], device=x1.device), path)
        sess = _session(path, device, threads)
        in_name = sess.get_inputs()[0].name
        a1, ab = x1.cpu().numpy(), xb.cpu().numpy()
        with torch.inference_mode():
            ref = model(xb).float().cpu().numpy()
        diff = float(np.abs(sess.run(None, {in_name: ab})[0] - ref).max())
        stage()
        lat = time_calls(lambda: sess.run(None, {in_name: a1}), **{**timing, "sync": None})
        stage()
        thr = time_calls(lambda: sess.run(None, {in_name: ab}), **{**timing, "sync": None})
    batch = int(xb.shape[0])
    return {
        "onnxruntime": ort.__version__,
        "providers": sess.get_providers(),
        "exporter": "torch.onnx.export(dynamo=True), dynamic batch",
        "export_s": round(export_s, 2),
        "max_abs_diff_vs_torch": diff,
        "threads": threads,
        "latency": {"batch1": lat.as_dict()},
        "throughput": {"batch": batch, "images_per_s": round(batch / (thr.median_ms / 1e3), 2), **thr.as_dict()},
        "note": "includes host-to-device copies" if device == "cuda" else "fp32, CPUExecutionProvider",
    }
