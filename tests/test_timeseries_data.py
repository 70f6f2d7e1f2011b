"""The time-series task parts' data handling: the .ts / .npz reader, the split and the 1-NN baseline
(classification); the CSV reader, windows, metrics, seasonal naive and forecast.csv (forecasting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from ts_support import task_dir, task_module

cls_data = task_module("time-series-classification", "data")
fc_data = task_module("time-series", "data")
GUNPOINT = task_dir("time-series-classification") / "demo" / "GunPoint"
CO2 = task_dir("time-series") / "demo" / "co2_monthly.csv"

HEADER = "@problemName Toy\n@timeStamps false\n@univariate {uni}\n@equalLength {eq}\n@classLabel true a b\n@data\n"


def write_ts(path: Path, body: str, uni: str = "true", eq: str = "true", header: str | None = None) -> Path:
    path.write_text((header if header is not None else HEADER.format(uni=uni, eq=eq)) + body, encoding="utf-8")
    return path


# --- classification: reading ----------------------------------------------------------------------------


def test_bundled_gunpoint_reads_as_published():
    train, test = cls_data.load_split(GUNPOINT)
    assert train.X.shape == (50, 1, 150) and test.X.shape == (150, 1, 150)
    assert train.classes == ("1", "2")
    assert np.bincount(train.y).tolist() == [24, 26]
    assert not np.isnan(train.X).any()


def test_multivariate_unequal_lengths_string_labels_and_missing(tmp_path):
    body = "1,2,3:4,5,6:a\n1,?,3,4:5,6,7,8:b\n7,8:9,10:a\n"
    raw = cls_data.read_ts(write_ts(tmp_path / "X_TRAIN.ts", body, uni="false", eq="false"))
    assert raw.X.shape == (3, 2, 4)
    assert raw.lengths.tolist() == [3, 4, 2]
    assert raw.labels == ["a", "b", "a"]
    assert np.isnan(raw.X[0, :, 3]).all() and np.isnan(raw.X[2, :, 2:]).all()  # padding stays NaN
    assert raw.X[1, 0, 1] == pytest.approx(2.0)  # '?' inside the series: linear interpolation


def test_missing_value_with_error_policy_names_the_series(tmp_path):
    path = write_ts(tmp_path / "X_TRAIN.ts", "1,?,3:a\n1,2,3:b\n")
    with pytest.raises(cls_data.DataError, match=r"series 0, channel 0 .* step 1"):
        cls_data.read_ts(path, fill="error")


@pytest.mark.parametrize(
    ("header", "body", "match"),
    [
        ("@problemName T\n@classLabel true a b\n@bogus 3\n@data\n", "1,2:a\n", r":3: unknown header tag @bogus"),
        ("@problemName T\n@classLabel maybe a b\n@data\n", "1,2:a\n", r":2: @classLabel must be"),
        ("@problemName T\n@timeStamps true\n@classLabel true a b\n@data\n", "1,2:a\n", r":4: @timeStamps true"),
        ("@problemName T\n@data\n", "1,2:a\n", r":2: @data before @classLabel"),
        ("@problemName T\n@classLabel true a b\n@data\n", "1,2:c\n", r":4: class 'c' is not among"),
        ("@problemName T\n@classLabel true a b\n@data\n", "1,x:a\n", r":4: dimension 0: 'x' is not a number"),
        ("@problemName T\n@classLabel true a b\n@data\n", "1,2:3,4:a\n5,6:b\n", r":5: 1 dimensions"),
        ("@problemName T\n@classLabel true a b\n", "", r"no @data line"),
    ],
)
def test_malformed_ts_is_one_line_naming_the_line(tmp_path, header, body, match):
    path = write_ts(tmp_path / "X_TRAIN.ts", body, header=header)
    with pytest.raises(cls_data.DataError, match=match) as info:
        cls_data.read_ts(path)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, sys_errors().ProjectError)


def sys_errors():
    import sys

    return sys.modules["errors"]


def test_npz_with_nan_tails_and_with_lengths(tmp_path):
    X = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    X[1, :, 3:] = np.nan
    np.savez(tmp_path / "train.npz", X=X, y=np.array(["up", "down"]))
    np.savez(tmp_path / "test.npz", X=X, y=np.array(["up", "up"]), lengths=np.array([4, 2]))
    train, test = cls_data.load_split(tmp_path)
    assert train.lengths.tolist() == [5, 3] and test.lengths.tolist() == [4, 2]
    assert train.classes == ("down", "up") and train.y.tolist() == [1, 0]
    assert np.isnan(test.X[0, :, 4]).all() and not np.isnan(test.X[0, :, :4]).any()


def test_npz_with_pickled_labels_is_refused(tmp_path):
    np.savez(tmp_path / "train.npz", X=np.zeros((2, 1, 4)), y=np.array([{"a": 1}, 2], dtype=object))
    np.savez(tmp_path / "test.npz", X=np.zeros((2, 1, 4)), y=np.array([1, 2]))
    with pytest.raises(cls_data.DataError, match="train.npz"):
        cls_data.load_split(tmp_path)


def test_class_missing_from_training_is_an_error(tmp_path):
    write_ts(tmp_path / "X_TRAIN.ts", "1,2,3:a\n1,2,4:a\n")
    write_ts(tmp_path / "X_TEST.ts", "1,2,3:a\n1,2,4:b\n")
    with pytest.raises(cls_data.DataError, match="class 'b' has no training series"):
        cls_data.load_split(tmp_path)
    np.savez(tmp_path / "train.npz", X=np.zeros((2, 1, 3)), y=np.array([0, 0]))
    np.savez(tmp_path / "test.npz", X=np.zeros((2, 1, 3)), y=np.array([0, 1]))
    with pytest.raises(cls_data.DataError, match=r"class '1' does not occur in training"):
        cls_data.load_split(tmp_path)


def test_stratified_split_is_seeded_and_keeps_class_shares():
    y = np.array([0] * 30 + [1] * 10)
    tr, va = cls_data.stratified_split(y, 0.2, seed=0)
    assert np.bincount(y[va]).tolist() == [6, 2]
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 40
    assert np.array_equal(va, cls_data.stratified_split(y, 0.2, seed=0)[1])
    assert not np.array_equal(va, cls_data.stratified_split(y, 0.2, seed=1)[1])


def test_one_nn_baseline_matches_a_brute_force_count():
    train, test = cls_data.load_split(GUNPOINT)
    d = ((test.X[:, 0, None, :] - train.X[None, :, 0, :]) ** 2).sum(-1)
    expected = 100 * (train.y[d.argmin(1)] == test.y).mean()
    assert cls_data.one_nn_accuracy(train, test) == pytest.approx(expected)
    # the UCR archive's published 1-NN Euclidean error on GunPoint is 0.087 (91.3% accuracy)
    assert cls_data.one_nn_accuracy(train, test) == pytest.approx(91.33, abs=0.01)


# --- forecasting: reading ----------------------------------------------------------------------------------


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_bundled_co2_reads_monthly_with_seasonality_12():
    data = fc_data.read_csv(CO2)
    assert data.time_col == "month" and data.target_cols == ("co2",)
    assert data.frequency == "MS" and data.seasonality == 12
    assert len(data.series) == 1 and data.series[0].values.shape == (444, 1)


def test_several_series_integer_periods_and_default_target(tmp_path):
    frame = pd.DataFrame(
        {"year": list(range(2000, 2010)) * 2, "shop": ["a"] * 10 + ["b"] * 10, "note": "x", "sales": range(20)}
    )
    data = fc_data.read_csv(write_csv(tmp_path / "s.csv", frame), id_col="shop")
    assert data.time_col == "year" and data.target_cols == ("sales",) and data.frequency == "int:1"
    assert [s.id for s in data.series] == ["a", "b"] and data.seasonality == 1


@pytest.mark.parametrize(
    ("times", "match"),
    [
        (["2020-01-01", "2020-01-03", "2020-01-02", "2020-01-04"], r"line 4: time 2020-01-02 .* comes after"),
        (["2020-01-01", "2020-01-02", "2020-01-02", "2020-01-03"], r"time 2020-01-02 00:00:00 occurs more than once"),
        (["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-05", "2020-01-06"], r"1 missing times .*interpolate"),
    ],
)
def test_bad_time_index_is_one_line(tmp_path, times, match):
    frame = pd.DataFrame({"date": times, "y": np.arange(len(times), dtype=float)})
    with pytest.raises(fc_data.DataError, match=match) as info:
        fc_data.read_csv(write_csv(tmp_path / "s.csv", frame))
    assert "\n" not in str(info.value)


def test_gap_fill_policy_interpolates(tmp_path):
    frame = pd.DataFrame({"date": ["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-05"], "y": [1.0, 2, 3, 5]})
    data = fc_data.read_csv(write_csv(tmp_path / "s.csv", frame), fill="interpolate")
    assert data.frequency == "D"
    assert data.series[0].values[:, 0].tolist() == [1, 2, 3, 4, 5]


def test_given_frequency_is_checked(tmp_path):
    frame = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=6, freq="D").astype(str), "y": range(6)})
    path = write_csv(tmp_path / "s.csv", frame)
    assert fc_data.read_csv(path, frequency="D").frequency == "D"
    with pytest.raises(fc_data.DataError, match=r"frequency is 'D', not the given 'W'"):
        fc_data.read_csv(path, frequency="W")


@pytest.mark.parametrize(("freq", "m"), [("MS", 12), ("ME", 12), ("QS", 4), ("h", 24), ("D", 1), ("W-SUN", 1)])
def test_seasonality_from_frequency(freq, m):
    assert fc_data.seasonality(freq) == m


# --- forecasting: windows, metrics, baseline, forecast.csv -----------------------------------------------------


def test_windows_are_time_ordered_and_normalized_on_training_part_only():
    data = fc_data.read_csv(CO2)
    w = fc_data.make_windows(data, lookback=24, horizon=12, val_steps=60)
    end = int(w.train_end[0])
    assert end == 444 - 60
    # every training target lies before every validation target; validation targets cover the held-out part
    assert (w.train[:, 1] + 24 + 12 <= end).all()
    assert (w.val[:, 1] + 24 >= end).all() and w.val[-1, 1] + 24 + 12 == 444
    train_part = data.series[0].values[:end]
    assert w.mean[0] == pytest.approx(train_part.mean(0)) and w.std[0] == pytest.approx(train_part.std(0))
    x, y, s = fc_data.window_arrays(data, w, w.val[:1])
    assert x.shape == (1, 24, 1) and y.shape == (1, 12, 1) and s.tolist() == [0]


def test_horizon_longer_than_the_data_is_an_error():
    data = fc_data.read_csv(CO2)
    with pytest.raises(fc_data.DataError, match="needs at least"):
        fc_data.check_horizon(data, lookback=200, horizon=150)
    with pytest.raises(fc_data.DataError, match="training points before"):
        fc_data.make_windows(data, lookback=300, horizon=100)


def test_metrics_and_seasonal_naive_on_a_pure_seasonal_series():
    t = np.arange(120)
    frame = pd.DataFrame({"m": pd.date_range("2000-01-01", periods=120, freq="MS").astype(str),
                          "y": 10 + np.sin(2 * np.pi * t / 12)})  # fmt: skip
    data = fc_data.SeriesData(
        (fc_data.Series("s", pd.DatetimeIndex(frame["m"]), frame[["y"]].to_numpy(np.float32)),), "m", ("y",), None, "MS"
    )
    w = fc_data.make_windows(data, lookback=24, horizon=6, val_steps=24)
    _, y, s = fc_data.window_arrays(data, w, w.val)
    actual = fc_data.denormalize(y, w, s)
    naive = fc_data.seasonal_naive(data, w, w.val)
    # a series that repeats every 12 months is forecast exactly by the seasonal naive
    assert fc_data.mae(naive, actual) == pytest.approx(0, abs=1e-5)
    assert fc_data.mase(naive + 1, actual, w.scale[s]) == pytest.approx(1 / float(w.scale[0, 0]), rel=1e-5)
    assert fc_data.smape(np.array([[[2.0]]]), np.array([[[1.0]]])) == pytest.approx(200 / 3)


def test_forecast_csv_continues_the_timestamps_per_series(tmp_path):
    frame = pd.DataFrame({"week": list(pd.date_range("2024-01-07", periods=8, freq="W-SUN").astype(str)) * 2,
                          "id": ["a"] * 8 + ["b"] * 8, "y": np.arange(16.0)})  # fmt: skip
    data = fc_data.read_csv(write_csv(tmp_path / "s.csv", frame), id_col="id")
    path = fc_data.write_forecast(tmp_path / "out", data, np.ones((2, 3, 1)))
    out = pd.read_csv(path)
    assert list(out.columns) == ["id", "week", "y"] and len(out) == 6
    assert out["week"].iloc[:3].tolist() == ["2024-03-03", "2024-03-10", "2024-03-17"]
    years = fc_data.future_times(pd.Index([1999, 2000]), "int:1", 2)
    assert years.tolist() == [2001, 2002]
