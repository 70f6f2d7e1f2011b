"""Where the texts come from, how they become batches of token ids, and the checks on the way.

Layouts of ``data.root`` (the first one found wins):

* ``root/train.csv`` + ``root/val.csv``: a header row with a text and a label column (``data.text_column``,
  ``data.label_column``; default ``text`` and ``label``);
* ``root/train.jsonl`` + ``root/val.jsonl``: one JSON object per line with the same two fields;
* ``root/train/<class>/*.txt`` + ``root/val/<class>/*.txt``: one text per file, the folder names the class.

``data.root: null`` is the bundled demo (``demo/``, Debian's fortune cookies by category; see demo/README.md).
Labels may be any strings. Files must be UTF-8: anything else is an error naming the file and the byte offset.
Empty texts are dropped with a warning that counts them; a label in val that train lacks is an error.

Batches: texts are tokenized once, up front; each batch is padded to its own longest text (dynamic padding),
and training batches are drawn from length buckets (``BucketBatchSampler``), so little of a batch is padding.
"""

import csv
import io
import json
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from errors import ProjectError

HERE = Path(__file__).resolve().parent
DEMO_ROOT = HERE / "demo"
SPLITS = ("train", "val")
# augmentation.ops this data.py can build: none (texts are tokenized as they are; the scaffolder reads this)
SUPPORTED_OPS: tuple[str, ...] = ()


class DataError(ProjectError):
    """The dataset cannot be used as it is; the message says what to fix."""


@dataclass(frozen=True)
class Split:
    """One split as read from disk: texts and their string labels, and how many empty texts were dropped."""

    texts: list[str]
    labels: list[str]
    dropped_empty: int


# --- reading -------------------------------------------------------------------------------------------------


def read_utf8(path: Path) -> str:
    """The file's text; not UTF-8 is an error naming the file, the byte offset and the line."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # a leading byte-order mark (Excel's CSV export) is not part of the text
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path} is not UTF-8: byte 0x{raw[e.start]:02x} at offset {e.start} (line {line}); "
            "re-save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def read_csv(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    reader = csv.DictReader(io.StringIO(read_utf8(path), newline=""))
    missing = [c for c in (text_column, label_column) if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(
            f"{path} has no column {', '.join(map(repr, missing))} (its header: {reader.fieldnames}); "
            "set data.text_column / data.label_column"
        )
    texts, labels = [], []
    for row in reader:
        texts.append(row[text_column] or "")
        labels.append((row[label_column] or "").strip())
    return texts, labels


def read_jsonl(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for number, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{number}: not a JSON object ({e.msg})") from None
        if not isinstance(row, dict) or text_column not in row or label_column not in row:
            raise DataError(f"{path}:{number}: needs the fields {text_column!r} and {label_column!r}")
        texts.append(str(row[text_column] or ""))
        labels.append(str(row[label_column]).strip())
    return texts, labels


def read_folders(split_dir: Path) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        for path in sorted(class_dir.glob("*.txt")):
            texts.append(read_utf8(path))
            labels.append(class_dir.name)
    return texts, labels


def layout(root: Path) -> str:
    """Which of the three layouts ``root`` holds: csv, jsonl or folders."""
    for kind, names in (("csv", ("train.csv", "val.csv")), ("jsonl", ("train.jsonl", "val.jsonl"))):
        if (root / names[0]).is_file():
            if not (root / names[1]).is_file():
                raise DataError(f"{root} has {names[0]} but no {names[1]}")
            return kind
    if (root / "train").is_dir():
        if not (root / "val").is_dir():
            raise DataError(f"{root} has train/ but no val/")
        return "folders"
    raise DataError(
        f"{root}: expected train.csv + val.csv, train.jsonl + val.jsonl, or train/<class>/*.txt + val/<class>/*.txt"
    )


def read_split(root: Path, split: str, text_column: str = "text", label_column: str = "label") -> Split:
    """One split of ``root`` in whichever layout it has; empty texts dropped (and counted)."""
    kind = layout(root)
    if kind == "csv":
        texts, labels = read_csv(root / f"{split}.csv", text_column, label_column)
    elif kind == "jsonl":
        texts, labels = read_jsonl(root / f"{split}.jsonl", text_column, label_column)
    else:
        texts, labels = read_folders(root / split)
    keep = [i for i, (t, y) in enumerate(zip(texts, labels, strict=True)) if t.strip() and y]
    dropped = len(texts) - len(keep)
    if dropped:
        warnings.warn(f"{root} {split}: dropped {dropped} empty texts (or empty labels)", stacklevel=2)
    if not keep:
        raise DataError(f"{root} {split}: no texts")
    return Split([texts[i] for i in keep], [labels[i] for i in keep], dropped)


def class_names(labels: Sequence[str]) -> list[str]:
    """The distinct labels, in numeric order when they are all integers ("2" before "10"), else sorted."""
    names = set(labels)
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


def check_val_classes(root: Path, classes: Sequence[str], val_labels: Sequence[str]) -> None:
    unknown = sorted(set(val_labels) - set(classes))
    if unknown:
        raise DataError(f"{root}: val has labels that train lacks: {', '.join(map(repr, unknown[:10]))}")


def resolve_root(root: str | None) -> Path:
    """``data.root`` as a path; ``None`` means the bundled demo."""
    return DEMO_ROOT if root is None else Path(root).expanduser()


# --- batches -------------------------------------------------------------------------------------------------


class TokenizedTexts(Dataset):
    """Token ids and class indices (or -1 when there are no labels, as in predict.py)."""

    def __init__(self, ids: list[np.ndarray], targets: Sequence[int]) -> None:
        self.ids, self.targets = ids, list(targets)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.ids[i], self.targets[i]

    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]


def collate(batch: list[tuple[np.ndarray, int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids padded on the right with ``pad_id`` to the batch's longest text, targets)."""
    width = max(len(ids) for ids, _ in batch)
    out = torch.full((len(batch), width), pad_id, dtype=torch.int64)
    for row, (ids, _) in enumerate(batch):
        out[row, : len(ids)] = torch.from_numpy(ids)
    return out, torch.tensor([t for _, t in batch], dtype=torch.int64)


class Collate:
    """``collate`` with the padding id bound (a class, not a lambda: loader workers pickle it)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return collate(batch, self.pad_id)


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length, in random order, the same on every rank count and ``--resume``.

    Each epoch: a permutation seeded by (seed, epoch); this rank's share of it (every rank the same count,
    as ``DistributedSampler`` pads by repeating); within windows of ``bucket_batches`` batches the indices are
    sorted by length and cut into batches, and the batches are shuffled. Sorting only within windows keeps the
    data order random while padding falls to a few percent (the "bucketing" of Khomenko et al. 2016,
    arXiv:1708.05604; torchtext's BucketIterator).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1,
                 bucket_batches: int = 50) -> None:  # fmt: skip
        self.lengths, self.batch_size, self.seed = list(lengths), batch_size, seed
        self.rank, self.world, self.bucket_batches = rank, world_size, bucket_batches
        self.epoch = 0
        self.per_rank = math.ceil(len(self.lengths) / world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(self.per_rank / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=g).tolist()
        order += order[: self.per_rank * self.world - len(order)]  # pad so every rank has per_rank indices
        mine = order[self.rank :: self.world]
        window = self.batch_size * self.bucket_batches
        batches = []
        for start in range(0, len(mine), window):
            chunk = sorted(mine[start : start + window], key=self.lengths.__getitem__)
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        return iter([batches[i] for i in torch.randperm(len(batches), generator=g).tolist()])


def sorted_batches(lengths: Sequence[int], batch_size: int, rank: int = 0, world_size: int = 1) -> list[list[int]]:
    """Evaluation batches: this rank's disjoint share of the split, sorted by length (least padding)."""
    mine = sorted(range(rank, len(lengths), world_size), key=lengths.__getitem__)
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]


def loader(dataset: TokenizedTexts, batch_sampler: Any, pad_id: int, workers: int = 0) -> DataLoader:
    """Texts are tokenized up front, so batching is cheap: the main process (workers 0) is the default."""
    return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=Collate(pad_id), num_workers=workers)


# --- predict.py's inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextInput:
    """One text to classify and where it came from: a file and line, or ``--text``."""

    source: str
    line: int
    text: str


def predict_inputs(paths: Sequence[str], texts: Sequence[str] = (), text_column: str = "text") -> list[TextInput]:
    """Texts from text files (one per line, empty lines skipped), CSV files (``text_column``) and literal texts."""
    out: list[TextInput] = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise DataError(f"{path}: no such file (predict.py takes .txt files, .csv files, or --text)")
        content = read_utf8(path)
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(io.StringIO(content, newline=""))
            if text_column not in (reader.fieldnames or []):
                raise DataError(f"{path} has no column {text_column!r} (its header: {reader.fieldnames})")
            out += [TextInput(str(path), n, row[text_column] or "") for n, row in enumerate(reader, 2)]
        else:
            out += [TextInput(str(path), n, line) for n, line in enumerate(content.splitlines(), 1) if line.strip()]
    out += [TextInput("--text", n, text) for n, text in enumerate(texts, 1)]
    if not out:
        raise DataError("no texts to predict: give .txt / .csv files or --text")
    return out
