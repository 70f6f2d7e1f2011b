"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``, and every RNG state for --resume.

``last.pt`` holds everything ``train.py --resume`` needs (model, EMA, optimizer, schedule, loss scaler, history,
the monitor's best value, every rank's RNG state); ``best.pt`` holds the weights of the best epoch and what
``evaluate.py``, ``predict.py`` and ``export.py`` need to rebuild the model (the task's ``meta`` and the config).
Both contain tensors and plain containers only, so loading them never unpickles arbitrary Python objects, and
a file that is not one of them (truncated, empty, another program's, a pickle with code in it) is one line
saying so, never torch's traceback.
"""

import os
import random
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from torch import nn

import model as model_file
import task
from config_schema import load_config
from errors import ProjectError

# what each kind of checkpoint holds (train.py's save_checkpoints writes them)
WEIGHTS_KEYS = ("meta", "config", "epoch", "metrics", "model", "model_ema")
RESUME_KEYS = (*WEIGHTS_KEYS, "optimizer", "scheduler", "scaler", "ema_n_averaged", "history", "best", "stale_epochs")


def write_atomic(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """``write(fh)`` into a temporary file of its own beside ``path``, flushed to disk, then renamed over
    ``path``: a crash leaves the old file or the new one, and two writers never share a temporary file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` through ``write_atomic``."""
    write_atomic(path, lambda fh: torch.save(obj, fh))


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:200]


def load(path: Path, keys: Iterable[str] = WEIGHTS_KEYS) -> dict[str, Any]:
    """A checkpoint this project wrote, holding ``keys``; anything else is a one-line ProjectError.

    ``weights_only=True`` refuses pickled code before any of it runs; torch's own message then suggests
    ``weights_only=False``, which would run it: the error here says what the file is instead.
    """
    if not path.is_file():
        raise ProjectError(f"no checkpoint at {path} (train first: python train.py)")
    not_ours = f"{path} is not a checkpoint this project wrote"
    what_to_do = "pass a best.pt / last.pt that train.py wrote (or train again: python train.py --overwrite)"
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says what matters
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - whatever a foreign or broken file makes the unpickler raise
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            reason = "it holds Python objects, not only tensors; it was not loaded, since that could run code"
        elif path.stat().st_size == 0:
            reason = "the file is empty"
        else:
            reason = "truncated, or not a file torch.save wrote"
        raise ProjectError(f"{not_ours} ({reason}); {what_to_do}") from None
    missing = [key for key in keys if not isinstance(ckpt, dict) or key not in ckpt]
    if missing:
        raise ProjectError(f"{not_ours} (no {', '.join(missing)}); {what_to_do}")
    return ckpt


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
    meta = ckpt["meta"]
    arch = meta.get("arch") if isinstance(meta, dict) else None
    # model.py's variants, and the models the task builds elsewhere (text: the encoders it fine-tunes)
    variants = [*getattr(model_file, "VARIANTS", [arch]), *getattr(task, "OTHER_ARCHS", ())]
    if arch not in variants:
        raise ProjectError(
            f"{path} holds a {arch!r} model; this project's model.py builds {', '.join(map(str, variants))}: "
            "use it in the project that trained it"
        )
    weights = ckpt["model_ema"] if ema and ckpt["model_ema"] is not None else ckpt["model"]
    try:
        model = task.model_from_meta(meta)
        model.load_state_dict(weights)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ProjectError(
            f"{path} is not a checkpoint this project wrote: its weights do not fit {arch} ({first_line(e)})"
        ) from None
    return model.eval(), ckpt


def default_checkpoint(config: Path) -> Path:
    """``<run.out>/best.pt`` of ``config.yaml``: where ``python train.py`` puts the best epoch."""
    return Path(load_config(config)["run"]["out"]) / "best.pt"
