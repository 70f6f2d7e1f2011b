"""Short CPU runs on the bundled demos: a small model must clearly beat the baseline a user would try first
(GunPoint: the 1-NN Euclidean classifier on the same split; Mauna Loa CO2: the seasonal-naive forecast on the same
validation windows). The runs to a stated target and their seconds are in bench/ts_time_to_target.py."""

from __future__ import annotations

import pytest
import torch
from ts_support import task_dir, task_module

from archadvisor.resources import load_model_module


@pytest.mark.slow
def test_fcn_beats_one_nn_on_gunpoint():
    data = task_module("time-series-classification", "data")
    train, test = data.load_split(task_dir("time-series-classification") / "demo" / "GunPoint")
    train_index, _ = data.stratified_split(train.y, 0.2, seed=0)
    fit = train.subset(train_index)
    baseline = data.one_nn_accuracy(fit, test)
    mean, std = data.channel_stats(fit)
    X = torch.from_numpy((fit.X - mean[:, None]) / std[:, None])
    y = torch.from_numpy(fit.y)
    torch.manual_seed(0)
    model = load_model_module("conv1d_baselines").build_model("fcn", len(train.classes), 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    for _ in range(60):  # 60 epochs of 5 batches of 8: 300 steps
        model.train()
        for idx in torch.randperm(len(y)).split(8):
            loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy((test.X - mean[:, None]) / std[:, None]))
    accuracy = 100 * (logits.argmax(1).numpy() == test.y).mean()
    assert accuracy >= baseline + 5, f"FCN {accuracy:.1f}% vs 1-NN {baseline:.1f}%"


def test_nlinear_beats_seasonal_naive_on_co2():
    fc = task_module("time-series", "data")
    data = fc.read_csv(task_dir("time-series") / "demo" / "co2_monthly.csv")
    w = fc.make_windows(data, lookback=36, horizon=12, val_steps=60)
    x_train, y_train, _ = fc.window_arrays(data, w, w.train)
    x_val, y_val, series = fc.window_arrays(data, w, w.val)
    actual = fc.denormalize(y_val, w, series)
    baseline = fc.mase(fc.seasonal_naive(data, w, w.val), actual, w.scale[series])
    torch.manual_seed(0)
    model = load_model_module("dlinear").build_model("nlinear", lookback=36, horizon=12)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    X, Y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _ in range(100):
        idx = torch.randint(0, len(X), (32,))
        loss = torch.nn.functional.l1_loss(model(X[idx]), Y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        forecast = fc.denormalize(model(torch.from_numpy(x_val)).numpy(), w, series)
    score = fc.mase(forecast, actual, w.scale[series])
    assert score < 0.7 * baseline, f"NLinear MASE {score:.3f} vs seasonal naive {baseline:.3f}"
