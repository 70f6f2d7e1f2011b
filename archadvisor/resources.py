"""Where the shipped data lives: rules/ and templates/ (top-level in the repo, inside the wheel)."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

_PKG = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(f"none of {', '.join(map(str, candidates))} exists: is archadvisor installed correctly?")


@cache
def rules_dir() -> Path:
    """The built-in rules: ``archadvisor/rules`` in a wheel, ``<repo>/rules`` in a checkout."""
    return _first_existing(_PKG / "rules", _PKG.parent / "rules")


@cache
def templates_dir() -> Path:
    """The built-in templates: ``archadvisor/templates`` in a wheel, ``<repo>/templates`` in a checkout."""
    return _first_existing(_PKG / "templates", _PKG.parent / "templates")


def model_file(module: str) -> Path:
    """The model file of a family, e.g. ``model_file("resnet")`` -> templates/models/resnet.py."""
    return templates_dir() / "models" / f"{module}.py"


def load_model_module(module: str) -> ModuleType:
    """Import a family's model file by path (imports torch: only for commands that measure models)."""
    path = model_file(module)
    spec = importlib.util.spec_from_file_location(f"archadvisor_models_{module}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    # registered before exec: dataclasses (and pickling) look the module up by name
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod
