"""Where the images come from and how they are augmented.

* ``prepare_demo``: the bundled demo, scikit-learn's handwritten digits (1,797 8x8 images, 10 classes), written
  once as an ImageFolder under ``demo/digits/``. ``demo/digits.npz`` holds the images already split, stratified
  and seeded: ``train_test_split(load_digits().images, load_digits().target, test_size=0.2,
  stratify=target, random_state=0)``, 1,437 train / 360 val. scikit-learn is not needed at run time.
* ``load_data``: your ImageFolder (``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg``), checked before
  training starts: a missing split, an empty class folder or different classes in train/ and val/ is an
  error that says what to fix. An unreadable image is an error naming the file, or is skipped with a warning
  when ``data.skip_unreadable`` is true. Links to folders inside a split are not followed (``ImageFolder``).
* ``build_train_transform``: the ``augmentation`` section of config.yaml as ``torchvision.transforms.v2``.
* ``image_files`` / ``ImageFiles``: the images ``predict.py`` is given (files, folders, globs), read and
  transformed as validation images.

Every training sample is augmented under its own seed, drawn from (run seed, epoch): the data order and every
random crop are the same whatever the number of workers, and ``--resume`` replays an epoch exactly.
"""

import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, default_collate
from torchvision import datasets
from torchvision.transforms import v2

from errors import ProjectError
from files import default_num_workers, expand_inputs
from sampling import SeededSampler

HERE = Path(__file__).resolve().parent
DEMO_NPZ = HERE / "demo" / "digits.npz"
DEMO_ROOT = HERE / "demo" / "digits"
DEMO_SIZE = 32  # the 8x8 digits are stored upscaled, so crops have sub-digit granularity

# augmentation.ops names -> how build_train_transform builds them
SUPPORTED_OPS = (
    "random_resized_crop",
    "horizontal_flip",
    "color_jitter",
    "rand_augment",
    "trivial_augment",
    "auto_augment",
    "random_grayscale",
    "random_erasing",
)


class DataError(ProjectError):
    """The dataset cannot be used as it is; the message says what to fix."""


class UnreadableImageError(DataError):
    """An image file that PIL cannot open or decode."""


# --- the demo ------------------------------------------------------------------------------------------


def prepare_demo(root: Path = DEMO_ROOT) -> Path:
    """Write the bundled digits as ``root/{train,val}/<digit>/*.png`` once; return ``root``.

    Written into a temporary folder and renamed, so a run killed halfway never leaves a partial dataset.
    """
    if (root / "train").is_dir() and (root / "val").is_dir():
        return root
    arrays = np.load(DEMO_NPZ)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".digits-", dir=root.parent))
    try:
        for split in ("train", "val"):
            images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
                folder = tmp / split / str(int(label))
                folder.mkdir(parents=True, exist_ok=True)
                # pixel values are 0..16 (ink counts of a 4x4 block); scale to 0..255 and upscale
                gray = Image.fromarray((pixels.astype(np.float32) * (255 / 16)).round().astype(np.uint8))
                gray.resize((DEMO_SIZE, DEMO_SIZE), Image.BILINEAR).save(folder / f"{i:04d}.png")
        try:
            tmp.rename(root)
        except OSError:  # another process (e.g. a second torchrun rank) finished first
            if not (root / "train").is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


# --- checking and reading an ImageFolder -----------------------------------------------------------------


def read_image(path: str) -> Image.Image:
    """Open an image as RGB; any decoding failure becomes an ``UnreadableImageError`` naming the file."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # PIL's decoder errors
        raise UnreadableImageError(f"cannot read image {path}: {e}") from e


class ImageFolder(datasets.ImageFolder):
    """torchvision's ImageFolder, without following links to folders inside a split.

    A link back into the tree (a loop) lists the same images again and again, other classes' images under this
    class too; a link out of it reads images nobody put in the dataset. Such links are skipped with a warning;
    a class folder that is itself a link is an error (skipping it would drop a class). Links to image files,
    and a data.root or split folder that is a link, are fine.
    """

    def find_classes(self, directory: str | Path) -> tuple[list[str], dict[str, int]]:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
        linked = [e.name for e in entries if e.is_symlink() and e.is_dir()]
        if linked:
            raise DataError(
                f"{directory}: the class folder(s) {', '.join(linked)} are links to folders, which are not followed "
                "(a link can loop or reach outside the data): copy the images in, or link the image files"
            )
        classes = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
        if not classes:
            raise FileNotFoundError(f"no class folders in {directory}")
        return classes, {name: i for i, name in enumerate(classes)}

    @staticmethod
    def make_dataset(
        directory: str | Path,
        class_to_idx: dict[str, int],
        extensions: tuple[str, ...] | None = None,
        is_valid_file: Any = None,
        allow_empty: bool = False,
    ) -> list[tuple[str, int]]:
        samples, skipped, empty = [], [], []
        for name, index in sorted(class_to_idx.items()):
            before = len(samples)
            for folder, subfolders, files in sorted(os.walk(os.path.join(directory, name), followlinks=False)):
                skipped += [os.path.join(folder, d) for d in subfolders if os.path.islink(os.path.join(folder, d))]
                for file in sorted(files):
                    path = os.path.join(folder, file)
                    valid = is_valid_file(path) if is_valid_file else file.lower().endswith(extensions or ())
                    if valid:
                        samples.append((path, index))
            if len(samples) == before:
                empty.append(name)
        if empty and not allow_empty:
            raise FileNotFoundError(f"no images ({', '.join(extensions or ())}) in the classes {', '.join(empty)}")
        if skipped:
            warnings.warn(
                f"{directory}: {len(skipped)} link(s) to folders not followed, e.g. {skipped[0]} "
                "(a link can loop or reach outside the data)",
                stacklevel=2,
            )
        return samples


def image_folder(root: Path, split: str) -> datasets.ImageFolder:
    """``root/split`` as an ImageFolder, with a clear error for a missing split or an empty class folder."""
    folder = root / split
    if not folder.is_dir():
        raise DataError(
            f"{root} has no {split}/ folder: expected {root}/train/<class>/<image> and {root}/val/<class>/<image>"
        )
    try:
        return ImageFolder(str(folder), loader=read_image)
    except FileNotFoundError as e:  # no class folders, or a class folder without a single image
        raise DataError(f"{folder}: {e}") from e


def check_splits(train: datasets.ImageFolder, val: datasets.ImageFolder, root: Path) -> list[str]:
    """The class names, after checking that train/ and val/ have the same class folders."""
    if train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))
        only_val = sorted(set(val.classes) - set(train.classes))
        raise DataError(
            f"{root}: train/ and val/ must have the same class folders "
            f"(only in train/: {only_train or 'none'}; only in val/: {only_val or 'none'})"
        )
    if len(train.classes) < 2:
        raise DataError(f"{root}: classification needs at least 2 class folders, found {train.classes}")
    return train.classes


# --- transforms ------------------------------------------------------------------------------------------


def _op_params(op: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in op.items() if k != "name"}


def build_train_transform(aug: dict[str, Any], image_size: int, mean: list[float], std: list[float]) -> v2.Compose:
    """The training pipeline from ``augmentation.ops``, in the order torchvision's references use.

    Geometry and colour run on uint8 images (the fast path of transforms.v2); RandomErasing runs last, on the
    normalized tensor, as in Zhong et al. 2017 (arXiv:1708.04896) and the torchvision references.
    """
    ops = {op["name"]: _op_params(op) for op in aug["ops"]}
    unknown = sorted(set(ops) - set(SUPPORTED_OPS))
    if unknown:
        raise ValueError(f"augmentation.ops: unknown {unknown}; supported: {', '.join(SUPPORTED_OPS)}")
    steps: list[Any] = [v2.ToImage()]
    if "random_resized_crop" in ops:
        p = ops["random_resized_crop"]  # the crop size is data.image_size (or the progressive-resizing stage)
        steps.append(v2.RandomResizedCrop(image_size, scale=tuple(p["scale"]), ratio=tuple(p["ratio"]), antialias=True))
    else:
        steps.append(v2.Resize((image_size, image_size), antialias=True))
    if "horizontal_flip" in ops:
        steps.append(v2.RandomHorizontalFlip(p=ops["horizontal_flip"].get("p", 0.5)))
    if "color_jitter" in ops:
        steps.append(v2.ColorJitter(**ops["color_jitter"]))
    if "rand_augment" in ops:
        steps.append(v2.RandAugment(**ops["rand_augment"]))  # Cubuk et al. 2019, arXiv:1909.13719
    if "trivial_augment" in ops:
        steps.append(v2.TrivialAugmentWide(**ops["trivial_augment"]))  # Mueller & Hutter 2021, arXiv:2103.10158
    if "auto_augment" in ops:
        steps.append(v2.AutoAugment(**ops["auto_augment"]))
    if "random_grayscale" in ops:
        steps.append(v2.RandomGrayscale(**ops["random_grayscale"]))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    if "random_erasing" in ops:
        steps.append(v2.RandomErasing(**ops["random_erasing"]))
    return v2.Compose(steps)


def build_eval_transform(image_size: int, crop_pct: float, mean: list[float], std: list[float]) -> v2.Compose:
    """Resize to ``image_size / crop_pct`` and center-crop ``image_size`` (crop_pct 0.875 is the ImageNet habit)."""
    resize = round(image_size / crop_pct)
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(resize, antialias=True),
            v2.CenterCrop(image_size),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean, std),
        ]
    )


# --- datasets, samplers, loaders ---------------------------------------------------------------------------


class Samples(Dataset):
    """An ImageFolder with a transform; indexed by ``i`` or by ``(i, seed)`` to augment under that seed.

    With ``skip_unreadable`` an unreadable image yields ``None`` (dropped by ``collate``) and a warning.
    """

    def __init__(self, folder: datasets.ImageFolder, transform: Any, skip_unreadable: bool) -> None:
        self.folder = folder
        self.transform = transform
        self.skip_unreadable = skip_unreadable

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int] | None:
        index, seed = key if isinstance(key, tuple) else (key, None)
        path, label = self.folder.samples[index]
        try:
            image = self.folder.loader(path)
        except UnreadableImageError as e:
            if not self.skip_unreadable:
                raise
            warnings.warn(f"{e}; skipped (data.skip_unreadable is true)", stacklevel=1)
            return None
        if seed is None:
            return self.transform(image), label
        # fork_rng restores the caller's RNG afterwards: with num_workers=0 this runs in the training process
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.transform(image), label


def collate(batch: list[Any]) -> Any:
    """``default_collate`` without the skipped (``None``) samples; ``None`` if nothing is left."""
    batch = [b for b in batch if b is not None]
    return default_collate(batch) if batch else None


@dataclass
class Data:
    """The train/val datasets and loaders of one run."""

    root: Path
    classes: list[str]
    train: Samples
    val: Samples
    train_sampler: SeededSampler
    train_loader: DataLoader
    val_loader: DataLoader

    def describe(self) -> str:
        """One line for the training log."""
        return f"{len(self.classes)} classes, {len(self.train)} train / {len(self.val)} val images from {self.root}"


def resolve_root(root: str | os.PathLike | None) -> Path:
    """``data.root`` as a path; ``None`` means the bundled digits demo (written on first use)."""
    return prepare_demo() if root is None else Path(root).expanduser()


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
        collate_fn=collate,
        # the loader's own generator: each new iterator draws a worker base seed from it, which would otherwise
        # come from the training RNG (dropout, MixUp) a different number of times in a resumed run
        generator=torch.Generator().manual_seed(0),
    )


def load_data(
    cfg: dict[str, Any], image_size: int, *, rank: int = 0, world_size: int = 1, pin_memory: bool = False
) -> Data:
    """Check the ImageFolder at ``data.root`` and build the loaders for one training run."""
    d, aug = cfg["data"], cfg["augmentation"]
    root = resolve_root(d["root"])
    train_folder, val_folder = image_folder(root, "train"), image_folder(root, "val")
    classes = check_splits(train_folder, val_folder, root)
    mean, std = d["mean"], d["std"]
    train = Samples(train_folder, build_train_transform(aug, image_size, mean, std), d["skip_unreadable"])
    val = Samples(val_folder, build_eval_transform(image_size, d["eval_crop_pct"], mean, std), d["skip_unreadable"])

    seed = cfg["run"]["seed"]
    inner = DistributedSampler(train, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    sampler = SeededSampler(inner, len(train), seed)
    workers = default_num_workers(world_size) if d["num_workers"] == "auto" else int(d["num_workers"])
    batch = d["batch_size"]
    # drop the ragged last batch (a batch of 1 breaks BatchNorm) unless the shard is smaller than one batch
    train_loader = build_loader(train, batch, sampler, workers, pin_memory, drop_last=len(sampler) >= batch)
    # validation: each rank takes every world_size-th image, no padding, so the reduced metrics are exact
    val_shard = Subset(val, range(rank, len(val), world_size))
    val_loader = build_loader(val_shard, batch, None, workers, pin_memory, drop_last=False)
    return Data(root, classes, train, val, sampler, train_loader, val_loader)


def val_loader(cfg: dict[str, Any], image_size: int, batch_size: int | None = None) -> tuple[DataLoader, list[str]]:
    """The validation loader alone (evaluate.py, export.py's calibration), with its class names."""
    d = cfg["data"]
    root = resolve_root(d["root"])
    folder = image_folder(root, "val")
    val = Samples(
        folder, build_eval_transform(image_size, d["eval_crop_pct"], d["mean"], d["std"]), d["skip_unreadable"]
    )
    workers = default_num_workers(1) if d["num_workers"] == "auto" else int(d["num_workers"])
    return build_loader(val, batch_size or d["batch_size"], None, workers, False, drop_last=False), folder.classes


# --- new images (predict.py) -----------------------------------------------------------------------------

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def image_files(inputs: list[str]) -> list[Path]:
    """The image files named by ``inputs``: files, folders (searched recursively) and glob patterns, in order."""
    return expand_inputs(inputs, IMAGE_SUFFIXES, DataError, what="images")


class ImageFiles(Dataset):
    """Image files transformed as validation images; yields (image tensor, index into ``files``)."""

    def __init__(self, files: list[Path], transform: Any) -> None:
        self.files = files
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(read_image(str(self.files[index]))), index
