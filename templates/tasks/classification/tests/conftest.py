"""The task's test data for the core's tests and its own: a tiny ImageFolder cut from the bundled digits.

Fixtures every task part provides (the core's tests use them without knowing the task):
  tiny_data       a dataset root in the task's layout, small enough for a 2-epoch run in seconds
  predict_inputs  input paths for predict.py (here: one folder of images)
  fixed_batch     (inputs, targets) to check that one optimizer step lowers the loss
  same_predictions  asserts that two predict.py outputs (PyTorch, onnxruntime) agree
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from predictions_csv import same_top_k

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
SIZE = CONFIG["data"]["image_size"]
CLASSES = 3


def digit_images(split: str, per_class: int) -> list[tuple[Image.Image, int]]:
    arrays = np.load(ROOT / "demo" / "digits.npz")
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    out = []
    for c in range(CLASSES):
        for pixels in images[labels == c][:per_class]:
            gray = Image.fromarray((pixels * 15).astype(np.uint8)).resize((SIZE, SIZE), Image.BILINEAR)
            out.append((gray.convert("RGB"), c))
    return out


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 digit classes, 8 train / 4 val images each, at the configured image size."""
    root = tmp_path_factory.mktemp("tiny")
    for split, n in (("train", 8), ("val", 4)):
        for i, (image, label) in enumerate(digit_images(split, n)):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i:02d}.png")
    return root


@pytest.fixture(scope="session")
def predict_inputs(tiny_data: Path) -> list[str]:
    return [str(tiny_data / "val")]


@pytest.fixture
def fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    from data import build_train_transform

    d = CONFIG["data"]
    transform = build_train_transform({**CONFIG["augmentation"], "ops": []}, SIZE, d["mean"], d["std"])
    digits = digit_images("train", 4)
    return torch.stack([transform(image) for image, _ in digits]), torch.tensor([label for _, label in digits])


@pytest.fixture
def same_predictions() -> Callable[[Path, Path], None]:
    """predictions.csv of two runs: the same files and top-1 labels, probabilities within 1e-4."""
    return same_top_k
