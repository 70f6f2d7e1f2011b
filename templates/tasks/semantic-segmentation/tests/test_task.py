"""Tests of the semantic-segmentation part: mask checks in one line, the paired augmentation, the loss's class
weights, the evaluation report, and predict.py's outputs (sizes, same-stem inputs, any input size)."""

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import task
import train
from data import DataError, build_train_transform, load_data, read_pair

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
SIZE = CONFIG["data"]["image_size"]


def tiny_config(root: Path, **loss: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(CONFIG)
    cfg["data"].update({"root": str(root), "num_workers": 0, "batch_size": 4})
    cfg["model"]["pretrained"] = False
    cfg["loss"].update(loss)
    return cfg


@pytest.fixture(scope="module")
def one_epoch(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("seg_run")
    train.main(["--data", str(tiny_data), "--out", str(out), "--workers", "0", "--epochs", "1", "--no-pretrained",
                "--set", "data.batch_size=4", "--set", "training.warmup_epochs=0"])  # fmt: skip
    return out


def broken_copy(tiny_data: Path, tmp_path: Path, problem: str) -> Path:
    shutil.copytree(tiny_data, tmp_path, dirs_exist_ok=True)
    masks = tmp_path / "val" / "masks"
    first = min(masks.glob("*.png"))
    if problem == "missing mask":
        first.unlink()
    elif problem == "size":
        Image.fromarray(np.zeros((7, 9), np.uint8), mode="L").save(first)
    elif problem == "value":
        pixels = np.asarray(Image.open(first)).copy()
        pixels[0, 0] = 200
        Image.fromarray(pixels, mode="L").save(first)
    elif problem == "empty":
        for image in (tmp_path / "val" / "images").iterdir():
            image.unlink()
    return tmp_path


@pytest.mark.parametrize(
    ("problem", "message"),
    [("missing mask", "no mask"), ("size", "mask is 9x7"), ("value", "value 200 is not a class index"),
     ("empty", "empty split")],
)  # fmt: skip
def test_data_problems_stop_before_training_in_one_line(
    tiny_data: Path, tmp_path: Path, problem: str, message: str
) -> None:
    root = broken_copy(tiny_data, tmp_path, problem)
    with pytest.raises(DataError, match=message) as info:
        load_data(tiny_config(root), SIZE)
    assert "\n" not in str(info.value)


def test_training_pipeline_keeps_image_and_mask_together(tiny_data: Path) -> None:
    d = CONFIG["data"]
    pipeline = build_train_transform(CONFIG["augmentation"], SIZE, d["mean"], d["std"])
    image, mask = read_pair(*next(zip(sorted((tiny_data / "train" / "images").glob("*.png")),
                                      sorted((tiny_data / "train" / "masks").glob("*.png")), strict=True)))  # fmt: skip
    torch.manual_seed(0)
    x, y = pipeline(image, mask)
    assert x.shape == (3, SIZE, SIZE) and y.shape == (SIZE, SIZE)
    assert set(torch.unique(y).tolist()) <= set(range(11)) | {255}, "nearest-neighbour masks: no blended labels"


def test_class_weights_come_from_the_training_masks(tiny_data: Path) -> None:
    cfg = tiny_config(tiny_data, class_weights="median_frequency")
    loaded = task.build_data(cfg, SIZE, rank=0, world_size=1, pin_memory=False)
    meta = task.data_meta(cfg, loaded, log=lambda *a, **k: None)
    weights = task.build_loss(cfg, meta).class_weights
    pixels = torch.tensor(meta["class_pixels"], dtype=torch.float64)
    rarest = torch.where(pixels > 0, pixels, torch.inf).argmin()  # of the classes present: absent ones weigh 0
    assert weights[0] < 1 < weights[rarest], "background (most pixels) weighs least"
    assert torch.all(weights[pixels == 0] == 0), "a class without pixels adds nothing"
    assert task.build_loss(tiny_config(tiny_data), meta).class_weights is None


def test_summary_and_the_evaluation_report_agree(one_epoch: Path, tmp_path: Path) -> None:
    import evaluate

    summary = json.loads((one_epoch / "summary.json").read_text(encoding="utf-8"))
    assert {"best_val_miou", "val_dice", "val_pixel_acc"} <= set(summary)
    result = evaluate.main([str(one_epoch / "best.pt"), "--out", str(tmp_path)])
    report = json.loads((tmp_path / "per_class.json").read_text(encoding="utf-8"))
    confusion = np.array(report["confusion"])
    assert 100 * np.trace(confusion) / confusion.sum() == pytest.approx(result["val_pixel_acc"])
    ious = [r["iou"] for r in report["per_class"] if r["iou"] is not None]
    assert sum(ious) / len(ious) == pytest.approx(result["val_miou"])


def test_predict_writes_a_mask_per_input_at_its_size_and_keeps_same_stems_apart(
    one_epoch: Path, tiny_data: Path, tmp_path: Path
) -> None:
    import predict

    # two inputs with the same stem in different folders, of different sizes (one batch: padded together)
    source = min((tiny_data / "val" / "images").glob("*.png"))
    for folder, size in (("a", (40, 30)), ("b", (57, 61))):
        (tmp_path / folder).mkdir()
        Image.open(source).convert("RGB").resize(size).save(tmp_path / folder / "x.png")
    written = predict.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "out"),
                            "--checkpoint", str(one_epoch / "best.pt")])  # fmt: skip
    fractions = json.loads(written.read_text(encoding="utf-8"))
    assert len(fractions) == 2
    for name, size in (("a_x", (40, 30)), ("b_x", (57, 61))):
        with Image.open(tmp_path / "out" / f"{name}.png") as mask:
            assert mask.size == size and mask.mode == "P"
        assert (tmp_path / "out" / f"{name}_overlay.png").is_file()
