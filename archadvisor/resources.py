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


# shipped files under templates/models/ that are helpers, not a family's model file
_HELPER_MODULES = frozenset({"weights"})


@cache
def shipped_modules() -> frozenset[str]:
    """Every importable file name the package ships under templates/models/ (helpers included), no
    private (``_x``) files. Nothing else is ever imported by name."""
    models = templates_dir() / "models"
    return frozenset(
        p.stem for p in models.glob("*.py") if p.stem.isidentifier() and not p.stem.startswith("_") and p.is_file()
    )


# projects generated on the library that implements the model instead of the shared core and an owned model file:
# generated.module -> the template folder under templates/tasks/ that is the whole project
LIBRARY_PROJECTS = {"pytorch_forecasting": "time-series-tft"}


def model_modules() -> frozenset[str]:
    """The names a rule file may give as a family's ``module``: the shipped model files, no helpers."""
    return shipped_modules() - _HELPER_MODULES


def model_file(module: str) -> Path:
    """The model file of a family, e.g. ``model_file("resnet")`` -> templates/models/resnet.py.

    ``module`` must name a shipped file (see ``shipped_modules``); the path is resolved and must stay
    inside the package's templates/models, so a name from a rule file or a rec.json can never reach
    another file (``../x``, an absolute path, a symlink out of the tree)."""
    if not isinstance(module, str) or module not in shipped_modules():
        raise ValueError(f"{module!r} is not a model file shipped with archadvisor (templates/models/*.py)")
    models = (templates_dir() / "models").resolve()
    path = (models / f"{module}.py").resolve()
    if path.parent != models or not path.is_file():
        raise ValueError(f"{module!r} does not resolve to a file inside {models}")
    return path


def load_model_module(module: str) -> ModuleType:
    """Import a family's model file by path (imports torch: only for commands that measure models).

    Only shipped files are imported (``model_file`` checks the name and the resolved path)."""
    path = model_file(module)
    spec = importlib.util.spec_from_file_location(f"archadvisor_models_{module}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    # registered before exec: dataclasses (and pickling) look the module up by name
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod
