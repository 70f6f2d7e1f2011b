"""The task's test data for the core's tests and its own: a tiny train.npz / test.npz cut from the bundled GunPoint.

Fixtures every task part provides (the core's tests use them without knowing the task):
  tiny_data       a dataset root in the task's layout, small enough for a 2-epoch run in seconds
  predict_inputs  input paths for predict.py (here: the tiny test.npz)
  fixed_batch     (inputs, targets) to check that one optimizer step lowers the loss
  same_predictions  asserts that two predict.py outputs (PyTorch, onnxruntime) agree
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from predictions_csv import same_top_k

import data

ROOT = Path(__file__).resolve().parents[1]
GUNPOINT = ROOT / "demo" / "GunPoint"


def gunpoint(split: str, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``per_class`` series of each class of a GunPoint split: X (N x 1 x 150), string labels."""
    raw = data.read_ts(GUNPOINT / f"GunPoint_{split}.ts")
    labels = np.array(raw.labels)
    index = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in sorted(set(raw.labels))])
    return raw.X[index], labels[index]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 classes, 10 train / 6 test series each; the last training series is 30 steps shorter (NaN tail)."""
    root = tmp_path_factory.mktemp("tiny")
    for split, n, name in (("TRAIN", 10, "train"), ("TEST", 6, "test")):
        X, y = gunpoint(split, n)
        X = X.copy()
        X[-1, :, -30:] = np.nan
        np.savez(root / f"{name}.npz", X=X, y=y)
    return root


@pytest.fixture(scope="session")
def predict_inputs(tiny_data: Path) -> list[str]:
    return [str(tiny_data / "test.npz")]


@pytest.fixture
def fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    X, y = gunpoint("TRAIN", 4)
    X = (X - np.nanmean(X)) / np.nanstd(X)
    return torch.from_numpy(X.astype(np.float32)), torch.tensor([0 if v == "1" else 1 for v in y])


@pytest.fixture
def same_predictions() -> Callable[[Path, Path], None]:
    """predictions.csv of two runs: the same series and top-1 labels, probabilities within 1e-4."""
    return same_top_k
