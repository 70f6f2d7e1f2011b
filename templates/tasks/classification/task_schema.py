"""Classification's config keys: the model and data sections, its augmentation, and the training keys only it
reads. config_schema.py merges CONFIG_SCHEMA into the core's (training, export, run) and checks config.yaml
against the whole; a key added to config.yaml is added here too. No torch: the schema is checked on its own."""

from config_schema import Key, boolean, choice, either, integer, list_of, number, text


def _ops(value: object) -> bool:
    """augmentation.ops: a list of {name: <op>, <param>: <value>, ...}; data.py checks the names and params."""
    return isinstance(value, list) and all(
        isinstance(op, dict) and isinstance(op.get("name"), str) and all(isinstance(k, str) for k in op) for op in value
    )


_stage = Key("a pair [start_epoch >= 0, image_size >= 1]", lambda v: isinstance(v, list) and len(v) == 2 and (
    integer(least=0).check(v[0]) and integer(least=1).check(v[1])))  # fmt: skip

CONFIG_SCHEMA = {
    "model": {
        "arch": text(),
        "num_classes": integer(least=2),
        "small_input": boolean(),
        # true = the default ImageNet weights; a string = a file, torchvision:<Weights> or timm:<model>
        "pretrained": either(boolean(), text()),
        "dropout": number(least=0, below=1, null=True),
        "drop_path": number(least=0, below=1, null=True),
    },
    "data": {
        "root": text(null=True),
        "image_size": integer(least=1, most=8192),
        "batch_size": integer(least=1),
        "num_workers": either(integer(least=0, most=256), choice("auto")),
        "eval_crop_pct": number(above=0, most=1),
        "skip_unreadable": boolean(),
        "mean": list_of(number(), length=3),
        "std": list_of(number(above=0), length=3),
    },
    "training": {
        "label_smoothing": number(least=0, below=1),
        "progressive_resizing": list_of(_stage),
    },
    "augmentation": {
        "ops": Key("a list of {name: <op>, ...} mappings", _ops),
        "mixup_alpha": number(least=0, null=True),
        "cutmix_alpha": number(least=0, null=True),
        "mix_prob": number(least=0, most=1, null=True),
    },
}
