"""The ProblemSpec: validated inputs. Every bad value becomes an InputError (one line, exit 2)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from archadvisor.conditions import COMPUTE, OBJECT_SIZES, TARGETS, TASKS
from archadvisor.errors import InputError

DEFAULT_IMAGE_SIZE = 224
GPU_COMPUTE = ("single-gpu", "multi-gpu")
# tasks whose inputs are images (or frames): --image-size applies; the others have no resolution
IMAGE_TASKS = (
    "classification",
    "detection",
    "semantic-segmentation",
    "instance-segmentation",
    "image-generation",
    "video",
)


@dataclass(frozen=True)
class ProblemSpec:
    """What the user told us about the problem (after validation and defaults)."""

    task: str
    images: int
    classes: int
    image_size: int | None  # None for tasks without images (text, code, time series, speech)
    compute: str
    gpus: int
    gpu_memory_gb: float | None
    latency_ms: float | None
    target: str
    pretrained: bool
    hflip: bool
    object_size: str | None
    arch: str | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)  # input contradictions -> warnings

    def env(self) -> dict[str, Any]:
        """The variables rule conditions may test (archadvisor.conditions.VARIABLES, spec phase)."""
        d = asdict(self)
        d.pop("notes")
        d["arch_forced"] = d.pop("arch") is not None
        return d

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("notes")
        return d


def _int(flag: str, raw: Any, lo: int, hi: int | None = None) -> int:
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = int(str(raw).replace("_", "")) if not isinstance(raw, int) else raw
        if isinstance(raw, float) or (isinstance(raw, str) and not str(raw).replace("_", "").lstrip("-").isdigit()):
            raise ValueError
    except (TypeError, ValueError):
        rng = f"an integer >= {lo}" if hi is None else f"an integer in {lo}..{hi}"
        raise InputError(flag, raw, rng) from None
    if value < lo or (hi is not None and value > hi):
        rng = f"an integer >= {lo}" if hi is None else f"an integer in {lo}..{hi}"
        raise InputError(flag, raw, rng)
    return value


def _float(flag: str, raw: Any, lo_exclusive: float, hi: float) -> float:
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(raw)
    except (TypeError, ValueError):
        raise InputError(flag, raw, f"a number in ({lo_exclusive:g}, {hi:g}]") from None
    if not (lo_exclusive < value <= hi) or value != value:
        raise InputError(flag, raw, f"a number in ({lo_exclusive:g}, {hi:g}]")
    return value


def _choice(flag: str, raw: Any, choices: tuple[str, ...]) -> str:
    value = str(raw).strip().lower()
    if value not in choices:
        raise InputError(flag, raw, choices)
    return value


def build_spec(
    *,
    task: str | None = "classification",
    images: Any = None,
    classes: Any = None,
    image_size: Any = None,
    compute: str | None = None,
    gpus: Any = None,
    gpu_memory_gb: Any = None,
    latency_ms: Any = None,
    target: str | None = None,
    pretrained: bool = True,
    hflip: bool = True,
    object_size: str | None = None,
    arch: str | None = None,
    default_classes: dict[str, int] | None = None,
) -> ProblemSpec:
    """Validate raw flag values (strings or numbers) into a ProblemSpec with the documented defaults."""
    task_v = _choice("--task", task if task is not None else "classification", TASKS)
    if images is None:
        raise InputError("--images", None, "an integer >= 1 (the number of labelled training examples)")
    images_v = _int("--images", images, 1)
    if classes is None:
        classes_v = (default_classes or {}).get(task_v, 1000 if task_v == "classification" else 2)
    else:
        classes_v = _int("--classes", classes, 2, 1_000_000)
    default_size = 640 if task_v == "detection" else DEFAULT_IMAGE_SIZE
    image_size_v: int | None = default_size if image_size is None else _int("--image-size", image_size, 8, 2048)
    notes: list[str] = []
    if task_v not in IMAGE_TASKS:
        if image_size is not None:
            notes.append(f"--image-size {image_size_v} does not apply to {task_v}; ignored")
        image_size_v = None
    compute_v = _choice("--compute", compute if compute is not None else "single-gpu", COMPUTE)
    target_v = _choice("--target", target if target is not None else "cloud-gpu", TARGETS)
    if gpus is None:
        gpus_v = {"cpu": 0, "edge": 0, "single-gpu": 1, "multi-gpu": 4}[compute_v]
    else:
        gpus_v = _int("--gpus", gpus, 0, 4096)
        if compute_v in ("cpu", "edge") and gpus_v > 0:
            notes.append(f"--gpus {gpus_v} with --compute {compute_v}: GPUs ignored, training on {compute_v}")
            gpus_v = 0
        elif compute_v == "single-gpu" and gpus_v > 1:
            notes.append(f"--gpus {gpus_v} with --compute single-gpu: treated as multi-gpu")
            compute_v = "multi-gpu"
        elif compute_v in GPU_COMPUTE and gpus_v == 0:
            notes.append(f"--gpus 0 with --compute {compute_v}: assuming 1 GPU")
            gpus_v = 1
    gpu_mem_v = None if gpu_memory_gb is None else _float("--gpu-memory-gb", gpu_memory_gb, 0, 4096)
    latency_v = None if latency_ms is None else _float("--latency-ms", latency_ms, 0, 3_600_000)
    object_v = None if object_size is None else _choice("--object-size", object_size, OBJECT_SIZES)
    if object_v is not None and task_v != "detection":
        notes.append(f"--object-size {object_v} only applies to detection; ignored for {task_v}")
        object_v = None
    return ProblemSpec(
        task=task_v,
        images=images_v,
        classes=classes_v,
        image_size=image_size_v,
        compute=compute_v,
        gpus=gpus_v,
        gpu_memory_gb=gpu_mem_v,
        latency_ms=latency_v,
        target=target_v,
        pretrained=bool(pretrained),
        hflip=bool(hflip),
        object_size=object_v,
        arch=arch,
        notes=tuple(notes),
    )


def spec_from_inputs(inputs: dict[str, Any], default_classes: dict[str, int] | None = None) -> ProblemSpec:
    """Rebuild a spec from a saved Recommendation's ``inputs`` (``--from rec.json``)."""
    keys = {
        "task", "images", "classes", "image_size", "compute", "gpus", "gpu_memory_gb", "latency_ms",
        "target", "pretrained", "hflip", "object_size", "arch",
    }  # fmt: skip
    unknown = set(inputs) - keys
    if unknown:
        raise InputError("--from", sorted(unknown)[0], sorted(keys), hint="unknown key in the saved inputs")
    return build_spec(**{k: v for k, v in inputs.items() if k in keys}, default_classes=default_classes)
