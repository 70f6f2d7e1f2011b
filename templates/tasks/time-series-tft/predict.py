"""Forecast the next horizon steps after the last row of every series, with quantiles, into DIR/forecast.csv.

    python predict.py demo/co2_monthly.csv --out runs/predict
    python predict.py sales.csv --out runs/predict --checkpoint runs/train/best.ckpt

The CSV has the training data's columns. Each series' forecast starts after its last row with a target value and
reads the last ``lookback`` steps before it; the model was trained on these series (their normalization is the
training part's), so a series it has not seen is an error. Known covariates you configured (data.known_reals,
data.known_categoricals) must be given for the steps to forecast: rows after the last target value, with the
target left empty. forecast.csv: the id column (if any), the time column continued at the data's frequency, the
target (the median forecast) and one column per quantile (``<target>_q10`` = the 10 % quantile).

The checkpoint is read with pytorch-forecasting's ``load_from_checkpoint``, which unpickles it (torch.load with
weights_only=False): only load checkpoints you trained or trust.
"""

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import series
from config import HERE, ProjectError, run_main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("csv", type=Path, help="the history of one or more series, in the training data's columns")
    p.add_argument("--out", type=Path, required=True, help="folder for forecast.csv")
    p.add_argument("--checkpoint", type=Path, default=HERE / "runs" / "train" / "best.ckpt")
    return p.parse_args(argv)


def read_meta(checkpoint: Path) -> dict[str, Any]:
    """meta.json beside the checkpoint: what train.py read from the data (columns, frequency, windows)."""
    path = checkpoint.parent / "meta.json"
    if not checkpoint.is_file():
        raise ProjectError(f"no checkpoint {checkpoint}: train first (python train.py) or pass --checkpoint")
    if not path.is_file():
        raise ProjectError(f"{path} is missing: pass a checkpoint from a run folder train.py wrote")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ProjectError(f"cannot read {path}: {e}") from None


def prediction_frame(table: series.Table, meta: dict[str, Any], known_series: list[str]) -> pd.DataFrame:
    """The last ``lookback`` observed steps of every series and the ``horizon`` steps to forecast after them."""
    horizon, lookback, target = meta["horizon"], meta["lookback"], meta["target"]
    user_known = [*meta["data"]["known_reals"], *meta["data"]["known_categoricals"]]
    parts = []
    for sid, rows in table.frame.groupby("series", sort=False):
        if sid not in known_series:
            raise series.DataError(
                f"series {sid!r} was not in the training data; the model knows "
                f"{', '.join(known_series[:5])}{' ...' if len(known_series) > 5 else ''}"
            )
        observed = rows[rows[target].notna()]
        if len(observed) < lookback:
            raise series.DataError(
                f"series {sid!r} has {len(observed)} observed steps; the model reads the last {lookback}"
            )
        history = observed.iloc[-lookback:]
        last = history.iloc[-1]
        future = rows[rows["time_idx"] > last["time_idx"]].iloc[:horizon]
        if user_known and len(future) < horizon:
            raise series.DataError(
                f"series {sid!r}: {len(future)} rows after its last target value; the known "
                f"covariates {user_known} are needed for the {horizon} steps to forecast"
            )
        if not user_known:  # the steps to forecast: their time, position in the season and the static columns
            times = series.future_times(last[table.time_col], table.frequency, horizon)
            future = pd.DataFrame([last] * horizon).reset_index(drop=True)
            future[table.time_col] = times
            future["time_idx"] = last["time_idx"] + np.arange(1, horizon + 1)
            future["season"] = (future["time_idx"] % table.seasonality).astype(str)
            future = future.astype(history.dtypes.to_dict())  # rows built from a row: back to the columns' types
        future = future.assign(**{target: float(last[target])})  # a placeholder: the decoder does not read it
        parts += [history, future]
    return pd.concat(parts, ignore_index=True)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    meta = read_meta(args.checkpoint)
    d = {
        "time_col": meta["time_col"],
        "target_cols": [meta["target"]],
        "id_col": meta["id_col"],
        "frequency": meta["frequency"],
        **meta["data"],
    }
    start: Any = int(meta["start"]) if meta["integer_times"] else pd.Timestamp(meta["start"])
    table = series.read_csv(args.csv, d, frequency=meta["frequency"], start=start, future_ok=True)

    from pytorch_forecasting import TemporalFusionTransformer

    model = TemporalFusionTransformer.load_from_checkpoint(args.checkpoint, map_location="cpu")
    known = [str(s) for s in model.dataset_parameters["categorical_encoders"]["series"].classes_]
    frame = prediction_frame(table, meta, known)
    pred = model.predict(
        frame,
        mode="quantiles",
        return_index=True,
        trainer_kwargs={"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False},
    )
    quantiles = pred.output.cpu().numpy()  # S x H x Q
    target, rows = meta["target"], []
    when = frame.set_index(["series", "time_idx"])[table.time_col]  # the times of the steps to forecast
    for (sid, origin), values in zip(
        pred.index[["series", "time_idx"]].itertuples(index=False), quantiles, strict=True
    ):
        steps = [(sid, int(origin) + h) for h in range(meta["horizon"])]
        part = pd.DataFrame({table.time_col: when.loc[steps].to_numpy()})
        if meta["id_col"]:
            part.insert(0, meta["id_col"], sid)
        part[target] = values[:, meta["quantiles"].index(0.5)]
        for i, q in enumerate(meta["quantiles"]):
            part[f"{target}_q{round(100 * q):02d}"] = values[:, i]
        rows.append(part)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "forecast.csv"
    pd.concat(rows, ignore_index=True).to_csv(path, index=False, float_format="%.6g")
    print(f"{len(rows)} series x {meta['horizon']} steps -> {path}")
    return path


if __name__ == "__main__":
    run_main(main)
