"""Where the images and their boxes (and masks) come from, and how they are augmented.

* ``load_coco``: a COCO-format split, the layout labelling tools export: ``root/annotations/instances_train.json``
  and ``instances_val.json``, images under ``root/train/`` and ``root/val/`` (``file_name`` relative to them),
  ``bbox`` as ``[x, y, w, h]`` in pixels, ``segmentation`` as polygons or RLE (instance segmentation). Category
  ids may be any integers: they map to contiguous labels 1..K in id order (0 is the background), names kept.
  Images without annotations are negatives. Checked before training: a missing image file, an unknown category
  id or an empty split is an error naming it; a box outside the image or of zero area is dropped with a count
  (``data.strict: true`` makes it an error).
* ``yolo_to_coco``: a YOLO folder (``data.yaml``, ``images/<split>/``, ``labels/<split>/*.txt``) rewritten as
  the COCO layout: ``python data.py yolo-to-coco SRC DST``.
* ``build_train_transform``: ``augmentation.ops`` as ``torchvision.transforms.v2`` on ``tv_tensors``: boxes and
  masks follow every geometric change; degenerate boxes are removed at the end (``SanitizeBoundingBoxes``).
* ``prepare_demo``: the bundled demo, scikit-learn's digits (BSD-3) placed at random positions and scales on
  noisy canvases, boxes from where each glyph lands and masks from its pixels, written once as a COCO folder.

The images keep their own sizes (the model's transform resizes them: ``model.min_size`` / ``max_size``), so a
batch is a list of images and a list of targets (``collate``). Every training sample is augmented under its own
seed drawn from (run seed, epoch): the same whatever the number of workers, and ``--resume`` replays an epoch.
"""

import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import tv_tensors
from torchvision.transforms import v2

from errors import ProjectError
from files import default_num_workers, expand_inputs

HERE = Path(__file__).resolve().parent
DEMO_NPZ = HERE / "demo" / "digits.npz"
DEMO_ROOT = HERE / "demo" / "digits_coco"
SPLITS = ("train", "val")
EDGE_TOLERANCE = 1.0  # px a box may pass the image edge (annotation tools round) before it counts as outside

# augmentation.ops names, in the order they are applied (torchvision references/detection/presets.py)
SUPPORTED_OPS = ("photometric_distort", "zoom_out", "iou_crop", "scale_jitter", "horizontal_flip")


class DataError(ProjectError):
    """The dataset cannot be used as it is; the message says what to fix."""


# --- COCO annotations --------------------------------------------------------------------------------


@dataclass
class Sample:
    """One image of a split and its objects, boxes in XYXY pixels, labels contiguous (1..K)."""

    image_id: int
    path: Path
    width: int
    height: int
    boxes: list[list[float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    iscrowd: list[int] = field(default_factory=list)
    segmentations: list[Any] = field(default_factory=list)  # COCO polygons or RLE, per object


@dataclass
class CocoSplit:
    """A checked COCO split: its samples, the category ids (label i is ``category_ids[i - 1]``) and names."""

    root: Path
    split: str
    samples: list[Sample]
    category_ids: list[int]
    classes: list[str]
    dropped: int  # boxes outside the image or of zero area, not used


def read_coco_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"no annotations at {path} (COCO layout: annotations/instances_{{train,val}}.json)")
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from e
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise DataError(f"{path}: no {key!r} list (COCO format)")
    return coco


def _image_size(entry: dict[str, Any], path: Path) -> tuple[int, int]:
    if entry.get("width") and entry.get("height"):
        return int(entry["width"]), int(entry["height"])
    with Image.open(path) as im:  # reads the header only
        return im.size


def load_coco(root: Path, split: str, *, masks: bool = False, strict: bool = False) -> CocoSplit:
    """Read and check ``root/annotations/instances_<split>.json`` against the images under ``root/<split>/``."""
    ann_path = root / "annotations" / f"instances_{split}.json"
    if not ann_path.is_file() and (root / "data.yaml").is_file():
        raise DataError(
            f"{root} is a YOLO folder (data.yaml): convert it with python data.py yolo-to-coco {root} OUT_DIR"
        )
    coco = read_coco_json(ann_path)
    if not coco["images"]:
        raise DataError(f"{ann_path}: the {split} split has no images")
    categories = sorted(coco["categories"], key=lambda c: int(c["id"]))
    if not categories:
        raise DataError(f"{ann_path}: no categories")
    label_of = {int(c["id"]): i + 1 for i, c in enumerate(categories)}

    samples: dict[int, Sample] = {}
    for entry in coco["images"]:
        path = root / split / entry["file_name"]
        if not path.is_file():
            raise DataError(f"{ann_path}: image {entry['file_name']!r} (id {entry['id']}) is missing: no file {path}")
        width, height = _image_size(entry, path)
        samples[int(entry["id"])] = Sample(int(entry["id"]), path, width, height)

    dropped = 0
    for ann in coco["annotations"]:
        where = f"{ann_path}: annotation {ann.get('id')}"
        category = int(ann["category_id"])
        if category not in label_of:
            raise DataError(f"{where}: unknown category_id {category} (categories: {sorted(label_of)})")
        if int(ann["image_id"]) not in samples:
            raise DataError(f"{where}: unknown image_id {ann['image_id']}")
        if masks and not ann.get("segmentation"):
            raise DataError(f"{where}: no segmentation (instance segmentation needs a polygon or RLE per object)")
        sample = samples[int(ann["image_id"])]
        x, y, w, h = (float(v) for v in ann["bbox"])
        box = [x, y, x + w, y + h]
        outside = x < -EDGE_TOLERANCE or y < -EDGE_TOLERANCE
        outside |= box[2] > sample.width + EDGE_TOLERANCE or box[3] > sample.height + EDGE_TOLERANCE
        box = [max(0.0, box[0]), max(0.0, box[1]), min(float(sample.width), box[2]), min(float(sample.height), box[3])]
        if outside or box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            if strict:
                raise DataError(
                    f"{where}: bbox {ann['bbox']} is outside the {sample.width}x{sample.height} image "
                    f"{sample.path.name} or has zero area (data.strict: false drops such boxes)"
                )
            dropped += 1
            continue
        sample.boxes.append(box)
        sample.labels.append(label_of[category])
        sample.iscrowd.append(int(ann.get("iscrowd", 0)))
        sample.segmentations.append(ann.get("segmentation"))
    ordered = [samples[k] for k in sorted(samples)]
    return CocoSplit(
        root, split, ordered, [int(c["id"]) for c in categories], [str(c["name"]) for c in categories], dropped
    )


def check_splits(train: CocoSplit, val: CocoSplit) -> None:
    """train and val must name the same categories (the labels are positions in that list)."""
    if train.category_ids != val.category_ids:
        raise DataError(
            f"the categories of {train.root}/annotations differ between train {train.category_ids} "
            f"and val {val.category_ids}"
        )


def decode_masks(segmentations: list[Any], height: int, width: int) -> np.ndarray:
    """COCO polygons / RLE (compressed or not) -> (N, H, W) uint8 masks, with pycocotools (as COCO's own API)."""
    from pycocotools import mask as coco_mask

    out = np.zeros((len(segmentations), height, width), dtype=np.uint8)
    for i, seg in enumerate(segmentations):
        if isinstance(seg, list):  # polygons: one or more [x1, y1, x2, y2, ...]
            rle = coco_mask.merge(coco_mask.frPyObjects(seg, height, width))
        elif isinstance(seg.get("counts"), list):  # uncompressed RLE
            rle = coco_mask.frPyObjects(seg, height, width)
        else:
            rle = seg
        out[i] = coco_mask.decode(rle)
    return out


def read_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError as e:
        raise DataError(f"cannot read image {path}: {e}") from e


class CocoDataset(Dataset):
    """A checked split as (image, target) pairs: a float image tensor in [0, 1] (CxHxW) and a target with
    ``boxes`` (``tv_tensors.BoundingBoxes``, XYXY), ``labels``, ``image_id``, ``iscrowd`` and, for instance
    segmentation, ``masks`` (``tv_tensors.Mask``, NxHxW). Indexed by ``i``, or by ``(i, seed)`` to augment under
    that seed. Crowd regions are left out of training targets (torchvision's references do the same)."""

    def __init__(self, split: CocoSplit, transform: Any, *, masks: bool, train: bool) -> None:
        self.split, self.transform, self.masks, self.train = split, transform, masks, train

    def __len__(self) -> int:
        return len(self.split.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, dict[str, Any]]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        s = self.split.samples[index]
        image = tv_tensors.Image(v2.functional.pil_to_tensor(read_image(s.path)))
        keep = [i for i, crowd in enumerate(s.iscrowd) if not (self.train and crowd)]
        boxes = torch.tensor([s.boxes[i] for i in keep], dtype=torch.float32).reshape(-1, 4)
        target: dict[str, Any] = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(s.height, s.width)),
            "labels": torch.tensor([s.labels[i] for i in keep], dtype=torch.int64),
            "iscrowd": torch.tensor([s.iscrowd[i] for i in keep], dtype=torch.int64),
            "image_id": s.image_id,
        }
        if self.masks:
            decoded = decode_masks([s.segmentations[i] for i in keep], s.height, s.width)
            target["masks"] = tv_tensors.Mask(torch.from_numpy(decoded))
        if image.shape[-2:] != (s.height, s.width):
            raise DataError(
                f"{s.path}: the image is {image.shape[-1]}x{image.shape[-2]}, the annotations say {s.width}x{s.height}"
            )
        if seed is None:
            return self.transform(image, target)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image, target)


# --- transforms ------------------------------------------------------------------------------------------


def build_train_transform(aug: dict[str, Any]) -> v2.Compose:
    """``augmentation.ops`` (each ``{name: ..., **params}``) as torchvision.transforms.v2, in the given order,
    then boxes clamped to the image and degenerate ones removed with their labels and masks.

    The ops are those of torchvision's references/detection/presets.py: ``photometric_distort`` (SSD's photometric
    distortion, Liu et al. 2016), ``zoom_out`` and ``iou_crop`` (SSD's expansion and IoU-constrained crops),
    ``scale_jitter`` (large-scale jitter, Ghiasi et al. 2021, arXiv:2012.07177: resize by a random factor in
    ``scale`` of ``size``, then a random ``size`` crop, padded where smaller), ``horizontal_flip``. Multi-scale
    training for the R-CNN, RetinaNet and FCOS models is ``model.min_size`` as a list: their transform draws one
    per batch.
    """
    ops: list[v2.Transform] = [v2.ToImage()]
    for op in aug["ops"]:
        name, params = op["name"], {k: v for k, v in op.items() if k != "name"}
        if name == "photometric_distort":
            ops.append(v2.RandomPhotometricDistort(p=params.get("p", 0.5)))
        elif name == "zoom_out":
            ops.append(
                v2.RandomZoomOut(
                    fill=params.get("fill", 0),
                    side_range=tuple(params.get("side_range", (1.0, 2.0))),
                    p=params.get("p", 0.5),
                )
            )
        elif name == "iou_crop":
            ops.append(v2.RandomIoUCrop())
        elif name == "scale_jitter":
            size = int(params["size"])
            ops += [
                v2.ScaleJitter((size, size), scale_range=tuple(params.get("scale", (0.5, 1.5)))),
                v2.RandomCrop(size, pad_if_needed=True, fill=params.get("fill", 0)),
            ]
        elif name == "horizontal_flip":
            ops.append(v2.RandomHorizontalFlip(p=params.get("p", 0.5)))
        else:
            raise DataError(f"augmentation.ops: unknown op {name!r}; supported: {', '.join(SUPPORTED_OPS)}")
    # boxes cut by a crop are clamped to the image; those left under min_size px (or all outside) are removed,
    # with their labels and masks (SanitizeBoundingBoxes finds the "labels" key and the Mask tv_tensor)
    ops += [
        v2.ClampBoundingBoxes(),
        v2.SanitizeBoundingBoxes(min_size=aug.get("min_box_size", 1.0)),
        v2.ToDtype(torch.float32, scale=True),
    ]
    return v2.Compose(ops)


def build_eval_transform() -> v2.Compose:
    """Validation and prediction: the image as it is, in [0, 1] (the model's transform resizes and normalizes)."""
    return v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


# --- batching ---------------------------------------------------------------------------------------------


def collate(batch: list[tuple[torch.Tensor, dict[str, Any]]]) -> tuple[list[torch.Tensor], list[dict[str, Any]]]:
    """Lists, not stacks: the images keep their sizes (torchvision's detectors take a list of images)."""
    images, targets = zip(*batch, strict=True)
    return list(images), list(targets)


class GroupedBatchSampler:
    """Batches of (index, seed) whose images share an aspect-ratio group, shuffled per epoch, one shard per rank.

    Images of one batch are padded to the largest (GeneralizedRCNNTransform's batch_images), so grouping wide
    with wide and tall with tall wastes less compute: torchvision's references/detection/group_by_aspect_ratio.py
    (``--aspect-ratio-group-factor 3``). ``groups=1`` turns it off. The permutation and the per-sample seeds are
    functions of (seed, epoch): the augmentation is the same whatever the workers, and a resumed epoch replays.
    """

    def __init__(
        self,
        aspect_ratios: list[float],
        batch_size: int,
        *,
        groups: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        self.batch_size, self.seed, self.rank, self.world = batch_size, seed, rank, world_size
        self.drop_last, self.epoch = drop_last, 0
        # bins of log aspect ratio, equal-count (quantiles) as the reference's create_aspect_ratio_groups
        logs = np.log(np.asarray(aspect_ratios, dtype=np.float64))
        edges = np.quantile(logs, np.linspace(0, 1, groups + 1)[1:-1]) if groups > 1 else np.array([])
        self.group_of = np.searchsorted(edges, logs, side="right").tolist()
        self.n = len(aspect_ratios)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[tuple[int, int]]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        seeds = torch.randint(2**62, (self.n,), generator=g).tolist()
        shard = order[self.rank :: self.world]  # disjoint shards; ranks may differ by one image
        pending: dict[int, list[tuple[int, int]]] = {}
        batches = []
        for i in shard:
            group = pending.setdefault(self.group_of[i], [])
            group.append((i, seeds[i]))
            if len(group) == self.batch_size:
                batches.append(group)
                pending[self.group_of[i]] = []
        leftovers = [item for group in pending.values() for item in group]
        for start in range(0, len(leftovers), self.batch_size):  # mixed groups, as the reference's fill-up
            chunk = leftovers[start : start + self.batch_size]
            if len(chunk) == self.batch_size or not self.drop_last:
                batches.append(chunk)
        return batches[: len(self)]

    def __len__(self) -> int:
        """Batches per epoch, the same on every rank (DDP steps in lockstep): those of the smallest shard."""
        shard = self.n // self.world
        return shard // self.batch_size if self.drop_last else math.ceil(shard / self.batch_size)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        yield from self._batches()


@dataclass
class Data:
    """The train/val splits and loaders of one run."""

    root: Path
    category_ids: list[int]
    classes: list[str]
    train: CocoSplit
    val: CocoSplit
    train_sampler: GroupedBatchSampler
    train_loader: DataLoader
    val_loader: DataLoader

    def describe(self) -> str:
        """One line for the training log."""
        boxes = sum(len(s.boxes) for s in self.train.samples)
        dropped = self.train.dropped + self.val.dropped
        return (
            f"{len(self.classes)} classes, {len(self.train.samples)} train images ({boxes} boxes) / "
            f"{len(self.val.samples)} val from {self.root}" + (f"; {dropped} invalid boxes dropped" if dropped else "")
        )


def resolve_root(root: str | os.PathLike | None) -> Path:
    """``data.root`` as a path; ``None`` means the bundled digits demo (written on first use)."""
    return prepare_demo() if root is None else Path(root).expanduser()


def _loader(dataset: Dataset, workers: int, pin: bool, **kwargs: Any) -> DataLoader:
    return DataLoader(
        dataset, num_workers=workers, pin_memory=pin, persistent_workers=workers > 0, collate_fn=collate, **kwargs
    )


def load_splits(cfg: dict[str, Any], log: Any = print) -> tuple[CocoSplit, CocoSplit]:
    """Both splits of ``data.root``, checked; the count of dropped boxes is said once."""
    d = cfg["data"]
    root = resolve_root(d["root"])
    masks = bool(d["masks"])
    train, val = (load_coco(root, s, masks=masks, strict=d["strict"]) for s in SPLITS)
    check_splits(train, val)
    for split in (train, val):
        if split.dropped:
            log(
                f"note: {split.dropped} boxes of {split.split} are outside their image or have zero area: dropped "
                "(data.strict: true stops instead)"
            )
    return train, val


def load_data(
    cfg: dict[str, Any], *, rank: int = 0, world_size: int = 1, pin_memory: bool = False, log: Any = print
) -> Data:
    """Check the COCO folder at ``data.root`` and build the loaders for one training run."""
    d = cfg["data"]
    masks = bool(d["masks"])
    train, val = load_splits(cfg, log=log if rank == 0 else lambda *a, **k: None)
    train_set = CocoDataset(train, build_train_transform(cfg["augmentation"]), masks=masks, train=True)
    val_set = CocoDataset(val, build_eval_transform(), masks=masks, train=False)
    batch = d["batch_size"]
    sampler = GroupedBatchSampler(
        [s.width / s.height for s in train.samples],
        batch,
        groups=d["aspect_ratio_groups"],
        seed=cfg["run"]["seed"],
        rank=rank,
        world_size=world_size,
        drop_last=len(train.samples) // world_size >= batch,
    )
    workers = default_num_workers(world_size) if d["num_workers"] == "auto" else int(d["num_workers"])
    train_loader = _loader(
        train_set, workers, pin_memory, batch_sampler=sampler, generator=torch.Generator().manual_seed(0)
    )
    # validation: each rank takes every world_size-th image; the metric states are gathered (torchmetrics)
    val_shard = Subset(val_set, range(rank, len(val_set), world_size))
    val_loader = _loader(val_shard, workers, pin_memory, batch_size=batch, shuffle=False)
    return Data(train.root, train.category_ids, train.classes, train, val, sampler, train_loader, val_loader)


def val_loader(cfg: dict[str, Any], batch_size: int | None = None) -> tuple[DataLoader, CocoSplit]:
    """The validation loader alone (evaluate.py), with its split."""
    d = cfg["data"]
    val = load_coco(resolve_root(d["root"]), "val", masks=bool(d["masks"]), strict=d["strict"])
    dataset = CocoDataset(val, build_eval_transform(), masks=bool(d["masks"]), train=False)
    workers = default_num_workers(1) if d["num_workers"] == "auto" else int(d["num_workers"])
    return _loader(dataset, workers, False, batch_size=batch_size or d["batch_size"], shuffle=False), val


# --- new images (predict.py) -----------------------------------------------------------------------------

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def image_files(inputs: list[str]) -> list[Path]:
    """The image files named by ``inputs``: files, folders (searched recursively) and glob patterns, in order."""
    return expand_inputs(inputs, IMAGE_SUFFIXES, DataError, what="images")


class ImageFiles(Dataset):
    """Image files as float tensors in [0, 1]; yields (image, {"index": position in ``files``})."""

    def __init__(self, files: list[Path]) -> None:
        self.files, self.transform = files, build_eval_transform()

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, Any]]:
        return self.transform(read_image(self.files[index])), {"index": index}


def predict_loader(files: list[Path], batch_size: int) -> DataLoader:
    return _loader(ImageFiles(files), 0, False, batch_size=batch_size, shuffle=False)


# --- YOLO folders ----------------------------------------------------------------------------------------


def yolo_to_coco(src: Path, dst: Path) -> Path:
    """Rewrite a YOLO dataset (``src/data.yaml`` with ``train``/``val`` image folders and ``names``; a label file
    ``labels/.../<stem>.txt`` per image, lines ``class cx cy w h`` normalized to [0, 1], or ``class x1 y1 x2 y2
    ...`` polygons) as this project's COCO layout under ``dst``. Category ids are the YOLO class indices, so
    predictions.json reports the same numbers; images are copied. Returns ``dst``."""
    import yaml

    spec_path = src / "data.yaml"
    if not spec_path.is_file():
        raise DataError(f"no data.yaml in {src} (YOLO layout)")
    spec = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    names = spec.get("names")
    names = dict(enumerate(names)) if isinstance(names, list) else {int(k): v for k, v in (names or {}).items()}
    if not names:
        raise DataError(f"{spec_path}: no class names ('names')")
    base = (src / spec["path"]) if spec.get("path") else src
    categories = [{"id": k, "name": str(v)} for k, v in sorted(names.items())]
    for split in SPLITS:
        if not spec.get(split):
            raise DataError(f"{spec_path}: no {split!r} image folder")
        image_dir = (base / spec[split]).resolve()
        # YOLO's rule: the label folder is the image folder with its last 'images' component replaced by 'labels'
        parts = list(image_dir.parts)
        at = len(parts) - 1 - parts[::-1].index("images") if "images" in parts else None
        if at is None:
            raise DataError(f"{image_dir}: a YOLO image folder has 'images' in its path")
        label_dir = Path(*parts[:at], "labels", *parts[at + 1 :])
        files = sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"{image_dir}: the {split} split has no images")
        images, annotations = [], []
        out_dir = dst / split
        out_dir.mkdir(parents=True, exist_ok=True)
        for image_id, path in enumerate(files, start=1):
            rel = path.relative_to(image_dir)
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out_dir / rel)
            with Image.open(path) as im:
                width, height = im.size
            images.append({"id": image_id, "file_name": rel.as_posix(), "width": width, "height": height})
            label_file = label_dir / rel.with_suffix(".txt")
            lines = label_file.read_text(encoding="utf-8").split("\n") if label_file.is_file() else []
            for line_no, line in enumerate(lines, start=1):
                values = line.split()
                if not values:
                    continue
                cls, coords = int(values[0]), [float(v) for v in values[1:]]
                if cls not in names:
                    raise DataError(f"{label_file}:{line_no}: class {cls} is not in {spec_path}'s names")
                ann: dict[str, Any] = {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cls,
                    "iscrowd": 0,
                }
                if len(coords) == 4:
                    cx, cy, w, h = coords
                    ann["bbox"] = [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]
                elif len(coords) >= 6 and len(coords) % 2 == 0:
                    xs, ys = np.asarray(coords[0::2]) * width, np.asarray(coords[1::2]) * height
                    ann["segmentation"] = [np.stack([xs, ys], 1).reshape(-1).round(2).tolist()]
                    ann["bbox"] = [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()]
                else:
                    raise DataError(f"{label_file}:{line_no}: expected 'class cx cy w h' or a polygon")
                ann["bbox"] = [round(float(v), 2) for v in ann["bbox"]]
                ann["area"] = ann["bbox"][2] * ann["bbox"][3]
                annotations.append(ann)
        (dst / "annotations").mkdir(parents=True, exist_ok=True)
        coco = {"images": images, "annotations": annotations, "categories": categories}
        (dst / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco), encoding="utf-8")
    return dst


# --- the demo ---------------------------------------------------------------------------------------------

DEMO_CANVAS = 128  # px, square
DEMO_GLYPH = (24, 56)  # side of a placed digit, px (the 8x8 glyphs upscaled)
DEMO_IMAGES = {"train": 480, "val": 96}


def _place_digits(glyphs: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[Any]]:
    """One canvas: 1-3 digits at random positions and sizes, not overlapping; returns (HxWx3 uint8, objects)."""
    size = DEMO_CANVAS
    canvas = rng.integers(0, 70, 3) + rng.normal(0, 12, (size, size, 3))  # a dark tinted background with noise
    taken = np.zeros((size, size), dtype=bool)
    objects = []
    for _ in range(rng.integers(1, 4)):
        k = int(rng.integers(len(glyphs)))
        side = int(rng.integers(DEMO_GLYPH[0], DEMO_GLYPH[1] + 1))
        glyph = np.asarray(Image.fromarray((glyphs[k] * 15).astype(np.uint8)).resize((side, side), Image.BILINEAR))
        for _attempt in range(20):
            x, y = (int(v) for v in rng.integers(0, size - side + 1, 2))
            if not taken[y : y + side, x : x + side].any():
                break
        else:
            continue  # no free spot for this size: fewer digits on this canvas
        mask = np.zeros((size, size), dtype=np.uint8)
        mask[y : y + side, x : x + side] = glyph > 60  # the glyph's ink, where the upscaled intensity is > ~1/4
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            continue
        taken[y : y + side, x : x + side] = True
        colour = rng.integers(150, 256, 3)
        alpha = (glyph / 255.0)[..., None]
        region = canvas[y : y + side, x : x + side]
        canvas[y : y + side, x : x + side] = region * (1 - alpha) + colour * alpha
        box = [float(xs.min()), float(ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())]
        objects.append((int(labels[k]), box, mask))
    return np.clip(canvas, 0, 255).astype(np.uint8), objects


def write_demo(root: Path, images: dict[str, int] | None = None, seed: int = 0) -> Path:
    """The digits demo as a COCO folder at ``root`` (category ids 1..10 named "0".."9"; masks as RLE)."""
    from pycocotools import mask as coco_mask

    arrays = np.load(DEMO_NPZ)
    rng = np.random.default_rng(seed)
    categories = [{"id": d + 1, "name": str(d)} for d in range(10)]
    for split, count in (images or DEMO_IMAGES).items():
        (root / split).mkdir(parents=True, exist_ok=True)
        coco: dict[str, Any] = {"images": [], "annotations": [], "categories": categories}
        glyphs, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        for image_id in range(1, count + 1):
            canvas, objects = _place_digits(glyphs, labels, rng)
            name = f"{image_id:05d}.png"
            Image.fromarray(canvas).save(root / split / name)
            coco["images"].append({"id": image_id, "file_name": name, "width": DEMO_CANVAS, "height": DEMO_CANVAS})
            for digit, box, mask in objects:
                rle = coco_mask.encode(np.asfortranarray(mask))
                coco["annotations"].append(
                    {
                        "id": len(coco["annotations"]) + 1,
                        "image_id": image_id,
                        "category_id": digit + 1,
                        "bbox": box,
                        "area": float(mask.sum()),
                        "iscrowd": 0,
                        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")},
                    }
                )
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco), encoding="utf-8")
    return root


def prepare_demo(root: Path = DEMO_ROOT) -> Path:
    """Write the demo once (seeded: the same files on every machine); return ``root``.

    Written into a temporary folder and renamed, so a run killed halfway never leaves a partial dataset.
    """
    if all((root / "annotations" / f"instances_{s}.json").is_file() for s in SPLITS):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".digits-coco-", dir=root.parent))
    try:
        write_demo(tmp)
        try:
            os.replace(tmp, root)
        except OSError:  # another process (a DDP rank) wrote it first
            if not (root / "annotations").is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def main(argv: list[str] | None = None) -> None:
    """``python data.py yolo-to-coco SRC DST``: convert a YOLO folder; ``python data.py demo``: write the demo."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 3 and args[0] == "yolo-to-coco":
        print(f"COCO layout written to {yolo_to_coco(Path(args[1]), Path(args[2]))}")
    elif args == ["demo"]:
        print(f"demo at {prepare_demo()}")
    else:
        raise ProjectError("usage: python data.py yolo-to-coco SRC DST | python data.py demo")


if __name__ == "__main__":
    from errors import run_main

    run_main(main)
