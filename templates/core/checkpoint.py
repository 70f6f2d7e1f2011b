"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``, and every RNG state for --resume.

``last.pt`` holds everything ``train.py --resume`` needs (model, EMA, optimizer, schedule, loss scaler, history,
the monitor's best value, every rank's RNG state); ``best.pt`` holds the weights of the best epoch and what
``evaluate.py``, ``predict.py`` and ``export.py`` need to rebuild the model (the task's ``meta`` and the config).
Both contain tensors and plain containers only, so loading them never unpickles arbitrary Python objects.
"""

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

import task
from errors import ProjectError


def save_atomic(obj: Any, path: Path) -> None:
    """Write to a temporary file, flush it to disk, then rename: a crash leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Any]:
    """A checkpoint of this project; a missing file is a one-line error."""
    if not path.is_file():
        raise ProjectError(f"no checkpoint at {path} (train first: python train.py)")
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state() -> dict[str, Any]:
    """Every RNG state as tensors and lists, so a checkpoint loads with ``torch.load(weights_only=True)``."""
    version, state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(state), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_model(path: Path, *, ema: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """The model saved in a train.py checkpoint (``best.pt`` or ``last.pt``), in eval mode, and the checkpoint.

    ``ema=True`` takes the EMA weights when the run kept them (what train.py validated), else the raw ones.
    The architecture is rebuilt from the checkpoint's ``meta`` without pretrained weights: nothing is fetched.
    """
    ckpt = load(path)
    model = task.model_from_meta(ckpt["meta"])
    weights = ckpt["model_ema"] if ema and ckpt["model_ema"] is not None else ckpt["model"]
    model.load_state_dict(weights)
    return model.eval(), ckpt


def default_checkpoint(config: Path) -> Path:
    """``<run.out>/best.pt`` of ``config.yaml``: where ``python train.py`` puts the best epoch."""
    with open(config, encoding="utf-8") as fh:
        return Path(yaml.safe_load(fh)["run"]["out"]) / "best.pt"
