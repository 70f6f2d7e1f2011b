"""This project's own checks: config.yaml and dataset checks, the demo's layout, and one short offline run.

The run trains one epoch at 64 px on a small slice of the digits demo in a copy of this folder, with every
proxy pointed at a closed port and YOLO_OFFLINE set, then runs evaluate.py, export.py and predict.py (checkpoint
and ONNX) as the README writes them: each must finish, write what it promises, and download nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from config import load_config
from data import check_dataset, coco_to_yolo, write_demo
from errors import ProjectError

HERE = Path(__file__).resolve().parents[1]
CLOSED = "http://127.0.0.1:9"  # nothing listens on the discard port: any download fails at once
OFFLINE = {"YOLO_OFFLINE": "1", "https_proxy": CLOSED, "HTTPS_PROXY": CLOSED, "http_proxy": CLOSED,
           "HTTP_PROXY": CLOSED, "no_proxy": "", "NO_PROXY": "", "OMP_NUM_THREADS": "1"}  # fmt: skip


def run(args: list[str], cwd: Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **OFFLINE, "YOLO_CONFIG_DIR": str(cwd / ".ultralytics")}
    result = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == expect, (
        f"{args} -> {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def test_the_generated_config_is_valid_and_complete() -> None:
    cfg = load_config()
    assert cfg["model"]["yaml"].endswith(".yaml") and cfg["model"]["weights"] is None
    assert cfg["train"]["plots"] is False, "plots need a downloaded font"
    assert cfg["train"]["optimizer"] in ("SGD", "AdamW") and cfg["train"]["lr0"] > 0


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.lr0=-1", "config train.lr0: -1 is outside"),
        ("train.epochs=ten", "config train.epochs: 'ten' is not an integer"),
        ("train.cos_lr=1", "config train.cos_lr: 1 is not true or false"),
        ("train.lr=0.1", "--set 'train.lr': unknown key"),
    ],
)
def test_a_bad_value_is_one_line_and_exit_status_2(assignment: str, message: str) -> None:
    result = run(["train.py", "--set", assignment], HERE, expect=2)
    assert result.stderr.startswith(f"error: {message}") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_config_key_is_refused(tmp_path: Path) -> None:
    raw = yaml.safe_load((HERE / "config.yaml").read_text(encoding="utf-8"))
    raw["train"]["lr00"] = 0.1
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ProjectError, match="config train: unknown key 'lr00'"):
        load_config(tmp_path / "config.yaml")


def test_the_demo_is_written_in_the_yolo_layout_with_boxes_on_the_digits(tmp_path: Path) -> None:
    write_demo(tmp_path, {"train": 6, "val": 3})
    checked = check_dataset(tmp_path / "data.yaml", tmp_path / "checked.yaml")
    assert checked["images"] == {"train": 6, "val": 3} and checked["names"] == [str(d) for d in range(10)]
    assert checked["boxes"]["train"] >= 6
    for label in sorted((tmp_path / "labels" / "train").glob("*.txt")):
        image = np.asarray(Image.open(tmp_path / "images" / "train" / f"{label.stem}.png").convert("L"), float)
        inside = np.zeros(image.shape, bool)
        for line in label.read_text().splitlines():
            _, cx, cy, w, h = (float(v) for v in line.split())
            x0, y0, x1, y1 = (round(v * 128) for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
            assert image[y0:y1, x0:x1].max() > 140, "the box holds the glyph's bright ink"
            inside[y0:y1, x0:x1] = True
        assert image[~inside].max() < 140, "no ink outside the boxes (the background stays dark)"


def write_split(root: Path, lines: list[str]) -> Path:
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(root / "images" / split / "a.png")
        (root / "labels" / split / "a.txt").write_text("\n".join(lines) + "\n")
    data = {"train": "images/train", "val": "images/val", "names": ["cat", "dog"]}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2 0.5 0.5 0.2 0.2", r"a.txt:1: class 2 is not one of 0..1"),
        ("0 0.95 0.5 0.2 0.2", r"a.txt:1: box cx=0.95 .* leaves the image"),
        ("0 0.5 0.5 0 0.2", r"a.txt:1: a box needs a positive width and height"),
        ("0 0.5 0.5 0.2", r"a.txt:1: expected 'class cx cy w h' \(5 numbers\), got 4"),
    ],
)
def test_a_bad_label_line_names_its_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    data_yaml = write_split(tmp_path, [line])
    with pytest.raises(ProjectError, match=message):
        check_dataset(data_yaml, tmp_path / "checked.yaml")


def test_a_download_key_is_refused_and_never_run(tmp_path: Path) -> None:
    data_yaml = write_split(tmp_path, ["0 0.5 0.5 0.2 0.2"])
    data = yaml.safe_load(data_yaml.read_text())
    data["download"] = f"open({str(tmp_path / 'ran')!r}, 'w')"
    data_yaml.write_text(yaml.safe_dump(data))
    with pytest.raises(ProjectError, match="has a 'download' key"):
        check_dataset(data_yaml, tmp_path / "checked.yaml")
    assert not (tmp_path / "ran").exists() and not (tmp_path / "checked.yaml").exists()


def test_coco_to_yolo_normalises_boxes_and_maps_category_ids(tmp_path: Path) -> None:
    src = tmp_path / "coco"
    for split in ("train", "val"):
        (src / split).mkdir(parents=True)
        Image.new("RGB", (200, 100)).save(src / split / "x.png")
        Image.new("RGB", (200, 100)).save(src / split / "empty.png")
        coco = {
            "images": [{"id": 7, "file_name": "x.png", "width": 200, "height": 100},
                       {"id": 8, "file_name": "empty.png", "width": 200, "height": 100}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 42, "bbox": [20, 10, 40, 50], "iscrowd": 0},
                            {"id": 2, "image_id": 7, "category_id": 5, "bbox": [190, 0, 30, 10], "iscrowd": 0}],
            "categories": [{"id": 42, "name": "dog"}, {"id": 5, "name": "cat"}],
        }  # fmt: skip
        (src / "annotations").mkdir(exist_ok=True)
        (src / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
    data_yaml = coco_to_yolo(src, tmp_path / "yolo")
    assert yaml.safe_load(data_yaml.read_text())["names"] == {0: "cat", 1: "dog"}, "ids in order, names kept"
    lines = (tmp_path / "yolo" / "labels" / "train" / "x.txt").read_text().splitlines()
    assert lines == ["1 0.200000 0.350000 0.200000 0.500000", "0 0.975000 0.050000 0.050000 0.100000"]
    assert (tmp_path / "yolo" / "labels" / "val" / "empty.txt").read_text() == ""
    assert check_dataset(data_yaml, tmp_path / "checked.yaml")["boxes"] == {"train": 2, "val": 2}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of this project trained for one epoch at 64 px on 32 demo images, offline."""
    project = tmp_path_factory.mktemp("project")
    for name in ("config.py", "data.py", "errors.py", "train.py", "evaluate.py", "predict.py", "export.py",
                 "config.yaml"):  # fmt: skip
        shutil.copy2(HERE / name, project / name)
    (project / "demo").mkdir()
    shutil.copy2(HERE / "demo" / "digits.npz", project / "demo" / "digits.npz")
    write_demo(project / "small", {"train": 32, "val": 16}, seed=1)
    run(["train.py", "--epochs", "1", "--imgsz", "64", "--batch", "16", "--set", "data.yaml=small/data.yaml",
         "--set", "data.workers=0", "--set", "train.device=cpu"], project)  # fmt: skip
    return project


def test_one_offline_epoch_writes_the_run_and_its_summary(trained: Path) -> None:
    run_dir = trained / "runs" / "train"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary) == {"best_val_map", "val_map50", "epochs_run", "wall_seconds", "checkpoint"}
    assert summary["epochs_run"] == 1 and 0.0 <= summary["val_map50"] <= 100.0
    assert (run_dir / "weights" / "best.pt").is_file() and (run_dir / "results.csv").is_file()
    assert "download" not in yaml.safe_load((run_dir / "data.yaml").read_text())
    downloaded = [p.name for p in trained.rglob("*") if p.suffix in (".pt", ".ttf") and p.parent.name != "weights"]
    assert downloaded == [], "nothing fetched: no yolo*.pt, no fonts"


def test_a_second_run_into_the_same_folder_is_refused(trained: Path) -> None:
    result = run(["train.py", "--epochs", "1", "--set", "data.yaml=small/data.yaml"], trained, expect=2)
    assert "holds a run: --resume continues it, --overwrite starts over" in result.stderr
    finished = run(["train.py", "--resume"], trained, expect=2)
    assert "finished all its 1 epochs, nothing to resume" in finished.stderr and "Traceback" not in finished.stderr


# evaluate.py, export.py and predict.py (checkpoint, then the ONNX file) as the README runs them, through their
# main() in one process: one import of ultralytics instead of four, under the same offline environment
AFTER_TRAINING = """
import json, sys
import evaluate, export, predict
images = sys.argv[1]
evaluate.main([])
export.main([])
predict.main([images, "--out", "pred", "--score-threshold", "0.0"])
predict.main([images, "--out", "pred-onnx", "--score-threshold", "0.0", "--onnx", "runs/train/weights/best.onnx"])
"""


def test_evaluate_export_and_predict_run_offline(trained: Path) -> None:
    config = yaml.safe_load((trained / "config.yaml").read_text())
    config["train"].update(imgsz=64, device="cpu")
    config["data"].update(yaml="small/data.yaml", workers=0)
    (trained / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    run(["-c", AFTER_TRAINING, str(trained / "small" / "images" / "val")], trained)

    report = json.loads((trained / "runs" / "train" / "evaluate.json").read_text())
    assert set(report["per_class_map"]) == {str(d) for d in range(10)} and 0 <= report["val_map50"] <= 100
    onnx = json.loads((trained / "runs" / "train" / "weights" / "best.json").read_text())
    assert onnx["input"] == [1, 3, 64, 64] and onnx["max_relative_diff"] <= 1e-3
    for out in (trained / "pred", trained / "pred-onnx"):
        predictions = json.loads((out / "predictions.json").read_text())
        assert predictions, "a threshold of 0 keeps the top detections of a briefly trained model"
        first = predictions[0]
        assert set(first) == {"image_id", "file_name", "category_id", "category_name", "bbox", "score"}
        assert 1 <= first["image_id"] <= 16 and 0 <= first["category_id"] < 10 and len(first["bbox"]) == 4
        assert len(list(out.glob("*.png"))) == 16
