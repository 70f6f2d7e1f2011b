"""The task's test data for the core's tests and its own: a few digit scenes, written like the bundled demo.

Fixtures every task part provides (the core's tests use them without knowing the task):
  tiny_data         a dataset root in the task's layout, small enough for a 2-epoch run in seconds
  predict_inputs    input paths for predict.py (here: one folder of images)
  fixed_batch       (inputs, targets) to check that one optimizer step lowers the loss
  same_predictions  asserts that two predict.py outputs (PyTorch, onnxruntime) agree
"""

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import data

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
SIZE = CONFIG["data"]["image_size"]
# the scenes' canvas: the training crop up to 96 px (bigger crops pad these scenes rather than slowing the tests)
CANVAS = min(96, max(48, SIZE))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 train / 6 val digit scenes (11 classes: background and the ten digits), classes.txt included."""
    root = tmp_path_factory.mktemp("tiny") / "scenes"
    spec = data.DemoSpec(size=CANVAS, train=16, val=6, glyph_px=(CANVAS // 4, CANVAS // 2), seed=1)
    return data.prepare_demo(root, spec)


@pytest.fixture(scope="session")
def predict_inputs(tiny_data: Path) -> list[str]:
    return [str(tiny_data / "val" / "images")]


@pytest.fixture
def fixed_batch(tiny_data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """8 training scenes and their masks, normalized as in validation (no augmentation)."""
    d = CONFIG["data"]
    pairs = data.check_split(tiny_data, "train", len(data.DEMO_CLASSES)).pairs[:8]
    dataset = data.Pairs(pairs, data.build_eval_transform(d["mean"], d["std"]))
    images, masks = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(images), torch.stack(masks)


def read_mask(path: Path) -> np.ndarray:
    with Image.open(path) as m:
        return np.asarray(m)


@pytest.fixture
def same_predictions() -> Callable[[Path, Path], None]:
    """fractions.json and the masks of two runs: the same images, >= 99.5 % of pixels with the same class.

    Not all: a pixel whose two best logits are within onnxruntime's rounding (1e-5) may flip.
    """

    def check(a_path: Path, b_path: Path) -> None:
        a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (a_path, b_path))
        assert list(a) == list(b) and len(a) > 0
        for file in a:
            assert a[file].keys() == b[file].keys()
            assert sum(a[file].values()) == pytest.approx(1.0)
            for name in a[file]:
                assert a[file][name] == pytest.approx(b[file][name], abs=5e-3), (file, name)
        masks_a = sorted(p for p in a_path.parent.glob("*.png") if not p.stem.endswith("_overlay"))
        assert [p.name for p in masks_a] == sorted(
            p.name for p in b_path.parent.glob("*.png") if not p.stem.endswith("_overlay")
        )
        for mask in masks_a:
            ours, theirs = read_mask(mask), read_mask(b_path.parent / mask.name)
            assert ours.shape == theirs.shape
            assert (ours == theirs).mean() >= 0.995, mask.name

    return check
