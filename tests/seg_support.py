"""The semantic-segmentation task part as a generated project would see it, for tests in this repo.

A project has its files side by side (``model.py``, ``data.py``, ``task.py``, ...) and imports them by name.
``project_modules`` copies them into a temporary folder the same way and imports them, then removes them from
``sys.modules`` again so they never shadow another test's modules. ``errors.py`` comes from the project core
(``templates/core``).
"""

from __future__ import annotations

import importlib
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

from archadvisor.resources import templates_dir

TASK_DIR = templates_dir() / "tasks" / "semantic-segmentation"
MODULES = ("errors", "model", "weights", "data", "losses", "metrics", "task")


@contextmanager
def project_modules(root: Path, model_module: str = "unet") -> Iterator[SimpleNamespace]:
    """Lay the task part out in ``root`` as a project would (``model_module`` as model.py) and import it."""
    models = templates_dir() / "models"
    shutil.copytree(TASK_DIR, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    shutil.copy(models / f"{model_module}.py", root / "model.py")
    for name in ("weights.py", "resnet.py", "mobilenet_v3.py"):
        shutil.copy(models / name, root / name)
    shutil.copy(templates_dir() / "core" / "errors.py", root / "errors.py")
    shutil.copy(templates_dir() / "core" / "files.py", root / "files.py")
    shutil.copy(templates_dir() / "core" / "sampling.py", root / "sampling.py")
    saved = {name: sys.modules.pop(name) for name in MODULES if name in sys.modules}
    sys.path.insert(0, str(root))
    try:
        yield SimpleNamespace(**{name: importlib.import_module(name) for name in MODULES})
    finally:
        sys.path.remove(str(root))
        for name in MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
