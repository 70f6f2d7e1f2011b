"""Where the series come from: one CSV with a time column, target column(s) and optionally a series id (pandas).

* ``read_csv(path, ...)``: the time column (``time_col``; default the first column that parses as timestamps or
  holds integer periods such as years), the targets (``target_cols``; default the last numeric column), the
  series (``id_col``; default one series). Each series must be in time order without repeated times; its
  frequency is inferred (pandas offsets; integer periods: the common step) and, when ``frequency`` is given,
  checked against it. Missing times (gaps) and missing values follow ``fill``: ``"error"`` (default) or
  ``"interpolate"`` (the gap's rows inserted, values linear in time).
* ``make_windows``: sliding windows ``lookback -> horizon`` with a time-ordered split: the last ``val_steps``
  points of every series are validation targets (their inputs may reach back into the training part; nothing
  is shuffled across time), every training target lies before them. Each series is normalized with the mean and
  standard deviation of its own training part only.
* ``mase`` / ``smape`` / ``mae`` and ``seasonal_naive``: the metrics of the M4 competition (Makridakis et al.
  2020, Int. J. Forecasting 36(1)) with MASE scaled by the in-sample seasonal-naive error of the training part
  (Hyndman & Koehler 2006), seasonality from the frequency (``seasonality``).
* ``write_forecast``: ``forecast.csv`` with the next ``horizon`` steps after the last row of each series,
  timestamps continued at the series' frequency.

Every problem with the file is a ``DataError`` with one line that says what to fix.
"""

import difflib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from errors import ProjectError

# augmentation.ops that task.train_batch_transform applies to training batches (archadvisor scaffold reads this)
SUPPORTED_OPS = ("jitter", "scaling")
FILL_POLICIES = ("error", "interpolate")
# seasonal period per pandas offset code, as the M4 competition used for its seasonal-naive benchmark and MASE
# (yearly 1, quarterly 4, monthly 12, weekly 1, daily 1, hourly 24); minutes and seconds by the next unit up
SEASONALITY = {"Y": 1, "A": 1, "Q": 4, "M": 12, "W": 1, "D": 1, "B": 1, "H": 24, "MIN": 60, "T": 60, "S": 60}


class DataError(ProjectError):
    """The dataset cannot be used as it is; the message says what to fix."""


@dataclass(frozen=True)
class Series:
    """One series: its id, its times (``DatetimeIndex`` or integer periods), ``T x C`` target values and ``T x K``
    covariate values (K = 0 without covariates)."""

    id: str
    times: pd.Index
    values: np.ndarray
    covariates: np.ndarray | None = None

    def covariate_values(self) -> np.ndarray:
        return self.covariates if self.covariates is not None else np.zeros((len(self.values), 0), np.float32)


@dataclass(frozen=True)
class SeriesData:
    """Every series of the file, and what was read from where."""

    series: tuple[Series, ...]
    time_col: str
    target_cols: tuple[str, ...]
    id_col: str | None
    frequency: str  # a pandas offset alias ("MS", "W-SUN", "h") or "int:<step>" for integer periods
    covariate_cols: tuple[str, ...] = ()
    # known covariates (calendar features, planned promotions): their values over the horizon are known too; each
    # series' covariate array holds them after the observed ones
    known_cols: tuple[str, ...] = ()

    @property
    def seasonality(self) -> int:
        return seasonality(self.frequency)


def seasonality(frequency: str) -> int:
    """The seasonal period of a frequency (M4's table; integer periods such as years: 1)."""
    if frequency.startswith("int:"):
        return 1
    code = pd.tseries.frequencies.to_offset(frequency).rule_code.split("-")[0].upper()
    code = code.lstrip("0123456789").removesuffix("E").removesuffix("S") or code  # "ME", "MS", "QS" -> M, Q
    return SEASONALITY.get(code, 1)


def infer_freq(times: pd.DatetimeIndex) -> str | None:
    """pandas' inferred offset alias of ``times`` (None if irregular), as a string in every pandas version."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas 3 announces an offset object in place of the string
        found = pd.infer_freq(times)
    return found if found is None or isinstance(found, str) else found.freqstr


def check_column(df: pd.DataFrame, name: str, role: str, source: str, path: Path | str) -> None:
    """A named column that is not in the file: one line with the name, where it was named (``source``), the
    closest column and all of them."""
    if name in df.columns:
        return
    columns = [str(c) for c in df.columns]
    close = difflib.get_close_matches(name, columns, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DataError(f"{path}: no {role} column {name!r} ({source}{hint}); the columns are {', '.join(columns)}")


def _time_column(df: pd.DataFrame, time_col: str | None, path: Path | str = "") -> tuple[str, pd.Series]:
    """The time column's name and its values as datetimes or integers."""
    names = [time_col] if time_col else list(df.columns)
    if time_col:
        check_column(df, time_col, "time", "--time-col, data.time_col", path)
    for name in names:
        col = df[name]
        if pd.api.types.is_integer_dtype(col):
            return name, col.astype(np.int64)
        if pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col):
            try:
                return name, pd.to_datetime(col, errors="raise")
            except (ValueError, TypeError):
                if time_col:
                    raise DataError(f"time column {time_col!r} does not parse as timestamps: {col.iloc[0]!r}") from None
    raise DataError("no column parses as timestamps or integer periods: name the time column with --time-col")


def _frequency(times: pd.Index, where: str) -> str:
    """The regular step of ``times``: the pandas alias it follows (datetimes) or ``int:<step>``."""
    if len(times) < 3:
        raise DataError(f"{where}: {len(times)} rows: at least 3 are needed to infer the frequency")
    if isinstance(times, pd.DatetimeIndex):
        inferred = infer_freq(times)
        if inferred is not None:
            return inferred
        # gaps: infer from the first run of three equally spaced times, check the rest against it below
        steps = np.diff(times.asi8)
        common = np.bincount(np.unique(steps, return_inverse=True)[1]).argmax()
        target = np.unique(steps)[common]
        for i in range(len(steps) - 1):
            if steps[i] == target and steps[i + 1] == target:
                found = infer_freq(times[i : i + 3])
                if found is not None:
                    return found
        raise DataError(f"{where}: the times follow no regular frequency; pass --frequency (a pandas offset alias)")
    steps = np.diff(times.to_numpy())
    values, counts = np.unique(steps, return_counts=True)
    return f"int:{int(values[counts.argmax()])}"


def _grid(times: pd.Index, frequency: str) -> pd.Index:
    """The regular times from the first to the last of ``times`` at ``frequency``."""
    if frequency.startswith("int:"):
        step = int(frequency[4:])
        return pd.Index(np.arange(times[0], times[-1] + 1, step), dtype=np.int64)
    return pd.date_range(times[0], times[-1], freq=frequency)


def _same_frequency(a: str, b: str) -> bool:
    return pd.tseries.frequencies.to_offset(a) == pd.tseries.frequencies.to_offset(b)


def read_csv(
    path: Path,
    *,
    time_col: str | None = None,
    target_cols: list[str] | None = None,
    id_col: str | None = None,
    frequency: str | None = None,
    fill: str = "error",
    covariate_cols: list[str] | None = None,
    known_cols: list[str] | None = None,
) -> SeriesData:
    """Read and check the CSV (see the module docstring). ``covariate_cols``: further numeric columns whose
    values over each window's lookback are extra input channels (the targets alone are forecast); ``known_cols``:
    columns known over the horizon too (their horizon values are inputs as well: ``window_arrays``); the gaps and
    missing values of both follow ``fill`` like the targets'."""
    if fill not in FILL_POLICIES:
        raise DataError(f"data.fill must be one of {', '.join(FILL_POLICIES)}, got {fill!r}")
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"cannot read {path}: {str(e).splitlines()[0]}") from e
    if id_col:
        check_column(df, id_col, "id", "--id-col, data.id_col", path)
    name, times = _time_column(df, time_col, path)
    if target_cols:
        for c in target_cols:
            check_column(df, c, "target", "--target-col, data.target_cols", path)
        used = {name: "time", id_col: "id"}
        clash = [c for c in target_cols if c in used]
        if clash:
            raise DataError(f"{path}: {clash[0]!r} is the {used[clash[0]]} column; it cannot also be a target")
        targets = list(target_cols)
    else:
        numeric = [c for c in df.columns if c not in (name, id_col) and pd.api.types.is_numeric_dtype(df[c])]
        if not numeric:
            raise DataError(f"{path}: no numeric column to forecast besides the time column {name!r}")
        targets = [numeric[-1]]
    observed = list(dict.fromkeys(covariate_cols or []))
    known = list(dict.fromkeys(known_cols or []))
    used = {name: "time", id_col: "id", **{t: "target" for t in targets}}
    for c, role, key in [(c, "covariate", "data.covariate_cols") for c in observed] + [
        (c, "known covariate", "data.known_cols") for c in known
    ]:
        check_column(df, c, role, key, path)
        if c in used:
            raise DataError(f"{path}: {c!r} is the {used[c]} column; it cannot also be a {role} ({key})")
        used[c] = role
    covariates = observed + known
    for c in targets + covariates:
        if not pd.api.types.is_numeric_dtype(df[c]):
            role = "target" if c in targets else used[c]
            raise DataError(f"{path}: {role} column {c!r} is not numeric (e.g. {df[c].iloc[0]!r})")

    groups = df.groupby(df[id_col].astype(str), sort=False) if id_col else [("series", df)]
    found: list[Series] = []
    frequencies: set[str] = set()
    for sid, rows in groups:
        where = f"{path}" + (f" (series {sid!r})" if id_col else "")
        t = pd.Index(times.loc[rows.index])
        backwards = np.flatnonzero(np.diff(t.asi8 if isinstance(t, pd.DatetimeIndex) else t.to_numpy()) < 0)
        if len(backwards):
            row = int(rows.index[backwards[0] + 1]) + 2  # +1 header line, +1 one-based
            raise DataError(
                f"{where}: line {row}: time {t[backwards[0] + 1]} comes after {t[backwards[0]]}: sort by time"
            )
        repeated = t[t.duplicated()]
        if len(repeated):
            raise DataError(f"{where}: time {repeated[0]} occurs more than once")
        if frequency and not isinstance(t, pd.DatetimeIndex) and not frequency.startswith("int:"):
            raise DataError(
                f"{where}: the times are integer periods: give the frequency as int:STEP, not {frequency!r}"
            )
        freq = frequency or _frequency(t, where)
        if frequency and isinstance(t, pd.DatetimeIndex):
            inferred = infer_freq(t) if len(t) >= 3 else None
            if inferred is not None and not _same_frequency(inferred, frequency):
                raise DataError(f"{where}: the data's frequency is {inferred!r}, not the given {frequency!r}")
        grid = _grid(t, freq)
        off_grid = t.difference(grid)
        if len(off_grid):
            raise DataError(f"{where}: time {off_grid[0]} is off the {freq!r} grid that starts at {t[0]}")
        values = rows[targets + covariates].to_numpy(dtype=np.float64)
        if len(grid) != len(t) or np.isnan(values).any():
            if fill == "error":
                gap = grid.difference(t)
                what = f"{len(gap)} missing times (first {gap[0]})" if len(gap) else "missing values"
                raise DataError(f"{where}: {what}; set data.fill: interpolate to fill them linearly")
            frame = pd.DataFrame(values, index=t).reindex(grid).interpolate(limit_direction="both")
            t, values = grid, frame.to_numpy()
        frequencies.add(freq)
        values = values.astype(np.float32)
        cov = values[:, len(targets) :] if covariates else None
        found.append(Series(str(sid), t, values[:, : len(targets)], cov))
    if len(frequencies) > 1:
        raise DataError(f"{path}: the series have different frequencies ({', '.join(sorted(frequencies))})")
    return SeriesData(tuple(found), name, tuple(targets), id_col, frequencies.pop(), tuple(observed), tuple(known))


# --- windows and normalization --------------------------------------------------------------------------


@dataclass(frozen=True)
class Windows:
    """Window starts per split as (series index, first input step); the normalization per series."""

    lookback: int
    horizon: int
    train: np.ndarray  # K x 2
    val: np.ndarray  # K x 2
    mean: np.ndarray  # S x C, of each series' training part
    std: np.ndarray  # S x C
    scale: np.ndarray  # S x C: in-sample seasonal-naive MAE of each training part (MASE's denominator)
    train_end: np.ndarray  # S: steps of each series in the training part
    cov_mean: np.ndarray | None = None  # S x K: the covariates' statistics of each training part (K = 0: none)
    cov_std: np.ndarray | None = None


def make_windows(
    data: SeriesData, lookback: int, horizon: int, val_steps: int | None = None, seasonality_: int | None = None
) -> Windows:
    """Sliding windows (stride 1) with each series' last ``val_steps`` points as validation targets (default:
    max(horizon, 20% of the shortest series))."""
    if lookback < 1 or horizon < 1:
        raise DataError(f"lookback and horizon must be positive, got {lookback} and {horizon}")
    m = seasonality_ or data.seasonality
    shortest = min(len(s.values) for s in data.series)
    val_steps = val_steps or max(horizon, round(0.2 * shortest))
    if val_steps < horizon:
        raise DataError(f"the validation part ({val_steps} steps) is shorter than the horizon {horizon}")
    train_windows, val_windows, means, stds, scales, ends, cov_means, cov_stds = [], [], [], [], [], [], [], []
    for s_index, s in enumerate(data.series):
        n = len(s.values)
        end = n - val_steps  # training part: [0, end)
        if end < lookback + horizon:
            raise DataError(
                f"series {s.id!r} has {n} points: lookback {lookback} + horizon {horizon} needs {lookback + horizon} "
                f"training points before its last {val_steps} validation points ({lookback + horizon + val_steps} in "
                "all): shorten the lookback or the horizon"
            )
        train_part = s.values[:end]
        means.append(train_part.mean(0))
        stds.append(np.where(train_part.std(0) > 1e-8, train_part.std(0), 1.0))
        cov_part = s.covariate_values()[:end]
        cov_means.append(cov_part.mean(0))
        cov_stds.append(np.where(cov_part.std(0) > 1e-8, cov_part.std(0), 1.0))
        lag = m if end > m else 1
        naive = np.abs(train_part[lag:] - train_part[:-lag]).mean(0)
        scales.append(np.where(naive > 1e-8, naive, 1.0))
        ends.append(end)
        # a training window's targets end by `end`; a validation window's targets start at or after it
        train_windows += [(s_index, t) for t in range(end - lookback - horizon + 1)]
        val_windows += [(s_index, t) for t in range(end - lookback, n - lookback - horizon + 1)]
    return Windows(
        lookback,
        horizon,
        np.array(train_windows, dtype=np.int64).reshape(-1, 2),
        np.array(val_windows, dtype=np.int64).reshape(-1, 2),
        np.stack(means).astype(np.float32),
        np.stack(stds).astype(np.float32),
        np.stack(scales).astype(np.float32),
        np.array(ends, dtype=np.int64),
        np.stack(cov_means).astype(np.float32),
        np.stack(cov_stds).astype(np.float32),
    )


def normalized_inputs(s: Series, s_index: int, w: Windows) -> np.ndarray:
    """``T x (C + K)``: the targets, then the covariates, each normalized with the series' training statistics."""
    v = (s.values - w.mean[s_index]) / w.std[s_index]
    if s.covariates is None or w.cov_mean is None:
        return v
    return np.concatenate([v, (s.covariates - w.cov_mean[s_index]) / w.cov_std[s_index]], axis=1)


def window_arrays(data: SeriesData, w: Windows, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inputs K x lookback x (C + covariates), targets K x horizon x C, series K), normalized with each series'
    statistics: the covariates are inputs only.

    With known covariates (``data.known_cols``, J columns) the inputs run on over the horizon, K x (lookback +
    horizon) x (C + covariates + J): the horizon's steps hold the known columns' values and zeros in every other
    channel (the targets and observed covariates are not known there; the model reads only the known ones)."""
    xs, ys = [], []
    c, known = len(data.target_cols), len(data.known_cols)
    width = c + len(data.covariate_cols) + known
    length = w.lookback + (w.horizon if known else 0)
    for s_index, t in starts:
        v = normalized_inputs(data.series[s_index], s_index, w)
        x = v[t : t + length].copy()
        x[w.lookback :, : width - known] = 0.0
        xs.append(x)
        ys.append(v[t + w.lookback : t + w.lookback + w.horizon, :c])
    return (
        np.asarray(xs, dtype=np.float32).reshape(-1, length, width),
        np.asarray(ys, dtype=np.float32).reshape(-1, w.horizon, c),
        starts[:, 0].copy(),
    )


# --- metrics and the seasonal-naive baseline ------------------------------------------------------------


def mae(forecast: np.ndarray, actual: np.ndarray) -> float:
    """Mean absolute error in the data's units."""
    return float(np.abs(forecast - actual).mean())


def smape(forecast: np.ndarray, actual: np.ndarray) -> float:
    """Symmetric MAPE in percent, M4's definition: 200 |y - f| / (|y| + |f|) (0 where both are 0)."""
    denom = np.abs(actual) + np.abs(forecast)
    ratio = np.where(denom > 0, 2 * np.abs(forecast - actual) / np.where(denom > 0, denom, 1), 0.0)
    return float(100 * ratio.mean())


def mase(forecast: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> float:
    """MASE: each window's absolute errors divided by its series' in-sample seasonal-naive MAE, averaged.

    ``forecast``, ``actual`` K x H x C; ``scale`` K x C (the denominator of each window's series).
    """
    return float((np.abs(forecast - actual) / scale[:, None, :]).mean())


def seasonal_naive(data: SeriesData, w: Windows, starts: np.ndarray, m: int | None = None) -> np.ndarray:
    """The seasonal-naive forecast of each window, K x H x C: step h repeats the value one season before, from the
    last season observed before the window's first target (m = 1: the last value)."""
    m = m or data.seasonality
    out = []
    for s_index, t in starts:
        v = data.series[s_index].values
        origin = t + w.lookback  # first target step
        h = np.arange(w.horizon)
        source = origin - m + (h % m)
        source = np.where(source < 0, origin - 1, source)  # a series shorter than a season: the last value
        out.append(v[source])
    return np.asarray(out, dtype=np.float32)


def denormalize(values: np.ndarray, w: Windows, series: np.ndarray) -> np.ndarray:
    """Values of K x H x C back in the data's units, with each window's series statistics."""
    return values * w.std[series][:, None, :] + w.mean[series][:, None, :]


# --- forecast.csv ----------------------------------------------------------------------------------------


def future_times(times: pd.Index, frequency: str, horizon: int) -> pd.Index:
    """The ``horizon`` times after the last of ``times`` at ``frequency``."""
    if frequency.startswith("int:"):
        step = int(frequency[4:])
        return pd.Index(times[-1] + step * np.arange(1, horizon + 1), dtype=np.int64)
    return pd.date_range(times[-1], periods=horizon + 1, freq=frequency)[1:]


def last_windows(data: SeriesData, w: Windows) -> np.ndarray:
    """The last ``lookback`` steps of every series (the input of the next forecast), normalized, S x L x C."""
    out = []
    for s_index, s in enumerate(data.series):
        if len(s.values) < w.lookback:
            raise DataError(f"series {s.id!r} has {len(s.values)} points; the model needs the last {w.lookback}")
        out.append(normalized_inputs(s, s_index, w)[-w.lookback :])
    return np.asarray(out, dtype=np.float32)


def write_forecast(out: Path, data: SeriesData, forecast: np.ndarray) -> Path:
    """``out/forecast.csv``: for each series the next steps (forecast S x H x C, in the data's units), one row per
    step: the id column (if the data has one), the time column continued at the frequency, the targets."""
    rows = []
    for s, values in zip(data.series, forecast, strict=True):
        times = future_times(s.times, data.frequency, len(values))
        frame = pd.DataFrame(values, columns=list(data.target_cols))
        frame.insert(0, data.time_col, times)
        if data.id_col:
            frame.insert(0, data.id_col, s.id)
        rows.append(frame)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "forecast.csv"
    pd.concat(rows, ignore_index=True).to_csv(path, index=False, float_format="%.6g")
    return path


def check_horizon(data: SeriesData, lookback: int, horizon: int) -> None:
    """A horizon longer than the data allows is an error before any training starts."""
    shortest = min(len(s.values) for s in data.series)
    if lookback + 2 * horizon > shortest:
        need = lookback + 2 * horizon
        raise DataError(
            f"horizon {horizon} with lookback {lookback} needs at least {need} points per series (one training and "
            f"one validation window); the shortest series has {shortest}"
        )
