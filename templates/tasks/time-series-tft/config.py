"""config.yaml, read with yaml.safe_load and checked key by key before anything runs, and the one-line exit.

Every key config.yaml may hold is in ``SCHEMA`` with what it accepts; an unknown key, a missing one or a value of
the wrong kind stops the script with one line naming the key and what it takes (exit status 2). ``--set
KEY=VALUE`` overrides one value for a run (the value is read as YAML: ``--set training.lr=0.01``).
"""

import math
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
OPTIMIZERS = ("adam", "adamw", "sgd", "ranger")  # what pytorch-forecasting's configure_optimizers builds


# pytorch-forecasting saves its loss and metrics modules as hyperparameters too, and Lightning says so on every
# model it builds or loads: known, harmless, and not something a user of this project can change
warnings.filterwarnings("ignore", message=r"Attribute '(loss|logging_metrics)' is an instance of `nn.Module`")


class ProjectError(RuntimeError):
    """Something the user can fix; the message says what."""


def run_main(main: Callable[[], Any]) -> None:
    """Run a script's ``main``: a ``ProjectError`` becomes ``error: <one line>`` on stderr and exit status 2."""
    try:
        main()
    except ProjectError as e:
        text = str(e).strip()
        print(f"error: {text.splitlines()[-1] if text else type(e).__name__}", file=sys.stderr)
        sys.exit(2)


class Key:
    """What one config key accepts: ``what`` for the message, ``check`` the test."""

    def __init__(self, what: str, check: Callable[[Any], bool]):
        self.what, self.check = what, check


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def integer(least: int = 0, null: bool = False) -> Key:
    return Key(
        f"an integer >= {least}" + (" or null" if null else ""),
        lambda v: (v is None and null) or (isinstance(v, int) and not isinstance(v, bool) and v >= least),
    )


def number(least: float = 0.0, below: float | None = None, null: bool = False) -> Key:
    what = f"a number >= {least}" + (f" and < {below}" if below is not None else "") + (" or null" if null else "")
    return Key(what, lambda v: (v is None and null) or (_number(v) and v >= least and (below is None or v < below)))


def text(null: bool = False) -> Key:
    return Key("a string" + (" or null" if null else ""), lambda v: (v is None and null) or isinstance(v, str))


def choice(*values: Any) -> Key:
    return Key("one of " + ", ".join(map(str, values)), lambda v: v in values and not isinstance(v, bool))


def boolean() -> Key:
    return Key("true or false", lambda v: isinstance(v, bool))


def names(null: bool = False) -> Key:
    return Key(
        "a list of column names" + (" or null" if null else ""),
        lambda v: (v is None and null) or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
    )


def quantiles() -> Key:
    return Key(
        "a sorted list of numbers strictly between 0 and 1 that holds 0.5",
        lambda v: isinstance(v, list) and all(_number(q) and 0 < q < 1 for q in v) and v == sorted(set(v)) and 0.5 in v,
    )


SCHEMA: dict[str, dict[str, Key]] = {
    "model": {
        "arch": choice("temporal_fusion_transformer"),
        "hidden_size": integer(1),
        "attention_head_size": integer(1),
        "lstm_layers": integer(1),
        "hidden_continuous_size": integer(1),
        "dropout": number(0, below=1),
        "quantiles": quantiles(),
    },
    "data": {
        "root": text(null=True),
        "time_col": text(null=True),
        "target_cols": names(null=True),
        "id_col": text(null=True),
        "frequency": text(null=True),
        "fill": choice("error", "interpolate"),
        "horizon": integer(1, null=True),
        "lookback": integer(1, null=True),
        "val_steps": integer(1, null=True),
        "known_reals": names(),
        "known_categoricals": names(),
        "observed_reals": names(),
        "static_categoricals": names(),
        "batch_size": integer(1),
        "num_workers": integer(0),
    },
    "training": {
        "epochs": integer(1),
        "optimizer": choice(*OPTIMIZERS),
        "lr": number(0),
        "weight_decay": number(0),
        "gradient_clip_val": number(0, null=True),
        "early_stopping_patience": integer(1, null=True),
        "reduce_on_plateau_patience": integer(1),
        "limit_train_batches": number(0, null=True),
    },
    "trainer": {
        "accelerator": choice("cpu", "gpu", "auto"),
        "devices": Key("an integer >= 1 or auto", lambda v: v == "auto" or (isinstance(v, int) and v >= 1)),
        "strategy": choice("auto", "ddp"),
        "precision": choice("32-true", "16-mixed", "bf16-mixed"),
        "progress_bar": boolean(),
    },
    "run": {"seed": integer(0), "out": text()},
}


def check(cfg: Any, where: str) -> dict[str, Any]:
    """``cfg`` against SCHEMA: every section and key present, none unknown, each value of its kind."""
    if not isinstance(cfg, dict):
        raise ProjectError(f"{where}: expected a mapping of sections ({', '.join(SCHEMA)}), got {type(cfg).__name__}")
    for section in cfg:
        if section not in SCHEMA:
            raise ProjectError(f"{where}: unknown section {section!r}; the sections are {', '.join(SCHEMA)}")
    for section, keys in SCHEMA.items():
        values = cfg.get(section)
        if not isinstance(values, dict):
            raise ProjectError(f"{where}: section {section!r} is missing or not a mapping")
        for key in values:
            if key not in keys:
                raise ProjectError(f"{where}: unknown key {section}.{key}; {section} has {', '.join(keys)}")
        for key, spec in keys.items():
            if key not in values:
                raise ProjectError(f"{where}: {section}.{key} is missing ({spec.what})")
            if not spec.check(values[key]):
                raise ProjectError(f"{where}: {section}.{key} must be {spec.what}, got {values[key]!r}")
    return cfg


def load_config(path: Path = HERE / "config.yaml", sets: list[str] | None = None) -> dict[str, Any]:
    """config.yaml with the ``--set KEY=VALUE`` overrides applied, checked."""
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ProjectError(f"cannot read {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise ProjectError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    for item in sets or []:
        key, sep, raw = item.partition("=")
        parts = key.split(".")
        if not sep or len(parts) != 2:
            raise ProjectError(f"--set {item!r}: expected SECTION.KEY=VALUE, e.g. training.lr=0.01")
        section, name = parts
        if not isinstance(cfg, dict) or section not in SCHEMA or name not in SCHEMA[section]:
            raise ProjectError(f"--set {item!r}: unknown key {key}")
        try:
            cfg[section][name] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ProjectError(f"--set {item!r}: the value is not valid YAML") from None
    return check(cfg, str(path))
