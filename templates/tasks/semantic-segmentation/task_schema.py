"""Semantic segmentation's config keys: the model and data sections, the loss, the augmentation. config_schema.py
merges CONFIG_SCHEMA into the core's (training, export, run) and checks config.yaml against the whole; a key added
to config.yaml is added here too. No torch: the schema is checked on its own."""

from config_schema import Key, boolean, choice, either, integer, list_of, number, optional, text


def _ops(value: object) -> bool:
    """augmentation.ops: a list of {name: <op>, <param>: <value>, ...}; data.py checks the names and params."""
    return isinstance(value, list) and all(
        isinstance(op, dict) and isinstance(op.get("name"), str) and all(isinstance(k, str) for k in op) for op in value
    )


CONFIG_SCHEMA = {
    "model": {
        "arch": text(),
        "num_classes": integer(least=2),
        "norm": optional(choice("batch", "group")),  # U-Nets only
        # true = the encoder's ImageNet weights; a string = a weights file
        "pretrained": either(boolean(), text()),
    },
    "data": {
        "root": text(null=True),
        "image_size": integer(least=8, most=8192),
        "batch_size": integer(least=1),
        "num_workers": either(integer(least=0, most=256), choice("auto")),
        "mean": list_of(number(), length=3),
        "std": list_of(number(above=0), length=3),
    },
    "loss": {
        "name": choice("ce", "dice", "ce+dice"),
        "class_weights": choice("none", "median_frequency"),
        "aux_weight": number(least=0),
    },
    "augmentation": {
        "ops": Key("a list of {name: <op>, ...} mappings", _ops),
    },
}
