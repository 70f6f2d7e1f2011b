"""Tests of the forecasting part: summary.json's validation scores beside seasonal naive, Metrics in the data's
units, forecast.csv continuing each series, and one-line data errors."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import data
import predict
import task
import train

ROOT = Path(__file__).resolve().parents[1]


def tiny_args(csv: Path, out: Path, *extra: str) -> list[str]:
    return ["--data", str(csv), "--out", str(out), "--workers", "0", "--epochs", "1", "--no-pretrained",
            "--set", "data.batch_size=8", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train.main(tiny_args(tiny_data, out))
    return out


def test_summary_has_validation_scores_and_the_seasonal_naive_baseline(run: Path) -> None:
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    for key in ("best_val_mase", "val_smape", "val_mae", "baseline_val_mase", "baseline_val_smape"):
        assert np.isfinite(summary[key]) and summary[key] >= 0, key
    assert summary["baseline_val_mase"] > 0


def test_metrics_undo_the_normalization(tiny_data: Path) -> None:
    """Metrics over normalized windows equal data.mase / smape / mae of the same forecasts in the data's units."""
    cfg = train.load_config(train.parse_args(tiny_args(tiny_data, Path("unused"))))
    loaded = task.build_data(cfg, 0, rank=0, world_size=1, pin_memory=False)
    meta = task.data_meta(cfg, loaded, log=lambda *a, **k: None)
    s, w = loaded.series, loaded.windows
    _, y, series = data.window_arrays(s, w, w.val)
    guess = y + 0.1 * np.random.default_rng(0).standard_normal(y.shape).astype(np.float32)
    metrics = task.Metrics(meta, torch.device("cpu"))
    metrics.update(torch.from_numpy(guess), (torch.from_numpy(y), torch.from_numpy(series)))
    got = metrics.compute()
    forecast, actual = data.denormalize(guess, w, series), data.denormalize(y, w, series)
    assert got["val_mase"] == pytest.approx(data.mase(forecast, actual, w.scale[series]), rel=1e-4)
    assert got["val_smape"] == pytest.approx(data.smape(forecast, actual), rel=1e-4)
    assert got["val_mae"] == pytest.approx(data.mae(forecast, actual), rel=1e-4)


def test_forecast_csv_continues_each_series(run: Path, tiny_data: Path, tmp_path: Path) -> None:
    path = predict.main([str(tiny_data), "--out", str(tmp_path), "--checkpoint", str(run / "best.pt")])
    meta = torch.load(run / "best.pt", weights_only=True)["meta"]
    forecast = pd.read_csv(path)
    history = pd.read_csv(tiny_data)
    assert path.name == "forecast.csv" and list(forecast.columns) == list(history.columns)
    assert len(forecast) == meta["horizon"]
    expected = pd.date_range(history.iloc[-1, 0], periods=meta["horizon"] + 1, freq=meta["frequency"])[1:]
    assert list(pd.to_datetime(forecast.iloc[:, 0])) == list(expected)
    # in the data's units: near the last observed level, not near 0
    assert abs(forecast.iloc[0, 1] - history.iloc[-1, 1]) < 10


def test_data_errors_are_one_line(tiny_data: Path, tmp_path: Path) -> None:
    rows = tiny_data.read_text(encoding="utf-8").splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([rows[0], rows[2], rows[1], *rows[3:]]) + "\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "train.py", "--data", str(bad), "--out", str(tmp_path / "o")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "sort by time" in lines[0], result.stderr
    result = subprocess.run([sys.executable, "train.py", "--data", str(tiny_data), "--out", str(tmp_path / "o"),
                             "--set", "data.horizon=150"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            check=False)  # fmt: skip
    assert result.returncode == 2 and "horizon 150" in result.stderr.strip().splitlines()[0], result.stderr
