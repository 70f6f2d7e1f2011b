"""Profile one model here: parameters, GMACs, peak memory, latency and throughput (``archadvisor profile``).

Latency is measured in eval mode under ``torch.inference_mode``, after warm-up (CUDA: synchronized), with the
adaptive stop rule of ``timing.time_calls``; GMACs as in ``flops``, memory as in ``memory``. How each figure was
obtained is returned in every result under ``method``. torch is imported inside the functions.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from archadvisor.measure.device import check_device, device_name, torch_module, torch_threads
from archadvisor.measure.flops import count_gmacs
from archadvisor.measure.limits import check_input_size, check_run_options
from archadvisor.measure.memory import peak_memory
from archadvisor.measure.timing import (
    MAX_SECONDS,
    MIN_RUNS,
    MIN_WARMUP,
    TARGET_REL_CI,
    CpuContention,
    busy_warning,
    time_calls,
    warmup_seconds_for,
)

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from archadvisor.catalog import External, Variant

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage_description, stages_done, stages_total)``: called when each stage starts and once at the end."""


def build_for(
    variant: Variant | External, image_size: int, *, small_input: bool, num_classes: int = 1000
) -> tuple[nn.Module, bool]:
    """The zoo model of ``variant`` (random init, eval mode) and whether it got the small-input stem.

    ``small_input``: the caller's decision that ``image_size`` is small (the rules' threshold); the stem is built
    only where the family has one.
    """
    from archadvisor.resources import load_model_module

    if is_segmentation(variant):
        # the shipped segmentation file (U-Net, torchvision DeepLabV3 / LR-ASPP) at VOC's 21 classes, the class
        # count the catalog's figures are for; no small-input stem
        module = load_model_module(variant.module)
        return DenseLogits(module.build_model(variant.build, SEGMENTATION_CLASSES)).eval(), False
    small = small_input and bool(variant.small_input)
    module = load_model_module(variant.module)
    model = module.build_model(variant.name, num_classes=num_classes, small_input=small)
    return model.eval(), small


# the catalog's segmentation figures count 21 output classes (PASCAL VOC, torchvision's segmentation weights)
SEGMENTATION_CLASSES = 21


def is_segmentation(variant: Variant | External) -> bool:
    """A catalog entry ``profile`` builds as a segmentation model: a generatable semantic-segmentation row."""
    return getattr(variant, "task", None) == "semantic-segmentation" and getattr(variant, "module", None) is not None


def _dense_logits_class() -> type:
    torch = torch_module()

    class _DenseLogits(torch.nn.Module):
        """A segmentation model whose forward returns the B x classes x H x W logits alone.

        torchvision's DeepLabV3 / LR-ASPP return ``{"out": ..., "aux": ...}``; the U-Nets a tensor. Timing,
        GMACs and ONNX see the same computation either way; the training step's loss is on ``out`` (the
        auxiliary head still runs in training mode, its activations count in the memory figure).
        """

        dense_output = True

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.inner(x)
            if isinstance(out, dict):
                return out["out"]
            return out[0] if isinstance(out, tuple | list) else out

    return _DenseLogits


def DenseLogits(inner: nn.Module) -> nn.Module:  # noqa: N802 (a class built on first use: torch imported lazily)
    """``inner`` wrapped so that its forward returns the main logits tensor (see ``_dense_logits_class``)."""
    return _dense_logits_class()(inner)


def stages(onnx: bool, batch: int) -> list[str]:
    """The stage descriptions ``profile_model`` reports through ``progress``, in order."""
    out = [
        "build model",
        "count parameters and GMACs",
        f"peak memory: inference (batch {batch})",
        f"peak memory: training step (batch {max(batch, 2)})",
        "latency (batch 1)",
        f"throughput (batch {batch})",
    ]
    if onnx:
        out += ["ONNX export", "ONNX Runtime latency (batch 1)", f"ONNX Runtime throughput (batch {batch})"]
    return out


def checked_stages(
    size: int,
    batch: int,
    threads: int | None,
    max_seconds: float,
    device: str,
    onnx: bool,
    progress: ProgressFn | None,
) -> Callable[[], None]:
    """Check a run's options (one-line errors before anything is built), then the ``stage()`` callback that
    reports each of ``stages(onnx, batch)`` through ``progress`` as it starts, then "done" once past the last."""
    check_run_options(image_size=size, batch=batch, threads=threads, max_seconds=max_seconds)
    check_input_size(size, max(batch, 2))
    check_device(device)
    names = stages(onnx, batch)
    done = 0

    def stage() -> None:
        nonlocal done
        if progress is not None:
            progress(names[done] if done < len(names) else "done", min(done, len(names)), len(names))
        done += 1

    return stage


def profile_model(
    variant: Variant | External,
    *,
    small_input_max_px: int,
    image_size: int | None = None,
    batch: int = 8,
    device: str = "cpu",
    threads: int | None = None,
    onnx: bool = False,
    progress: ProgressFn | None = None,
    target_rel_ci: float = TARGET_REL_CI,
    max_seconds: float = MAX_SECONDS,
) -> dict[str, Any]:
    """Measure ``variant`` here: params, GMACs, peak memory (inference, training step), latency and throughput.

    Args:
        variant: the catalog variant (built from the zoo's model file, random weights), or a generatable
            semantic-segmentation row (built from its shipped model file at 21 classes; the figures are the
            main logits', B x 21 x H x W).
        small_input_max_px: the rules' small-input threshold (``RuleSet.small_input_max_px``): at or below it
            the small-input stem is built.
        image_size: input side in px (default: the catalog's input size, so figures compare with the catalog).
        batch: batch size of the throughput and memory figures (latency is always batch 1).
        device: ``cpu`` or ``cuda``.
        threads: torch intra-op threads (and ONNX Runtime's) for CPU runs; default: torch's current setting.
        onnx: also export to ONNX and time it with ONNX Runtime.
        progress: ``progress(stage, done, total)``, called as each stage starts and at the end.
        target_rel_ci, max_seconds: the adaptive run count's stop rule (see ``time_calls``).

    Returns:
        A JSON-ready dict: figures, the catalog's figures beside them, and ``method`` (how each was measured).
    """
    size = image_size or variant.input_size
    stage = checked_stages(size, batch, threads, max_seconds, device, onnx, progress)
    with torch_threads(threads) as n_threads, CpuContention() as contention:
        stage()
        model, small = build_for(variant, size, small_input=size <= small_input_max_px)
        figures = _figures(model, size, batch, device, onnx, n_threads, stage, target_rel_ci, max_seconds)
    stage()  # past the last stage: "done"
    figures["method"] = {
        **_method(device, n_threads, target_rel_ci, max_seconds),
        "other_processes_cpu": None if contention.fraction is None else round(contention.fraction, 3),
    }
    figures["warnings"] = busy_warning(contention.fraction, device)
    return _result(variant, size, batch, small, figures)


def _figures(
    model: nn.Module,
    size: int,
    batch: int,
    device: str,
    onnx: bool,
    threads: int,
    stage: Callable[[], None],
    target_rel_ci: float,
    max_seconds: float,
) -> dict[str, Any]:
    """Every measured figure of ``model``, stage by stage (``stage()`` as each one starts, after the build)."""
    torch = torch_module()
    dev = torch.device(device)
    model = model.to(dev)
    stage()
    params = sum(p.numel() for p in model.parameters())
    gmacs, attn = count_gmacs(model, torch.randn(1, 3, size, size, device=dev))
    stage()
    dense = bool(getattr(model, "dense_output", False))
    classes = SEGMENTATION_CLASSES if dense else 1000
    mem_infer = peak_memory(model, batch, size, device, train=False, num_classes=classes, dense=dense)
    stage()
    # BatchNorm cannot train on one value per channel (batch 1 at a 1x1 map), so the training step uses >= 2.
    # The step updates the random weights; that changes no speed figure measured after it.
    mem_train = peak_memory(model, max(batch, 2), size, device, train=True, num_classes=classes, dense=dense)

    x1 = torch.randn(1, 3, size, size, device=dev)
    xb = torch.randn(batch, 3, size, size, device=dev)
    sync = torch.cuda.synchronize if device == "cuda" else None
    timing = {"target_rel_ci": target_rel_ci, "max_seconds": max_seconds, "sync": sync}
    timing["warmup_seconds"] = warmup_seconds_for(max_seconds)

    def run(x: Any) -> Callable[[], Any]:
        def call() -> Any:
            with torch.inference_mode():
                return model(x)

        return call

    stage()
    lat = time_calls(run(x1), **timing)
    stage()
    thr = time_calls(run(xb), **timing)
    onnx_result = None
    if onnx:
        from archadvisor.measure.onnx_timing import profile_onnx

        onnx_result = profile_onnx(model, x1, xb, device, threads, stage, timing)
    return {
        "params": params,
        "gmacs": gmacs,
        "attention_gmacs": attn,
        "memory": {"inference": mem_infer, "train_step": mem_train},
        "latency": {"batch1": lat.as_dict()},
        "throughput": {"batch": batch, "images_per_s": round(batch / (thr.median_ms / 1e3), 2), **thr.as_dict()},
        "onnx": onnx_result,
    }


def _result(variant: Variant | External, size: int, batch: int, small: bool, figures: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready result: the measured figures beside the catalog's."""
    params, gmacs = figures["params"], figures["gmacs"]
    expected = variant.gmacs_at(size, small_input=small)
    segmentation = is_segmentation(variant)
    # zoo variants list exact parameter counts; segmentation rows list millions to two decimals
    params_match = abs(params - variant.params) <= 5e3 if segmentation else params == variant.params
    return {
        "arch": variant.name,
        "family": variant.family if not segmentation else f"semantic-segmentation ({variant.module})",
        "kind": variant.kind,
        "image_size": size,
        "batch": batch,
        "small_input": small,
        "measured": True,
        "params": params,
        "params_m": round(params / 1e6, 3),
        "gmacs": round(gmacs, 4),
        "attention_gmacs": round(figures["attention_gmacs"], 4),
        "catalog": {
            "params": variant.params,
            "gmacs": variant.gmacs,
            "input_size": variant.input_size,
            "gmacs_at_image_size": round(expected, 4),
            "imagenet_top1": getattr(variant, "imagenet_top1", None),
            "cpu_latency_ms": variant.cpu_latency_ms,
        },
        "params_match_catalog": params_match,
        # exact only at the catalog's input size (the same build it counted); elsewhere its figure is only scaled
        "gmacs_delta_pct": round(100 * (gmacs / variant.gmacs - 1), 3)
        if size == variant.input_size and variant.gmacs
        else None,
        "memory": figures["memory"],
        "latency": figures["latency"],
        "throughput": figures["throughput"],
        "onnx": figures["onnx"],
        "method": figures["method"],
        "warnings": figures["warnings"],
    }


def _method(device: str, threads: int, target_rel_ci: float, max_seconds: float) -> dict[str, Any]:
    torch = torch_module()
    return {
        "device": device,
        "device_name": device_name(device),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "mode": "model.eval() under torch.inference_mode(), fp32, random weights, random input",
        "timer": "time.perf_counter per call" + (" after torch.cuda.synchronize()" if device == "cuda" else ""),
        "warmup": f">= {MIN_WARMUP} calls and >= {warmup_seconds_for(max_seconds):g} s",
        "stop_rule": (
            f"median's 95% CI (order statistics) within +-{target_rel_ci:.0%} after >= {MIN_RUNS} runs, "
            f"or {max_seconds:g} s per figure"
        ),
        "gmacs": "torch.utils.flop_counter.FlopCounterMode on one image, FLOPs/2, CPU attention kernel counted "
        "with torch's SDPA formula",
        "train_step": "AdamW, cross-entropy on random labels (per pixel for segmentation models), forward + "
        "backward + optimizer step",
    }
