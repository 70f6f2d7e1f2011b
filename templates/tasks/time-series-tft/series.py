"""The CSV, checked, as the long table pytorch-forecasting's TimeSeriesDataSet reads; metrics and seasonal naive.

* ``read_csv``: the time column (``time_col``; default the first column that parses as timestamps or holds
  integer periods such as years), the target (``target_cols``; default the last numeric column), the series
  (``id_col``; default one series) and the covariate columns config.yaml names. Each series must be in time order
  without repeated times; the frequency is inferred (pandas offsets; integer periods: the common step) and, when
  given, checked. Missing times (gaps) and missing values follow ``fill``: ``"error"`` or ``"interpolate"``.
  The table gets ``series`` (the id as text), ``time_idx`` (the step on one grid shared by every series, what
  TimeSeriesDataSet orders by) and ``season`` (``time_idx`` modulo the seasonal period: a known future input).
* ``mase`` / ``smape`` / ``mae`` and ``seasonal_naive``: the M4 competition's metrics (Makridakis et al. 2020,
  Int. J. Forecasting 36(1)); MASE is scaled by the in-sample seasonal-naive error of each series' training part
  (Hyndman & Koehler 2006), seasonality from the frequency.

Every problem with the file is a ``DataError`` with one line that says what to fix.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from config import ProjectError

FILL_POLICIES = ("error", "interpolate")
# seasonal period per pandas offset code, as M4 used for its seasonal-naive benchmark and MASE
SEASONALITY = {"Y": 1, "A": 1, "Q": 4, "M": 12, "W": 1, "D": 1, "B": 1, "H": 24, "MIN": 60, "T": 60, "S": 60}
# the horizon when config.yaml gives none: one season where the frequency has one, else M4's horizon
M4_HORIZON = {"Y": 6, "A": 6, "W": 13, "D": 14, "B": 14}


class DataError(ProjectError):
    """The dataset cannot be used as it is; the message says what to fix."""


@dataclass(frozen=True)
class Table:
    """Every series of the file in one long table, and what was read from where."""

    frame: pd.DataFrame  # series, time_idx, season, the time column, the target, the covariates
    time_col: str
    target: str
    id_col: str | None
    frequency: str  # a pandas offset alias ("MS", "h") or "int:<step>" for integer periods
    start: object  # the time of time_idx 0

    @property
    def seasonality(self) -> int:
        return seasonality(self.frequency)


def _code(frequency: str) -> str:
    code = pd.tseries.frequencies.to_offset(frequency).rule_code.split("-")[0].upper().lstrip("0123456789")
    return code.removesuffix("E").removesuffix("S") or code  # "ME", "MS", "QS" -> M, Q


def seasonality(frequency: str) -> int:
    """The seasonal period of a frequency (M4's table; integer periods such as years: 1)."""
    return 1 if frequency.startswith("int:") else SEASONALITY.get(_code(frequency), 1)


def default_horizon(frequency: str) -> int:
    if seasonality(frequency) > 1:
        return seasonality(frequency)
    return 6 if frequency.startswith("int:") else M4_HORIZON.get(_code(frequency), 12)


def _infer(times: pd.DatetimeIndex) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas 3 announces an offset object in place of the string
        found = pd.infer_freq(times)
    return found if found is None or isinstance(found, str) else found.freqstr


def _time_column(df: pd.DataFrame, time_col: str | None) -> tuple[str, pd.Series]:
    if time_col and time_col not in df.columns:
        raise DataError(f"no time column {time_col!r}; the columns are {', '.join(map(str, df.columns))}")
    for name in [time_col] if time_col else list(df.columns):
        col = df[name]
        if pd.api.types.is_integer_dtype(col):
            return name, col.astype(np.int64)
        if pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # "could not infer format": a column that is not times
                    return name, pd.to_datetime(col, errors="raise")
            except (ValueError, TypeError):
                if time_col:
                    raise DataError(f"time column {time_col!r} does not parse as timestamps: {col.iloc[0]!r}") from None
    raise DataError("no column parses as timestamps or integer periods: set data.time_col")


def _frequency(times: pd.Index, where: str) -> str:
    if len(times) < 3:
        raise DataError(f"{where}: {len(times)} rows: at least 3 are needed to infer the frequency")
    if isinstance(times, pd.DatetimeIndex):
        for i in range(len(times) - 2):  # the first run of three equally spaced times (the rest is checked after)
            found = _infer(times[i : i + 3])
            if found is not None:
                return _infer(times) or found
        raise DataError(f"{where}: the times follow no regular frequency; set data.frequency (a pandas offset alias)")
    values, counts = np.unique(np.diff(times.to_numpy()), return_counts=True)
    return f"int:{int(values[counts.argmax()])}"


def grid(first: object, last: object, frequency: str) -> pd.Index:
    """The regular times from ``first`` to ``last`` at ``frequency``."""
    if frequency.startswith("int:"):
        return pd.Index(np.arange(first, last + 1, int(frequency[4:])), dtype=np.int64)
    return pd.date_range(first, last, freq=frequency)


def future_times(last: object, frequency: str, horizon: int) -> pd.Index:
    """The ``horizon`` times after ``last`` at ``frequency``."""
    if frequency.startswith("int:"):
        return pd.Index(last + int(frequency[4:]) * np.arange(1, horizon + 1), dtype=np.int64)
    return pd.date_range(last, periods=horizon + 1, freq=frequency)[1:]


def read_csv(
    path: Path, d: dict, *, frequency: str | None = None, start: object = None, future_ok: bool = False
) -> Table:
    """Read and check ``path`` with the data section ``d`` of config.yaml (see the module docstring). ``start``:
    the time of time_idx 0 (a trained model's); ``future_ok``: rows after a series' last target value may leave
    the target empty (they carry the known covariates of the steps to forecast)."""
    if d["fill"] not in FILL_POLICIES:
        raise DataError(f"data.fill must be one of {', '.join(FILL_POLICIES)}, got {d['fill']!r}")
    try:
        df = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"cannot read {path}: {str(e).splitlines()[0]}") from e
    id_col = d["id_col"]
    if id_col and id_col not in df.columns:
        raise DataError(f"{path}: no id column {id_col!r}; the columns are {', '.join(map(str, df.columns))}")
    name, times = _time_column(df, d["time_col"])
    if d["target_cols"]:
        if len(d["target_cols"]) != 1:
            raise DataError(
                f"data.target_cols: this project forecasts one target, got {d['target_cols']}; "
                "list the others in data.observed_reals"
            )
        target = d["target_cols"][0]
    else:
        numeric = [c for c in df.columns if c not in (name, id_col) and pd.api.types.is_numeric_dtype(df[c])]
        covariates = {c for key in ("known_reals", "observed_reals") for c in d[key]}
        numeric = [c for c in numeric if c not in covariates]
        if not numeric:
            raise DataError(f"{path}: no numeric column to forecast besides the time column {name!r}")
        target = numeric[-1]
    reals = [target, *d["known_reals"], *d["observed_reals"]]
    for col in [*reals, *d["known_categoricals"], *d["static_categoricals"]]:
        if col not in df.columns:
            raise DataError(f"{path}: no column {col!r}; the columns are {', '.join(map(str, df.columns))}")
    for col in reals:
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise DataError(f"{path}: column {col!r} is not numeric (e.g. {df[col].iloc[0]!r})")

    df = df.assign(**{name: times})
    groups = df.groupby(df[id_col].astype(str), sort=False) if id_col else [("series", df)]
    frames, frequencies = [], set()
    for sid, rows in groups:
        where = f"{path}" + (f" (series {sid!r})" if id_col else "")
        t = pd.Index(rows[name])
        steps = np.diff(t.asi8 if isinstance(t, pd.DatetimeIndex) else t.to_numpy())
        if (steps < 0).any():
            i = int(np.flatnonzero(steps < 0)[0])
            raise DataError(
                f"{where}: line {int(rows.index[i + 1]) + 2}: time {t[i + 1]} comes after {t[i]}: sort by time"
            )
        if t.has_duplicates:
            raise DataError(f"{where}: time {t[t.duplicated()][0]} occurs more than once")
        if (
            frequency is None
            and d["frequency"]
            and not isinstance(t, pd.DatetimeIndex)
            and not d["frequency"].startswith("int:")
        ):
            raise DataError(
                f"{where}: the times are integer periods: give data.frequency as int:STEP, not {d['frequency']!r}"
            )
        freq = frequency or d["frequency"] or _frequency(t, where)
        inferred = _infer(t) if isinstance(t, pd.DatetimeIndex) and len(t) >= 3 else None
        if inferred is not None and pd.tseries.frequencies.to_offset(inferred) != pd.tseries.frequencies.to_offset(
            freq
        ):
            raise DataError(f"{where}: the data's frequency is {inferred!r}, not {freq!r}")
        full = grid(t[0], t[-1], freq)
        if len(t.difference(full)):
            raise DataError(f"{where}: time {t.difference(full)[0]} is off the {freq!r} grid that starts at {t[0]}")
        rows = rows.set_index(name)
        values = rows[reals]
        observed = values[target].notna().to_numpy()
        last = int(np.flatnonzero(observed)[-1]) if observed.any() else -1
        future = np.arange(len(rows)) > last
        if future.any() and not future_ok:
            raise DataError(f"{where}: the target {target!r} is empty from {t[last + 1]} on")
        if (
            len(full) != len(t)
            or values.iloc[: last + 1].isna().any().any()
            or values.iloc[last + 1 :, 1:].isna().any().any()
        ):
            if d["fill"] == "error":
                gap = full.difference(t)
                what = f"{len(gap)} missing times (first {gap[0]})" if len(gap) else "missing values"
                raise DataError(f"{where}: {what}; set data.fill: interpolate to fill them linearly")
            rows = rows.reindex(full)
            numeric = rows[reals].copy()
            numeric.iloc[:, 1:] = numeric.iloc[:, 1:].interpolate(limit_direction="both")
            hist = numeric.index <= t[last]
            numeric.loc[hist, target] = numeric.loc[hist, target].interpolate(limit_direction="both")
            rows[reals] = numeric
            cats = [*d["known_categoricals"], *d["static_categoricals"]]
            rows[cats] = rows[cats].ffill().bfill()
        rows = rows.rename_axis(name).reset_index()
        rows["series"] = str(sid)
        frequencies.add(freq)
        frames.append(rows)
    if len(frequencies) > 1:
        raise DataError(f"{path}: the series have different frequencies ({', '.join(sorted(frequencies))})")
    freq = frequencies.pop()
    frame = pd.concat(frames, ignore_index=True)
    origin = start if start is not None else frame[name].min()
    if start is not None and frame[name].min() < start:
        raise DataError(f"{path}: time {frame[name].min()} is before the training data's first time {start}")
    index = grid(origin, frame[name].max(), freq)
    frame["time_idx"] = index.get_indexer(frame[name]).astype(np.int64)
    frame["season"] = (frame["time_idx"] % seasonality(freq)).astype(str)  # a category: TFT embeds it
    for col in [*d["known_categoricals"], *d["static_categoricals"]]:
        frame[col] = frame[col].astype(str)
    frame[target] = frame[target].astype(np.float64)
    return Table(frame, name, target, id_col, freq, origin)


# --- metrics and the seasonal-naive baseline -------------------------------------------------------------


def mae(forecast: np.ndarray, actual: np.ndarray) -> float:
    """Mean absolute error in the data's units."""
    return float(np.abs(forecast - actual).mean())


def smape(forecast: np.ndarray, actual: np.ndarray) -> float:
    """Symmetric MAPE in percent, M4's definition: 200 |y - f| / (|y| + |f|) (0 where both are 0)."""
    denom = np.abs(actual) + np.abs(forecast)
    return float(100 * np.where(denom > 0, 2 * np.abs(forecast - actual) / np.where(denom > 0, denom, 1), 0).mean())


def mase(forecast: np.ndarray, actual: np.ndarray, scale: np.ndarray) -> float:
    """Each window's absolute errors (K x H) divided by its series' in-sample seasonal-naive MAE (K), averaged."""
    return float((np.abs(forecast - actual) / scale[:, None]).mean())


def naive_scale(history: np.ndarray, m: int) -> float:
    """The in-sample seasonal-naive MAE of a training part (lag m, or 1 when it is shorter than a season)."""
    lag = m if len(history) > m else 1
    scale = float(np.abs(history[lag:] - history[:-lag]).mean())
    return scale if scale > 1e-8 else 1.0


def seasonal_naive(values: np.ndarray, origin: int, horizon: int, m: int) -> np.ndarray:
    """Step h repeats the value one season before, from the last season observed before ``origin`` (the first
    target step; m = 1: the last value)."""
    source = origin - m + (np.arange(horizon) % m)
    return values[np.where(source < 0, origin - 1, source)]
