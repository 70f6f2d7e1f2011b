"""The ProblemSpec: validated inputs. Every bad value becomes an InputError (one line, exit 2)."""

from typing import Any, NamedTuple

from archadvisor.errors import InputError, MissingInput
from archadvisor.vocab import (
    CLASSLESS_TASKS,
    COMPUTE,
    DEFAULT_COMPUTE,
    DEFAULT_GPUS,
    DEFAULT_IMAGE_SIZE,
    DEFAULT_IMAGE_SIZES,
    DEFAULT_TARGET,
    DEFAULT_TASK,
    FORECAST_TASKS,
    FREQUENCIES,
    GPU_COMPUTE,
    IMAGE_TASKS,
    OBJECT_SIZES,
    ONE_CLASS_TASKS,
    SEQUENCE_TASKS,
    TARGETS,
    TASKS,
)

# upper bounds on counts: far beyond any real problem, small enough that arithmetic on them stays exact
MAX_EXAMPLES = 10**12
MAX_CLASSES = 1_000_000
MAX_STEPS = 10**9  # horizon, lookback, sequence length
MAX_SERIES = 10**9
MAX_CHANNELS = 100_000
_FREQ_SPELLINGS = {spelling.lower(): canon for canon, spellings in FREQUENCIES.items() for spelling in spellings}
_FREQ_CASED = {spelling: canon for canon, spellings in FREQUENCIES.items() for spelling in spellings}


def canonical_frequency(raw: Any) -> str:
    """A sampling frequency in one canonical spelling (pandas >= 2.2 aliases: ``h``, ``D``, ``W``, ``ME``,
    ``QE``, ``YE`` ...), from old or new pandas spellings or words, with an optional multiple (``15min``).
    Validated without importing pandas (its import costs ~0.7 s)."""
    import re

    text = str(raw).strip()
    m = re.fullmatch(r"(\d*)\s*([A-Za-z-]+)", text)
    if m is None or (m.group(1) and int(m.group(1)) < 1):
        raise InputError("--frequency", raw, sorted(_FREQ_SPELLINGS))
    n, unit = m.groups()
    # case matters where pandas gives it meaning: M(onth) vs min, MS vs ms; words are case-insensitive
    canon = _FREQ_CASED.get(unit) or (_FREQ_SPELLINGS.get(unit.lower()) if len(unit) > 2 else None)
    if canon is None:
        raise InputError(
            "--frequency", raw, sorted(FREQUENCIES) + ["hourly", "daily", "weekly", "monthly", "quarterly", "yearly"]
        )
    return f"{int(n)}{canon}" if n and int(n) > 1 else canon


class ProblemSpec(NamedTuple):
    """What the user told us about the problem (after validation and defaults).

    A NamedTuple (immutable, typed, ``_replace``) rather than a frozen dataclass: `recommend` defines it at
    every start, and a dataclass execs generated code to do so (archadvisor/recommendation.py)."""

    task: str
    images: int
    classes: int | None  # None for tasks without classes (forecasting, generation, speech: CLASSLESS_TASKS)
    image_size: int | None  # None for tasks without images (text, code, time series, speech)
    compute: str
    gpus: int
    gpu_memory_gb: float | None
    latency_ms: float | None
    target: str
    pretrained: bool
    hflip: bool | None  # None for tasks without images
    object_size: str | None
    arch: str | None = None
    # task inputs (None where a task does not use them): forecasting horizon/lookback/frequency/series,
    # sequence channels and length (tokens for text)
    horizon: int | None = None
    lookback: int | None = None
    frequency: str | None = None
    series: int | None = None
    channels: int | None = None
    length: int | None = None
    permissive: bool = False  # only models whose code and used weights allow commercial use
    notes: tuple[str, ...] = ()  # input contradictions -> warnings; not part of the problem (not compared)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProblemSpec):
            return NotImplemented
        return self[:-1] == other[:-1]

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self[:-1])

    def env(self) -> dict[str, Any]:
        """The variables rule conditions may test (archadvisor.conditions.VARIABLES, spec phase)."""
        d = self.to_json()
        d["arch_forced"] = d.pop("arch") is not None
        return d

    def to_json(self) -> dict[str, Any]:
        d = self._asdict()
        d.pop("notes")
        return d


def _int(flag: str, raw: Any, lo: int, hi: int) -> int:
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = int(str(raw).replace("_", "")) if not isinstance(raw, int) else raw
        if isinstance(raw, float) or (isinstance(raw, str) and not str(raw).replace("_", "").lstrip("-").isdigit()):
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(flag, raw, f"an integer in {lo}..{hi}") from None
    if value < lo or value > hi:
        raise InputError(flag, raw, f"an integer in {lo}..{hi}")
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
    task: str | None = DEFAULT_TASK,
    images: Any = None,
    classes: Any = None,
    image_size: Any = None,
    compute: str | None = None,
    gpus: Any = None,
    gpu_memory_gb: Any = None,
    latency_ms: Any = None,
    target: str | None = None,
    pretrained: bool = True,
    hflip: bool | None = True,
    object_size: str | None = None,
    arch: str | None = None,
    horizon: Any = None,
    lookback: Any = None,
    frequency: Any = None,
    series: Any = None,
    channels: Any = None,
    length: Any = None,
    permissive: bool = False,
    default_classes: dict[str, int | None] | None = None,
) -> ProblemSpec:
    """Validate raw flag values (strings or numbers) into a ProblemSpec with the documented defaults."""
    task_v = _choice("--task", task if task is not None else DEFAULT_TASK, TASKS)
    if images is None:
        raise MissingInput("--images", "the number of labelled training examples, e.g. --images 8000")
    images_v = _int("--images", images, 1, MAX_EXAMPLES)
    notes: list[str] = []
    classes_v: int | None
    if task_v in CLASSLESS_TASKS:
        if classes is not None:
            notes.append(f"--classes {classes} does not apply to {task_v} (it has no classes); ignored")
        classes_v = None
    elif classes is None:
        classes_v = (default_classes or {}).get(task_v, 1000 if task_v == "classification" else 2)
    else:
        classes_v = _int("--classes", classes, 1 if task_v in ONE_CLASS_TASKS else 2, MAX_CLASSES)
    default_size = DEFAULT_IMAGE_SIZES.get(task_v, DEFAULT_IMAGE_SIZE)
    image_size_v: int | None = default_size if image_size is None else _int("--image-size", image_size, 8, 2048)
    if task_v not in IMAGE_TASKS:
        if image_size is not None:
            notes.append(f"--image-size {image_size_v} does not apply to {task_v}; ignored")
        image_size_v = None
    compute_v = _choice("--compute", compute if compute is not None else DEFAULT_COMPUTE, COMPUTE)
    target_v = _choice("--target", target if target is not None else DEFAULT_TARGET, TARGETS)
    if gpus is None:
        gpus_v = DEFAULT_GPUS[compute_v]
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
    task_inputs = _task_inputs(task_v, notes, horizon=horizon, lookback=lookback, frequency=frequency,
                               series=series, channels=channels, length=length)  # fmt: skip
    return ProblemSpec(
        **task_inputs,
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
        hflip=None if task_v not in IMAGE_TASKS else True if hflip is None else bool(hflip),
        permissive=bool(permissive),
        object_size=object_v,
        arch=arch,
        notes=tuple(notes),
    )


def _task_inputs(task: str, notes: list[str], **raw: Any) -> dict[str, Any]:
    """The task inputs, validated; a value given for a task that does not use it becomes a note."""
    applies = {
        "horizon": FORECAST_TASKS, "lookback": FORECAST_TASKS, "frequency": FORECAST_TASKS, "series": FORECAST_TASKS,
        "channels": ("time-series", "time-series-classification"), "length": SEQUENCE_TASKS,
    }  # fmt: skip
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if value is None:
            continue
        flag = "--" + key
        if task not in applies[key]:
            notes.append(f"{flag} {value} does not apply to {task}; ignored")
            continue
        if key == "frequency":
            out[key] = canonical_frequency(value)
        else:
            hi = {"series": MAX_SERIES, "channels": MAX_CHANNELS}.get(key, MAX_STEPS)
            out[key] = _int(flag, value, 1, hi)
    if out.get("horizon") is not None and out.get("lookback") is not None and out["lookback"] < out["horizon"]:
        notes.append(
            f"--lookback {out['lookback']} is shorter than --horizon {out['horizon']}: forecasters usually see "
            "several horizons of history (PatchTST and N-HiTS use 2-7x)"
        )
    return out


_SAVED_TYPES: dict[str, tuple[type, ...]] = {
    "task": (str,), "images": (int,), "classes": (int, type(None)), "image_size": (int, type(None)), "compute": (str,),
    "gpus": (int,), "gpu_memory_gb": (int, float, type(None)), "latency_ms": (int, float, type(None)),
    "target": (str,), "pretrained": (bool,), "hflip": (bool, type(None)), "object_size": (str, type(None)),
    "arch": (str, type(None)), "horizon": (int, type(None)), "lookback": (int, type(None)),
    "frequency": (str, type(None)), "series": (int, type(None)), "channels": (int, type(None)),
    "length": (int, type(None)), "permissive": (bool,),
}  # fmt: skip


def spec_from_inputs(inputs: dict[str, Any], default_classes: dict[str, int | None] | None = None) -> ProblemSpec:
    """Rebuild a spec from a saved Recommendation's ``inputs`` (``--from rec.json``), strictly typed:
    ``"pretrained": "false"`` is an error, not true."""
    unknown = sorted(set(inputs) - set(_SAVED_TYPES))
    if unknown:
        raise InputError("--from", unknown[0], sorted(_SAVED_TYPES), hint="unknown key in the saved inputs")
    for key, value in inputs.items():
        types_ = _SAVED_TYPES[key]
        if not isinstance(value, types_) or (isinstance(value, bool) and bool not in types_):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types_)
            raise InputError("--from", value, f"{names} for inputs.{key}")
    return build_spec(**inputs, default_classes=default_classes)
