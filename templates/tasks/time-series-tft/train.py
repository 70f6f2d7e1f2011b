"""Train the Temporal Fusion Transformer (Lim et al. 2021, arXiv:1912.09363) on a CSV with pytorch-forecasting.

    python train.py                       # config.yaml as generated (the bundled Mauna Loa CO2 demo)
    python train.py --data sales.csv --set data.id_col=store --set data.horizon=28
    python train.py --resume              # continue runs/train from its last.ckpt (Lightning's resume)

Lightning's Trainer runs the loop: checkpoints (best.ckpt by val_loss, last.ckpt every epoch), early stopping on
val_loss, gradient clipping, --resume through ``ckpt_path`` and DDP (trainer.strategy: ddp). The validation
windows are the last data.val_steps steps of the time grid (their encoders may reach back into the training
part); each window's target is normalized with its own encoder's statistics (past values only). At the end the
best checkpoint's median forecast is scored on the validation windows beside the seasonal-naive forecast of the
same windows, into summary.json.
"""

import argparse
import json
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import series
from config import HERE, ProjectError, load_config, run_main

DEMO = HERE / "demo" / "co2_monthly.csv"
RUN_FILES = ("best.ckpt", "last.ckpt", "meta.json", "summary.json", "metrics.csv", "hparams.yaml")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--data", help="the CSV to train on (overrides data.root)")
    p.add_argument("--out", help="the run folder (overrides run.out)")
    p.add_argument("--epochs", type=int, help="overrides training.epochs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one config value")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.ckpt")
    p.add_argument("--overwrite", action="store_true", help="start over in a run folder that holds a run")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    sets = list(args.set)
    if args.data is not None:
        sets.append(f"data.root={json.dumps(args.data)}")
    if args.out is not None:
        sets.append(f"run.out={json.dumps(args.out)}")
    if args.epochs is not None:
        sets.append(f"training.epochs={args.epochs}")
    return load_config(args.config, sets)


def resolve_root(root: str | None) -> Path:
    """``data.root``: a CSV file, or a folder with exactly one; ``None`` means the bundled demo."""
    if root is None:
        return DEMO
    path = Path(root).expanduser()
    if path.is_dir():
        found = sorted(path.glob("*.csv"))
        if len(found) != 1:
            raise series.DataError(f"{path}: expected one .csv file, found {len(found)}: pass the file itself")
        return found[0]
    if not path.is_file():
        raise series.DataError(f"data.root {root!r}: no such file or folder")
    return path


def split(cfg: dict[str, Any], table: series.Table) -> dict[str, int]:
    """Horizon, lookback and the validation cutoff (the first time_idx whose targets are validation)."""
    d = cfg["data"]
    horizon = d["horizon"] or series.default_horizon(table.frequency)
    lookback = d["lookback"] or 4 * horizon
    lengths = table.frame.groupby("series")["time_idx"].agg(["min", "max"])
    shortest = int((lengths["max"] - lengths["min"]).min()) + 1
    val_steps = d["val_steps"] or max(horizon, round(0.2 * shortest))
    if val_steps < horizon:
        raise series.DataError(f"data.val_steps {val_steps} is shorter than the horizon {horizon}")
    cutoff = int(lengths["max"].max()) - val_steps + 1
    for sid, row in lengths.iterrows():
        if cutoff - row["min"] < lookback + horizon:
            raise series.DataError(
                f"series {sid!r} has {int(max(cutoff - row['min'], 0))} steps before the last {val_steps} validation "
                f"steps; lookback {lookback} + horizon {horizon} needs {lookback + horizon}: shorten the lookback or "
                "the horizon"
            )
    return {"horizon": horizon, "lookback": lookback, "val_steps": val_steps, "cutoff": cutoff}


def datasets(cfg: dict[str, Any], table: series.Table, cut: dict[str, int]) -> tuple[Any, Any]:
    """The training TimeSeriesDataSet (rows before the cutoff; its normalizers are fitted there) and the validation
    one: every window whose first target is at or after the cutoff."""
    from pytorch_forecasting import TimeSeriesDataSet
    from pytorch_forecasting.data import EncoderNormalizer

    d, frame = cfg["data"], table.frame
    known_cats = [*(["season"] if table.seasonality > 1 else []), *d["known_categoricals"]]
    training = TimeSeriesDataSet(
        frame[frame["time_idx"] < cut["cutoff"]],
        time_idx="time_idx",
        target=table.target,
        group_ids=["series"],
        max_encoder_length=cut["lookback"],
        max_prediction_length=cut["horizon"],
        static_categoricals=["series", *d["static_categoricals"]],
        time_varying_known_categoricals=known_cats,
        time_varying_known_reals=["time_idx", *d["known_reals"]],
        time_varying_unknown_reals=[table.target, *d["observed_reals"]],
        # each window's target standardized with its own encoder's mean and deviation (pytorch-forecasting's "auto"
        # choice for encoders longer than 20 steps): past values only, and a trend that leaves the training range
        # (CO2 rises every year) stays in range, which statistics fitted once per series do not give
        target_normalizer=EncoderNormalizer(),
        # pytorch-forecasting's TFT tutorial: the position in the window, the series' scale and the encoder length
        # as inputs
        add_relative_time_idx=True,
        add_target_scales=True,
        add_encoder_length=True,
    )
    validation = TimeSeriesDataSet.from_dataset(
        training, frame, min_prediction_idx=cut["cutoff"], stop_randomization=True
    )
    return training, validation


def build_model(cfg: dict[str, Any], training: Any) -> Any:
    from pytorch_forecasting import TemporalFusionTransformer
    from pytorch_forecasting.metrics import QuantileLoss

    m, t = cfg["model"], cfg["training"]
    return TemporalFusionTransformer.from_dataset(
        training,
        hidden_size=m["hidden_size"],
        attention_head_size=m["attention_head_size"],
        lstm_layers=m["lstm_layers"],
        hidden_continuous_size=m["hidden_continuous_size"],
        dropout=m["dropout"],
        loss=QuantileLoss(quantiles=m["quantiles"]),  # one output per quantile: the forecast's distribution
        learning_rate=t["lr"],
        optimizer=t["optimizer"],
        weight_decay=t["weight_decay"],
        reduce_on_plateau_patience=t["reduce_on_plateau_patience"],
        log_interval=-1,  # no prediction plots in the logs
    )


def prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    if resume:
        if not (out / "last.ckpt").is_file():
            raise ProjectError(f"--resume: {out / 'last.ckpt'} does not exist; train without --resume first")
        return
    held = [name for name in RUN_FILES if (out / name).exists()]
    if held and not overwrite:
        raise ProjectError(
            f"{out} already holds a run ({', '.join(held)}): pass --resume to continue it or --overwrite to start over"
        )
    for name in held:
        (out / name).unlink()
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def validation_scores(
    model: Any, validation: Any, table: series.Table, cut: dict[str, int], quantiles: list[float]
) -> dict[str, float]:
    """The median forecast's MASE / sMAPE / MAE on every validation window, and the seasonal-naive forecast's on
    the same windows (MASE scaled by each series' in-sample seasonal-naive error of its training part)."""
    loader = validation.to_dataloader(train=False, batch_size=256, num_workers=0)
    pred = model.predict(
        loader,
        mode="quantiles",
        return_index=True,
        return_y=True,
        trainer_kwargs={"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False},
    )
    forecast = pred.output[..., quantiles.index(0.5)].cpu().numpy().astype(np.float64)
    actual = pred.y[0].cpu().numpy().astype(np.float64)
    m = table.seasonality
    by_series = {sid: rows.set_index("time_idx")[table.target] for sid, rows in table.frame.groupby("series")}
    scales, naive = [], []
    for sid, origin in zip(pred.index["series"], pred.index["time_idx"], strict=True):
        values = by_series[sid]
        first = int(values.index.min())
        scales.append(series.naive_scale(values.loc[: cut["cutoff"] - 1].to_numpy(), m))
        naive.append(series.seasonal_naive(values.to_numpy(), int(origin) - first, cut["horizon"], m))
    scale, naive_fc = np.asarray(scales), np.asarray(naive)
    return {
        "val_mase": series.mase(forecast, actual, scale),
        "val_smape": series.smape(forecast, actual),
        "val_mae": series.mae(forecast, actual),
        "baseline_val_mase": series.mase(naive_fc, actual, scale),
        "baseline_val_smape": series.smape(naive_fc, actual),
        "baseline_val_mae": series.mae(naive_fc, actual),
        "val_windows": len(actual),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    cfg = config_from_args(args)
    started = time.monotonic()
    out = Path(cfg["run"]["out"])
    out = out if out.is_absolute() else HERE / out
    root = resolve_root(cfg["data"]["root"])
    # the demo is monthly whatever data.frequency says: the check applies to your data
    table = series.read_csv(root, cfg["data"], frequency=None if cfg["data"]["root"] else "MS")
    cut = split(cfg, table)
    prepare_out(out, args.resume, args.overwrite)

    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    pl.seed_everything(cfg["run"]["seed"], workers=True, verbose=False)
    training, validation = datasets(cfg, table, cut)
    d, t, tr = cfg["data"], cfg["training"], cfg["trainer"]
    train_loader = training.to_dataloader(train=True, batch_size=d["batch_size"], num_workers=d["num_workers"])
    val_loader = validation.to_dataloader(train=False, batch_size=d["batch_size"], num_workers=d["num_workers"])
    model = build_model(cfg, training)
    meta = {
        "target": table.target,
        "time_col": table.time_col,
        "id_col": table.id_col,
        "frequency": table.frequency,
        "start": str(table.start),
        "integer_times": table.frequency.startswith("int:"),
        **cut,
        "quantiles": cfg["model"]["quantiles"],
        "data": {
            k: d[k] for k in ("fill", "known_reals", "known_categoricals", "observed_reals", "static_categoricals")
        },
    }
    checkpoint = ModelCheckpoint(
        dirpath=out, filename="best", monitor="val_loss", mode="min", save_last=True, enable_version_counter=False
    )
    callbacks: list[Any] = [checkpoint]
    if t["early_stopping_patience"]:
        callbacks.append(EarlyStopping(monitor="val_loss", mode="min", patience=t["early_stopping_patience"]))
    trainer = pl.Trainer(
        max_epochs=t["epochs"],
        accelerator=tr["accelerator"],
        devices=tr["devices"],
        strategy=tr["strategy"],
        precision=tr["precision"],
        gradient_clip_val=t["gradient_clip_val"],
        limit_train_batches=t["limit_train_batches"],
        callbacks=callbacks,
        logger=CSVLogger(out.parent, name=out.name, version=""),  # out/metrics.csv, one row per epoch
        default_root_dir=out,
        enable_progress_bar=tr["progress_bar"],
        enable_model_summary=False,
        log_every_n_steps=50,
    )
    print(
        f"{table.frame['series'].nunique()} series at {table.frequency}, lookback {cut['lookback']} -> horizon "
        f"{cut['horizon']}: {len(training)} train / {len(validation)} val windows from {root}"
    )
    # Lightning's CSVLogger starts metrics.csv over on --resume: keep the epochs before the resumed one
    metrics_file = out / "metrics.csv"
    previous = pd.read_csv(metrics_file) if args.resume and metrics_file.is_file() else None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")  # in-memory windows
        # weights_only=False: pytorch-forecasting keeps the dataset's fitted encoders and normalizers and the loss as
        # pickled objects in the checkpoint's hyperparameters, which torch.load(weights_only=True) refuses; this is
        # the run's own last.ckpt (the README says what that means for checkpoints from elsewhere)
        trainer.fit(
            model, train_loader, val_loader, ckpt_path=out / "last.ckpt" if args.resume else None, weights_only=False
        )
    if not trainer.is_global_zero:
        return {}
    if previous is not None and metrics_file.is_file():
        resumed = pd.read_csv(metrics_file)
        kept = previous[previous["epoch"] < resumed["epoch"].min()] if len(resumed) else previous
        pd.concat([kept, resumed], ignore_index=True).to_csv(metrics_file, index=False)
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    from pytorch_forecasting import TemporalFusionTransformer

    best_path = Path(checkpoint.best_model_path or out / "last.ckpt")
    best = TemporalFusionTransformer.load_from_checkpoint(best_path, map_location="cpu")
    scores = validation_scores(best, validation, table, cut, cfg["model"]["quantiles"])
    summary = {
        # the checkpoint kept by val_loss (the quantile loss): its MASE, not a minimum over epochs
        "best_val_mase": scores.pop("val_mase"),
        **scores,
        "best_val_loss": float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None,
        "epochs_run": trainer.current_epoch,
        "checkpoint": str(best_path),
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(
        f"val MASE {summary['best_val_mase']:.3f} (seasonal naive {summary['baseline_val_mase']:.3f})  sMAPE "
        f"{summary['val_smape']:.2f}% (seasonal naive {summary['baseline_val_smape']:.2f}%)  -> {out / 'summary.json'}"
    )
    return summary


if __name__ == "__main__":
    run_main(main)
