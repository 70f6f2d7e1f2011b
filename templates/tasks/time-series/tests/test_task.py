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


def two_series_csv(tiny_data: Path, path: Path) -> Path:
    """The tiny CO2 months as two stations with two target columns each, a time column named ``when``, and an
    extra column no flag names (left out of the model)."""
    co2 = pd.read_csv(tiny_data)
    frames = [pd.DataFrame({"station": name, "when": co2.iloc[:, 0], "co2": co2.iloc[:, 1] + shift,
                            "co2_detrended": co2.iloc[:, 1].diff().fillna(0.0), "note": 1.0})
              for name, shift in (("north", 0.0), ("south", -3.0))]  # fmt: skip
    pd.concat(frames).to_csv(path, index=False)
    return path


def test_column_flags_override_the_config_and_reach_the_model(tiny_data: Path, tmp_path: Path) -> None:
    """--time-col, --id-col and a repeated --target-col set data.time_col / id_col / target_cols: the run trains
    on both stations' two targets, and the checkpoint keeps what predict.py needs to read the same columns."""
    csv = two_series_csv(tiny_data, tmp_path / "stations.csv")
    flags = ["--time-col", "when", "--id-col", "station", "--target-col", "co2", "--target-col", "co2_detrended"]
    cfg = train.load_config(train.parse_args(tiny_args(csv, tmp_path / "run", *flags)))
    assert (cfg["data"]["time_col"], cfg["data"]["id_col"]) == ("when", "station")
    assert cfg["data"]["target_cols"] == ["co2", "co2_detrended"]
    train.main(tiny_args(csv, tmp_path / "run", *flags))
    meta = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["meta"]
    assert meta["target_cols"] == ["co2", "co2_detrended"] and meta["channels"] == 2
    assert meta["series"] == ["north", "south"] and meta["time_col"] == "when"
    forecast = pd.read_csv(predict.main([str(csv), "--out", str(tmp_path / "p"),
                                         "--checkpoint", str(tmp_path / "run" / "best.pt")]))  # fmt: skip
    assert {"co2", "co2_detrended"} <= set(forecast.columns) and len(forecast) == 2 * meta["horizon"]


def test_a_column_flag_naming_no_column_is_one_line(tiny_data: Path, tmp_path: Path) -> None:
    """train.py exits 2 with one line naming the column, the flag, a close match and the columns; the checks
    of the other two flags, in this process."""
    csv = two_series_csv(tiny_data, tmp_path / "stations.csv")
    result = subprocess.run([sys.executable, "train.py", "--data", str(csv), "--out", str(tmp_path / "o"),
                             "--time-col", "when", "--id-col", "station", "--target-col", "co3"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "no target column 'co3' (--target-col, data.target_cols; did you mean 'co2'?)" in lines[0]
    assert "the columns are station, when, co2, co2_detrended, note" in lines[0]
    assert not (tmp_path / "o" / "last.pt").exists()
    with pytest.raises(data.DataError, match=r"no time column 'whenn' \(--time-col, data.time_col; did you mean"):
        data.read_csv(csv, time_col="whenn", id_col="station")
    with pytest.raises(data.DataError, match=r"no id column 'stations' \(--id-col, data.id_col; did you mean"):
        data.read_csv(csv, time_col="when", id_col="stations")
    with pytest.raises(data.DataError, match=r"'when' is the time column; it cannot also be a target"):
        data.read_csv(csv, time_col="when", id_col="station", target_cols=["when"])


def test_covariates_are_extra_input_channels(tiny_data: Path, tmp_path: Path) -> None:
    """data.covariate_cols: the RNN forecasters read the covariate over the lookback (another value changes the
    forecast) and forecast the targets only; DLinear and PatchTST refuse them in one line."""
    from checkpoint import load_model
    from errors import ProjectError

    csv = two_series_csv(tiny_data, tmp_path / "stations.csv")
    args = tiny_args(csv, tmp_path / "run", "--time-col", "when", "--id-col", "station", "--target-col", "co2",
                     "--set", "data.covariate_cols=[co2_detrended]")  # fmt: skip
    if not task.takes_covariates():
        with pytest.raises(ProjectError, match=r"takes no covariates"):
            train.main(args)
        return
    train.main(args)
    model, ckpt = load_model(tmp_path / "run" / "best.pt")
    meta = ckpt["meta"]
    assert meta["covariate_cols"] == ["co2_detrended"] and meta["covariates"] == 1 and meta["channels"] == 1
    x = task.export_example(meta, 2, seed=0)
    assert x.shape == (2, meta["lookback"], 2)
    moved = x.clone()
    moved[..., 1] *= -1.0  # another covariate path (a constant shift would vanish in the last-value subtraction)
    with torch.no_grad():
        assert model(x).shape == (2, meta["horizon"], 1)
        assert not torch.allclose(model(x), model(moved)), "the covariate channel is read"
    forecast = pd.read_csv(predict.main([str(csv), "--out", str(tmp_path / "p"),
                                         "--checkpoint", str(tmp_path / "run" / "best.pt")]))  # fmt: skip
    assert "co2" in forecast.columns and "co2_detrended" not in forecast.columns
    assert len(forecast) == 2 * meta["horizon"]


def with_month_column(csv: Path) -> Path:
    """The stations' CSV with a known covariate: the calendar month, known over any horizon."""
    frame = pd.read_csv(csv)
    frame["month"] = pd.to_datetime(frame["when"]).dt.month.astype(float)
    frame.to_csv(csv, index=False)
    return csv


def future_months(csv: Path, path: Path, horizon: int, drop_last: bool = False) -> Path:
    """--future's file: each station's next ``horizon`` months and their month number."""
    frame = pd.read_csv(csv)
    rows = []
    for station, part in frame.groupby("station", sort=False):
        times = pd.date_range(part["when"].iloc[-1], periods=horizon + 1, freq="MS")[1:]
        rows += [{"station": station, "when": t.strftime("%Y-%m-%d"), "month": float(t.month)} for t in times]
    pd.DataFrame(rows[:-1] if drop_last else rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def known_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """One tiny run with data.known_cols=[month] (the stations' CSV); the train.py flags it used."""
    root = tmp_path_factory.mktemp("known")
    csv = with_month_column(two_series_csv(tiny_data, root / "stations.csv"))
    flags = tiny_args(csv, root / "run", "--time-col", "when", "--id-col", "station", "--target-col", "co2",
                      "--set", "data.known_cols=[month]")  # fmt: skip
    if task.takes_known():
        train.main(flags)
    return root, flags


def test_known_covariates_are_read_over_the_horizon(known_run: tuple[Path, list[str]]) -> None:
    """data.known_cols: the RNN forecasters read the known column over the lookback and the horizon (its future
    values change the forecast, the zeros in the other channels' horizon steps do not); DLinear and PatchTST
    refuse them in one line."""
    from checkpoint import load_model
    from errors import ProjectError

    root, flags = known_run
    if not task.takes_known():
        with pytest.raises(ProjectError, match=r"data.known_cols \['month'\]: .* takes no covariates"):
            train.main(flags)
        return
    model, ckpt = load_model(root / "run" / "best.pt")
    meta = ckpt["meta"]
    assert meta["known_cols"] == ["month"] and meta["known"] == 1 and meta["covariates"] == 0
    x = task.export_example(meta, 2, seed=0)
    assert x.shape == (2, meta["lookback"] + meta["horizon"], 2)
    future = x.clone()
    future[:, -meta["horizon"] :, 1] += 1.0  # other known values over the horizon
    target_slot = x.clone()
    target_slot[:, -meta["horizon"] :, 0] += 1.0  # the target channel's horizon steps are not inputs
    with torch.no_grad():
        assert model(x).shape == (2, meta["horizon"], 1)
        assert not torch.allclose(model(x), model(future)), "the known horizon values are read"
        assert torch.equal(model(x), model(target_slot)), "the target's horizon steps must not be read"
    # the training windows run on over the horizon with the month there and zeros in the target channel
    cfg = train.load_config(train.parse_args(flags))
    loaded = task.build_data(cfg, 0, rank=0, world_size=1, pin_memory=False)
    inputs, _, _ = data.window_arrays(loaded.series, loaded.windows, loaded.windows.train[:3])
    assert inputs.shape[1:] == (meta["lookback"] + meta["horizon"], 2)
    assert not inputs[:, meta["lookback"] :, 0].any() and inputs[:, meta["lookback"] :, 1].std() > 0


def test_predict_with_future_known_values(known_run: tuple[Path, list[str]], tmp_path: Path) -> None:
    """predict.py --future FILE.csv: the next horizon steps' known values per series; forecast.csv continues each
    station, other future values give another forecast, and the ONNX export forecasts the same."""
    root, _ = known_run
    if not task.takes_known():
        pytest.skip("this project's model takes no known covariates (the refusal is tested above)")
    meta = torch.load(root / "run" / "best.pt", weights_only=True)["meta"]
    csv = root / "stations.csv"
    future = future_months(csv, tmp_path / "next.csv", meta["horizon"])
    args = [str(csv), "--checkpoint", str(root / "run" / "best.pt"), "--future"]
    forecast = pd.read_csv(predict.main([*args, str(future), "--out", str(tmp_path / "p")]))
    assert list(forecast.columns) == ["station", "when", "co2"] and len(forecast) == 2 * meta["horizon"]
    assert list(forecast["when"][: meta["horizon"]]) == list(pd.read_csv(future)["when"][: meta["horizon"]])
    other = pd.read_csv(future).assign(month=lambda f: 13.0 - f["month"])
    other.to_csv(tmp_path / "other.csv", index=False)
    moved = pd.read_csv(predict.main([*args, str(tmp_path / "other.csv"), "--out", str(tmp_path / "q")]))
    assert not np.allclose(forecast["co2"], moved["co2"]), "--future's values reach the model"
    # the exported graph takes the same one tensor (lookback + horizon steps): predict.py --onnx agrees
    pytest.importorskip("onnxruntime")
    import export

    export.main([str(root / "run" / "best.pt"), "--out", str(tmp_path / "export")])
    onnx = predict.main([*args, str(future), "--out", str(tmp_path / "o"), "--onnx", str(tmp_path / "export" /
                                                                                          "model.onnx")])  # fmt: skip
    assert pd.read_csv(onnx)["co2"].to_numpy() == pytest.approx(forecast["co2"].to_numpy(), rel=1e-4)


def test_predict_without_or_with_a_wrong_future_is_one_line(known_run: tuple[Path, list[str]],
                                                            tmp_path: Path) -> None:  # fmt: skip
    """A model trained with known_cols: predict.py without --future, or with a row missing, exits 2 with one line
    and writes nothing."""
    root, _ = known_run
    if not task.takes_known():
        pytest.skip("this project's model takes no known covariates (the refusal is tested above)")
    meta = torch.load(root / "run" / "best.pt", weights_only=True)["meta"]
    csv = root / "stations.csv"
    short = future_months(csv, tmp_path / "short.csv", meta["horizon"], drop_last=True)
    base = [sys.executable, "predict.py", str(csv), "--checkpoint", str(root / "run" / "best.pt")]
    gap = f"series 'south' needs one row for each of its next {meta['horizon']} times"
    for extra, expected in (([], "pass --future FILE.csv with the columns when, station, month"),
                            (["--future", str(short)], gap)):  # fmt: skip
        out = tmp_path / f"out{len(extra)}"
        result = subprocess.run([*base, *extra, "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                                timeout=120, check=False)  # fmt: skip
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr
        assert not out.exists()


def test_augmentation_is_drawn_per_epoch_and_replays(tiny_data: Path) -> None:
    """augmentation.ops (jitter 0.05, then scaling 0.2): the training loader's windows carry N(0, 0.05) noise on
    the inputs and one 1 + N(0, 0.2) factor per window on input and target, drawn per (run seed, epoch): a fresh
    build (what --resume does) yields the same batches for an epoch, another epoch other ones; validation is
    untouched."""
    cfg = train.load_config(train.parse_args(tiny_args(tiny_data, Path("unused"))))
    cfg["augmentation"] = {"ops": [{"name": "jitter", "sigma": 0.05}, {"name": "scaling", "sigma": 0.2}]}
    assert task.train_batch_transform(cfg, {}) is None  # nothing left to do between the steps

    def epoch_batches(epoch: int) -> list[list[torch.Tensor]]:
        torch.manual_seed(epoch + 100)  # the training RNG's state must not matter
        loaded = task.build_data(cfg, 0, rank=0, world_size=1, pin_memory=False)
        loaded.train_sampler.set_epoch(epoch)
        return list(loaded.train_loader)

    first, again, other = epoch_batches(3), epoch_batches(3), epoch_batches(4)
    assert all(torch.equal(a, b) for x, y in zip(first, again, strict=True) for a, b in zip(x, y, strict=True))
    assert not torch.equal(first[0][0], other[0][0])
    dataset = task.build_data(cfg, 0, rank=0, world_size=1, pin_memory=False).train_loader.dataset
    dataset.draw(7)
    factor = dataset.aug_y / dataset.y  # the scaling factor, one per window (the targets are not jittered)
    assert torch.allclose(factor, factor[:, :1, :].expand_as(factor), rtol=1e-4, atol=1e-4)
    assert factor[:, 0, 0].mean().item() == pytest.approx(1.0, abs=0.05)
    assert factor[:, 0, 0].std().item() == pytest.approx(0.2, rel=0.2)
    jitter = dataset.aug_x / factor[:, :1, :] - dataset.x
    assert jitter.std().item() == pytest.approx(0.05, rel=0.1) and abs(jitter.mean().item()) < 0.01
    from errors import ProjectError

    with pytest.raises(ProjectError, match=r"augmentation.ops \['cutout'\]: supported are jitter, scaling"):
        task.build_data({**cfg, "augmentation": {"ops": [{"name": "cutout", "sigma": 1}]}}, 0, rank=0, world_size=1,
                        pin_memory=False)  # fmt: skip
