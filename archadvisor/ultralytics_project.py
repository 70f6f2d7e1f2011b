"""The project `scaffold` generates when the advice's top choice is a YOLO model: ultralytics' own trainer.

ultralytics is AGPL-3.0 (code and the published weights). archadvisor does not copy any of it: the generated
project depends on the ``ultralytics`` package and builds the network from the package's model YAML
(``yolo11n.yaml``: ``ultralytics/cfg/models/11/yolo11.yaml`` at scale n), so nothing is downloaded. The project
is thin (``templates/ultralytics/``): config.yaml checked before anything runs, train.py calling
``YOLO(model_yaml).train(...)`` with the recipe's values, evaluate.py, predict.py, export.py (ultralytics' ONNX
export, checked against onnxruntime), the digits demo written in the YOLO layout, and its own tests. It does not
use archadvisor's PyTorch core, so the core's guarantees it lacks are stated in its README and in
``NOT_GUARANTEED`` (the CLI prints them).

Which models: the catalog's externals with an ``ultralytics`` key (the model YAML); ``--permissive`` excludes
them (archadvisor.engine generates the closest permissive model instead, and says so).

This module never imports ultralytics or torch.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any

from archadvisor.errors import ArchAdvisorError
from archadvisor.resources import templates_dir

# the module value of `generated` for this project kind: not a model file, the package that trains it
MODULE = "ultralytics"
# the pip requirement the project declares: 8.4 is the series this project's code and tests are written against
# (settings, exporter and trainer arguments as in ultralytics 8.4.190)
REQUIREMENT = "ultralytics>=8.4.190,<8.5"
TASKS = ("detection",)
# a model YAML name ultralytics resolves from its own cfg/models (scale letter in the name): nothing else is accepted
_MODEL_YAML = re.compile(r"^yolo(v8|11)[nsmlx](-p2)?\.yaml$")

LICENSE_NOTICE = (
    "ultralytics is licensed under AGPL-3.0: a program that uses it, and a service that runs it for others over "
    "a network, must make its complete source available under AGPL-3.0 too (or hold an Ultralytics Enterprise "
    "licence); Ultralytics states that these terms extend to models trained with it (ultralytics.com/license). "
    "Pass --permissive for a BSD-3-licensed torchvision detector instead."
)
NOT_GUARANTEED = (
    "exact resume (ultralytics restores weights, optimizer, EMA and epoch, not RNG or data order; it resumes at "
    "epoch boundaries only)",
    "weights_only checkpoint loading (ultralytics' .pt files are full pickles, loaded with weights_only=False: "
    "load only your own)",
    "a run lock (train.py refuses to reuse a run folder unasked, but two runs started at once are not stopped)",
    "one-line errors from inside training (config.yaml and the dataset are checked first; errors ultralytics "
    "raises later keep their traceback)",
    "the recipe's EMA decay and gradient-clipping norm (ultralytics fixes EMA at 0.9999 with a 2000-update ramp "
    "and clips at norm 10)",
    "torchrun DDP as in the other projects (ultralytics starts its own DDP subprocesses for device=0,1,...)",
)


class UltralyticsError(ArchAdvisorError):
    """The YOLO project cannot be generated; the one-line message says why."""


def installed() -> bool:
    """Whether ``ultralytics`` is importable here (found, not imported: scaffold stays torch-free)."""
    return importlib.util.find_spec("ultralytics") is not None


def check_model_yaml(name: str) -> str:
    if not isinstance(name, str) or not _MODEL_YAML.match(name):
        raise UltralyticsError(
            f"generated.build {name!r} is not an ultralytics model YAML archadvisor generates "
            "(yolo11n.yaml, yolov8s.yaml, yolov8s-p2.yaml ...)"
        )
    return name


def _op(rec: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    for op in (rec.get("augmentation") or {}).get("ops", []):
        if op.get("name") == name:
            return dict(op.get("params") or {})
    return None


def train_rows(rec: Mapping[str, Any], why: Callable[[str], str]) -> list[tuple[str, Any, str]]:
    """config.yaml's ``train`` section: (key, value, why) per ``YOLO.train`` argument, from the recipe."""
    t = rec["training"]
    opt = t["optimizer"]
    optimizer = {"sgd": "SGD", "adamw": "AdamW"}.get(opt["name"], "SGD")
    momentum = opt.get("momentum") if opt["name"] == "sgd" else (opt.get("betas") or [0.9])[0]
    accumulated = t.get("effective_batch_size") or t["batch_size"] * t["grad_accum_steps"]
    lrf = round(t["min_lr"] / t["lr"], 6) if t.get("min_lr") is not None and t["lr"] else 0.01
    schedule = t.get("schedule")
    mosaic, hsv, scale, flip = (
        _op(rec, "mosaic"),
        _op(rec, "hsv"),
        _op(rec, "random_scale"),
        _op(rec, "horizontal_flip"),
    )
    aug = "augmentation.ops"
    rows = [
        ("epochs", t["epochs"], why("training.epochs")),
        ("imgsz", t["image_size"], why("training.image_size")),
        ("batch", t["batch_size"], why("training.batch_size")),
        (
            "nbs",
            accumulated,
            "nominal batch: gradients accumulate over round(nbs / batch) batches; " + why("training.batch_size"),
        ),
        ("optimizer", optimizer, why("training.optimizer")),
        ("lr0", t["lr"], why("training.lr")),
        ("lrf", lrf, "final lr = lr0 x lrf (min_lr / lr); " + why("training.min_lr")),
        ("momentum", momentum if momentum is not None else 0.937, why("training.optimizer")),
        (
            "weight_decay",
            t["weight_decay"],
            "ultralytics scales it by batch x accumulate / nbs; " + why("training.weight_decay"),
        ),
        ("warmup_epochs", float(t["warmup_epochs"] or 0), why("training.warmup_epochs")),
        (
            "cos_lr",
            schedule == "cosine",
            f"schedule {schedule}: false is ultralytics' linear decay to lrf; " + why("training.schedule"),
        ),
        (
            "patience",
            t.get("early_stopping_patience") or 0,
            "epochs without a better fitness (0.1 mAP50 + 0.9 "
            "mAP50-95); 0: never stop early; " + why("training.early_stopping_patience"),
        ),
        ("mosaic", float(mosaic["p"]) if mosaic else 0.0, why(aug)),
        (
            "close_mosaic",
            int(mosaic.get("close_last_epochs", 0)) if mosaic else 0,
            "mosaic off for the last N epochs; " + why(aug),
        ),
        ("mixup", float((rec.get("augmentation") or {}).get("mix_prob") or 0.0), why(aug)),
        ("hsv_h", float(hsv["h"]) if hsv else 0.0, why(aug)),
        ("hsv_s", float(hsv["s"]) if hsv else 0.0, why(aug)),
        ("hsv_v", float(hsv["v"]) if hsv else 0.0, why(aug)),
        ("scale", float(scale["scale"]) if scale else 0.0, why(aug)),
        ("translate", 0.1, "(default) ultralytics cfg/default.yaml"),
        ("fliplr", float(flip["p"]) if flip else 0.0, "0: mirrored images are another class (--no-hflip); " + why(aug)),
        (
            "amp",
            bool(t["amp"]),
            "CUDA only; ultralytics' AMP check first tries to download yolo26n.pt (offline: "
            "skipped with a warning, AMP stays on); " + why("training.amp"),
        ),
        ("seed", 0, "(default)"),
        ("deterministic", True, "(default) torch.use_deterministic_algorithms where ultralytics can"),
        ("device", None, "null: the first GPU if there is one, else cpu; or cpu, 0, 0,1"),
        ("plots", False, "true draws label and result plots: ultralytics then needs Arial.ttf, downloaded once"),
    ]
    return rows


def _yaml_inline(value: Any) -> str:
    import yaml  # here, not at the top: the engine imports this module on `recommend`'s start-up path

    return yaml.safe_dump(value, default_flow_style=True, width=2**31).removesuffix("...\n").strip()


def render(rec: Mapping[str, Any], name: str, version: str, env_factory: Callable[[list], Any],
           demo_npz: bytes, errors_py: bytes) -> dict[str, bytes]:  # fmt: skip
    """The project's files, relative POSIX path -> contents (the manifest is added by the caller)."""
    generated = rec["generated"]
    if rec["task"] not in TASKS:
        raise UltralyticsError(f"the ultralytics project is generated for {', '.join(TASKS)}, not {rec['task']!r}")
    check_model_yaml(generated["build"])
    root = templates_dir() / "ultralytics"
    env = env_factory([root])
    why = env.globals["why"]
    context = {
        "rec": rec,
        "name": name,
        "version": version,
        "model_yaml": generated["build"],
        "train_rows": [(k, _yaml_inline(v), c) for k, v, c in train_rows(rec, why)],
        "requirement": REQUIREMENT,
        "license_notice": LICENSE_NOTICE,
        "not_guaranteed": NOT_GUARANTEED,
    }
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_dir() or {"__pycache__", ".pytest_cache", ".ruff_cache", "runs", ".ultralytics"} & set(rel.parts):
            continue
        if rel.parts[:2] == ("demo", "digits_yolo") or path.suffix in (".pyc", ".pyo"):
            continue
        key = PurePosixPath(*rel.parts).as_posix()
        if key.endswith(".j2"):
            files[key.removesuffix(".j2")] = env.get_template(key).render(context).encode("utf-8")
        else:
            files[key] = path.read_bytes()
    files["errors.py"] = errors_py  # the core's one-line error convention, the same file every project has
    files["demo/digits.npz"] = demo_npz  # the detection demo's glyphs: the same canvases, in the YOLO layout
    return files
