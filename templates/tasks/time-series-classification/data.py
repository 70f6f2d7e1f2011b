"""Where the series come from: the UCR/UEA ``.ts`` archive format or ``train.npz`` / ``test.npz``, numpy only.

* ``load_split(root)``: ``root/NAME_TRAIN.ts`` + ``root/NAME_TEST.ts`` (what sktime and aeon read and write), or
  ``root/train.npz`` + ``root/test.npz`` with ``X`` (N x channels x length, float; a shorter series has NaN in
  its tail, or the file has a ``lengths`` array) and ``y`` (class labels: integers or strings; no pickled
  objects). Both give a ``SeriesSet``: ``X`` padded with NaN after each series' length (the models read the
  padding from the NaNs), ``lengths``, and class indices into ``classes``.
* Missing values *inside* a series (``?`` in a ``.ts`` file, NaN before the length) follow ``fill``:
  ``"interpolate"`` (default: linear in time per channel, the nearest value at the ends) or ``"error"``.
* ``stratified_split``: the validation split carved from TRAIN (stratified, seeded); TEST is scored once, at
  the end, with the checkpoint the validation split selected.
* ``one_nn_accuracy``: the 1-nearest-neighbour Euclidean baseline of the UCR archive (Dau et al. 2019, "The UCR
  Time Series Archive", arXiv:1810.07758), on the same split, so a user sees whether the network earns its cost.

Every problem with the files is a ``DataError`` with one line that names the file (and line) and what to fix.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from errors import ProjectError

# augmentation.ops that task.train_batch_transform applies to training batches (archadvisor scaffold reads this)
SUPPORTED_OPS = ("jitter", "scaling")
FILL_POLICIES = ("interpolate", "error")
# .ts header tags this reader understands (sktime/aeon's writer emits these); others are an error naming the line
TS_TAGS = (
    "problemname",
    "timestamps",
    "missing",
    "univariate",
    "equallength",
    "serieslength",
    "classlabel",
    "dimension",
    "dimensions",
    "targetlabel",
    "data",
)


class DataError(ProjectError):
    """The dataset cannot be used as it is; the message says what to fix."""


@dataclass(frozen=True)
class SeriesSet:
    """Series of one split: ``X`` is N x C x T float32, NaN after each series' length; ``y`` indexes ``classes``."""

    X: np.ndarray
    lengths: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> "SeriesSet":
        """The series at ``index``, padding trimmed to the longest of them."""
        lengths = self.lengths[index]
        width = int(lengths.max()) if len(lengths) else 0
        return SeriesSet(self.X[index, :, :width], lengths, self.y[index], self.classes, self.source)


@dataclass(frozen=True)
class RawSeries:
    """What a file holds before the classes of both splits are known."""

    X: np.ndarray
    lengths: np.ndarray
    labels: list[str]
    declared: tuple[str, ...] | None  # @classLabel's list, in its order
    source: str


# --- .ts -------------------------------------------------------------------------------------------------


def read_ts(path: Path, fill: str = "interpolate") -> RawSeries:
    """Parse a UCR/UEA ``.ts`` file: header tags, then ``@data`` with one case per line, dimensions separated by
    ``:``, values by ``,``, ``?`` for a missing value, the class label last."""
    header: dict[str, str] = {}
    declared: tuple[str, ...] | None = None
    cases: list[list[np.ndarray]] = []
    labels: list[str] = []
    in_data = False
    with open(path, encoding="utf-8") as fh:
        for number, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{path}:{number}"
            if not in_data:
                if not line.startswith("@"):
                    raise DataError(f"{where}: expected a header tag such as @problemName or @data, got {line[:40]!r}")
                tag, _, value = line[1:].partition(" ")
                tag = tag.lower()
                if tag not in TS_TAGS:
                    raise DataError(f"{where}: unknown header tag @{tag}; this reader knows @{', @'.join(TS_TAGS)}")
                if tag == "data":
                    in_data = True
                    _check_header(header, where)
                    continue
                if tag == "classlabel":
                    parts = value.split()
                    if not parts or parts[0].lower() not in ("true", "false"):
                        raise DataError(f"{where}: @classLabel must be 'true' followed by the labels, or 'false'")
                    if parts[0].lower() == "false":
                        raise DataError(f"{where}: @classLabel false: a classification set needs class labels")
                    if len(parts) < 3:
                        raise DataError(f"{where}: @classLabel true needs at least two labels, got {parts[1:]}")
                    declared = tuple(parts[1:])
                if tag == "targetlabel" and value.strip().lower() == "true":
                    raise DataError(f"{where}: @targetLabel true is a regression set; this project classifies")
                header[tag] = value.strip()
                continue
            dims, label = _parse_case(line, where, has_label=declared is not None)
            if cases and len(dims) != len(cases[0]):
                raise DataError(f"{where}: {len(dims)} dimensions; the first case has {len(cases[0])}")
            if declared is not None and label not in declared:
                raise DataError(f"{where}: class {label!r} is not among @classLabel's {', '.join(declared)}")
            cases.append(dims)
            labels.append(label)
    if not in_data:
        raise DataError(f"{path}: no @data line: not a .ts file")
    if not cases:
        raise DataError(f"{path}: no series after @data")
    X, lengths = _pad(cases)
    return RawSeries(fill_missing(X, lengths, fill, str(path)), lengths, labels, declared, str(path))


def _check_header(header: dict[str, str], where: str) -> None:
    if header.get("timestamps", "false").lower() == "true":
        raise DataError(f"{where}: @timeStamps true is not supported: write the values without timestamps")
    for tag in ("univariate", "equallength", "missing", "timestamps"):
        if tag in header and header[tag].lower() not in ("true", "false"):
            raise DataError(f"{where}: @{tag} must be true or false, got {header[tag]!r}")
    if "classlabel" not in header:
        raise DataError(f"{where}: @data before @classLabel: the header must declare the class labels")


_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _parse_case(line: str, where: str, has_label: bool) -> tuple[list[np.ndarray], str]:
    parts = line.split(":")
    label = ""
    if has_label:
        if len(parts) < 2:
            raise DataError(f"{where}: a case needs its values and a class label separated by ':'")
        label = parts.pop().strip()
    dims = []
    for d, part in enumerate(parts):
        values = []
        for token in part.split(","):
            token = token.strip()
            if token == "?" or token.lower() == "nan":
                values.append(np.nan)
            elif _NUMBER.match(token):
                values.append(float(token))
            else:
                raise DataError(f"{where}: dimension {d}: {token[:30]!r} is not a number or '?'")
        dims.append(np.asarray(values, dtype=np.float32))
    return dims, label


def _pad(cases: list[list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """N x C x T with NaN after each case's length (a case's length is that of its longest dimension)."""
    lengths = np.array([max(len(d) for d in dims) for dims in cases], dtype=np.int64)
    X = np.full((len(cases), len(cases[0]), int(lengths.max())), np.nan, dtype=np.float32)
    for i, dims in enumerate(cases):
        for c, d in enumerate(dims):
            X[i, c, : len(d)] = d
    return X, lengths


# --- .npz ------------------------------------------------------------------------------------------------


def read_npz(path: Path, fill: str = "interpolate") -> RawSeries:
    """``X`` (N x C x T float; NaN tails or a ``lengths`` array) and ``y`` from an ``.npz`` without pickles."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "X" not in arrays or "y" not in arrays:
                raise DataError(f"{path}: needs arrays 'X' (N x channels x length) and 'y'; has {list(arrays)}")
            X = np.asarray(arrays["X"])
            y = np.asarray(arrays["y"])
            given = np.asarray(arrays["lengths"]) if "lengths" in arrays else None
    except ValueError as e:  # object arrays (pickles) refused by allow_pickle=False
        raise DataError(f"{path}: {str(e).splitlines()[0]}: save X as float and y as int or str arrays") from e
    if X.ndim == 2:
        X = X[:, None, :]  # N x T: univariate
    if X.ndim != 3 or not np.issubdtype(X.dtype, np.number):
        raise DataError(f"{path}: X must be a float array of N x channels x length, got {X.dtype} {X.shape}")
    if y.ndim != 1 or len(y) != len(X):
        raise DataError(f"{path}: y must hold one label per series ({len(X)}), got shape {y.shape}")
    X = X.astype(np.float32)
    if given is None:
        # a NaN tail (in every channel) is padding: the length is one past the last step with any value
        observed = ~np.isnan(X).all(axis=1)
        lengths = np.where(observed.any(1), X.shape[2] - np.argmax(observed[:, ::-1], axis=1), 0)
    else:
        lengths = given.astype(np.int64)
        if lengths.shape != (len(X),) or (lengths < 1).any() or (lengths > X.shape[2]).any():
            raise DataError(f"{path}: 'lengths' must hold one length in 1..{X.shape[2]} per series")
        X = np.where(np.arange(X.shape[2])[None, None, :] >= lengths[:, None, None], np.nan, X).astype(np.float32)
    if (lengths == 0).any():
        raise DataError(f"{path}: series {int(np.argmin(lengths))} has no values (all NaN)")
    labels = [str(v) for v in y.tolist()]
    return RawSeries(fill_missing(X, lengths, fill, str(path)), lengths, labels, None, str(path))


# --- missing values, splits, the baseline -----------------------------------------------------------------


def fill_missing(X: np.ndarray, lengths: np.ndarray, policy: str, source: str) -> np.ndarray:
    """NaN within each series' length: linear interpolation per channel (``"interpolate"``) or an error."""
    if policy not in FILL_POLICIES:
        raise DataError(f"data.fill must be one of {', '.join(FILL_POLICIES)}, got {policy!r}")
    inside = np.arange(X.shape[2])[None, :] < lengths[:, None]  # N x T
    holes = np.isnan(X) & inside[:, None, :]
    if not holes.any():
        return X
    i, c, t = (int(v[0]) for v in np.nonzero(holes))
    if policy == "error":
        raise DataError(
            f"{source}: series {i}, channel {c} has a missing value at step {t} inside the series "
            "(set data.fill: interpolate to fill such values linearly)"
        )
    X = X.copy()
    for i, c in zip(*np.nonzero(holes.any(axis=2)), strict=True):
        row = X[i, c, : lengths[i]]
        known = ~np.isnan(row)
        if not known.any():
            raise DataError(f"{source}: series {i}, channel {c} has no values to interpolate from")
        steps = np.arange(len(row))
        row[~known] = np.interp(steps[~known], steps[known], row[known])  # np.interp holds the ends flat
    return X


def _class_order(labels: list[str], declared: tuple[str, ...] | None) -> tuple[str, ...]:
    if declared is not None:
        return declared
    unique = sorted(set(labels))
    # integer labels sort as numbers ("2" before "10"), others as text
    if all(re.fullmatch(r"-?\d+", s) for s in unique):
        unique.sort(key=int)
    return tuple(unique)


def find_split_files(root: Path) -> tuple[Path, Path]:
    """(train file, test file) in ``root``: one ``*_TRAIN.ts`` / ``*_TEST.ts`` pair, or ``train.npz`` / ``test.npz``."""
    if not root.is_dir():
        raise DataError(f"data root {root} is not a folder")
    if (root / "train.npz").is_file():
        if not (root / "test.npz").is_file():
            raise DataError(f"{root} has train.npz but no test.npz")
        return root / "train.npz", root / "test.npz"
    trains = sorted(root.glob("*_TRAIN.ts"))
    if len(trains) != 1:
        found = ", ".join(p.name for p in trains) or "none"
        raise DataError(f"{root}: expected one NAME_TRAIN.ts + NAME_TEST.ts pair or train.npz/test.npz; found {found}")
    test = trains[0].with_name(trains[0].name.removesuffix("_TRAIN.ts") + "_TEST.ts")
    if not test.is_file():
        raise DataError(f"{root}: {trains[0].name} has no {test.name} beside it")
    return trains[0], test


def read_file(path: Path, fill: str = "interpolate") -> RawSeries:
    """A ``.ts`` or ``.npz`` file."""
    if path.suffix == ".ts":
        return read_ts(path, fill)
    if path.suffix == ".npz":
        return read_npz(path, fill)
    raise DataError(f"{path}: expected a .ts or .npz file")


def load_split(root: Path, fill: str = "interpolate") -> tuple[SeriesSet, SeriesSet]:
    """(TRAIN, TEST) of the dataset at ``root``, with class indices from the training classes."""
    train_path, test_path = find_split_files(root)
    train, test = read_file(train_path, fill), read_file(test_path, fill)
    if train.X.shape[1] != test.X.shape[1]:
        raise DataError(f"{train.source} has {train.X.shape[1]} channels but {test.source} {test.X.shape[1]}")
    classes = _class_order(train.labels, train.declared)
    present = set(train.labels)
    for name in classes:
        if name not in present:
            raise DataError(f"{train.source}: class {name!r} has no training series")
    index = {name: i for i, name in enumerate(classes)}
    for label in test.labels:
        if label not in index:
            raise DataError(f"{test.source}: class {label!r} does not occur in training ({', '.join(classes)})")
    return tuple(
        SeriesSet(r.X, r.lengths, np.array([index[s] for s in r.labels], dtype=np.int64), classes, r.source)
        for r in (train, test)
    )  # type: ignore[return-value]


def stratified_split(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices): ``val_fraction`` of each class (at least one where the class has two or more
    series), drawn with ``seed``; sorted, so the split does not depend on the file's order of classes."""
    if not 0 < val_fraction < 1:
        raise DataError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        k = round(val_fraction * len(members))
        k = min(max(k, 1 if len(members) >= 2 else 0), len(members) - 1)
        val.append(members[:k])
    val_index = np.sort(np.concatenate(val))
    train_index = np.setdiff1d(np.arange(len(y)), val_index)
    return train_index, val_index


def channel_stats(train: SeriesSet) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over every observed training value (the normalization)."""
    mean = np.nanmean(train.X, axis=(0, 2))
    std = np.nanstd(train.X, axis=(0, 2))
    return mean.astype(np.float32), np.where(std > 1e-8, std, 1.0).astype(np.float32)


def one_nn_accuracy(train: SeriesSet, test: SeriesSet) -> float:
    """Top-1 accuracy in percent of the 1-nearest-neighbour classifier with Euclidean distance.

    Series of unequal length are compared over the longer one with the shorter's missing tail as zeros (the
    UCR archive's own baselines need equal lengths; this is the simplest extension that keeps the metric).
    """
    width = max(train.X.shape[2], test.X.shape[2])

    def flat(s: SeriesSet) -> np.ndarray:
        x = np.nan_to_num(s.X.astype(np.float64), nan=0.0)
        return np.pad(x, ((0, 0), (0, 0), (0, width - x.shape[2]))).reshape(len(s), -1)

    a, b = flat(train), flat(test)
    # squared distances ||b||^2 - 2 b.a + ||a||^2, in blocks so memory stays small for large archives
    correct = 0
    for start in range(0, len(b), 1024):
        block = b[start : start + 1024]
        d = (block**2).sum(1)[:, None] - 2 * block @ a.T + (a**2).sum(1)[None, :]
        correct += int((train.y[np.argmin(d, axis=1)] == test.y[start : start + 1024]).sum())
    return 100.0 * correct / len(b)
