"""Smoke tests of this project: the model builds and learns, training resumes exactly, exports agree.

Everything runs on a tiny ImageFolder (3 digit classes, 8 train / 4 val images each, cut from the bundled
demo) at the configured image size, so the file takes well under a minute on 2 CPU cores.
"""

import copy
import csv
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

import train
from data import SUPPORTED_OPS, DataError, UnreadableImageError, build_train_transform, error_line, load_data
from model import build_model
from weights import head_parameter_names

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
SIZE = CONFIG["data"]["image_size"]
CLASSES = 3


def make_model(**overrides: Any) -> nn.Module:
    m = {**CONFIG["model"], **overrides}
    return build_model(
        m["arch"], CLASSES, drop_path_rate=m["drop_path"], dropout=m["dropout"], small_input=m["small_input"]
    )


def digit_images(split: str, per_class: int) -> list[tuple[Image.Image, int]]:
    arrays = np.load(ROOT / "demo" / "digits.npz")
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    out = []
    for c in range(CLASSES):
        for pixels in images[labels == c][:per_class]:
            gray = Image.fromarray((pixels * 15).astype(np.uint8)).resize((SIZE, SIZE), Image.BILINEAR)
            out.append((gray.convert("RGB"), c))
    return out


def train_tensor(image: Image.Image) -> torch.Tensor:
    d = CONFIG["data"]
    aug = {**CONFIG["augmentation"], "ops": []}  # resize and normalize only
    return build_train_transform(aug, SIZE, d["mean"], d["std"])(image)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    for split, n in (("train", 8), ("val", 4)):
        for i, (image, label) in enumerate(digit_images(split, n)):
            folder = root / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i:02d}.png")
    return root


def tiny_config(root: Path, **data: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(CONFIG)
    cfg["data"].update({"root": str(root), "num_workers": 0, "batch_size": 8, **data})
    return cfg


def tiny_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--data", str(data), "--out", str(out), "--workers", "1", "--epochs", "2",
            "--set", "data.batch_size=8", "--set", "training.warmup_epochs=1", *extra]  # fmt: skip


def read_metrics(out: Path) -> list[dict[str, float]]:
    with open(out / "metrics.csv", encoding="utf-8") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


@pytest.fixture(scope="session")
def full_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("full")
    train.main(tiny_args(tiny_data, out))
    return out


def test_model_builds_and_backpropagates() -> None:
    model = make_model()
    logits = model(torch.randn(2, 3, SIZE, SIZE))
    assert logits.shape == (2, CLASSES)
    nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


def test_one_training_step_lowers_the_loss() -> None:
    """One step of train_one_epoch with the configured optimizer lowers the loss on a fixed batch.

    The update must be a descent direction through every layer. How long a step may be depends on the curvature
    of the fresh network (a ViT overshoots at rates a CNN takes easily), so the step is tried at a tenth, a
    hundredth and a thousandth of the peak rate; a real run starts low too (warmup). A wrong gradient fails all.
    """
    digits = digit_images("train", 4)
    images = torch.stack([train_tensor(image) for image, _ in digits])
    targets = torch.tensor([label for _, label in digits])
    criterion = nn.CrossEntropyLoss()
    t = CONFIG["training"]
    tried = []
    for divisor in (10, 100, 1000):
        torch.manual_seed(0)
        model = make_model(drop_path=0.0, dropout=0.0).train()  # deterministic, BatchNorm on batch statistics
        optimizer = train.build_optimizer(model, {**t, "lr": t["lr"] / divisor})
        before = criterion(model(images), targets).item()
        train.train_one_epoch(
            model, [(images, targets)], optimizer, criterion, device=torch.device("cpu"), clip_norm=t["grad_clip_norm"]
        )
        after = criterion(model(images), targets).item()
        if after < before:
            return
        tried.append(f"lr {t['lr'] / divisor:g}: {before:.4f} -> {after:.4f}")
    pytest.fail(f"no step lowered the loss ({'; '.join(tried)})")


def test_checkpoint_resume_reproduces_the_uninterrupted_run(tiny_data: Path, full_run: Path, tmp_path: Path) -> None:
    train.main(tiny_args(tiny_data, tmp_path, "--stop-after", "1"))
    assert len(read_metrics(tmp_path)) == 1
    train.main(tiny_args(tiny_data, tmp_path, "--resume"))
    resumed, uninterrupted = read_metrics(tmp_path), read_metrics(full_run)
    assert len(resumed) == len(uninterrupted) == 2
    for a, b in zip(resumed, uninterrupted, strict=True):
        for key in ("lr", "train_loss", "val_loss", "val_acc1"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    # the checkpoint loads without unpickling Python objects, and holds the same weights
    ours = torch.load(tmp_path / "last.pt", weights_only=True)
    theirs = torch.load(full_run / "last.pt", weights_only=True)
    for key, tensor in theirs["model"].items():
        torch.testing.assert_close(ours["model"][key], tensor, rtol=1e-5, atol=1e-6)


def test_resume_refuses_a_changed_config(tiny_data: Path, full_run: Path) -> None:
    with pytest.raises(SystemExit, match="training.lr"):
        train.main(tiny_args(tiny_data, full_run, "--resume", "--set", "training.lr=0.12345"))


def test_pretrained_weights_freeze_accumulation_and_progressive_resizing(
    tiny_data: Path, full_run: Path, tmp_path: Path
) -> None:
    """Fine-tune from a checkpoint: backbone frozen for epoch 1 (head only), everything trained in epoch 2."""
    small = max(16, SIZE // 2)
    args = tiny_args(
        tiny_data, tmp_path, "--pretrained", str(full_run / "best.pt"),
        "--set", "training.freeze={mode: progressive, epochs: 1}",
        "--set", "training.grad_accum_steps=2",
        "--set", f"training.progressive_resizing=[[0, {small}], [1, {SIZE}]]",
    )  # fmt: skip
    train.main([*args, "--stop-after", "1"])
    pretrained = torch.load(full_run / "best.pt", weights_only=True)["model"]
    model = make_model()
    head = set(head_parameter_names(model))
    backbone = {name for name, _ in model.named_parameters()} - head
    after_first = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    for name in backbone:
        assert torch.equal(after_first[name], pretrained[name]), f"{name} changed while frozen"
    for name in head:
        assert not torch.equal(after_first[name], pretrained[name]), f"head {name} did not train"
    train.main([*args, "--resume"])
    final = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    assert any(not torch.equal(final[name], after_first[name]) for name in backbone), "backbone never unfrozen"


def test_evaluate_reports_the_checkpoint_accuracy(full_run: Path) -> None:
    import evaluate

    result = evaluate.main([str(full_run / "best.pt")])  # the checkpoint's own data.root: the tiny set
    best = torch.load(full_run / "best.pt", weights_only=True)
    assert result["images"] == 3 * 4
    assert result["ema"] is (best["model_ema"] is not None)
    # train.py validated under autocast, evaluate.py runs fp32: at most one of 12 images may flip
    assert result["val_acc1"] == pytest.approx(best["val_acc1"], abs=100 / 12 + 1e-6)


def test_export_matches_pytorch(full_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import export

    report = export.main([str(full_run / "best.pt"), "--out", str(tmp_path)])
    assert report["onnx_max_scaled_diff"] <= export.FP32_TOLERANCE
    assert report["torchscript_max_scaled_diff"] <= export.FP32_TOLERANCE
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "model.ts").is_file()
    if CONFIG["export"]["quantize"] != "none":
        assert (tmp_path / "model.int8.onnx").is_file()
        assert 0.0 <= report["val_acc1_int8"] <= 100.0


def test_data_errors_say_what_to_fix(tiny_data: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_data / "train", tmp_path / "train")
    with pytest.raises(DataError, match="no val/ folder"):
        load_data(tiny_config(tmp_path), SIZE)
    shutil.copytree(tiny_data / "val", tmp_path / "val")
    (tmp_path / "val" / "7").mkdir()
    with pytest.raises(DataError, match="classes 7"):
        load_data(tiny_config(tmp_path), SIZE)


def test_unreadable_image_is_named_or_skipped(tiny_data: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_data, tmp_path, dirs_exist_ok=True)
    (tmp_path / "val" / "1" / "broken.png").write_bytes(b"not a png")
    data = load_data(tiny_config(tmp_path, num_workers=1), SIZE)  # raised in a loader worker, re-raised here
    with pytest.raises(UnreadableImageError, match="broken.png") as info:
        list(data.val_loader)
    assert error_line(info.value).startswith(f"cannot read image {tmp_path / 'val' / '1' / 'broken.png'}: ")
    data = load_data(tiny_config(tmp_path, skip_unreadable=True), SIZE)
    with pytest.warns(UserWarning, match="broken.png"):
        seen = sum(len(batch[1]) for batch in data.val_loader if batch is not None)
    assert seen == len(data.val) - 1


def test_augmentation_follows_the_config() -> None:
    d, aug = CONFIG["data"], CONFIG["augmentation"]
    pipeline = build_train_transform(aug, SIZE, d["mean"], d["std"])
    names = [type(t).__name__ for t in pipeline.transforms]
    ops = {op["name"] for op in aug["ops"]}
    assert ("RandomHorizontalFlip" in names) == ("horizontal_flip" in ops)
    assert ("RandomResizedCrop" in names) == ("random_resized_crop" in ops)
    assert ("RandomErasing" in names) == ("random_erasing" in ops)
    image, _ = digit_images("train", 1)[0]
    assert pipeline(image).shape == (3, SIZE, SIZE)
    every_op = [{"name": "random_resized_crop", "scale": [0.5, 1.0], "ratio": [0.75, 1.33]}] + [
        {"name": name} for name in SUPPORTED_OPS if name != "random_resized_crop"
    ]
    assert build_train_transform({**aug, "ops": every_op}, SIZE, d["mean"], d["std"])(image).shape == (3, SIZE, SIZE)
