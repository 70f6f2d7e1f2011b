"""Forecasting's config keys: the model and data sections and its augmentation. config_schema.py merges
CONFIG_SCHEMA into the core's (training, export, run) and checks config.yaml against the whole; a key added to
config.yaml is added here too. No torch: the schema is checked on its own."""

from config_schema import Key, boolean, choice, either, integer, list_of, number, text

# augmentation.ops: a list of {name: jitter | scaling, sigma: >= 0}
_OP = ("jitter", "scaling")


def _ops(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(op, dict) and op.get("name") in _OP and number(least=0).check(op.get("sigma")) for op in value
    )


CONFIG_SCHEMA = {
    "model": {
        "arch": text(),
        "pretrained": boolean(),
        "dropout": number(least=0, below=1, null=True),
    },
    "data": {
        "root": text(null=True),
        "time_col": text(null=True),
        "target_cols": list_of(text(), null=True),
        "id_col": text(null=True),
        "covariate_cols": list_of(text(), null=True),
        "known_cols": list_of(text(), null=True),  # known over the horizon too: predict.py --future
        "frequency": text(null=True),  # a pandas offset alias (MS, h, D, ...) or int:STEP
        "fill": choice("error", "interpolate"),
        "horizon": integer(least=1, null=True),
        "lookback": integer(least=1, null=True),
        "val_steps": integer(least=1, null=True),
        "batch_size": integer(least=1),
        "num_workers": either(integer(least=0, most=256), choice("auto")),
    },
    "augmentation": {"ops": Key("a list of {name: jitter | scaling, sigma: >= 0}", _ops)},
}
