"""Where the images and masks come from, how they are checked, and how they are augmented.

* Layout (VOC-like): ``root/{train,val}/images/<stem>.{png,jpg,...}`` with ``root/{train,val}/masks/<stem>.png``,
  one class index per pixel (8-bit ``L`` or palette ``P``; a palette PNG's pixels are indices, as in Pascal
  VOC), 255 = ignore (VOC's object borders). Optional ``root/classes.txt``: one class name per line, in index
  order; without it the class count is ``model.num_classes``.
* ``check_split``: every problem a training run would otherwise hit hours in is found before it starts and
  reported in one line (``DataError``): an image without its mask (named), a mask whose size differs from its
  image, an RGB mask, a mask value >= the class count that is not 255, an empty split. The same pass counts
  the pixels of each class (``Split.class_pixels``), for the class weights of the loss.
* ``build_train_transform``: ``torchvision.transforms.v2`` on an (image, ``tv_tensors.Mask``) pair, so every
  geometric op moves both and resizes the mask with nearest-neighbour (nearest-exact: see ``ScaleJitter``); the
  photometric ops skip masks by type. Scale jitter 0.5-2.0, crop with padding (the padded mask is 255, ignored
  by the loss and the metrics), flips, colour jitter.
* ``prepare_demo``: the bundled demo, written once under ``demo/digit_scenes/``: scikit-learn's handwritten
  digits (``demo/digits.npz``, BSD-3, the classification demo's split) pasted at random positions and scales
  on a noisy canvas; the mask is each glyph's own ink labelled with its class (digit + 1), background 0.
* Validation and prediction run at the image's own size; a batch is padded to its largest image (image 0,
  mask 255), so the metrics count every real pixel once and no padded one.

Every training sample is augmented under its own seed, drawn from (run seed, epoch): the data order and every
random crop are the same whatever the number of workers, and ``--resume`` replays an epoch exactly.
"""

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

from errors import ProjectError
from files import default_num_workers, expand_inputs
from sampling import SeededSampler

HERE = Path(__file__).resolve().parent
DEMO_NPZ = HERE / "demo" / "digits.npz"
DEMO_ROOT = HERE / "demo" / "digit_scenes"
IGNORE_INDEX = 255  # VOC's "void" label: not a class, never scored
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# augmentation.ops names -> how build_train_transform builds them (read by the scaffolder, keep it a literal)
SUPPORTED_OPS = ("scale_jitter", "random_crop", "horizontal_flip", "vertical_flip", "color_jitter")


class DataError(ProjectError):
    """The dataset cannot be used as it is; the message says what to fix."""


# --- the demo ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSpec:
    """The demo scenes: canvas size, images per split, glyphs per image, glyph side in pixels.

    Small canvases and many of them: a from-scratch segmenter learns where the ink is within a hundred steps,
    but which digit it is only after several hundred optimizer steps, and only from many distinct glyphs
    (measured with unet_small: 320 scenes of 64 px, ~600 glyphs, stayed under 12 % mIoU for 900 steps; these
    1800 scenes, which use the 1437 training digits about twice, leave the plateau after ~700 steps and reach
    67 % after 1350). At 32 px a step costs a quarter of a 64 px one, and an 8x8 digit drawn 10-16 px wide
    keeps all of its pixels.
    """

    size: int = 32
    train: int = 1800
    val: int = 128
    glyphs: tuple[int, int] = (1, 2)
    glyph_px: tuple[int, int] = (10, 16)
    seed: int = 0


DEMO_CLASSES = ["background", *(f"digit_{d}" for d in range(10))]


def demo_scene(
    rng: np.random.Generator, glyphs: np.ndarray, labels: np.ndarray, spec: DemoSpec
) -> tuple[np.ndarray, np.ndarray]:
    """One RGB scene (H x W x 3, uint8) and its mask (H x W, uint8): a few non-overlapping digits on noise."""
    n = spec.size
    background = rng.integers(0, 256, 3)
    image = np.clip(background + rng.normal(0, 12, (n, n, 3)), 0, 255)
    mask = np.zeros((n, n), np.uint8)
    for _ in range(int(rng.integers(spec.glyphs[0], spec.glyphs[1] + 1))):
        k = int(rng.integers(len(glyphs)))
        side = int(rng.integers(spec.glyph_px[0], spec.glyph_px[1] + 1))
        for _attempt in range(10):  # a free spot: labels must not overwrite each other
            y, x = (int(v) for v in rng.integers(0, n - side + 1, 2))
            if not mask[y : y + side, x : x + side].any():
                break
        else:
            continue
        # the 0..16 ink of an 8x8 glyph, upscaled bilinearly; ink above a quarter of full is the digit's pixels
        ink = Image.fromarray((glyphs[k].astype(np.float32) * (255 / 16)).astype(np.uint8))
        ink = np.asarray(ink.resize((side, side), Image.BILINEAR), np.float32) / 255
        colour = (background + 128 + rng.integers(-40, 41, 3)) % 256  # far from the background's colour
        patch = image[y : y + side, x : x + side]
        patch[:] = patch * (1 - ink[..., None]) + colour * ink[..., None]
        mask[y : y + side, x : x + side][ink > 0.25] = int(labels[k]) + 1
    return image.astype(np.uint8), mask


def prepare_demo(root: Path = DEMO_ROOT, spec: DemoSpec = DemoSpec()) -> Path:
    """Write the demo scenes as ``root/{train,val}/{images,masks}/*.png`` and ``classes.txt`` once.

    Written into a temporary folder and renamed, so a run killed halfway never leaves a partial dataset.
    The train scenes use the train digits, the val scenes the val digits: no glyph is in both.
    """
    if (root / "train").is_dir() and (root / "val").is_dir():
        return root
    arrays = np.load(DEMO_NPZ)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".digit-scenes-", dir=root.parent))
    try:
        for offset, split in enumerate(("train", "val")):
            rng = np.random.default_rng(spec.seed + offset)
            glyphs, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            for folder in ("images", "masks"):
                (tmp / split / folder).mkdir(parents=True)
            for i in range(getattr(spec, split)):
                image, mask = demo_scene(rng, glyphs, labels, spec)
                Image.fromarray(image).save(tmp / split / "images" / f"{i:04d}.png")
                Image.fromarray(mask, mode="L").save(tmp / split / "masks" / f"{i:04d}.png")
        (tmp / "classes.txt").write_text("\n".join(DEMO_CLASSES) + "\n", encoding="utf-8")
        try:
            tmp.rename(root)
        except OSError:  # another process (e.g. a second torchrun rank) finished first
            if not (root / "train").is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def resolve_root(root: str | os.PathLike | None) -> Path:
    """``data.root`` as a path; ``None`` means the bundled demo (written on first use)."""
    return prepare_demo() if root is None else Path(root).expanduser()


# --- checking a dataset --------------------------------------------------------------------------------------


def read_classes(root: Path, num_classes: int) -> list[str]:
    """The names in ``root/classes.txt`` (one per line), else ``num_classes`` names ``"0"``, ``"1"``, ..."""
    path = root / "classes.txt"
    if not path.is_file():
        return [str(i) for i in range(num_classes)]
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) < 2:
        raise DataError(f"{path}: needs at least 2 class names (one per line, background included), got {names}")
    if len(names) > IGNORE_INDEX:
        raise DataError(f"{path}: {len(names)} classes; 8-bit masks hold at most {IGNORE_INDEX} (255 = ignore)")
    return names


@dataclass(frozen=True)
class Split:
    """One checked split: the (image, mask) pairs and the pixels of each class over all its masks."""

    pairs: list[tuple[Path, Path]]
    class_pixels: np.ndarray  # int64, one count per class (ignored pixels not counted)


def read_mask(path: Path) -> np.ndarray:
    """A mask's class indices, H x W uint8 (a palette PNG's pixels are its indices, not its colours)."""
    with Image.open(path) as m:
        if m.mode not in ("L", "P"):
            raise DataError(
                f"{path}: mask mode {m.mode}; expected 8-bit class indices (L or P), not colours: "
                "map each colour to its class index first"
            )
        return np.asarray(m)


def check_split(root: Path, split: str, num_classes: int) -> Split:
    """The split's pairs after checking every image against its mask (one ``DataError`` line per problem)."""
    images_dir, masks_dir = root / split / "images", root / split / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DataError(f"{root} has no {split}/{folder.name}/ folder: expected {root}/{split}/images/<stem>.png "
                            f"with {root}/{split}/masks/<stem>.png")  # fmt: skip
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise DataError(f"{images_dir}: empty split, no images ({', '.join(IMAGE_SUFFIXES)})")
    pairs, counts = [], np.zeros(256, np.int64)
    for image in images:
        mask = masks_dir / f"{image.stem}.png"
        if not mask.is_file():
            raise DataError(f"{image}: no mask {mask}")
        values = read_mask(mask)
        with Image.open(image) as img:
            size = img.size  # the header only: no decoding
        if size != (values.shape[1], values.shape[0]):
            raise DataError(f"{mask}: mask is {values.shape[1]}x{values.shape[0]}, its image {image.name} is "
                            f"{size[0]}x{size[1]}")  # fmt: skip
        hist = np.bincount(values.ravel(), minlength=256)
        bad = np.flatnonzero(hist[num_classes:IGNORE_INDEX])
        if bad.size:
            raise DataError(f"{mask}: value {num_classes + int(bad[0])} is not a class index (there are "
                            f"{num_classes} classes, 0..{num_classes - 1}; 255 = ignore)")  # fmt: skip
        counts += hist
        pairs.append((image, mask))
    return Split(pairs, counts[:num_classes])


# --- transforms ------------------------------------------------------------------------------------------


class ScaleJitter(v2.ScaleJitter):
    """``v2.ScaleJitter`` that resizes masks with nearest-exact instead of v2's default nearest for masks.

    torch's "nearest" takes source pixel floor(i * scale), half a source pixel off the pixel-centre grid that
    bilinear resizing of the image uses; upscaled 2x, a mask lands up to a pixel off its image (the test of this
    pipeline measured it). "nearest-exact" samples the centres, as PIL and scikit-image do (torchvision's
    ``InterpolationMode`` documentation recommends it for that reason).
    """

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            return TF.resize(inpt, size=params["size"], interpolation=InterpolationMode.NEAREST_EXACT)
        return super().transform(inpt, params)


class Resize(v2.Resize):
    """``v2.Resize`` with nearest-exact masks (see ``ScaleJitter``)."""

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.Mask):
            return TF.resize(inpt, size=self.size, interpolation=InterpolationMode.NEAREST_EXACT)
        return super().transform(inpt, params)


def _op_params(op: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in op.items() if k != "name"}


def build_train_transform(aug: dict[str, Any], crop_size: int, mean: list[float], std: list[float]) -> v2.Compose:
    """The training pipeline from ``augmentation.ops`` on an (image, Mask) pair.

    ``scale_jitter`` (scale: [0.5, 2.0]) resizes so the image fits ``crop_size`` times a random factor
    (``v2.ScaleJitter``, the scale augmentation of DeepLab, Chen et al. arXiv:1706.05587 section 4.1, and of
    Ghiasi et al. arXiv:2012.07177); ``random_crop`` takes a ``crop_size`` square, padding a smaller image
    (image 0, mask 255: padding is never scored); flips and ``color_jitter`` follow. Without ``random_crop``
    the image is resized to ``crop_size`` (training batches need one size).
    """
    ops = {op["name"]: _op_params(op) for op in aug["ops"]}
    unknown = sorted(set(ops) - set(SUPPORTED_OPS))
    if unknown:
        raise ValueError(f"augmentation.ops: unknown {unknown}; supported: {', '.join(SUPPORTED_OPS)}")
    steps: list[Any] = []
    if "scale_jitter" in ops:
        scale = tuple(ops["scale_jitter"].get("scale", (0.5, 2.0)))
        steps.append(ScaleJitter((crop_size, crop_size), scale_range=scale, antialias=True))
    if "random_crop" in ops:
        fill = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}
        steps.append(v2.RandomCrop(crop_size, pad_if_needed=True, fill=fill))
    else:
        steps.append(Resize((crop_size, crop_size), antialias=True))
    if "horizontal_flip" in ops:
        steps.append(v2.RandomHorizontalFlip(p=ops["horizontal_flip"].get("p", 0.5)))
    if "vertical_flip" in ops:  # only where "up" means nothing: aerial, microscopy
        steps.append(v2.RandomVerticalFlip(p=ops["vertical_flip"].get("p", 0.5)))
    if "color_jitter" in ops:
        steps.append(v2.ColorJitter(**ops["color_jitter"]))  # images only: v2 passes a Mask through
    return v2.Compose([*steps, *_to_model_input(mean, std)])


def build_eval_transform(mean: list[float], std: list[float]) -> v2.Compose:
    """Validation and prediction: the image at its own size, normalized (the mask untouched)."""
    return v2.Compose(_to_model_input(mean, std))


def _to_model_input(mean: list[float], std: list[float]) -> list[v2.Transform]:
    # scale uint8 images to [0, 1]; masks keep their integer class indices (dtype None = unchanged)
    return [v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True), v2.Normalize(mean, std)]


# --- datasets, samplers, loaders ---------------------------------------------------------------------------


def read_pair(image: Path, mask: Path | None) -> tuple[tv_tensors.Image, tv_tensors.Mask | None]:
    """An image as a 3 x H x W uint8 ``tv_tensors.Image`` and its mask as an H x W uint8 ``Mask``."""
    with Image.open(image) as img:
        pixels = np.asarray(img.convert("RGB"))
    rgb = tv_tensors.Image(torch.from_numpy(pixels.copy()).permute(2, 0, 1))
    return rgb, None if mask is None else tv_tensors.Mask(torch.from_numpy(read_mask(mask).copy()))


class Pairs(Dataset):
    """(image, mask) pairs with a transform; indexed by ``i`` or by ``(i, seed)`` to augment under that seed."""

    def __init__(self, pairs: list[tuple[Path, Path]], transform: v2.Transform) -> None:
        self.pairs = pairs
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        image, mask = read_pair(*self.pairs[index])
        if seed is None:
            image, mask = self.transform(image, mask)
        else:
            # fork_rng restores the caller's RNG afterwards: with num_workers=0 this runs in the training process
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                image, mask = self.transform(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor).long()


def pad_collate(batch: list[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, Any]:
    """Stack images of different sizes, padded at the bottom/right to the largest (image 0, mask 255).

    The second item of each sample is a mask (padded with the ignore index) or an int (stacked as is).
    """
    h = max(image.shape[-2] for image, _ in batch)
    w = max(image.shape[-1] for image, _ in batch)
    images = torch.zeros(len(batch), batch[0][0].shape[0], h, w, dtype=batch[0][0].dtype)
    for i, (image, _) in enumerate(batch):
        images[i, :, : image.shape[-2], : image.shape[-1]] = image
    seconds = [second for _, second in batch]
    if not isinstance(seconds[0], torch.Tensor):
        return images, torch.tensor(seconds)
    masks = torch.full((len(batch), h, w), IGNORE_INDEX, dtype=torch.long)
    for i, mask in enumerate(seconds):
        masks[i, : mask.shape[-2], : mask.shape[-1]] = mask
    return images, masks


def build_loader(
    dataset: Dataset, batch_size: int, sampler: Any, workers: int, pin: bool, drop_last: bool
) -> DataLoader:
    """A DataLoader sized to the machine: pinned memory for CUDA, workers kept alive between epochs."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        persistent_workers=workers > 0,
        drop_last=drop_last,
        collate_fn=pad_collate,
        generator=torch.Generator().manual_seed(0),  # worker seeds not drawn from the training RNG
    )


@dataclass
class Data:
    """The train/val datasets and loaders of one run, and what the checks counted."""

    root: Path
    classes: list[str]
    train: Pairs
    val: Pairs
    train_sampler: SeededSampler
    train_loader: DataLoader
    val_loader: DataLoader
    class_pixels: np.ndarray  # per class, over the training masks

    def describe(self) -> str:
        """One line for the training log."""
        return f"{len(self.classes)} classes, {len(self.train)} train / {len(self.val)} val images from {self.root}"


def _workers(d: dict[str, Any], world_size: int) -> int:
    return default_num_workers(world_size) if d["num_workers"] == "auto" else int(d["num_workers"])


def load_data(
    cfg: dict[str, Any], crop_size: int, *, rank: int = 0, world_size: int = 1, pin_memory: bool = False
) -> Data:
    """Check both splits at ``data.root`` (every mask, before anything trains) and build the loaders."""
    d, aug = cfg["data"], cfg["augmentation"]
    root = resolve_root(d["root"])
    classes = read_classes(root, cfg["model"]["num_classes"])
    train_split = check_split(root, "train", len(classes))
    val_split = check_split(root, "val", len(classes))
    train = Pairs(train_split.pairs, build_train_transform(aug, crop_size, d["mean"], d["std"]))
    val = Pairs(val_split.pairs, build_eval_transform(d["mean"], d["std"]))

    seed = cfg["run"]["seed"]
    inner = DistributedSampler(train, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    sampler = SeededSampler(inner, len(train), seed)
    workers, batch = _workers(d, world_size), d["batch_size"]
    # drop the ragged last batch (a batch of 1 breaks BatchNorm, ASPP's pooling branch above all)
    train_loader = build_loader(train, batch, sampler, workers, pin_memory, drop_last=len(sampler) >= batch)
    # validation: each rank takes every world_size-th image, no padding, so the reduced metrics are exact
    val_shard = Subset(val, range(rank, len(val), world_size))
    val_loader = build_loader(val_shard, batch, None, workers, pin_memory, drop_last=False)
    return Data(root, classes, train, val, sampler, train_loader, val_loader, train_split.class_pixels)


def val_loader(cfg: dict[str, Any], num_classes: int, batch_size: int | None = None) -> DataLoader:
    """The validation loader alone (evaluate.py, export.py's calibration), checked like a training run's."""
    d = cfg["data"]
    split = check_split(resolve_root(d["root"]), "val", num_classes)
    val = Pairs(split.pairs, build_eval_transform(d["mean"], d["std"]))
    return build_loader(val, batch_size or d["batch_size"], None, _workers(d, 1), False, drop_last=False)


# --- new images (predict.py) -----------------------------------------------------------------------------


def image_files(inputs: list[str]) -> list[Path]:
    """The image files named by ``inputs``: files, folders (searched recursively) and glob patterns, in order."""
    return expand_inputs(inputs, IMAGE_SUFFIXES, DataError, what="images")


class ImageFiles(Dataset):
    """Images transformed as validation images, at their own size; yields (image, index into ``files``)."""

    def __init__(self, files: list[Path], transform: v2.Transform) -> None:
        self.files = files
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, _ = read_pair(self.files[index], None)
        return self.transform(image).as_subclass(torch.Tensor), index
