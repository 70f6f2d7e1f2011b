"""config.yaml, read with ``yaml.safe_load`` and checked key by key before ultralytics is imported.

Every script of this project reads its settings here: an unknown key, a wrong type or an out-of-range value is one
line naming the key, the value and what is expected (exit status 2), instead of ultralytics' own check, which
raises a multi-line ``SyntaxError`` with a traceback. ``--set section.key=value`` overrides a value from the
command line (the value is read as YAML: ``--set train.cos_lr=true``) and is checked the same way.

``offline_environment`` is called before the first ``import ultralytics``: it keeps the package from touching the
network and from writing outside this folder (see the README's "Offline" section for what each setting stops).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import yaml

from errors import ProjectError

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "config.yaml"

# key -> (type, constraint): "int"/"float" with (min, max), "str" with allowed values (None: any), "bool";
# a "?" suffix allows null
SCHEMA: dict[str, dict[str, tuple[str, Any]]] = {
    "model": {
        "arch": ("str", None),
        "yaml": ("str", None),  # an ultralytics model YAML (yolo11n.yaml): the network built from scratch
        "weights": ("str?", None),  # a local ultralytics .pt to start from instead (full pickle: only your own)
    },
    "data": {
        "yaml": ("str?", None),  # your data.yaml (YOLO layout); null: the bundled digits demo
        "workers": ("int", (0, 64)),
    },
    "train": {
        "epochs": ("int", (1, 100_000)),
        "imgsz": ("int", (32, 4096)),
        "batch": ("int", (1, 4096)),
        "nbs": ("int", (1, 4096)),
        "optimizer": ("str", ("SGD", "AdamW", "Adam", "auto")),
        "lr0": ("float", (1e-8, 10.0)),
        "lrf": ("float", (0.0, 1.0)),
        "momentum": ("float", (0.0, 1.0)),
        "weight_decay": ("float", (0.0, 1.0)),
        "warmup_epochs": ("float", (0.0, 1000.0)),
        "cos_lr": ("bool", None),
        "patience": ("int", (0, 100_000)),
        "mosaic": ("float", (0.0, 1.0)),
        "close_mosaic": ("int", (0, 100_000)),
        "mixup": ("float", (0.0, 1.0)),
        "hsv_h": ("float", (0.0, 1.0)),
        "hsv_s": ("float", (0.0, 1.0)),
        "hsv_v": ("float", (0.0, 1.0)),
        "scale": ("float", (0.0, 1.0)),
        "translate": ("float", (0.0, 1.0)),
        "fliplr": ("float", (0.0, 1.0)),
        "amp": ("bool", None),
        "seed": ("int", (0, 2**31 - 1)),
        "deterministic": ("bool", None),
        "device": ("str?", None),  # null: the first GPU if there is one, else cpu; "cpu", "0", "0,1"
        "plots": ("bool", None),
    },
    "run": {
        "project": ("str", None),  # runs go to <project>/<name> under this folder
        "name": ("str", None),
    },
    "export": {
        "opset": ("int", (9, 23)),
        "dynamic": ("bool", None),
        "half": ("bool", None),
    },
    "predict": {
        "conf": ("float", (0.0, 1.0)),
        "iou": ("float", (0.0, 1.0)),
        "max_det": ("int", (1, 100_000)),
    },
}


def _check(section: str, key: str, value: Any) -> Any:
    kind, constraint = SCHEMA[section][key]
    where = f"{section}.{key}"
    if kind.endswith("?"):
        if value is None:
            return None
        kind = kind[:-1]
    if kind == "bool":
        if not isinstance(value, bool):
            raise ProjectError(f"config {where}: {value!r} is not true or false")
        return value
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise ProjectError(f"config {where}: {value!r} is not a non-empty string")
        if constraint is not None and value not in constraint:
            raise ProjectError(f"config {where}: {value!r} is not one of {', '.join(constraint)}")
        return value
    number = (int,) if kind == "int" else (int, float)
    if isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value):
        raise ProjectError(f"config {where}: {value!r} is not {'an integer' if kind == 'int' else 'a number'}")
    low, high = constraint
    if not low <= value <= high:
        raise ProjectError(f"config {where}: {value!r} is outside [{low}, {high}]")
    return float(value) if kind == "float" else value


def _override(cfg: dict[str, Any], assignment: str) -> None:
    key, sep, text = assignment.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot:
        raise ProjectError(f"--set {assignment!r}: expected section.key=value, e.g. train.lr0=0.005")
    if section not in SCHEMA or name not in SCHEMA[section]:
        valid = ", ".join(f"{s}.{k}" for s in SCHEMA for k in SCHEMA[s])
        raise ProjectError(f"--set {key.strip()!r}: unknown key; valid keys: {valid}")
    try:
        cfg[section][name] = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ProjectError(f"--set {assignment!r}: the value is not valid YAML") from None


def load_config(path: Path = CONFIG, overrides: list[str] | None = None) -> dict[str, Any]:
    """``config.yaml`` as a checked dict: every section and key of ``SCHEMA``, nothing else."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ProjectError(f"cannot read {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ProjectError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ProjectError(f"{path} must hold a mapping of sections ({', '.join(SCHEMA)})")
    unknown = sorted(set(raw) - set(SCHEMA))
    if unknown:
        raise ProjectError(f"config: unknown section {unknown[0]!r}; sections: {', '.join(SCHEMA)}")
    cfg: dict[str, dict[str, Any]] = {}
    for section, keys in SCHEMA.items():
        given = raw.get(section)
        if not isinstance(given, dict):
            raise ProjectError(f"config: section {section!r} is missing or not a mapping")
        extra = sorted(set(given) - set(keys))
        if extra:
            raise ProjectError(f"config {section}: unknown key {extra[0]!r}; valid keys: {', '.join(keys)}")
        missing = [k for k in keys if k not in given]
        if missing:
            raise ProjectError(f"config {section}: missing key {missing[0]!r}")
        cfg[section] = dict(given)
    for assignment in overrides or []:
        _override(cfg, assignment)
    return {s: {k: _check(s, k, v) for k, v in cfg[s].items()} for s in SCHEMA}


def run_dir(cfg: dict[str, Any]) -> Path:
    """Where training writes (``run.project/run.name``), kept inside this folder."""
    folder = (HERE / cfg["run"]["project"] / cfg["run"]["name"]).resolve()
    if not folder.is_relative_to(HERE):
        raise ProjectError(f"config run.project/run.name resolve outside the project ({folder}): use plain names")
    return folder


def offline_environment() -> None:
    """Settings for ultralytics, read when it is imported; values already in the environment win.

    * ``YOLO_OFFLINE=1``: ``ultralytics.utils.is_online()`` answers False without a DNS query, so AutoUpdate
      (``check_requirements`` pip-installing a missing package) is skipped and the usage events are never sent;
    * ``YOLO_AUTOINSTALL=false``: no pip install from inside a script, even online;
    * ``YOLO_CONFIG_DIR``: its settings.json (and anything it caches) under ``.ultralytics/`` in this folder,
      not in your home directory.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(HERE / ".ultralytics"))
