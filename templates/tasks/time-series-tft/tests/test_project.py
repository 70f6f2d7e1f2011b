"""The project's own tests: a short run writes what it promises, predict continues the series with quantiles,
--resume continues from last.ckpt, and bad input is one line with exit status 2. No network."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, TINY

import config
import series
import train

SUMMARY_KEYS = ("best_val_mase", "val_smape", "val_mae", "baseline_val_mase", "baseline_val_smape")


def test_a_short_run_writes_checkpoints_metrics_and_the_summary(run: Path) -> None:
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    for key in SUMMARY_KEYS:
        assert np.isfinite(summary[key]) and summary[key] >= 0, key
    assert summary["baseline_val_mase"] > 0 and summary["val_windows"] > 0
    assert summary["epochs_run"] == 1
    assert (run / "best.ckpt").is_file() and (run / "last.ckpt").is_file()
    metrics = pd.read_csv(run / "metrics.csv")
    assert "val_loss" in metrics.columns and metrics["val_loss"].notna().sum() == 1


def test_the_baseline_is_seasonal_naive_on_the_validation_windows(tiny_data: Path, run: Path) -> None:
    """baseline_val_mae recomputed by hand: each window's forecast repeats the values one year before it."""
    cfg = config.load_config(sets=[f"data.root={json.dumps(str(tiny_data))}", *TINY[3::2]])
    table = series.read_csv(tiny_data, cfg["data"])
    cut = train.split(cfg, table)
    values = table.frame["co2"].to_numpy()
    errors = []
    for origin in range(cut["cutoff"], len(values) - cut["horizon"] + 1):
        naive = values[origin - 12 : origin - 12 + cut["horizon"]]
        errors.append(np.abs(naive - values[origin : origin + cut["horizon"]]))
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["val_windows"] == len(errors)
    assert summary["baseline_val_mae"] == pytest.approx(float(np.mean(errors)), rel=1e-6)


def test_predict_continues_each_series_with_quantiles(run: Path, tiny_data: Path, tmp_path: Path) -> None:
    import predict

    path = predict.main([str(tiny_data), "--out", str(tmp_path), "--checkpoint", str(run / "best.ckpt")])
    meta = json.loads((run / "meta.json").read_text(encoding="utf-8"))
    forecast, history = pd.read_csv(path), pd.read_csv(tiny_data)
    quantile_cols = [f"co2_q{round(100 * q):02d}" for q in meta["quantiles"]]
    assert path.name == "forecast.csv" and list(forecast.columns) == ["month", "co2", *quantile_cols]
    assert len(forecast) == meta["horizon"]
    expected = pd.date_range(history.iloc[-1, 0], periods=meta["horizon"] + 1, freq="MS")[1:]
    assert list(pd.to_datetime(forecast["month"])) == list(expected)
    assert forecast["co2"].to_numpy() == pytest.approx(forecast["co2_q50"].to_numpy())
    assert np.isfinite(forecast[quantile_cols].to_numpy()).all()


def test_resume_continues_from_last_ckpt(run: Path, tiny_data: Path, tmp_path: Path) -> None:
    """Lightning's resume: the second epoch starts from last.ckpt (weights, optimizer, epoch counter)."""
    import torch

    out = tmp_path / "resumed"
    shutil.copytree(run, out)
    # a checkpoint this test wrote itself: pytorch-forecasting's hyperparameters are objects, not tensors
    before = torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)
    summary = train.main(["--data", str(tiny_data), "--out", str(out), *TINY[2:], "--epochs", "2", "--resume"])
    after = torch.load(out / "last.ckpt", map_location="cpu", weights_only=False)
    assert (before["epoch"], after["epoch"]) == (0, 1) and summary["epochs_run"] == 2
    assert after["global_step"] == 2 * before["global_step"]
    metrics = pd.read_csv(out / "metrics.csv")
    assert sorted(metrics.loc[metrics["val_loss"].notna(), "epoch"]) == [0, 1]


def script(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    cfg["model"]["hiden_size"] = 8
    bad = tmp_path / "config.yaml"
    bad.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    for args, needle in [
        (["train.py", "--config", str(bad)], "unknown key model.hiden_size"),
        (["train.py", "--set", "training.lr=fast"], "training.lr must be a number"),
        (["train.py", "--set", "model.quantiles=[0.1, 0.9]"], "model.quantiles must be"),
    ]:
        result = script(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and needle in lines[0], result.stderr


def test_data_errors_are_one_line(tiny_data: Path, tmp_path: Path) -> None:
    rows = tiny_data.read_text(encoding="utf-8").splitlines()
    unsorted = tmp_path / "unsorted.csv"
    unsorted.write_text("\n".join([rows[0], rows[2], rows[1], *rows[3:]]) + "\n", encoding="utf-8")
    gap = tmp_path / "gap.csv"
    gap.write_text("\n".join([*rows[:50], *rows[51:]]) + "\n", encoding="utf-8")
    for args, needle in [
        (["train.py", "--data", str(unsorted)], "sort by time"),
        (["train.py", "--data", str(gap)], "1 missing times"),
        (["train.py", "--data", str(tiny_data), "--set", "data.horizon=150"], "horizon 150"),
        (["train.py", "--data", str(tmp_path / "none.csv")], "no such file"),
        (
            ["predict.py", str(tiny_data), "--out", str(tmp_path), "--checkpoint", str(tmp_path / "x.ckpt")],
            "train first",
        ),
    ]:
        result = script(*args)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and needle in lines[0], (args, result.stderr)


def test_several_series_share_one_time_grid_with_covariates(tmp_path: Path) -> None:
    """An id column, a known covariate and an observed one; time_idx counts steps from the earliest time."""
    months = pd.date_range("2000-01-01", periods=40, freq="MS")
    a = pd.DataFrame({"store": "a", "month": months, "promo": 0.0, "visits": 1.0, "units": np.arange(40.0)})
    b = pd.DataFrame({"store": "b", "month": months[5:], "promo": 1.0, "visits": 2.0, "units": np.arange(35.0)})
    path = tmp_path / "stores.csv"
    pd.concat([a, b]).to_csv(path, index=False)
    d = {**config.load_config()["data"], "id_col": "store", "known_reals": ["promo"], "observed_reals": ["visits"]}
    table = series.read_csv(path, d)
    assert table.target == "units" and table.frequency == "MS" and table.seasonality == 12
    b_rows = table.frame[table.frame["series"] == "b"]
    assert b_rows["time_idx"].iloc[0] == 5 and b_rows["season"].iloc[0] == "5"
    with pytest.raises(series.DataError, match="no column 'price'"):
        series.read_csv(path, {**d, "known_reals": ["price"]})


def test_several_series_with_an_observed_covariate_train_and_forecast(tmp_path: Path) -> None:
    import predict

    months = pd.date_range("2000-01-01", periods=90, freq="MS")
    rng = np.random.default_rng(0)
    frames = []
    for level, (store, start) in enumerate([("a", 0), ("b", 10)]):
        t = np.arange(len(months) - start)
        season = np.sin(2 * np.pi * (t + start) / 12)
        frames.append(
            pd.DataFrame(
                {
                    "store": store,
                    "month": months[start:].strftime("%Y-%m-%d"),
                    "visits": rng.normal(size=len(t)),
                    "units": 10 * (level + 1) + season,
                }
            )
        )
    path = tmp_path / "stores.csv"
    pd.concat(frames).to_csv(path, index=False)
    out = tmp_path / "run"
    summary = train.main(
        [
            "--data",
            str(path),
            "--out",
            str(out),
            *TINY,
            "--set",
            "data.id_col=store",
            "--set",
            "data.observed_reals=[visits]",
        ]
    )
    assert all(np.isfinite(summary[key]) for key in SUMMARY_KEYS)
    forecast = pd.read_csv(
        predict.main([str(path), "--out", str(tmp_path / "p"), "--checkpoint", str(out / "best.ckpt")])
    )
    assert list(forecast.columns[:3]) == ["store", "month", "units"]
    assert forecast.groupby("store").size().to_dict() == {"a": 6, "b": 6}
    # both series end in June 2007: the next 6 months
    expected = [d.strftime("%Y-%m-%d") for d in pd.date_range("2007-07-01", periods=6, freq="MS")]
    for _, rows in forecast.groupby("store"):
        assert rows["month"].tolist() == expected
