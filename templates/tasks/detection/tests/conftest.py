"""The task's test data: a tiny COCO folder cut from the bundled digits demo, and a small configuration.

Fixtures (the core's tests use the first three without knowing the task):
  tiny_data       a COCO folder (train 6 / val 3 canvases of placed digits, with masks), written once per session
  predict_inputs  input paths for predict.py (the val images)
  fixed_batch     (Batch, targets) of two training images, to check that optimizer steps lower the loss
  tiny_cfg        the configuration sections task.py and data.py read, sized for CPU tests
  same_predictions  asserts that two predict.py outputs (PyTorch, onnxruntime) agree
CORE_TEST_SETTINGS sizes the core's runs (tests/test_core.py: train.py, evaluate.py, export.py, predict.py on
config.yaml's model) the same way: small images, few proposals, fp32.
"""

import copy
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# every knob of the task's config sections; small images and few proposals keep a CPU step well under a second
TINY_CONFIG: dict[str, Any] = {
    "model": {
        "arch": "fasterrcnn_mobilenet_v3_large_fpn",
        "num_classes": 10,
        "pretrained": False,
        "trainable_backbone_layers": 3,
        "min_size": 96,
        "max_size": 96,
        "score_thresh": 0.05,
        "detections_per_img": 100,
        "detector_kwargs": {"rpn_pre_nms_top_n_test": 200, "rpn_post_nms_top_n_test": 50,
                            "box_batch_size_per_image": 64},
    },
    "data": {"root": None, "masks": False, "strict": False, "batch_size": 2, "num_workers": 0,
             "aspect_ratio_groups": 2},
    "augmentation": {"ops": [{"name": "photometric_distort"}, {"name": "scale_jitter", "size": 128},
                             {"name": "horizontal_flip"}], "min_box_size": 1.0},
    "run": {"seed": 0},
}  # fmt: skip


def _project_arch() -> str:
    """config.yaml's model.arch; "" where the task part is tested on its own (the archadvisor repo)."""
    config = ROOT / "config.yaml"
    return yaml.safe_load(config.read_text(encoding="utf-8"))["model"]["arch"] if config.is_file() else ""


PROJECT_ARCH = _project_arch()


def _core_test_settings() -> dict[str, Any]:
    """config.yaml's model at the tests' size: what the core's tests check (a step lowers the loss, exact resume,
    export and predict parity) does not depend on the image size, and at 320-800 px a CPU step takes seconds.
    amp off: bf16 autocast on CPU is slower than fp32 at this size (the project trains with config.yaml's amp)."""
    from model import VARIANTS

    arch = PROJECT_ARCH
    settings: dict[str, Any] = {"model.min_size": 96, "model.max_size": 96, "training.amp": False}
    if arch in VARIANTS and not VARIANTS[arch].two_stage and VARIANTS[arch].fixed_size is None:
        # RetinaNet / FCOS start every class score at the focal-loss prior 0.01 (Lin et al. 2017): after the
        # tests' two steps nothing reaches the default 0.05, and export's parity check needs detections
        settings["model.score_thresh"] = 0.001
    if arch in VARIANTS and VARIANTS[arch].two_stage:
        kwargs = {"rpn_pre_nms_top_n_train": 200, "rpn_post_nms_top_n_train": 100}
        settings["model.detector_kwargs"] = {**TINY_CONFIG["model"]["detector_kwargs"], **kwargs}
    return settings


CORE_TEST_SETTINGS = _core_test_settings()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from data import write_demo

    return write_demo(tmp_path_factory.mktemp("coco"), {"train": 6, "val": 3}, seed=1)


@pytest.fixture(scope="session")
def predict_inputs(tiny_data: Path) -> list[str]:
    return [str(tiny_data / "val")]


@pytest.fixture
def tiny_cfg(tiny_data: Path) -> dict[str, Any]:
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["data"]["root"] = str(tiny_data)
    return cfg


@pytest.fixture
def fixed_batch(tiny_cfg: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    import task
    from data import CocoDataset, build_eval_transform, collate, load_coco
    from model import VARIANTS

    # the core's tests step config.yaml's model on it: with masks for Mask R-CNN
    masks = PROJECT_ARCH in VARIANTS and VARIANTS[PROJECT_ARCH].masks
    split = load_coco(Path(tiny_cfg["data"]["root"]), "train", masks=masks)
    dataset = CocoDataset(split, build_eval_transform(), masks=masks, train=True)
    return task.to_device(collate([dataset[0], dataset[1]]), torch.device("cpu"))


@pytest.fixture
def same_predictions() -> Callable[[Path, Path], None]:
    """predictions.json of two runs: the same detections, matched by image, category, IoU and score (ties may
    reorder them), and a drawn PNG per image in both."""

    def check(a_path: Path, b_path: Path) -> None:
        from torchvision.ops import box_iou

        a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (a_path, b_path))
        drawn = [sorted(p.name for p in path.parent.glob("*.png")) for path in (a_path, b_path)]
        assert drawn[0] == drawn[1]
        # detections within rounding of --score-threshold may be on one side only
        near = [r for r in a + b if abs(r["score"] - 0.5) < 1e-3]
        assert abs(len(a) - len(b)) <= len(near)
        for r in a:
            if abs(r["score"] - 0.5) < 1e-3:
                continue
            xywh = torch.tensor([r["bbox"]])
            candidates = [s for s in b if (s["image_id"], s["category_id"]) == (r["image_id"], r["category_id"])
                          and abs(s["score"] - r["score"]) <= 1e-3]  # fmt: skip
            boxes = torch.tensor([s["bbox"] for s in candidates]).reshape(-1, 4)
            to_xyxy = lambda t: torch.cat([t[:, :2], t[:, :2] + t[:, 2:]], 1)  # noqa: E731
            assert candidates and float(box_iou(to_xyxy(xywh), to_xyxy(boxes)).max()) >= 0.9, r

    return check
