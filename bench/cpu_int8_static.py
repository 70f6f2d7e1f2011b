"""What INT8 buys a CNN on the cloud-cpu target: batch-1 latency of the smallest CNN of every zoo family, fp32
PyTorch eager (what the cloud-cpu estimate is fitted on) against onnxruntime fp32, INT8 dynamic and INT8 static.

    python bench/cpu_int8_static.py            # measure (idle machine, 2 threads), print, write the JSON
    python bench/cpu_int8_static.py --show     # print the committed bench/results/cpu_int8.json

The quantizers are the ones the generated project's export.py runs: ``quantize_dynamic`` (int8 weights,
activation ranges per call) and ``quantize_static`` (QDQ, per-channel int8 weights, uint8 activations calibrated on
inputs: U8S8, onnxruntime's fast path on x86-64; S8S8 activations measured 1.5-3x slower here, e.g. ResNet-18 at
224 px 15.0 ms against 5.3 ms). Calibration here uses random inputs: the ranges change the accuracy, not the speed. The median ratio
``int8-static / eager fp32`` is rules/devices.yaml's cloud-cpu ``precision_factors.int8-static``;
tests/test_latency_table.py checks the two agree, without timing anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "results" / "cpu_int8.json"
SIZES = (64, 224)
THREADS = 2


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class _RandomCalibration:
    def __init__(self, name: str, shape: tuple[int, ...], n: int = 16) -> None:
        import numpy as np

        rng = np.random.default_rng(0)
        self.batches = iter([{name: rng.standard_normal(shape).astype("float32")} for _ in range(n)])

    def get_next(self):
        return next(self.batches, None)


def measure() -> list[dict]:
    import torch
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_dynamic, quantize_static

    from archadvisor.catalog import Catalog
    from archadvisor.engine import uses_small_input
    from archadvisor.measure.onnx_timing import _export
    from archadvisor.measure.profile import build_for
    from archadvisor.measure.timing import time_calls
    from archadvisor.ruleset import load_rules

    torch.set_num_threads(THREADS)
    rules = load_rules()
    smallest: dict[str, object] = {}
    for v in Catalog(rules).variants:
        if v.kind == "cnn" and (v.family not in smallest or v.params < smallest[v.family].params):
            smallest[v.family] = v
    rows = []
    for v in smallest.values():
        for size in SIZES:
            small = uses_small_input(v, size, rules)
            model, small = build_for(v, size, small_input=small)
            x = torch.randn(1, 3, size, size)
            with torch.inference_mode():
                eager = time_calls(lambda m=model, x=x: m(x), max_seconds=3.0).median_ms
            row = {"model": v.name, "family": v.family, "image_size": size, "small_input": small,
                   "eager_fp32_ms": round(eager, 3)}  # fmt: skip
            with tempfile.TemporaryDirectory() as tmp:
                src, prep = Path(tmp) / "model.onnx", Path(tmp) / "prep.onnx"
                _export(model, torch.randn(2, 3, size, size), src)
                quant_pre_process(str(src), str(prep))
                quantize_dynamic(str(prep), str(Path(tmp) / "dynamic.onnx"), weight_type=QuantType.QInt8)
                quantize_static(str(prep), str(Path(tmp) / "static.onnx"), _RandomCalibration("images", (1, 3, size, size)),
                                quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8)  # fmt: skip
                a = x.numpy()
                for name, file in (("ort_fp32_ms", src), ("ort_int8_dynamic_ms", Path(tmp) / "dynamic.onnx"),
                                   ("ort_int8_static_ms", Path(tmp) / "static.onnx")):  # fmt: skip
                    sess = _session(file)
                    feed = {sess.get_inputs()[0].name: a}
                    row[name] = round(time_calls(lambda s=sess, f=feed: s.run(None, f), max_seconds=3.0).median_ms, 3)
            row["static_over_eager"] = round(row["ort_int8_static_ms"] / eager, 3)
            rows.append(row)
            print(
                f"{v.name:22s} {size:4d}px eager {eager:8.2f} ms  ort fp32 {row['ort_fp32_ms']:8.2f}  "
                f"int8 dynamic {row['ort_int8_dynamic_ms']:8.2f}  int8 static {row['ort_int8_static_ms']:8.2f}  "
                f"static/eager {row['static_over_eager']:.2f}",
                flush=True,
            )
    return rows


def summarize(rows: list[dict]) -> dict:
    ratios = [r["static_over_eager"] for r in rows]
    return {"median_static_over_eager": round(statistics.median(ratios), 3),
            "min": min(ratios), "max": max(ratios), "n": len(ratios)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--show", action="store_true", help="print the committed table instead of measuring")
    args = p.parse_args()
    if args.show:
        data = json.loads(OUT.read_text())
        for r in data["rows"]:
            print(r)
        print(data["summary"])
        return
    import onnxruntime
    import torch

    rows = measure()
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "threads": THREADS,
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}  # fmt: skip
    data = {"meta": meta, "rows": rows, "summary": summarize(rows)}
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps(data["summary"]))


if __name__ == "__main__":
    main()
