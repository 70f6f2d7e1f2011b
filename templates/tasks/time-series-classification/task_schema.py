"""Time-series classification's config keys: the model and data sections, its augmentation, and the training keys
only it reads. config_schema.py merges CONFIG_SCHEMA into the core's (training, export, run) and checks config.yaml
against the whole; a key added to config.yaml is added here too. No torch: the schema is checked on its own."""

from config_schema import Key, boolean, choice, either, integer, number, text

# augmentation.ops: a list of {name: jitter | scaling, sigma: >= 0}
_OP = ("jitter", "scaling")


def _ops(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(op, dict) and op.get("name") in _OP and number(least=0).check(op.get("sigma")) for op in value
    )


CONFIG_SCHEMA = {
    "model": {
        "arch": text(),
        "num_classes": integer(least=2),
        "pretrained": boolean(),
        "dropout": number(least=0, below=1, null=True),
    },
    "data": {
        "root": text(null=True),
        "fill": choice("interpolate", "error"),
        "val_fraction": number(above=0, below=1),
        "batch_size": integer(least=1),
        "num_workers": either(integer(least=0, most=256), choice("auto")),
    },
    "training": {"label_smoothing": number(least=0, below=1, null=True)},
    "augmentation": {"ops": Key("a list of {name: jitter | scaling, sigma: >= 0}", _ops)},
}
