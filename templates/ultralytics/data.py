"""The dataset in the YOLO layout ultralytics reads, checked before training; the bundled demo; a COCO converter.

* ``check_dataset``: your ``data.yaml`` (``train``/``val`` image folders relative to the file or to ``path``,
  ``names``), read with ``yaml.safe_load`` and checked: the image folders exist and hold images, every
  ``labels/.../*.txt`` line is ``class cx cy w h`` with a known class and coordinates in [0, 1] (a line naming the
  file and line number otherwise). A ``download`` key is refused: ultralytics runs it (``exec`` of a Python
  script or a shell command, ``ultralytics/data/utils.py`` ``check_det_dataset``) when a folder is missing.
  Training reads the checked copy written into the run folder, never the original.
* ``prepare_demo``: scikit-learn's digits glyphs (BSD-3) placed at random positions and scales on noisy 128 px
  canvases, boxes from where each glyph's ink lands; written once, seeded, as ``demo/digits_yolo``.
* ``coco_to_yolo``: a COCO folder (``annotations/instances_train.json``, ``instances_val.json``, images under
  ``train/`` and ``val/``) rewritten in this layout: ``python data.py coco-to-yolo SRC DST``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from errors import ProjectError, run_main

HERE = Path(__file__).resolve().parent
DEMO_NPZ = HERE / "demo" / "digits.npz"
DEMO_ROOT = HERE / "demo" / "digits_yolo"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val")


def _names(data: dict[str, Any], source: Path) -> list[str]:
    names = data.get("names")
    if isinstance(names, dict) and all(isinstance(k, int) for k in names) and sorted(names) == list(range(len(names))):
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names or not all(isinstance(n, (str, int)) for n in names):
        raise ProjectError(f"{source}: 'names' must be a non-empty list of class names (or a mapping 0..K-1 -> name)")
    return [str(n) for n in names]


def label_folder(image_dir: Path) -> Path:
    """YOLO's rule: the label folder is the image folder with its last ``images`` component replaced by ``labels``."""
    parts = list(image_dir.parts)
    if "images" not in parts:
        raise ProjectError(f"{image_dir}: a YOLO image folder has 'images' in its path (labels go under 'labels')")
    at = len(parts) - 1 - parts[::-1].index("images")
    return Path(*parts[:at], "labels", *parts[at + 1 :])


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def check_labels(label_file: Path, classes: int) -> int:
    """The boxes in one label file (an absent file is an image without objects); an error names file and line."""
    if not label_file.is_file():
        return 0
    count = 0
    for number, line in enumerate(label_file.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        where = f"{label_file}:{number}"
        if len(fields) != 5:
            raise ProjectError(f"{where}: expected 'class cx cy w h' (5 numbers), got {len(fields)} fields")
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise ProjectError(f"{where}: {line.strip()!r} holds a value that is not a number") from None
        cls = values[0]
        if cls != int(cls) or not 0 <= cls < classes:
            raise ProjectError(f"{where}: class {fields[0]} is not one of 0..{classes - 1} (data.yaml names)")
        cx, cy, w, h = values[1:]
        if not all(math.isfinite(v) for v in values[1:]) or w <= 0 or h <= 0:
            raise ProjectError(f"{where}: a box needs a positive width and height, got w={w:g} h={h:g}")
        if cx - w / 2 < -1e-6 or cy - h / 2 < -1e-6 or cx + w / 2 > 1 + 1e-6 or cy + h / 2 > 1 + 1e-6:
            raise ProjectError(
                f"{where}: box cx={cx:g} cy={cy:g} w={w:g} h={h:g} leaves the image (coordinates are 0..1)"
            )
        count += 1
    return count


def check_dataset(data_yaml: Path, out: Path) -> dict[str, Any]:
    """Check ``data_yaml`` and its files; write the checked copy (absolute folders, no ``download``) to ``out``.

    Returns ``{"yaml": out, "names": [...], "images": {split: n}, "boxes": {split: n}}``.
    """
    data_yaml = Path(data_yaml).resolve()
    if not data_yaml.is_file():
        raise ProjectError(f"data.yaml {data_yaml} does not exist (data.yaml: path to your YOLO dataset's data.yaml)")
    try:
        data = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ProjectError(f"{data_yaml} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ProjectError(f"{data_yaml} must be a mapping with train, val and names")
    if "download" in data:
        raise ProjectError(
            f"{data_yaml} has a 'download' key: this project never downloads data or runs a data.yaml's script; "
            "remove the key and put the images and labels in place"
        )
    names = _names(data, data_yaml)
    root = Path(data["path"]) if isinstance(data.get("path"), str) else data_yaml.parent
    root = root if root.is_absolute() else (data_yaml.parent / root)
    checked: dict[str, Any] = {"names": dict(enumerate(names))}
    images, boxes = {}, {}
    for split in SPLITS:
        value = data.get(split)
        if not isinstance(value, str):
            raise ProjectError(f"{data_yaml}: '{split}' must name the {split} image folder (e.g. images/{split})")
        folder = (root / value).resolve()
        if not folder.is_dir():
            raise ProjectError(f"{data_yaml}: the {split} image folder {folder} does not exist")
        files = image_files(folder)
        if not files:
            raise ProjectError(
                f"{data_yaml}: the {split} image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})"
            )
        labels = label_folder(folder)
        boxes[split] = sum(
            check_labels((labels / f.relative_to(folder)).with_suffix(".txt"), len(names)) for f in files
        )
        images[split] = len(files)
        checked[split] = str(folder)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(checked, sort_keys=False), encoding="utf-8")
    return {"yaml": out, "names": names, "images": images, "boxes": boxes}


# --- the demo ---------------------------------------------------------------------------------------------

DEMO_CANVAS = 128  # px, square
DEMO_GLYPH = (24, 56)  # side of a placed digit, px (the 8x8 glyphs upscaled)
DEMO_IMAGES = {"train": 480, "val": 96}


def _place_digits(
    glyphs: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[int, list[float]]]]:
    """One canvas: 1-3 digits at random positions and sizes, not overlapping; (HxWx3 uint8, [(digit, xywh px)])."""
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
        ys, xs = np.nonzero(glyph > 60)  # the glyph's ink, where the upscaled intensity is > ~1/4
        if len(xs) == 0:
            continue
        taken[y : y + side, x : x + side] = True
        colour = rng.integers(150, 256, 3)
        alpha = (glyph / 255.0)[..., None]
        region = canvas[y : y + side, x : x + side]
        canvas[y : y + side, x : x + side] = region * (1 - alpha) + colour * alpha
        box = [float(x + xs.min()), float(y + ys.min()), float(xs.max() + 1 - xs.min()), float(ys.max() + 1 - ys.min())]
        objects.append((int(labels[k]), box))
    return np.clip(canvas, 0, 255).astype(np.uint8), objects


def yolo_line(cls: int, box: list[float], width: int, height: int) -> str:
    """``class cx cy w h``, normalised by the image size, from an ``[x, y, w, h]`` box in pixels."""
    x, y, w, h = box
    return f"{cls} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}"


def write_demo(root: Path, images: dict[str, int] | None = None, seed: int = 0) -> Path:
    """The digits demo in the YOLO layout at ``root``: ``images/<split>/``, ``labels/<split>/``, ``data.yaml``."""
    arrays = np.load(DEMO_NPZ)
    rng = np.random.default_rng(seed)
    for split, count in (images or DEMO_IMAGES).items():
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        glyphs, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        for index in range(1, count + 1):
            canvas, objects = _place_digits(glyphs, labels, rng)
            Image.fromarray(canvas).save(root / "images" / split / f"{index:05d}.png")
            lines = [yolo_line(digit, box, DEMO_CANVAS, DEMO_CANVAS) for digit, box in objects]
            (root / "labels" / split / f"{index:05d}.txt").write_text("".join(f"{line}\n" for line in lines))
    data = {"train": "images/train", "val": "images/val", "names": {d: str(d) for d in range(10)}}
    (root / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return root


def prepare_demo(root: Path = DEMO_ROOT) -> Path:
    """Write the demo once (seeded: the same files on every machine); return its ``data.yaml``.

    Written into a temporary folder and renamed, so a run killed halfway never leaves a partial dataset.
    """
    if (root / "data.yaml").is_file():
        return root / "data.yaml"
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".digits-yolo-", dir=root.parent))
    try:
        write_demo(tmp)
        try:
            os.replace(tmp, root)
        except OSError:  # another process wrote it first
            if not (root / "data.yaml").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root / "data.yaml"


def dataset_yaml(cfg: dict[str, Any]) -> Path:
    """The data.yaml the config names, or the demo's (written on first use)."""
    given = cfg["data"]["yaml"]
    return prepare_demo() if given is None else (HERE / given).resolve()


# --- COCO -> YOLO -----------------------------------------------------------------------------------------


def coco_to_yolo(src: Path, dst: Path) -> Path:
    """Rewrite a COCO detection folder in the YOLO layout under ``dst`` (images copied, boxes normalised).

    Category ids (any integers) become class indices 0..K-1 in id order, names kept; crowd boxes are skipped (YOLO
    has no ignore regions); images without annotations get an empty label file (negatives)."""
    if dst.exists() and any(dst.iterdir()):
        raise ProjectError(f"{dst} is not empty: pass a new folder for the YOLO copy")
    categories: list[dict[str, Any]] | None = None
    for split in SPLITS:
        path = src / "annotations" / f"instances_{split}.json"
        try:
            coco = json.loads(path.read_text(encoding="utf-8"))
        except OSError:
            raise ProjectError(f"{path} does not exist (COCO layout: annotations/instances_{split}.json)") from None
        except json.JSONDecodeError as e:
            raise ProjectError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}") from None
        cats = sorted(coco.get("categories", []), key=lambda c: c["id"])
        if categories is None:
            categories = cats
        elif [c["id"] for c in cats] != [c["id"] for c in categories]:
            raise ProjectError(f"{path}: its categories differ from instances_train.json's")
        index = {c["id"]: i for i, c in enumerate(categories)}
        by_image: dict[int, list[str]] = {}
        sizes = {im["id"]: (im["width"], im["height"]) for im in coco["images"]}
        for ann in coco.get("annotations", []):
            if ann.get("iscrowd"):
                continue
            if ann["category_id"] not in index:
                raise ProjectError(f"{path}: annotation {ann.get('id')} has unknown category_id {ann['category_id']}")
            width, height = sizes[ann["image_id"]]
            x, y, w, h = ann["bbox"]
            x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(float(width), x + w), min(float(height), y + h)
            if x1 > x0 and y1 > y0:
                line = yolo_line(index[ann["category_id"]], [x0, y0, x1 - x0, y1 - y0], width, height)
                by_image.setdefault(ann["image_id"], []).append(line)
        (dst / "images" / split).mkdir(parents=True, exist_ok=True)
        (dst / "labels" / split).mkdir(parents=True, exist_ok=True)
        for image in coco["images"]:
            source = src / split / image["file_name"]
            if not source.is_file():
                raise ProjectError(f"{path}: image {source} does not exist")
            target = dst / "images" / split / image["file_name"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            label = (dst / "labels" / split / image["file_name"]).with_suffix(".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("".join(f"{line}\n" for line in by_image.get(image["id"], [])), encoding="utf-8")
    names = {i: str(c["name"]) for i, c in enumerate(categories or [])}
    data = {"train": "images/train", "val": "images/val", "names": names}
    (dst / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return dst / "data.yaml"


def main(argv: list[str] | None = None) -> None:
    """``python data.py coco-to-yolo SRC DST``: convert a COCO folder; ``python data.py demo``: write the demo."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 3 and args[0] == "coco-to-yolo":
        print(f"YOLO layout written: {coco_to_yolo(Path(args[1]), Path(args[2]))}")
    elif args == ["demo"]:
        print(f"demo at {prepare_demo()}")
    else:
        raise ProjectError("usage: python data.py coco-to-yolo SRC DST | python data.py demo")


if __name__ == "__main__":
    run_main(main)
