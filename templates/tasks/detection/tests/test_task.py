"""Tests of the detection / instance-segmentation part: the builders (offline, trainable BatchNorm, a step, the
output format), COCO weights with the head replaced, the COCO checks, boxes and masks through the transforms,
batching, COCO mAP (also under DDP), predictions.json as pycocotools reads it, and ONNX parity."""

import copy
import json
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.ops.misc import FrozenBatchNorm2d

import data
import task
from data import DataError, GroupedBatchSampler, build_train_transform, load_coco, yolo_to_coco
from model import COCO_CLASSES, VARIANTS, build_model

SMALL = {"min_size": 64, "max_size": 64}
# few proposals: the R-CNN box heads run once per proposal (512 / 1000 by default)
RCNN_SMALL = {"rpn_pre_nms_top_n_test": 100, "rpn_post_nms_top_n_test": 20, "rpn_post_nms_top_n_train": 100,
              "box_batch_size_per_image": 32}  # fmt: skip


def small_kwargs(arch: str) -> dict[str, Any]:
    v = VARIANTS[arch]
    return {**SMALL, **(RCNN_SMALL if v.two_stage else {})} if v.fixed_size is None else {"min_size": 64}


def box_target(box: list[float], size: int = 64, masks: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {"boxes": torch.tensor([box]), "labels": torch.tensor([2])}
    if masks:
        m = torch.zeros(1, size, size, dtype=torch.uint8)
        x1, y1, x2, y2 = (int(v) for v in box)
        m[0, y1:y2, x1:x2] = 1
        t["masks"] = m
    return t


# --- model builders ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(VARIANTS))
def test_builder_offline_trainable_step_and_output_format(arch: str) -> None:
    """From scratch: no FrozenBatchNorm2d, every parameter trainable; a step gives finite losses with
    gradients; eval returns XYXY float boxes inside the image, scores and labels in 1..K (+ masks)."""
    torch.manual_seed(0)
    net = build_model(arch, 3, **small_kwargs(arch))
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.backbone.modules())
    assert all(p.requires_grad for p in net.parameters())
    masks = VARIANTS[arch].masks
    net.train()
    # two images: SSDlite's last extra layers are 1x1 maps, and BatchNorm needs more than one value per channel
    targets = [box_target([8.0, 10.0, 40.0, 50.0], masks=masks), box_target([20.0, 4.0, 60.0, 30.0], masks=masks)]
    losses = net([torch.rand(3, 64, 64), torch.rand(3, 64, 64)], targets)
    assert losses and all(torch.isfinite(v) for v in losses.values()), losses
    if masks:
        assert "loss_mask" in losses
    sum(losses.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.backbone.parameters())
    net.eval()
    net.score_thresh = 0.0  # every candidate, so the format is checked on non-empty outputs where possible
    if hasattr(net, "roi_heads"):
        net.roi_heads.score_thresh = 0.0
    with torch.no_grad():
        (out,) = net([torch.rand(3, 48, 80)])
    boxes = out["boxes"]
    assert boxes.dtype == torch.float32 and boxes.ndim == 2 and boxes.shape[1] == 4
    assert out["scores"].shape == out["labels"].shape == boxes.shape[:1]
    assert len(boxes) > 0, f"{arch}: no detections even at score_thresh 0"
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    assert boxes[:, 0].min() >= 0 and boxes[:, 2].max() <= 80 and boxes[:, 3].max() <= 48  # input pixels
    assert out["labels"].min() >= 1 and out["labels"].max() <= 3
    if masks:
        assert out["masks"].shape[1:] == (1, 48, 80)


def test_unknown_arch_and_bad_classes() -> None:
    with pytest.raises(ValueError, match="unknown detector"):
        build_model("yolo11n", 3)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("fasterrcnn_mobilenet_v3_large_fpn", 0)
    with pytest.raises(ValueError, match="detector_kwargs"):
        build_model("ssdlite320_mobilenet_v3_large", 3, rpn_post_nms_top_n_test=5)


@pytest.mark.parametrize("arch", ["fasterrcnn_mobilenet_v3_large_fpn", "ssdlite320_mobilenet_v3_large",
                                  "maskrcnn_mobilenet_v3_large_fpn"])  # fmt: skip
def test_coco_weights_file_head_replaced(arch: str, tiny_cfg: dict[str, Any], tmp_path: Path) -> None:
    """COCO-shaped weights (a random model saved locally, never downloaded) load into a 3-class model: every
    tensor but the class-dependent head layers is kept, and torchvision's fine-tuning setup applies."""
    torch.manual_seed(1)
    coco = build_model(arch, COCO_CLASSES - 1, **small_kwargs(arch))
    torch.save(coco.state_dict(), tmp_path / "coco.pt")
    cfg = copy.deepcopy(tiny_cfg)
    cfg["model"].update(arch=arch, pretrained=str(tmp_path / "coco.pt"), detector_kwargs={})
    meta = {"arch": arch, "num_classes": 3, "classes": ["a", "b", "c"], "category_ids": [1, 2, 3],
            "masks": VARIANTS[arch].masks, "score_thresh": None, "detections_per_img": None, **SMALL,
            "detector_kwargs": RCNN_SMALL if VARIANTS[arch].two_stage else {}}  # fmt: skip
    model = task.build_model(cfg, meta, log=lambda *a: None).net
    saved, own = coco.state_dict(), model.state_dict()
    changed = [k for k in own if own[k].shape != saved[k].shape]
    assert changed
    assert all(
        any(h in k for h in ("cls_score", "bbox_pred", "mask_fcn_logits", "classification_head")) for k in changed
    )
    kept = [k for k in own if own[k].shape == saved[k].shape and "num_batches_tracked" not in k]
    assert all(torch.equal(own[k], saved[k]) for k in kept)
    if VARIANTS[arch].frozen_bn_pretrained:
        assert any(isinstance(m, FrozenBatchNorm2d) for m in model.backbone.modules())
    if VARIANTS[arch].fixed_size is None:  # the first backbone stages frozen, the head trainable
        assert not all(p.requires_grad for p in model.backbone.parameters())
        assert all(p.requires_grad for p in model.roi_heads.parameters())


def test_pretrained_file_missing_is_one_line(tiny_cfg: dict[str, Any], tmp_path: Path) -> None:
    cfg = copy.deepcopy(tiny_cfg)
    cfg["model"]["pretrained"] = str(tmp_path / "nope.pt")
    meta = task.data_meta(cfg, data.load_data(cfg, log=lambda *a: None), log=lambda *a: None)
    with pytest.raises(task.ProjectError, match="cannot load the pretrained weights"):
        task.build_model(cfg, meta)


# --- COCO checks ---------------------------------------------------------------------------------------------


def write_coco(root: Path, split: str, images: list[dict[str, Any]], annotations: list[dict[str, Any]],
               categories: list[dict[str, Any]], files: bool = True) -> Path:  # fmt: skip
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / split).mkdir(parents=True, exist_ok=True)
    if files:
        for im in images:
            Image.new("RGB", (im["width"], im["height"]), (40, 40, 40)).save(root / split / im["file_name"])
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco), encoding="utf-8")
    return root


CATS = [{"id": 42, "name": "cat"}, {"id": 7, "name": "dog"}]
IMAGES = [{"id": 10, "file_name": "a.png", "width": 60, "height": 40},
          {"id": 11, "file_name": "b.png", "width": 60, "height": 40}]  # fmt: skip


def ann(i: int, image_id: int, cat: int, bbox: list[float]) -> dict[str, Any]:
    return {"id": i, "image_id": image_id, "category_id": cat, "bbox": bbox, "iscrowd": 0}


def test_coco_ids_mapped_names_kept_negatives_allowed(tmp_path: Path) -> None:
    root = write_coco(tmp_path, "train", IMAGES, [ann(1, 10, 42, [5, 5, 10, 20]), ann(2, 10, 7, [0, 0, 60, 40])], CATS)
    split = load_coco(root, "train")
    assert split.category_ids == [7, 42] and split.classes == ["dog", "cat"]  # id order, names kept
    assert split.samples[0].labels == [2, 1] and split.samples[0].boxes[0] == [5, 5, 15, 25]  # XYXY
    assert split.samples[1].boxes == []  # b.png: a negative
    image, target = data.CocoDataset(split, data.build_eval_transform(), masks=False, train=True)[1]
    assert target["boxes"].shape == (0, 4) and image.shape == (3, 40, 60)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_file", "is missing: no file"),
        ("unknown_category", "unknown category_id 3"),
        ("empty_split", "has no images"),
        ("no_annotations", "no annotations at"),
    ],
)
def test_coco_errors_before_training(case: str, message: str, tmp_path: Path) -> None:
    anns = [ann(1, 10, 3 if case == "unknown_category" else 42, [5, 5, 10, 10])]
    images = [] if case == "empty_split" else IMAGES
    if case != "no_annotations":
        write_coco(tmp_path, "train", images, anns, CATS)
    if case == "missing_file":
        (tmp_path / "train" / "b.png").unlink()
    with pytest.raises(DataError, match=message) as info:
        load_coco(tmp_path, "train")
    assert "\n" not in str(info.value)  # one line: the core prints it and exits 2


def test_invalid_boxes_dropped_with_a_count_or_strict_error(tmp_path: Path) -> None:
    anns = [
        ann(1, 10, 42, [5, 5, 10, 10]),
        ann(2, 10, 42, [50, 5, 30, 10]),  # past the right edge
        ann(3, 10, 7, [5, 5, 0, 10]),
        ann(4, 11, 7, [59.5, 0, 1, 40]),
    ]  # zero width; 0.5 px over: clipped
    root = write_coco(tmp_path, "train", IMAGES, anns, CATS)  # fmt: skip
    split = load_coco(root, "train")
    assert split.dropped == 2
    assert split.samples[0].boxes == [[5, 5, 15, 15]] and split.samples[1].boxes == [[59.5, 0, 60, 40]]
    with pytest.raises(DataError, match="annotation 2: bbox .* outside"):
        load_coco(root, "train", strict=True)


def test_yolo_folder_converted(tmp_path: Path) -> None:
    src = tmp_path / "yolo"
    for split in ("train", "val"):
        (src / "images" / split).mkdir(parents=True)
        (src / "labels" / split).mkdir(parents=True)
        Image.new("RGB", (100, 50)).save(src / "images" / split / "x.jpg")
        (src / "labels" / split / "x.txt").write_text("1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.3 0.1 0.3 0.3\n")
    (src / "data.yaml").write_text("train: images/train\nval: images/val\nnames: [ant, bee]\n")
    with pytest.raises(DataError, match="YOLO folder"):
        load_coco(src, "train")
    dst = yolo_to_coco(src, tmp_path / "coco")
    split = load_coco(dst, "val")
    assert split.classes == ["ant", "bee"] and split.category_ids == [0, 1]  # ids = YOLO class indices
    assert split.samples[0].boxes[0] == pytest.approx([40, 15, 60, 35])
    assert split.samples[0].boxes[1] == pytest.approx([10, 5, 30, 15])  # the polygon's extent
    assert split.samples[0].labels == [2, 1]


# --- transforms and batching ---------------------------------------------------------------------------------


def test_known_box_and_mask_follow_flip_and_jitter() -> None:
    image = tv_tensors.Image(torch.zeros(3, 80, 100, dtype=torch.uint8))
    mask = torch.zeros(1, 80, 100, dtype=torch.uint8)
    mask[0, 20:60, 10:30] = 1
    target = {"boxes": tv_tensors.BoundingBoxes([[10.0, 20.0, 30.0, 60.0]], format="XYXY", canvas_size=(80, 100)),
              "labels": torch.tensor([1]), "masks": tv_tensors.Mask(mask)}  # fmt: skip
    flip = build_train_transform({"ops": [{"name": "horizontal_flip", "p": 1.0}]})
    out_image, out = flip(image, target)
    assert out["boxes"].tolist() == [[70, 20, 90, 60]]
    ys, xs = torch.nonzero(out["masks"][0], as_tuple=True)
    assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == [70, 20, 90, 60]
    assert out_image.dtype == torch.float32
    jitter = build_train_transform({"ops": [{"name": "scale_jitter", "size": 64, "scale": [0.5, 1.5]},
                                            {"name": "photometric_distort", "p": 1.0}]})  # fmt: skip
    for seed in range(5):
        torch.manual_seed(seed)
        out_image, out = jitter(image, copy.deepcopy(target))
        assert out_image.shape[-2:] == (64, 64)
        if len(out["boxes"]) == 0:  # cropped away: the mask and label went with it (SanitizeBoundingBoxes)
            assert out["masks"].shape[0] == 0 and out["labels"].numel() == 0
            continue
        ys, xs = torch.nonzero(out["masks"][0], as_tuple=True)
        mask_box = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
        assert torch.allclose(out["boxes"][0], mask_box, atol=1.5), (seed, out["boxes"], mask_box)


def test_unknown_op_is_an_error() -> None:
    with pytest.raises(DataError, match="unknown op 'mosaic'"):
        build_train_transform({"ops": [{"name": "mosaic"}]})


def test_grouped_batches_share_aspect_ratio_and_shards_are_disjoint() -> None:
    ratios = [2.0, 0.5] * 8  # wide, tall, ...
    one = GroupedBatchSampler(ratios, 4, groups=2, seed=0)
    assert len(list(one)) == len(one) == 4
    assert all(len({ratios[i] for i, _ in batch}) == 1 for batch in one)
    mixed = GroupedBatchSampler(ratios, 4, groups=1, seed=0)
    assert any(len({ratios[i] for i, _ in batch}) == 2 for batch in mixed)  # groups=1: grouping off
    ranks = [GroupedBatchSampler(ratios, 2, groups=2, seed=0, rank=r, world_size=2) for r in (0, 1)]
    seen = [{i for batch in s for i, _ in batch} for s in ranks]
    assert not seen[0] & seen[1] and len(ranks[0]) == len(ranks[1])
    first = list(one)
    one.set_epoch(1)
    assert list(one) != first  # a new order per epoch, and the same one for the same epoch
    one.set_epoch(0)
    assert list(one) == first


def test_loader_batches_are_lists(tiny_cfg: dict[str, Any]) -> None:
    loaded = data.load_data(tiny_cfg, log=lambda *a: None)
    images, targets = next(iter(loaded.train_loader))
    assert isinstance(images, list) and isinstance(targets, list) and len(images) == 2
    assert all(isinstance(t["boxes"], tv_tensors.BoundingBoxes) for t in targets)


# --- metrics ---------------------------------------------------------------------------------------------


def perfect(targets: list[dict[str, Any]], masks: bool) -> list[dict[str, torch.Tensor]]:
    out = []
    for t in targets:
        p = {"boxes": t["boxes"].as_subclass(torch.Tensor).clone(), "labels": t["labels"].clone(),
             "scores": torch.full((len(t["labels"]),), 0.9)}  # fmt: skip
        if masks:
            p["masks"] = t["masks"].as_subclass(torch.Tensor)[:, None].float()
        out.append(p)
    return out


def test_metrics_perfect_and_wrong_labels(tiny_cfg: dict[str, Any]) -> None:
    cfg = copy.deepcopy(tiny_cfg)
    cfg["data"]["masks"] = True
    loader, split = data.val_loader(cfg)
    meta = {"masks": True, "category_ids": split.category_ids, "classes": split.classes}
    metrics = task.Metrics(meta, torch.device("cpu"))
    wrong = task.Metrics(meta, torch.device("cpu"))
    for _, targets in loader:
        metrics.update(perfect(targets, True), targets)
        bad = perfect(targets, True)
        for p in bad:
            p["labels"] = p["labels"] % 10 + 1  # every label wrong
        wrong.update(bad, targets)
    got = metrics.compute()
    assert got["val_map"] == pytest.approx(100) and got["val_map50"] == pytest.approx(100)
    assert got["val_mask_map"] == pytest.approx(100)
    assert wrong.compute()["val_map50"] == pytest.approx(0)
    rows = metrics.per_class()
    assert [r["category_id"] for r in rows] == split.category_ids
    assert all(r["ap"] is None or r["ap"] == pytest.approx(100) for r in rows)


def _ddp_worker(rank: int, world: int, port: int, cfg: dict[str, Any], queue: Any) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    loaded = data.load_data(cfg, rank=rank, world_size=world, log=lambda *a: None)
    meta = {"masks": False, "category_ids": loaded.category_ids, "classes": loaded.classes}
    metrics = task.Metrics(meta, torch.device("cpu"))
    for _, targets in loaded.val_loader:
        preds = perfect(targets, False)
        if rank == 0 and targets[0]["image_id"] == loaded.val.samples[0].image_id:
            preds[0]["labels"] = preds[0]["labels"] % 10 + 1  # the first val image: all wrong
        metrics.update(preds, targets)
    queue.put((rank, metrics.compute()["val_map50"]))  # compute() on every rank: it gathers the states
    dist.destroy_process_group()


def test_metrics_gathered_under_ddp(tiny_cfg: dict[str, Any]) -> None:
    """Two gloo ranks, each with part of the val set: both get the metric of the whole split, the value of one
    process seeing everything."""
    import torch.multiprocessing as mp

    loader, split = data.val_loader(tiny_cfg)
    single = task.Metrics({"masks": False, "category_ids": split.category_ids, "classes": split.classes},
                          torch.device("cpu"))  # fmt: skip
    for j in range(len(loader.dataset)):
        _, target = loader.dataset[j]
        preds = perfect([target], False)
        if j == 0:
            preds[0]["labels"] = preds[0]["labels"] % 10 + 1
        single.update(preds, [target])
    expected = single.compute()["val_map50"]
    assert 0 < expected < 100
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, port, tiny_cfg, queue)) for r in (0, 1)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert results[0] == pytest.approx(expected) and results[1] == pytest.approx(expected)


# --- predictions.json ---------------------------------------------------------------------------------------


def test_predictions_json_is_coco_results(tiny_data: Path, tmp_path: Path) -> None:
    """The ground truth written as detections: pycocotools loads the file as it is and scores AP 1.0, with the
    original category ids, image ids from --annotations, XYWH boxes and RLE masks; drawn PNGs written."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    ann_file = tiny_data / "annotations" / "instances_val.json"
    split = load_coco(tiny_data, "val", masks=True)
    files = [s.path for s in split.samples][::-1]  # not in id order: ids must come from the annotations
    by_path = {s.path: s for s in split.samples}
    detections = []
    for f in files:
        s = by_path[f]
        detections.append({"boxes": np.asarray(s.boxes, dtype=np.float32).reshape(-1, 4),
                           "scores": np.full(len(s.labels), 0.9, dtype=np.float32),
                           "labels": np.asarray(s.labels, dtype=np.int64),
                           "masks": data.decode_masks(s.segmentations, s.height, s.width).astype(bool)})  # fmt: skip
    detections[0]["scores"][:] = 0.1  # below --score-threshold: left out
    meta = {"category_ids": split.category_ids, "classes": split.classes}
    path = task.write_predictions(tmp_path, files, detections, meta, score_threshold=0.5, annotations=ann_file)
    results = json.loads(path.read_text())
    assert {"image_id", "category_id", "bbox", "score", "file_name", "segmentation"} <= set(results[0])
    assert {r["category_id"] for r in results} <= set(split.category_ids)
    gt = COCO(str(ann_file))
    kept_ids = [by_path[f].image_id for f in files[1:]]
    for iou_type in ("bbox", "segm"):
        ev = COCOeval(gt, gt.loadRes(str(path)), iou_type)
        ev.params.imgIds = kept_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[1] == pytest.approx(1.0)  # AP@.5 of the ground truth as detections
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(f.stem + ".png" for f in files)
    positional = task.write_predictions(tmp_path / "p", files[:2], detections[:2], meta, score_threshold=0.0)
    assert {r["image_id"] for r in json.loads(positional.read_text())} == {1, 2}  # 1-based input order


# --- training and export ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny_data: Path) -> tuple[Any, dict[str, Any]]:
    """Faster R-CNN (MobileNetV3 FPN, 96 px) after a few steps on the tiny demo: enough for detections."""
    from conftest import TINY_CONFIG

    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["data"]["root"] = str(tiny_data)
    loaded = data.load_data(cfg, log=lambda *a: None)
    meta = task.data_meta(cfg, loaded, log=lambda *a: None)
    torch.manual_seed(0)
    model = task.build_model(cfg, meta)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    loss_fn = task.build_loss(cfg)
    model.train()
    losses = []
    for _ in range(2):
        for batch in loaded.train_loader:
            inputs, targets = task.to_device(batch, torch.device("cpu"))
            loss = loss_fn(model(inputs), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss))
    assert all(np.isfinite(losses))
    return model.eval(), meta


def test_fixed_batch_steps_lower_the_loss(fixed_batch: tuple[Any, list[dict[str, Any]]]) -> None:
    from conftest import TINY_CONFIG

    inputs, targets = fixed_batch
    torch.manual_seed(0)
    m = TINY_CONFIG["model"]
    meta = {"arch": m["arch"], "num_classes": 10, "min_size": 96, "max_size": 96, "score_thresh": None,
            "detections_per_img": None, "detector_kwargs": m["detector_kwargs"]}  # fmt: skip
    model = task.model_from_meta(meta).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = task.build_loss(TINY_CONFIG)
    first = None
    for _ in range(4):
        torch.manual_seed(1)  # the same RPN / RoI sampling each step: the loss measures the weights alone
        loss = loss_fn(model(inputs), targets)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    torch.manual_seed(1)
    assert float(loss_fn(model(inputs), targets)) < first


def test_eval_and_predict_through_the_wrapper(trained: tuple[Any, dict[str, Any]], tiny_data: Path,
                                             tmp_path: Path) -> None:  # fmt: skip
    model, meta = trained
    files = task.predict_files([str(tiny_data / "val")])
    detections = task.predict(task.torch_forward(model, torch.device("cpu")), files)
    assert sum(len(d["scores"]) for d in detections) > 0
    path = task.write_predictions(tmp_path, files, detections, meta, score_threshold=0.0)
    results = json.loads(path.read_text())
    assert results and {r["category_id"] for r in results} <= set(meta["category_ids"])
    assert all(r["bbox"][2] >= 0 and r["bbox"][0] + r["bbox"][2] <= 128.01 for r in results)


def test_onnx_export_matches_onnxruntime(trained: tuple[Any, dict[str, Any]], tiny_data: Path,
                                         tmp_path: Path) -> None:  # fmt: skip
    """The exported file against PyTorch on the val images (and one of another size), matched by label, IoU
    and score; non-empty, and a check that would pass vacuously is refused."""
    model, meta = trained
    split = load_coco(tiny_data, "val")
    images = [data.build_eval_transform()(data.read_image(s.path)) for s in split.samples]
    images.append(torch.nn.functional.interpolate(images[0][None], size=(100, 140), mode="bilinear")[0])
    path = tmp_path / "model.onnx"
    accepts = task.export_onnx(model, path, meta, images[0][None])
    assert "batch 1" in accepts
    report = task.check_onnx(path, model, images)
    assert report["expected"] > 0 and report["matched"] >= report["expected"] and report["min_iou"] >= 0.9
    with pytest.raises(task.ProjectError, match="vacuously"):
        task.check_onnx(path, model, images, min_score=1.01)
