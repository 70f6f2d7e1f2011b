"""Text classification's config keys: the model and data sections, label smoothing, the (empty) augmentation.
config_schema.py merges CONFIG_SCHEMA into the core's (training, export, run) and checks config.yaml against the
whole; a key added to config.yaml is added here too. No torch: the schema is checked on its own."""

from config_schema import Key, boolean, choice, either, integer, number, text

CONFIG_SCHEMA = {
    "model": {
        "arch": text(),
        "num_classes": integer(least=2),
        # false = from scratch; a string = a Hugging Face hub id or a local save_pretrained folder
        "pretrained": either(boolean(), text()),
        "dropout": number(least=0, below=1, null=True),
    },
    "data": {
        "root": text(null=True),
        "text_column": text(),
        "label_column": text(),
        "max_length": integer(least=1, most=1_000_000),
        "batch_size": integer(least=1),
        "num_workers": either(integer(least=0, most=256), choice("auto")),
        "tokenizer": choice("wordpiece", "bpe"),
        "vocab_size": integer(least=16, most=10_000_000),
        "lowercase": boolean(),
    },
    "training": {
        "label_smoothing": number(least=0, below=1, null=True),
    },
    "augmentation": {
        "ops": Key("an empty list (texts are not augmented)", lambda v: v == []),
    },
}
