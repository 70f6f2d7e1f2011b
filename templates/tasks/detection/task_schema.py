"""Detection and instance segmentation's config keys: the model and data sections, the augmentation.
config_schema.py merges CONFIG_SCHEMA into the core's (training, export, run) and checks config.yaml against the
whole; a key added to config.yaml is added here too. No torch: the schema is checked on its own."""

from config_schema import Key, boolean, choice, either, integer, list_of, number, text


def _ops(value: object) -> bool:
    """augmentation.ops: a list of {name: <op>, <param>: <value>, ...}; data.py checks the names and params."""
    return isinstance(value, list) and all(
        isinstance(op, dict) and isinstance(op.get("name"), str) and all(isinstance(k, str) for k in op) for op in value
    )


def _kwargs(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


CONFIG_SCHEMA = {
    "model": {
        "arch": text(),
        "num_classes": integer(least=1),  # object classes; the background class is added by the model
        # true = torchvision's COCO weights; a string = a weights file
        "pretrained": either(boolean(), text()),
        "trainable_backbone_layers": integer(least=0, most=6),
        "min_size": either(integer(least=16, most=8192), list_of(integer(least=16, most=8192))),
        "max_size": integer(least=16, most=16384),
        "score_thresh": number(least=0, below=1),
        "detections_per_img": integer(least=1, most=10_000),
        "detector_kwargs": Key("a mapping of torchvision detector arguments", _kwargs),
    },
    "data": {
        "root": text(null=True),
        "masks": boolean(),
        "strict": boolean(),
        "batch_size": integer(least=1),
        "num_workers": either(integer(least=0, most=256), choice("auto")),
        "aspect_ratio_groups": integer(least=0, most=100),
    },
    "augmentation": {
        "ops": Key("a list of {name: <op>, ...} mappings", _ops),
        "min_box_size": number(least=0),
    },
}
