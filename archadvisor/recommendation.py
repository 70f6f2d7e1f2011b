"""The Recommendation as typed, frozen values: what the engine returns and renderers only read.

The records are ``typing.NamedTuple`` classes: typed, immutable, compared by value, like frozen dataclasses,
but built without generating code per class at import. `recommend` pays for this module on every start; the
~25 frozen dataclasses it would take cost ~20 ms to create on 2 cores, as much as the rest of the command
(bench/cli_latency.py). The modules that define records at import (this one, spec, catalog, latency, recipe,
conditions, engine) do not use ``from __future__ import annotations``: with string annotations, typing compiles
a ForwardRef per field (about twice the cost of the record itself).

``Recommendation.to_json()`` is the JSON contract (`recommend --format json`, `--save`);
``Recommendation.from_json()`` reads it back with every field type-checked (a saved file is untrusted input:
``scaffold --from rec.json``), so save-then-load round-trips exactly. A section that does not apply to a task
is ``None`` (``null`` in JSON) and is left out of the rendered report and the generated config.
"""

import types
import typing
from typing import Any, NamedTuple, Union

from archadvisor.errors import InputError
from archadvisor.spec import ProblemSpec

SCHEMA = 2  # 2: provenance records {rule, file, reason}; final augmentation ops; monitor; task settings


class Provenance(NamedTuple):
    """Which rule chose a value: its id, the file it came from (None: derived in code), and why."""

    rule: str
    file: str | None = None
    reason: str | None = None

    def text(self) -> str:
        """``rule: reason`` on one line (rule text never spans lines in a comment it is pasted into)."""
        line = self.rule if not self.reason else f"{self.rule}: {self.reason}"
        return " ".join(line.split())


class LicenseInfo(NamedTuple):
    code: str
    weights: str
    kind: str  # vocab.LICENSE_KINDS: what binds this use (the weights count only when they are used)


class Architecture(NamedTuple):
    name: str
    family: str
    kind: str  # vocab.MODEL_KINDS
    why: str
    module: str | None = None  # the zoo family's model file (None: external model)
    params_m: float | None = None  # at the reference's 1000 ImageNet classes (catalog fact)
    params_m_for_classes: float | None = None  # at this problem's class count
    gmacs: float | None = None  # at the catalog input size
    gmacs_at_input: float | None = None
    imagenet_top1: float | None = None
    top1_image_size: int | None = None  # the resolution the top-1 was measured at
    top1_source: str | None = None
    metric: str | None = None  # external models: their published benchmark figure
    reference: str | None = None
    paper: str | None = None
    structure: str | None = None
    small_input: bool = False
    scaffold: bool = False
    license: LicenseInfo | None = None


class Alternative(NamedTuple):
    name: str
    family: str
    why: str
    meets_constraints: bool
    score: float
    params_m: float | None = None
    gmacs: float | None = None
    imagenet_top1: float | None = None
    expected_latency_ms: float | None = None
    metric: str | None = None
    provider: str | None = None
    license: LicenseInfo | None = None


class Optimizer(NamedTuple):
    name: str  # sgd | adamw
    momentum: float | None = None
    nesterov: bool | None = None
    betas: tuple[float, float] | None = None


class Freeze(NamedTuple):
    mode: str  # none | head-only | progressive
    epochs: int


class ProgressiveResizing(NamedTuple):
    enabled: bool
    schedule: tuple[tuple[int, int], ...] = ()  # (start epoch, image size)


class Monitor(NamedTuple):
    """The validation metric that picks the best checkpoint and drives early stopping."""

    metric: str
    mode: str  # min | max


class Training(NamedTuple):
    """The training recipe. A field that does not apply to the task is None (null in JSON, left out of the
    report and the generated config)."""

    pretrained: bool
    freeze: Freeze | None
    image_size: int | None
    small_input: bool
    num_classes: int | None  # None for tasks without classes (forecasting, generation, transcription)
    optimizer: Optimizer
    base_lr: float
    lr: float
    min_lr: float
    batch_size: int
    effective_batch_size: int
    grad_accum_steps: int
    weight_decay: float
    epochs: int
    warmup_epochs: int
    schedule: str  # cosine | poly | multistep | linear, after the warmup
    label_smoothing: float | None
    dropout: float | None
    drop_path: float | None
    ema_decay: float | None
    early_stopping_patience: int
    grad_clip_norm: float | None
    amp: bool
    channels_last: bool
    progressive_resizing: ProgressiveResizing | None
    steps_per_epoch: int
    monitor: Monitor
    warmup_steps: int | None = None  # warmup counted in optimizer steps (detection, fine-tuned transformers)
    poly_power: float | None = None  # poly: lr x (1 - t/T)^power
    milestones: tuple[int, ...] | None = None  # multistep: epochs where the LR drops 10x


class AugOp(NamedTuple):
    name: str
    params: dict[str, Any]


class Normalize(NamedTuple):
    mean: tuple[float, ...]
    std: tuple[float, ...]


class Augmentation(NamedTuple):
    """The final pipeline: ops in order, each decided once (no flip when mirrored inputs change the class;
    the crop size is ``training.image_size``)."""

    level: str
    ops: tuple[AugOp, ...]
    mixup_alpha: float
    cutmix_alpha: float
    mix_prob: float
    normalize: Normalize | None
    eval_crop_pct: float | None  # validation: resize to size / crop_pct, center-crop size (None: no crop)


class Deployment(NamedTuple):
    target: str
    export: str
    runtime: str
    precision: str
    quantize: str
    rule: str
    latency_basis: str
    latency_source: str | None = None
    expected_latency_ms: float | None = None
    latency_range_ms: tuple[float, float] | None = None
    latency_measured: bool = False


class Expected(NamedTuple):
    benchmark: str
    latency: str
    note: str


class TaskSettings(NamedTuple):
    """What the task itself fixes: its loss and the metrics a project reports (more fields per task)."""

    loss: str | None = None
    metrics: tuple[str, ...] = ()
    max_length: int | None = None  # text: tokens per input the recipe trains at (longer ones are truncated)


class Generated(NamedTuple):
    """What `scaffold` generates: the recommended model itself, or, when that one is not generatable (a library
    or hosted model), the best-ranked candidate that is, with the reason."""

    name: str
    module: str  # the shipped model file (templates/models/<module>.py) that becomes the project's model.py, or
    # "ultralytics": a project on the ultralytics package (archadvisor/ultralytics_project.py), or a library whose
    # project is a template of its own (archadvisor.resources.LIBRARY_PROJECTS: pytorch_forecasting)
    build: str  # the variant name that file's build_model takes (ultralytics: the model YAML)
    substitute: bool
    why: str


class TraceEntry(NamedTuple):
    rule: str
    file: str | None
    fired: bool
    because: str
    kind: str  # constraint | vote | table | recipe | deployment | scaffold | measure
    axis: str | None = None
    decided: bool = False


class Score(NamedTuple):
    name: str
    score: float
    votes: dict[str, float]


class Recommendation(NamedTuple):
    task: str
    inputs: ProblemSpec
    architecture: Architecture
    alternatives: tuple[Alternative, ...]
    training: Training | None
    augmentation: Augmentation | None
    deployment: Deployment
    expected: Expected
    task_settings: TaskSettings
    provenance: dict[str, Provenance]
    decided_by: str | None
    scores: tuple[Score, ...]
    trace: tuple[TraceEntry, ...]
    warnings: tuple[str, ...]
    tool_version: str
    rules_digest: str
    generated: Generated | None = None
    schema: int = SCHEMA

    def why(self, key: str) -> str:
        """One line naming the rule that chose ``key`` and why, or ``(default)``."""
        p = self.provenance.get(key)
        return p.text() if p is not None else "(default)"

    def to_json(self) -> dict[str, Any]:
        """The JSON contract: plain dicts, lists and scalars."""
        return _plain(self)

    @classmethod
    def from_json(cls, data: Any, *, where: str = "--from") -> "Recommendation":  # noqa: UP037 - the class being defined
        """Read a saved recommendation back, checking every field's type; InputError names the bad field."""
        if not isinstance(data, dict):
            raise InputError(where, type(data).__name__, "a saved recommendation (a JSON/YAML mapping)")
        schema = data.get("schema")
        if schema != SCHEMA:
            raise InputError(
                where,
                f"schema {schema!r}",
                f"schema {SCHEMA}",
                hint="saved by another archadvisor version: run `archadvisor recommend ... --save` again",
            )
        rec = _load(cls, data, where, "")
        if rec.generated is not None:
            from archadvisor.resources import LIBRARY_PROJECTS, model_modules
            from archadvisor.ultralytics_project import MODULE as ULTRALYTICS

            modules = model_modules() | {ULTRALYTICS} | set(LIBRARY_PROJECTS)
            if rec.generated.module not in modules:
                raise InputError(where, rec.generated.module, sorted(modules), hint="at generated.module")
        return rec


# --- plain <-> typed -------------------------------------------------------------------------------------


def _is_record(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, tuple) and hasattr(tp, "_fields")


_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    if type(value) in _SCALARS:  # most of the tree: leave at once
        return value
    if isinstance(value, ProblemSpec):
        return value.to_json()
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return {name: _plain(getattr(value, name)) for name in value._fields}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _bad(where: str, path: str, value: Any, expected: str) -> InputError:
    shown = value if isinstance(value, (int, float, bool, type(None))) else type(value).__name__
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
    return InputError(where, shown, expected, hint=f"at {path or 'the top level'}")


def _load(tp: Any, value: Any, where: str, path: str) -> Any:
    """``value`` (from JSON/YAML) as type ``tp``, strictly: no str->bool or str->number coercion."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _load(arg, value, where, path)
            except InputError as exc:
                errors.append(exc)
        raise errors[0] if errors else _bad(where, path, value, "a value")
    if tp is Any:
        return _check_plain(value, where, path)
    if tp is ProblemSpec:
        from archadvisor.spec import spec_from_inputs

        if not isinstance(value, dict):
            raise _bad(where, path, value, "a mapping of the problem's inputs")
        return spec_from_inputs(value)
    if _is_record(tp):
        if not isinstance(value, dict):
            raise _bad(where, path, value, f"a mapping ({tp.__name__})")
        hints = _hints(tp)
        fields = tp._fields
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise InputError(where, unknown[0], sorted(fields), hint=f"unknown key at {path or 'the top level'}")
        kwargs = {}
        for name in fields:
            sub = f"{path}.{name}" if path else name
            if name not in value:
                if name not in tp._field_defaults:
                    raise InputError(where, sub, "a saved recommendation", hint=f"it lacks {sub}")
                continue
            kwargs[name] = _load(hints[name], value[name], where, sub)
        return tp(**kwargs)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list):
            raise _bad(where, path, value, "a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_load(args[0], v, where, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise _bad(where, path, value, f"a list of {len(args)}")
        return tuple(_load(a, v, where, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is dict:
        _, vt = typing.get_args(tp)
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise _bad(where, path, value, "a mapping with string keys")
        return {k: _load(vt, v, where, f"{path}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise _bad(where, path, value, "true or false")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad(where, path, value, "an integer")
        return value
    if tp is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
            raise _bad(where, path, value, "a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _bad(where, path, value, "a string")
        if any(ord(c) < 32 and c not in "\t" for c in value):
            raise _bad(where, path, value, "a string without control characters (newlines included)")
        return value
    raise TypeError(f"unsupported field type {tp!r} at {path}")  # a programming error, not user input


def _check_plain(value: Any, where: str, path: str, depth: int = 0) -> Any:
    """Free-form values (augmentation params): scalars, lists and string-keyed mappings, bounded depth."""
    if depth > 8:
        raise _bad(where, path, value, "a value nested at most 8 deep")
    if isinstance(value, str):
        return _load(str, value, where, path)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, list):
        return [_check_plain(v, where, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _check_plain(v, where, f"{path}.{k}", depth + 1) for k, v in value.items()}
    raise _bad(where, path, value, "a number, string, list or mapping")
