"""Import the time-series task parts (templates/tasks/<task>/*.py) by path, as a generated project would see them.

A task part imports the project core's ``errors`` module (``ProjectError``, which the core's scripts turn into
``error: <line>`` and exit status 2). Where the core is in the templates, its file is used; before that, a module
with the same one class stands in for it.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from functools import cache
from pathlib import Path
from types import ModuleType

from archadvisor.resources import templates_dir


def _errors() -> ModuleType:
    core = templates_dir() / "core" / "errors.py"
    if core.is_file():
        return _load(core, "errors")
    mod = types.ModuleType("errors")

    class ProjectError(RuntimeError):
        """Something the user can fix; the message says what."""

    ProjectError.__module__ = "errors"
    mod.ProjectError = ProjectError  # type: ignore[attr-defined]
    return mod


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@cache
def task_module(task: str, module: str) -> ModuleType:
    """``templates/tasks/<task>/<module>.py``, imported under a name of its own."""
    if "errors" not in sys.modules:
        sys.modules["errors"] = _errors()
    return _load(templates_dir() / "tasks" / task / f"{module}.py", f"ts_{task.replace('-', '_')}_{module}")


def task_dir(task: str) -> Path:
    return templates_dir() / "tasks" / task
