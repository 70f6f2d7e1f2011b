"""The task's test data for the core's tests and its own: a tiny CSV dataset cut from the bundled fortunes demo.

Fixtures every task part provides (the core's tests use them without knowing the task):
  tiny_data         a dataset root in the task's layout, small enough for a 2-epoch run in seconds
  predict_inputs    input paths for predict.py (here: one .txt file, one text per line)
  fixed_batch       (inputs, targets) to check that one optimizer step lowers the loss
  same_predictions  asserts that two predict.py outputs (PyTorch, onnxruntime) agree
  tiny_bert         a 2-layer BERT with random weights and its WordPiece tokenizer, saved as a local folder

A project generated to fine-tune a pretrained encoder (model.pretrained: a hub id) runs all its tests, the core's
too, on tiny_bert (offline_pretrained(): the value the tests give model.pretrained): the fine-tuning code path,
with nothing downloaded. A from-scratch project's tests train from scratch.

Every test runs in a temporary working folder: a from-scratch run trains its tokenizer into run.out
(runs/train/tokenizer.json, relative to the working folder), and the tests must not replace yours.
"""

import copy
import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from predictions_csv import same_top_k

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
CLASSES = ("computers", "food", "love")  # three of the demo's four categories
FINE_TUNES = bool(CONFIG["model"]["pretrained"])  # generated to fine-tune a transformers encoder
_OFFLINE: dict[str, str] = {}  # "pretrained": the tiny_bert folder, once built (fine-tuning projects)


def offline_pretrained() -> str | bool:
    """model.pretrained for the tests: the local tiny_bert folder in a fine-tuning project, else false."""
    return _OFFLINE.get("pretrained", False) if FINE_TUNES else False


def weights_args() -> list[str]:
    """train.py's weights flags for the tests: --pretrained <tiny_bert>, or --no-pretrained."""
    source = offline_pretrained()
    return ["--pretrained", str(source)] if source else ["--no-pretrained"]


def demo_rows(split: str, per_class: int) -> list[tuple[str, str]]:
    with open(ROOT / "demo" / f"{split}.csv", newline="", encoding="utf-8") as fh:
        rows = [(r["text"], r["label"]) for r in csv.DictReader(fh)]
    return [row for c in CLASSES for row in [r for r in rows if r[1] == c][:per_class]]


@pytest.fixture(scope="session", autouse=True)
def working_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Run every test in a temporary folder: runs/ of the project stay untouched."""
    folder = tmp_path_factory.mktemp("cwd")
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(before)


@pytest.fixture(scope="session", autouse=True)
def one_tokenizer_per_dataset() -> Iterator[None]:
    """Tokenizer training is not reproducible (the tokenizers library breaks ties in hash order), so two runs on
    the same texts would number their vocabularies differently. The runs a test compares share one tokenizer per
    (texts, settings), as a run and its --resume share <run.out>/tokenizer.json."""
    from tokenizers import Tokenizer

    import task

    trained: dict[Any, str] = {}
    original = task.train_tokenizer

    def train_once(texts: Any, **settings: Any) -> Tokenizer:
        key = (tuple(texts), tuple(sorted(settings.items())))
        if key not in trained:
            trained[key] = original(list(key[0]), **settings).to_str()
        return Tokenizer.from_str(trained[key])

    patch = pytest.MonkeyPatch()
    patch.setattr(task, "train_tokenizer", train_once)
    yield
    patch.undo()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes, 12 train / 4 val texts each, as train.csv and val.csv."""
    root = tmp_path_factory.mktemp("tiny")
    for split, n in (("train", 12), ("val", 4)):
        with open(root / f"{split}.csv", "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([("text", "label"), *demo_rows(split, n)])
    return root


@pytest.fixture(scope="session")
def predict_inputs(tiny_data: Path) -> list[str]:
    path = tiny_data / "new_texts.txt"
    path.write_text("\n".join(text.replace("\n", " ") for text, _ in demo_rows("val", 2)) + "\n", encoding="utf-8")
    return [str(path)]


def tiny_config(root: Path, **data: Any) -> dict[str, Any]:
    cfg = copy.deepcopy(CONFIG)
    cfg["data"].update({"root": str(root), "num_workers": 0, "batch_size": 8, **data})
    cfg["model"]["pretrained"] = offline_pretrained()
    return cfg


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with random weights and a WordPiece vocabulary of the demo, saved as a local folder: what
    ``huggingface-cli download ID --local-dir DIR`` gives, without the download."""
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from tokenizer import train_tokenizer

    folder = tmp_path_factory.mktemp("tiny_bert")
    tok = train_tokenizer([t for t, _ in demo_rows("train", 100)], vocab_size=800)
    pieces = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]  # [PAD] [UNK] [CLS] first
    (folder / "vocab.txt").write_text("\n".join([*pieces[:3], "[SEP]", "[MASK]", *pieces[3:]]) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), model_max_length=64).save_pretrained(folder)
    torch.manual_seed(0)
    # no dropout: the core's one-step test compares two losses of the same batch, which dropout would make
    # differ by more than one small step changes them (its from-scratch models get dropout 0 there too)
    config = BertConfig(vocab_size=len(pieces) + 2, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=0, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)  # fmt: skip
    BertForMaskedLM(config).save_pretrained(folder)  # an encoder without a classifier, as on the hub
    return folder


@pytest.fixture(scope="session", autouse=True)
def fine_tune_offline(request: pytest.FixtureRequest) -> None:
    """A fine-tuning project's tests fine-tune tiny_bert instead of the hub model config.yaml names."""
    if FINE_TUNES:
        _OFFLINE["pretrained"] = str(request.getfixturevalue("tiny_bert"))


@pytest.fixture
def fixed_batch(tiny_data: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The first training batch of tiny_data, tokenized by the tokenizer the core's tests train on it."""
    import task

    cfg = tiny_config(tiny_data)
    ids, targets = next(iter(task.build_data(cfg, 0, rank=0, world_size=1, pin_memory=False).train_loader))
    return ids, targets


@pytest.fixture
def same_predictions() -> Callable[[Path, Path], None]:
    """predictions.csv of two runs: the same texts and top-1 labels, probabilities within 1e-4."""
    return same_top_k
