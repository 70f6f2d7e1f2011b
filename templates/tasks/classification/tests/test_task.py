"""Tests of the classification part: ImageFolder checks, augmentation, fine-tuning from weights, the
evaluation report, and a one-line error when pretrained weights cannot be fetched (without fetching any)."""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import task
import train
from data import SUPPORTED_OPS, DataError, UnreadableImageError, build_train_transform, load_data
from errors import error_line
from weights import head_parameter_names

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
SIZE = CONFIG["data"]["image_size"]


def tiny_config(root: Path, **data: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(CONFIG)
    cfg["data"].update({"root": str(root), "num_workers": 0, "batch_size": 8, **data})
    return cfg


def tiny_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["--data", str(data), "--out", str(out), "--workers", "1", "--epochs", "2", "--no-pretrained",
            "--set", "data.batch_size=8", "--set", "training.warmup_epochs=1", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def scratch_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scratch")
    train.main(tiny_args(tiny_data, out, "--epochs", "1"))
    return out


def test_pretrained_weights_freeze_accumulation_and_progressive_resizing(
    tiny_data: Path, scratch_run: Path, tmp_path: Path
) -> None:
    """Fine-tune from a local weights file: backbone frozen for epoch 1 (head only), everything in epoch 2."""
    small = max(16, SIZE // 2)
    args = tiny_args(tiny_data, tmp_path, "--set", f"model.pretrained={scratch_run / 'best.pt'}",
        "--set", "training.freeze={mode: progressive, epochs: 1}",
        "--set", "training.grad_accum_steps=2",
        "--set", f"training.progressive_resizing=[[0, {small}], [1, {SIZE}]]",
    )  # fmt: skip
    args.remove("--no-pretrained")
    train.main([*args, "--stop-after", "1"])
    pretrained = torch.load(scratch_run / "best.pt", weights_only=True)["model"]
    model = task.model_from_meta(torch.load(scratch_run / "best.pt", weights_only=True)["meta"])
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


@pytest.mark.parametrize("source", ["torchvision:ResNet18_Weights.IMAGENET1K_V1", "timm:resnet18.a1_in1k"])
def test_unreachable_pretrained_weights_are_one_line(tiny_data: Path, tmp_path: Path, source: str) -> None:
    """No network: one line naming the weights, the local-file option and --no-pretrained; exit status 2.

    The hub is made unreachable, never contacted: an empty TORCH_HOME, Hugging Face Hub offline mode, and a
    proxy on a closed local port for anything that would still try a URL.
    """
    if source.startswith("timm:"):
        pytest.importorskip("timm")
    closed = "http://127.0.0.1:9"
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "HF_HOME": str(tmp_path / "hf"),
           "HF_HUB_OFFLINE": "1", "https_proxy": closed, "HTTPS_PROXY": closed, "http_proxy": closed,
           "HTTP_PROXY": closed, "no_proxy": "", "NO_PROXY": ""}  # fmt: skip
    args = tiny_args(tiny_data, tmp_path / "run", "--set", f"model.pretrained={source}")
    args.remove("--no-pretrained")
    result = subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    for part in (source, "model.pretrained: FILE", "--pretrained FILE", "--no-pretrained"):
        assert part in lines[0]


def test_evaluation_report_has_per_class_scores_and_a_confusion_matrix(scratch_run: Path, tmp_path: Path) -> None:
    import evaluate

    result = evaluate.main([str(scratch_run / "best.pt"), "--out", str(tmp_path)])
    report = json.loads((tmp_path / "per_class.json").read_text(encoding="utf-8"))
    assert [r["class"] for r in report["per_class"]] == ["0", "1", "2"]
    assert sum(r["support"] for r in report["per_class"]) == result["samples"] == 12
    confusion = torch.tensor(report["confusion"])
    assert 100 * confusion.diag().sum().item() / confusion.sum().item() == pytest.approx(result["val_acc1"])
    for r, row, col in zip(report["per_class"], confusion, confusion.T, strict=True):
        i = int(r["class"])
        assert r["recall"] == pytest.approx(100 * row[i].item() / max(1, row.sum().item()))
        assert r["precision"] == pytest.approx(100 * col[i].item() / max(1, col.sum().item()))
    assert (tmp_path / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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


def test_augmentation_follows_the_config(tiny_data: Path) -> None:
    from PIL import Image

    d, aug = CONFIG["data"], CONFIG["augmentation"]
    pipeline = build_train_transform(aug, SIZE, d["mean"], d["std"])
    names = [type(t).__name__ for t in pipeline.transforms]
    ops = {op["name"] for op in aug["ops"]}
    assert ("RandomHorizontalFlip" in names) == ("horizontal_flip" in ops)
    assert ("RandomResizedCrop" in names) == ("random_resized_crop" in ops)
    assert ("RandomErasing" in names) == ("random_erasing" in ops)
    image = Image.open(next((tiny_data / "train").rglob("*.png"))).convert("RGB")
    assert pipeline(image).shape == (3, SIZE, SIZE)
    every_op = [{"name": "random_resized_crop", "scale": [0.5, 1.0], "ratio": [0.75, 1.33]}] + [
        {"name": name} for name in SUPPORTED_OPS if name != "random_resized_crop"
    ]
    assert build_train_transform({**aug, "ops": every_op}, SIZE, d["mean"], d["std"])(image).shape == (3, SIZE, SIZE)


def test_every_training_image_unreadable_is_an_error_not_an_empty_run(tiny_data: Path, tmp_path: Path) -> None:
    """skip_unreadable skips a corrupt image; a training set with no readable image at all is no dataset."""
    shutil.copytree(tiny_data, tmp_path / "data")
    for image in (tmp_path / "data" / "train").rglob("*.png"):
        image.write_bytes(b"not a png")
    args = tiny_args(tmp_path / "data", tmp_path / "run", "--set", "data.skip_unreadable=true")
    with pytest.raises(train.ProjectError, match="no training batch had a usable sample"):
        train.main(args)
    assert not (tmp_path / "run" / "best.pt").exists()


def test_links_to_folders_inside_the_data_are_not_followed(tiny_data: Path, tmp_path: Path) -> None:
    """A link back into the tree (a loop) or out of it adds no image; a class folder that is a link is refused."""
    root = tmp_path / "data"
    shutil.copytree(tiny_data, root)
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(next((tiny_data / "val" / "1").glob("*.png")), outside / "stranger.png")
    (root / "train" / "0" / "loop").symlink_to(root / "train")  # a loop: train/0/loop/0/loop/...
    (root / "train" / "1" / "out").symlink_to(outside)
    with pytest.warns(UserWarning, match="2 link\\(s\\) to folders not followed"):
        loaded = load_data(tiny_config(root), SIZE)
    assert len(loaded.train) == 24  # 3 classes x 8 images, as in the fixture
    assert sorted({label for _, label in loaded.train.folder.samples}) == [0, 1, 2]
    (root / "val" / "2").rename(tmp_path / "val2")
    (root / "val" / "2").symlink_to(tmp_path / "val2")
    with pytest.raises(DataError, match="class folder\\(s\\) 2 are links to folders"):
        load_data(tiny_config(root), SIZE)
