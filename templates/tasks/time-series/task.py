"""Forecasting: the task's part of this project, the hooks the core scripts call.

train.py, evaluate.py, predict.py and export.py are the same in every generated project; what is particular to
forecasting lives here (and in data.py, which reads and checks the CSV, cuts the windows, and has the metrics and
the seasonal-naive baseline):

    add_train_arguments, train_overrides  train.py's --target-col, --time-col, --id-col
    data_stage, build_data, data_meta     windows lookback -> horizon, time-ordered split, per-series statistics
    model_from_meta, build_model          model.py's forecaster for the lookback, horizon and target columns
    build_loss, train_batch_transform     L1 on the normalized values (augmentation: EpochAugmented, in data)
    to_device, Metrics, MONITOR           targets are (values, series): MASE / sMAPE / MAE in the data's units
    final_metrics                         once, at the end: best.pt's validation scores beside seasonal naive
    val_loader, write_report              evaluate.py: the validation windows, the per-series table
    EXPORT, export_example                export.py: input / output names, an example window
    add_predict_args, predict_options     predict.py's --future: the known covariates over the horizon
    predict_files, predict_loader, write_predictions     predict.py: CSV in, forecast.csv out

Every series is normalized with the mean and standard deviation of its own training part; the statistics and each
series' MASE scale (the in-sample seasonal-naive error of its training part) are saved in every checkpoint, so
``Metrics`` can undo the normalization and predict.py can apply the training statistics to the same series later.
"""

import glob
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from inspect import signature
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset

import data
from errors import ProjectError
from model import build_model as build_architecture
from sampling import EpochSampler

try:  # model.py says whether its model takes any lookback (the RNNs) or the trained one only (PatchTST, DLinear)
    from model import DYNAMIC_LENGTH
except ImportError:
    DYNAMIC_LENGTH = False

HERE = Path(__file__).resolve().parent
DEMO = HERE / "demo" / "co2_monthly.csv"
# best.pt and early stopping follow the validation MASE (lower is better) unless training.monitor says otherwise
MONITOR = {"metric": "val_mase", "mode": "min"}
# export.py: ONNX graph names, and the exporter (model.py's ONNX_DYNAMO wins)
# and the input axes that vary: the batch, and the lookback (axis 1 of batch x lookback x channels) where the model
# takes any (PatchTST's patches and DLinear's weights are sized for the trained lookback: fixed there)
EXPORT = {"input_names": ["window"], "output_names": ["forecast"], "dynamo": False,
          "dynamic_axes": ["batch", "lookback"] if DYNAMIC_LENGTH else ["batch"]}  # fmt: skip
# the horizon when neither the recommendation nor config.yaml gives one: one season where the frequency has one
# (monthly 12, quarterly 4, hourly 24), else the M4 competition's horizon (yearly 6, weekly 13, daily 14)
M4_HORIZON = {"Y": 6, "A": 6, "W": 13, "D": 14, "B": 14}


# --- train.py's flags --------------------------------------------------------------------------------------


def add_train_arguments(p: Any) -> None:
    """train.py's forecasting flags; each overrides its config key (checked against the CSV's columns when the
    data is read: a column that is not there stops the run in one line naming it, a close match and the columns)."""
    p.add_argument("--target-col", action="append", metavar="COL", help="a column to forecast (repeatable; "
                   "overrides data.target_cols; default: the last numeric column)")  # fmt: skip
    p.add_argument("--time-col", metavar="COL", help="the time column (overrides data.time_col)")
    p.add_argument("--id-col", metavar="COL", help="the column naming each series (overrides data.id_col)")


def train_overrides(args: Any) -> dict[str, Any]:
    """The config keys the flags of add_train_arguments set (None: the flag was not given)."""
    targets = list(dict.fromkeys(args.target_col)) if args.target_col else None  # a repeated name counts once
    return {"data.target_cols": targets, "data.time_col": args.time_col, "data.id_col": args.id_col}


# --- data --------------------------------------------------------------------------------------------------


def default_horizon(frequency: str) -> int:
    season = data.seasonality(frequency)
    if season > 1:
        return season
    if frequency.startswith("int:"):
        return 6  # integer periods are most often years
    code = pd.tseries.frequencies.to_offset(frequency).rule_code.split("-")[0].upper().lstrip("0123456789")
    return M4_HORIZON.get(code.removesuffix("E").removesuffix("S") or code, 12)


@dataclass
class Data:
    """The series, their windows and loaders of one run."""

    root: Path
    series: data.SeriesData
    windows: data.Windows
    train_sampler: "DistributedSampler | EpochSampler"
    train_loader: DataLoader
    val_loader: DataLoader

    def describe(self) -> str:
        """One line for the training log."""
        w, s = self.windows, self.series
        return (f"{len(s.series)} series x {len(s.target_cols)} target(s) at {s.frequency}, lookback {w.lookback} -> "
                f"horizon {w.horizon}: {len(w.train)} train / {len(w.val)} val windows from {self.root}")  # fmt: skip


def resolve_root(root: str | None) -> Path:
    """``data.root``: a CSV file, or a folder with exactly one; ``None`` means the bundled Mauna Loa CO2 demo."""
    if root is None:
        return DEMO
    path = Path(root).expanduser()
    if path.is_dir():
        found = sorted(path.glob("*.csv"))
        if len(found) != 1:
            raise data.DataError(f"{path}: expected one .csv file, found {len(found)}: pass the file itself")
        return found[0]
    return path


def read_series(cfg: dict[str, Any], path: Path, frequency: str | None = None) -> data.SeriesData:
    d = cfg["data"]
    # the demo is monthly whatever the recommendation's frequency: the check applies to your data
    given = frequency or (d["frequency"] if d["root"] is not None else None)
    return data.read_csv(path, time_col=d["time_col"], target_cols=d["target_cols"], id_col=d["id_col"],
                         frequency=given, fill=d["fill"], covariate_cols=d.get("covariate_cols"),
                         known_cols=d.get("known_cols"))  # fmt: skip


def horizon_lookback(cfg: dict[str, Any], series: data.SeriesData) -> tuple[int, int]:
    d = cfg["data"]
    horizon = d["horizon"] or default_horizon(series.frequency)
    return horizon, d["lookback"] or 4 * horizon


def load_windows(cfg: dict[str, Any]) -> tuple[Path, data.SeriesData, data.Windows]:
    root = resolve_root(cfg["data"]["root"])
    series = read_series(cfg, root)
    horizon, lookback = horizon_lookback(cfg, series)
    data.check_horizon(series, lookback, horizon)
    return root, series, data.make_windows(series, lookback, horizon, cfg["data"]["val_steps"])


def num_workers(cfg: dict[str, Any]) -> int:
    workers = cfg["data"]["num_workers"]
    return 0 if workers == "auto" else int(workers)  # in memory: a loader process only adds start-up time


def window_dataset(series: data.SeriesData, w: data.Windows, starts: np.ndarray) -> TensorDataset:
    x, y, s = data.window_arrays(series, w, starts)
    return TensorDataset(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(s))


def augmentation_steps(cfg: dict[str, Any]) -> tuple[tuple[bool, float], ...]:
    """augmentation.ops as (is jitter, sigma), in order; an op the task does not have is a one-line error."""
    ops = (cfg.get("augmentation") or {}).get("ops") or []
    unknown = [op["name"] for op in ops if op["name"] not in data.SUPPORTED_OPS]
    if unknown:
        raise ProjectError(f"augmentation.ops {unknown}: supported are {', '.join(data.SUPPORTED_OPS)}")
    return tuple((op["name"] == "jitter", float(op["sigma"])) for op in ops)


class EpochAugmented(Dataset):
    """The training windows under augmentation.ops, drawn for every window of an epoch at once: ``jitter`` adds
    N(0, sigma) noise to the inputs; ``scaling`` multiplies input and target of each window by the same
    1 + N(0, sigma) (Um et al. 2017, arXiv:1706.00527).

    The draws come from a generator seeded with (run seed, epoch), not from the training RNG: the augmentation is a
    pure function of (seed, epoch, window), so --resume replays it exactly, every DDP rank and loader worker
    draws the same table, and none of it runs between the training steps. A forecaster's step is small (DLinear:
    about a millisecond on a CPU core), and drawing the noise batch by batch took several percent of it; one draw
    per epoch is a few vectorized ops over the whole training set (a second copy of the windows in memory).
    """

    def __init__(self, windows: TensorDataset, steps: tuple[tuple[bool, float], ...], seed: int) -> None:
        self.x, self.y, self.series = windows.tensors
        self.steps, self.seed = steps, seed
        self.epoch: int | None = None
        self.aug_x, self.aug_y = self.x, self.y

    def __len__(self) -> int:
        return len(self.x)

    def draw(self, epoch: int) -> None:
        """Augment every window for ``epoch`` (in augmentation.ops' order)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        x, y = self.x, self.y
        for jitter, sigma in self.steps:
            if jitter:  # inputs + sigma * N(0, 1)
                x = torch.add(x, torch.randn(x.shape, generator=g, dtype=x.dtype), alpha=sigma)
            else:  # input and target times the window's 1 + sigma * N(0, 1): x + sigma * N * x
                factor = torch.randn(len(x), 1, 1, generator=g, dtype=x.dtype)
                x, y = torch.addcmul(x, x, factor, value=sigma), torch.addcmul(y, y, factor, value=sigma)
        self.aug_x, self.aug_y, self.epoch = x, y, epoch

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Window ``i`` (unaugmented), or ``(i, epoch)``: window ``i`` augmented as in that epoch."""
        if isinstance(key, tuple):
            i, epoch = key
            if epoch != self.epoch:
                self.draw(epoch)
            return self.aug_x[i], self.aug_y[i], self.series[i]
        return self.x[key], self.y[key], self.series[key]


def window_loader(dataset: Any, batch_size: int, workers: int, sampler: Any = None, drop_last: bool = False,
                  pin: bool = False) -> DataLoader:  # fmt: skip
    # the loader's own generator: worker seeds must not come from the training RNG (exact --resume)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=pin,
                      drop_last=drop_last, persistent_workers=workers > 0,
                      generator=torch.Generator().manual_seed(0))  # fmt: skip


def data_stage(cfg: dict[str, Any], epoch: int) -> int:
    """One stage for the whole run."""
    return 0


def build_data(cfg: dict[str, Any], stage: int, *, rank: int, world_size: int, pin_memory: bool) -> Data:
    """Read and check the CSV, cut the windows (the last data.val_steps of every series are validation)."""
    root, series, w = load_windows(cfg)
    train: Dataset = window_dataset(series, w, w.train)
    seed = cfg["run"]["seed"]
    sampler: Any = DistributedSampler(train, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    steps = augmentation_steps(cfg)
    if steps:  # augmentation.ops: drawn per epoch in the dataset (EpochAugmented), keyed by the sampler's epoch
        train, sampler = EpochAugmented(train, steps, seed), EpochSampler(sampler)
    batch, workers = cfg["data"]["batch_size"], num_workers(cfg)
    train_loader = window_loader(train, batch, workers, sampler, drop_last=len(sampler) >= batch, pin=pin_memory)
    val = window_dataset(series, w, w.val[rank::world_size])  # disjoint shards: exact reduced metrics
    return Data(root, series, w, sampler, train_loader, window_loader(val, batch, workers, pin=pin_memory))


def data_meta(cfg: dict[str, Any], loaded: Data, log: Callable[..., None] = print) -> dict[str, Any]:
    """What rebuilds the model, reads new data and undoes the normalization (saved in every checkpoint)."""
    s, w = loaded.series, loaded.windows
    base = baseline_scores(loaded)
    log(f"seasonal-naive baseline (m = {s.seasonality}) on the validation windows: MASE {base['baseline_val_mase']:.3f}"
        f"  sMAPE {base['baseline_val_smape']:.2f}%")  # fmt: skip
    return {
        "arch": cfg["model"]["arch"],
        "lookback": w.lookback,
        "horizon": w.horizon,
        "channels": len(s.target_cols),
        "frequency": s.frequency,
        "seasonality": s.seasonality,
        "time_col": s.time_col,
        "target_cols": list(s.target_cols),
        "id_col": s.id_col,
        "fill": cfg["data"]["fill"],
        "series": [x.id for x in s.series],
        "mean": w.mean.tolist(),
        "std": w.std.tolist(),
        "scale": w.scale.tolist(),
        # covariates: extra input channels after the targets, normalized with their own training statistics
        # (cov_mean, cov_std: the observed ones, then the known ones, whose horizon values are inputs too)
        "covariate_cols": list(s.covariate_cols),
        "covariates": len(s.covariate_cols),
        "known_cols": list(s.known_cols),
        "known": len(s.known_cols),
        "cov_mean": w.cov_mean.tolist(),
        "cov_std": w.cov_std.tolist(),
    }


# --- model and loss ------------------------------------------------------------------------------------------


def takes_covariates() -> bool:
    """Whether model.py's forecaster reads covariates as extra input channels (the RNNs; DLinear and PatchTST
    forecast each channel from its own history, so a covariate would only be forecast, never used)."""
    return "covariates" in signature(build_architecture).parameters


def takes_known() -> bool:
    """Whether model.py's forecaster reads known covariates over the lookback and the horizon (the RNNs)."""
    return "known" in signature(build_architecture).parameters


def model_from_meta(meta: dict[str, Any], **kwargs: Any) -> nn.Module:
    """The forecaster with fresh weights for the checkpoint's lookback, horizon, targets and covariates."""
    covariates, known = meta.get("covariates", 0), meta.get("known", 0)
    for count, key, takes in ((covariates, "covariate_cols", takes_covariates), (known, "known_cols", takes_known)):
        if count and not takes():
            raise ProjectError(f"data.{key} {meta[key]}: {meta['arch']} forecasts each channel from its own history "
                               "and takes no covariates; use an RNN forecaster (archadvisor scaffold --arch lstm) or "
                               f"set data.{key}: null")  # fmt: skip
    if covariates:
        kwargs["covariates"] = covariates
    if known:
        kwargs["known"] = known
    return build_architecture(meta["arch"], lookback=meta["lookback"], horizon=meta["horizon"],
                              channels=meta["channels"], **kwargs)  # fmt: skip


def build_model(cfg: dict[str, Any], meta: dict[str, Any], log: Callable[..., None] = print) -> nn.Module:
    """The model to train (from scratch); model.dropout where the family takes it (the linear models have none,
    PatchTST keeps its paper's per-variant value)."""
    m = cfg["model"]
    if m.get("pretrained"):
        raise ProjectError("model.pretrained: the forecasting models train from scratch; set it to false")
    takes_dropout = "dropout" in signature(build_architecture).parameters
    return model_from_meta(meta, **({"dropout": m["dropout"]} if takes_dropout else {}))


class WindowLoss(nn.Module):
    """L1 between forecast and target windows in normalized units: per series, the numerator of its MASE (the
    scale is a per-series constant), and robust to outliers; targets are (values, series)."""

    def forward(self, outputs: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return nn.functional.l1_loss(outputs.float(), targets[0])


def build_loss(cfg: dict[str, Any], meta: dict[str, Any] | None = None) -> nn.Module:
    return WindowLoss()


def train_batch_transform(cfg: dict[str, Any], meta: dict[str, Any]) -> Callable[..., Any] | None:
    """None: augmentation.ops (jitter, scaling) are drawn for a whole epoch in the training dataset
    (EpochAugmented), not batch by batch between the steps; an unknown op is a one-line error here too."""
    augmentation_steps(cfg)
    return None


def to_device(batch: Any, device: torch.device) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """(windows, (target values, series index)) of a loader batch (inputs, values, series) or of an already
    grouped one (inputs, (values, series)), on ``device``."""
    inputs, values, series = batch if len(batch) == 3 else (batch[0], *batch[1])
    return inputs.to(device, non_blocking=True), (values.to(device, non_blocking=True), series.to(device))


# --- metrics -------------------------------------------------------------------------------------------------


class Metrics:
    """MASE, sMAPE and MAE in the data's units (normalization undone with each window's series statistics), and
    the L1 loss in normalized units; ``split`` is the keys' prefix. Under DDP the sums are reduced over all ranks
    unless ``distributed`` is false."""

    def __init__(self, meta: dict[str, Any], device: torch.device, split: str = "val", distributed: bool = True):
        self.mean, self.std, self.scale = (torch.tensor(meta[k], dtype=torch.float64, device=device)
                                           for k in ("mean", "std", "scale"))  # fmt: skip
        self.split, self.distributed = split, distributed
        # loss, |error| / scale, sMAPE terms, |error|, values counted
        self.sums = torch.zeros(5, dtype=torch.float64, device=device)
        self.reduced = False

    def update(self, outputs: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor]) -> None:
        values, series = targets
        out, values = outputs.double(), values.double()
        std, mean = self.std[series][:, None, :], self.mean[series][:, None, :]
        forecast, actual = out * std + mean, values * std + mean
        error = (forecast - actual).abs()
        denom = forecast.abs() + actual.abs()
        smape = torch.where(denom > 0, 2 * error / denom.clamp(min=1e-12), torch.zeros_like(denom))
        self.sums += torch.stack([(out - values).abs().sum(), (error / self.scale[series][:, None, :]).sum(),
                                  smape.sum(), error.sum(), torch.tensor(float(error.numel()), device=error.device,
                                                                          dtype=torch.float64)])  # fmt: skip

    def compute(self) -> dict[str, float]:
        """``{split}_loss``, ``{split}_mase`` (ratio), ``{split}_smape`` (percent), ``{split}_mae`` (data units)."""
        if self.distributed and dist.is_initialized() and not self.reduced:
            dist.all_reduce(self.sums)
            self.reduced = True
        loss, mase, smape, mae, count = self.sums.tolist()
        if count == 0:
            raise data.DataError(f"the {self.split} split yielded no windows")
        s = self.split
        return {f"{s}_loss": loss / count, f"{s}_mase": mase / count, f"{s}_smape": 100 * smape / count,
                f"{s}_mae": mae / count}  # fmt: skip


def baseline_scores(loaded: Data) -> dict[str, float]:
    """The seasonal-naive forecast on the same validation windows: MASE, sMAPE, MAE."""
    s, w = loaded.series, loaded.windows
    _, y, series = data.window_arrays(s, w, w.val)
    actual = data.denormalize(y, w, series)
    naive = data.seasonal_naive(s, w, w.val)
    return {"baseline_val_mase": data.mase(naive, actual, w.scale[series]),
            "baseline_val_smape": data.smape(naive, actual), "baseline_val_mae": data.mae(naive, actual)}  # fmt: skip


@torch.no_grad()
def final_metrics(cfg: dict[str, Any], meta: dict[str, Any], loaded: Data, checkpoint: Path,
                  device: torch.device) -> dict[str, float]:  # fmt: skip
    """The seasonal-naive forecast's scores on the validation windows (baseline_val_mase, baseline_val_smape,
    baseline_val_mae) for summary.json, beside which train.py already puts the best epoch's val_mase, val_smape and
    val_mae; the line printed compares them with best.pt's (fp32) scores."""
    from checkpoint import load_model

    model, _ = load_model(checkpoint)
    model.to(device)
    metrics = Metrics(meta, device, distributed=False)
    full = window_dataset(loaded.series, loaded.windows, loaded.windows.val)
    for batch in window_loader(full, cfg["data"]["batch_size"], 0):
        inputs, targets = to_device(batch, device)
        metrics.update(model(inputs), targets)
    scores = {k: v for k, v in metrics.compute().items() if k != "val_loss"}
    base = baseline_scores(loaded)
    print(f"validation ({len(full)} windows, {checkpoint.name}): MASE {scores['val_mase']:.3f}  sMAPE "
          f"{scores['val_smape']:.2f}%  MAE {scores['val_mae']:.4g}  | seasonal naive MASE "
          f"{base['baseline_val_mase']:.3f}  sMAPE {base['baseline_val_smape']:.2f}%")  # fmt: skip
    return base


# --- evaluate.py ----------------------------------------------------------------------------------------------


def with_meta_statistics(series: data.SeriesData, w: data.Windows, meta: dict[str, Any]) -> data.Windows:
    """``w`` with the checkpoint's normalization and MASE scale for the series it was trained on (by id)."""
    known = {sid: i for i, sid in enumerate(meta["series"])}
    keys = ("mean", "std", "scale") + (("cov_mean", "cov_std") if meta.get("covariates") or meta.get("known") else ())
    stats = {k: np.array(getattr(w, k)) for k in keys}
    for i, s in enumerate(series.series):
        if s.id in known:
            for k, values in stats.items():
                values[i] = np.asarray(meta[k], np.float32)[known[s.id]]
    return replace(w, **stats)


def val_loader(cfg: dict[str, Any], meta: dict[str, Any], batch_size: int | None = None) -> DataLoader:
    """The validation windows of data.root at the checkpoint's lookback and horizon, normalized as trained."""
    cfg = {**cfg, "data": {**cfg["data"], "horizon": meta["horizon"], "lookback": meta["lookback"]}}
    _, series, w = load_windows(cfg)
    if list(series.target_cols) != meta["target_cols"]:
        targets = list(series.target_cols)
        raise ProjectError(f"the data's targets {targets} differ from the model's {meta['target_cols']}")
    w = with_meta_statistics(series, w, meta)
    loader = window_loader(window_dataset(series, w, w.val), batch_size or cfg["data"]["batch_size"], 0)
    loader.series = series  # type: ignore[attr-defined]  # write_report's per-series table
    return loader


def write_report(metrics: Metrics, out: Path) -> dict[str, Any]:
    """Write ``out/val_metrics.json`` with the split's scores."""
    scores = metrics.compute()
    out.mkdir(parents=True, exist_ok=True)
    (out / "val_metrics.json").write_text(json.dumps(scores, indent=2) + "\n", encoding="utf-8")
    return {"report_json": str(out / "val_metrics.json")}


# --- export.py ----------------------------------------------------------------------------------------------


def export_example(meta: dict[str, Any], batch: int, seed: int) -> torch.Tensor:
    """A batch of random normalized windows, ``batch x lookback x channels`` (``lookback + horizon`` steps with
    known covariates: data.window_arrays). Seed 0 (what export.py traces) is at the trained lookback; where the
    model takes any (DYNAMIC_LENGTH), the parity checks' seeds (1-3) are 5, 10, 15 steps shorter, so the ONNX
    graph's length axis is checked, not only the traced shape."""
    lookback = meta["lookback"]
    if seed > 0 and DYNAMIC_LENGTH:
        lookback = max(min(lookback, 8), lookback - 5 * seed)
    known = meta.get("known", 0)
    channels = meta["channels"] + meta.get("covariates", 0) + known  # the targets, then the covariates
    steps = lookback + (meta["horizon"] if known else 0)
    return torch.randn(batch, steps, channels, generator=torch.Generator().manual_seed(seed))


# --- predict.py ---------------------------------------------------------------------------------------------


def add_predict_args(parser: Any) -> None:
    parser.add_argument("--future", type=Path, metavar="FILE.csv", help="the known covariates (data.known_cols) "
                        "over the next horizon steps of each series: the time column, the id column if the data "
                        "has one, the known columns; needed when the model was trained with known_cols")  # fmt: skip


def predict_options(args: Any) -> dict[str, Any]:
    return {"future": args.future}


def predict_files(inputs: list[str]) -> list[Path]:
    """The CSV files named by files, folders and globs: each holds the history of one or more series."""
    files: list[Path] = []
    for item in inputs:
        matches = sorted(glob.glob(item, recursive=True)) if glob.has_magic(item) else [item]
        for match in map(Path, matches):
            if match.is_dir():
                files += sorted(p for p in match.rglob("*.csv") if p.is_file())
            elif match.is_file():
                files.append(match)
            else:
                raise data.DataError(f"{match}: no such file or folder")
    if not files:
        raise data.DataError(f"no .csv files in {' '.join(inputs)}")
    return list(dict.fromkeys(files))


def read_future(path: Path, meta: dict[str, Any], series: data.SeriesData) -> list[np.ndarray]:
    """--future's known-covariate values for the next ``horizon`` steps of every series (H x J each, in the data's
    units, in time order): exactly one row per series and future time, checked in one line each."""
    known, horizon, id_col, time_col = meta["known_cols"], meta["horizon"], meta["id_col"], meta["time_col"]
    if not path.is_file():
        raise data.DataError(f"--future {path}: no such file")
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise data.DataError(f"--future {path}: cannot read it: {str(e).splitlines()[0]}") from e
    for col, role in [(time_col, "time"), *([(id_col, "id")] if id_col else []), *((c, "known") for c in known)]:
        data.check_column(df, col, role, "--future", path)
    for c in known:
        if not pd.api.types.is_numeric_dtype(df[c]) or df[c].isna().any():
            raise data.DataError(f"--future {path}: known column {c!r} must be numbers in every row")
    out = []
    for s in series.series:
        rows = df[df[id_col].astype(str) == s.id] if id_col else df
        expected = data.future_times(s.times, series.frequency, horizon)
        if isinstance(expected, pd.DatetimeIndex):
            got = pd.Index(pd.to_datetime(rows[time_col], errors="coerce"))
        else:
            got = pd.Index(pd.to_numeric(rows[time_col], errors="coerce"))
        order = np.argsort(got.to_numpy(), kind="stable")
        if len(got) != horizon or not got[order].equals(expected):
            missing = expected.difference(got)
            extra = got.difference(expected)
            what = (f"missing {missing[0]}" if len(missing) else f"unexpected {extra[0]}" if len(extra)
                    else "a repeated time")  # fmt: skip
            where = f"series {s.id!r}" if id_col else "the series"
            raise data.DataError(f"--future {path}: {where} needs one row for each of its next {horizon} times "
                                 f"{expected[0]} .. {expected[-1]}; found {len(got)} rows ({what})")  # fmt: skip
        out.append(rows[known].to_numpy(np.float32)[order])
    return out


def predict_windows(
    files: list[Path], meta: dict[str, Any], future: Path | None = None
) -> tuple[data.SeriesData, np.ndarray, np.ndarray]:
    """(every series of ``files``, the last ``lookback`` steps of each normalized S x L x C, the statistics
    S x 2 x C). A series the model was trained on gets its training statistics; a new one those of its history.
    With known covariates and ``future``, each window runs on over the horizon with --future's values (the
    layout of data.window_arrays)."""
    read = [data.read_csv(p, time_col=meta["time_col"], target_cols=meta["target_cols"], id_col=meta["id_col"],
                          frequency=meta["frequency"], fill=meta["fill"], covariate_cols=meta.get("covariate_cols"),
                          known_cols=meta.get("known_cols")) for p in files]  # fmt: skip
    series = replace(read[0], series=tuple(s for r in read for s in r.series))
    known = {sid: i for i, sid in enumerate(meta["series"])}
    mean, std = np.asarray(meta["mean"], np.float32), np.asarray(meta["std"], np.float32)
    n_known = meta.get("known", 0)
    ahead = read_future(future, meta, series) if n_known and future is not None else None
    windows, stats = [], []
    for i_series, s in enumerate(series.series):
        if len(s.values) < meta["lookback"]:
            need = meta["lookback"]
            raise data.DataError(f"series {s.id!r} has {len(s.values)} points; the model needs the last {need}")
        if s.id in known:
            m, sd = mean[known[s.id]], std[known[s.id]]
        else:
            m, sd = s.values.mean(0), np.where(s.values.std(0) > 1e-8, s.values.std(0), 1.0)
        window = (s.values[-meta["lookback"] :] - m) / sd
        if meta.get("covariates") or n_known:  # the covariates' training statistics, or those of its history
            cov = s.covariate_values()
            if s.id in known:
                cm, cs = (np.asarray(meta[k], np.float32)[known[s.id]] for k in ("cov_mean", "cov_std"))
            else:
                cm, cs = cov.mean(0), np.where(cov.std(0) > 1e-8, cov.std(0), 1.0)
            window = np.concatenate([window, (cov[-meta["lookback"] :] - cm) / cs], axis=1)
            if ahead is not None:  # the horizon: the known columns' values, zeros in the other channels
                horizon = np.zeros((meta["horizon"], window.shape[1]), np.float32)
                horizon[:, -n_known:] = (ahead[i_series] - cm[-n_known:]) / cs[-n_known:]
                window = np.concatenate([window, horizon])
        windows.append(window)
        stats.append(np.stack([m, sd]))
    return series, np.asarray(windows, np.float32), np.asarray(stats, np.float32)


def predict_loader(files: list[Path], meta: dict[str, Any], batch_size: int, future: Path | None = None) -> DataLoader:
    """Batches of (the last lookback steps of each series, normalized, and with known covariates the next
    horizon steps' known values from ``future``; row numbers)."""
    if meta.get("known") and future is None:
        need = [meta["time_col"], *([meta["id_col"]] if meta["id_col"] else []), *meta["known_cols"]]
        raise data.DataError(f"the model reads known covariates {meta['known_cols']} over the horizon: pass --future "
                             f"FILE.csv with the columns {', '.join(need)} for the next {meta['horizon']} steps of "
                             "each series")  # fmt: skip
    if future is not None and not meta.get("known"):
        raise data.DataError(f"--future {future}: the model was trained without known covariates (data.known_cols)")
    _, windows, _ = predict_windows(files, meta, future)
    return DataLoader(TensorDataset(torch.from_numpy(windows), torch.arange(len(windows))), batch_size=batch_size)


def write_predictions(out: Path, files: list[Path], outputs: Any, meta: dict[str, Any], top_k: int) -> Path:
    """``out/forecast.csv``: the next ``horizon`` steps of every series, in the data's units, timestamps continued
    at the series' frequency. ``outputs``: one array S x H x C, or a list of per-batch arrays."""
    forecast = np.concatenate(outputs) if isinstance(outputs, list | tuple) else np.asarray(outputs)
    series, _, stats = predict_windows(files, meta)
    values = forecast * stats[:, 1][:, None, :] + stats[:, 0][:, None, :]
    return data.write_forecast(out, series, values)
