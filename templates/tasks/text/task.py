"""Text classification: the task's part of this project, the hooks the core scripts call.

train.py, evaluate.py, predict.py and export.py are the same in every generated project; what is particular to
classifying texts lives here (and in data.py, tokenizer.py, pretrained.py, baseline.py):

    data_stage, build_data, data_meta     tokenizer (trained on the training texts, or the pretrained model's),
                                          length-bucketed loaders, and what rebuilds the model (tokenizer inside)
    model_from_meta, build_model          model.py's from-scratch models, or a transformers encoder
    build_loss, train_batch_transform     cross-entropy with label smoothing; no batch transform
    to_device, Metrics, MONITOR           a batch on the device; loss, accuracy, macro-F1, the confusion matrix
    val_loader, write_report              evaluate.py: the val split, per-class precision / recall / F1
    EXPORT, export_example                export.py: input / output names, dynamic axes, an example input
    predict_files, predict_loader, write_predictions     predict.py: texts in, predictions.csv out

Every model takes one tensor, ``input_ids`` (batch, length) padded with the tokenizer's padding id, and returns
logits: the padding mask is derived inside the model, so ONNX graphs have one input with dynamic axes.
"""

import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tokenizers import Tokenizer
from torch import nn
from torch.utils.data import DataLoader

import confusion
import data
import model as model_file
import pretrained
from errors import ProjectError
from tokenizer import PAD, TextEncoder, train_tokenizer

# best.pt and early stopping follow the validation accuracy unless training.monitor says otherwise
MONITOR = {"metric": "val_acc1", "mode": "max"}
# checkpoint.py: the model.arch names a checkpoint may hold besides model.py's (fine-tuned transformers encoders)
OTHER_ARCHS = tuple(pretrained.HUB_IDS)
# export.py: ONNX graph names, the axes that vary (batch and length), and the default exporter (torch.export)
EXPORT = {"input_names": ["input_ids"], "output_names": ["logits"], "dynamo": True, "dynamic_axes": ["batch", "length"]}


# --- data --------------------------------------------------------------------------------------------------


@dataclass
class Data:
    """The loaders, the tokenizer that made them, and what the training log reports."""

    root: Path
    classes: list[str]
    encoder: TextEncoder
    train_loader: DataLoader
    val_loader: DataLoader
    train_sampler: data.BucketBatchSampler
    counts: dict[str, int]  # texts, dropped empty texts and truncated texts per split

    def describe(self) -> str:
        c = self.counts
        return (f"{len(self.classes)} classes, {c['train']} train / {c['val']} val texts from {self.root}, "
                f"vocabulary {self.encoder.vocab_size}, max_length {self.encoder.max_length} "
                f"({c['train_truncated']} train / {c['val_truncated']} val texts truncated)")  # fmt: skip


def data_stage(cfg: dict[str, Any], epoch: int) -> int:
    """Text has one data stage: the loaders are built once."""
    return 0


def source_of(cfg: dict[str, Any]) -> str | None:
    """The pretrained model to fine-tune (hub id or folder), or None to train from scratch."""
    m = cfg["model"]
    return pretrained.resolve_source(m["arch"], m["pretrained"]) if m["pretrained"] else None


def run_dir(cfg: dict[str, Any]) -> Path:
    out = Path(cfg["run"]["out"])
    return out if out.is_absolute() else Path.cwd() / out


def tokenizer_digest(d: dict[str, Any], texts: list[str]) -> str:
    """What a trained tokenizer depends on: its settings and the training texts."""
    h = hashlib.sha256(json.dumps([d["tokenizer"], d["vocab_size"], d["lowercase"]]).encode())
    for text in texts:
        h.update(text.encode("utf-8") + b"\0")
    return h.hexdigest()


def trained_tokenizer(cfg: dict[str, Any], texts: list[str], rank: int) -> str:
    """The JSON of a tokenizer trained on ``texts``, trained once per run: reused from ``<run.out>/tokenizer.json``
    when that was trained on the same texts with the same settings, and sent from rank 0 to the other ranks.

    Training is not reproducible (the tokenizers library breaks ties between equally frequent pieces in hash
    order, so two trainings number the pieces differently): without this, ``--resume`` and every DDP rank would
    pair the saved embeddings with another vocabulary.
    """
    d = cfg["data"]
    path, digest = run_dir(cfg) / "tokenizer.json", tokenizer_digest(d, texts)
    text = None
    if rank == 0:
        saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        text = saved.get("tokenizer") if saved.get("digest") == digest else None
        if text is None:
            text = train_tokenizer(texts, kind=d["tokenizer"], vocab_size=d["vocab_size"],
                                   lowercase=d["lowercase"]).to_str()  # fmt: skip
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps({"digest": digest, "tokenizer": text}), encoding="utf-8")
            os.replace(tmp, path)
    if dist.is_initialized():
        box = [text]
        dist.broadcast_object_list(box, src=0)
        text = box[0]
    assert text is not None
    return text


def build_encoder(cfg: dict[str, Any], train_texts: list[str], rank: int = 0) -> TextEncoder:
    """From scratch: a tokenizer trained on the training texts; fine-tuning: the pretrained model's own."""
    d = cfg["data"]
    source = source_of(cfg)
    if source is not None:
        return pretrained.load_encoder(source, d["max_length"])
    tok = Tokenizer.from_str(trained_tokenizer(cfg, train_texts, rank))
    return TextEncoder(tok, d["max_length"], pad_id=tok.token_to_id(PAD))


def build_data(cfg: dict[str, Any], stage: int, *, rank: int, world_size: int, pin_memory: bool) -> Data:
    """Read both splits, check them, tokenize them once, and build the loaders (this rank's share under DDP)."""
    d = cfg["data"]
    root = data.resolve_root(d["root"])
    train, val = (data.read_split(root, s, d["text_column"], d["label_column"]) for s in data.SPLITS)
    classes = data.class_names(train.labels)
    data.check_val_classes(root, classes, val.labels)
    encoder = build_encoder(cfg, train.texts, rank)
    index = {name: i for i, name in enumerate(classes)}
    train_ids, val_ids = encoder.encode(train.texts), encoder.encode(val.texts)
    for split, encoded in (("train", train_ids), ("val", val_ids)):
        if encoded.truncated and rank == 0:
            warnings.warn(f"{split}: {encoded.truncated} texts cut at data.max_length {encoder.max_length} tokens",
                          stacklevel=2)  # fmt: skip
    train_set = data.TokenizedTexts(train_ids.ids, [index[y] for y in train.labels])
    val_set = data.TokenizedTexts(val_ids.ids, [index[y] for y in val.labels])
    workers = 0 if d["num_workers"] == "auto" else int(d["num_workers"])
    sampler = data.BucketBatchSampler(train_set.lengths(), d["batch_size"], seed=cfg["run"]["seed"], rank=rank,
                                      world_size=world_size)  # fmt: skip
    val_batches = data.sorted_batches(val_set.lengths(), 2 * d["batch_size"], rank, world_size)
    counts = {"train": len(train_set), "val": len(val_set), "train_dropped": train.dropped_empty,
              "val_dropped": val.dropped_empty, "train_truncated": train_ids.truncated,
              "val_truncated": val_ids.truncated}  # fmt: skip
    return Data(root, classes, encoder, data.loader(train_set, sampler, encoder.pad_id, workers),
                data.loader(val_set, val_batches, encoder.pad_id, workers), sampler, counts)  # fmt: skip


def data_meta(cfg: dict[str, Any], loaded: Data, log: Callable[..., None] = print) -> dict[str, Any]:
    """What rebuilds the model and its tokenizer later (saved in every checkpoint): plain values only."""
    m = cfg["model"]
    if len(loaded.classes) != m["num_classes"]:
        log(f"note: {loaded.root} has {len(loaded.classes)} classes; config.yaml says {m['num_classes']}: "
            "using the data's")  # fmt: skip
    source = source_of(cfg)
    return {
        "arch": m["arch"],
        "num_classes": len(loaded.classes),
        "classes": loaded.classes,
        "tokenizer": loaded.encoder.to_json(),
        "pad_id": loaded.encoder.pad_id,
        "vocab_size": loaded.encoder.vocab_size,
        "max_length": loaded.encoder.max_length,
        "text_column": cfg["data"]["text_column"],
        "pretrained": source,
        "hf_config": pretrained.load_config(source, len(loaded.classes)) if source else None,
    }


def encoder_from_meta(meta: dict[str, Any]) -> TextEncoder:
    return TextEncoder.from_json(meta["tokenizer"], meta["max_length"], meta["pad_id"])


# --- model and loss ------------------------------------------------------------------------------------------


def model_from_meta(meta: dict[str, Any], **kwargs: Any) -> nn.Module:
    """The architecture with fresh weights (never downloads anything)."""
    if meta["hf_config"] is not None:
        return pretrained.from_config(meta["hf_config"], meta["pad_id"])
    fields = {f.name for f in dataclasses.fields(model_file.VARIANTS[meta["arch"]])}
    if "max_len" in fields:  # learned positions: as many as the tokenizer lets through
        kwargs.setdefault("max_len", meta["max_length"])
    kwargs = {k: v for k, v in kwargs.items() if k in fields and v is not None}
    return model_file.build_model(meta["arch"], meta["num_classes"], meta["vocab_size"], meta["pad_id"], **kwargs)


def build_model(cfg: dict[str, Any], meta: dict[str, Any], log: Callable[..., None] = print) -> nn.Module:
    """The model to train: from scratch (dropout from the config), or the pretrained encoder with a new head."""
    if meta["pretrained"]:
        log(f"fine-tuning {meta['pretrained']} (transformers) with a new {meta['num_classes']}-class head")
        return pretrained.load_model(meta["pretrained"], meta["num_classes"], meta["pad_id"])
    if meta["arch"] not in model_file.VARIANTS:
        raise ProjectError(
            f"model.arch {meta['arch']!r} trains from scratch only as one of {', '.join(model_file.VARIANTS)}; "
            f"the pretrained encoders ({', '.join(pretrained.HUB_IDS)}) need model.pretrained: true, a hub id "
            "or a folder"
        )
    return model_from_meta(meta, dropout=cfg["model"].get("dropout"))


def build_loss(cfg: dict[str, Any], meta: dict[str, Any] | None = None) -> nn.Module:
    """Cross-entropy with label smoothing (Szegedy et al., arXiv:1512.00567)."""
    return nn.CrossEntropyLoss(label_smoothing=cfg["training"].get("label_smoothing") or 0.0)


def train_batch_transform(cfg: dict[str, Any], meta: dict[str, Any]) -> None:
    """No batch-level augmentation for text."""
    return


def to_device(batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(token ids, class indices) of a loader batch, on ``device``."""
    ids, targets = batch
    return ids.to(device, non_blocking=True), targets.to(device, non_blocking=True)


# --- metrics -------------------------------------------------------------------------------------------------


class Metrics(confusion.ConfusionMetrics):
    """Validation loss, accuracy, macro-F1 and the confusion matrix (confusion.py), summed over the DDP ranks,
    each of which sees a disjoint share of the val set (data.sorted_batches)."""

    noun = "texts"


# --- evaluate.py ----------------------------------------------------------------------------------------------


def val_loader(cfg: dict[str, Any], meta: dict[str, Any], batch_size: int | None = None) -> DataLoader:
    """The val split of ``data.root``, tokenized by the checkpoint's tokenizer; its labels must be the model's."""
    d = cfg["data"]
    root = data.resolve_root(d["root"])
    val = data.read_split(root, "val", d["text_column"], d["label_column"])
    data.check_val_classes(root, meta["classes"], val.labels)
    encoder = encoder_from_meta(meta)
    index = {name: i for i, name in enumerate(meta["classes"])}
    dataset = data.TokenizedTexts(encoder.encode(val.texts).ids, [index[y] for y in val.labels])
    batches = data.sorted_batches(dataset.lengths(), batch_size or 2 * d["batch_size"])
    return data.loader(dataset, batches, encoder.pad_id)


# evaluate.py's report: the per-class table, and per_class.json with macro-F1 and the confusion matrix
write_report = confusion.write_report


# --- export.py ----------------------------------------------------------------------------------------------


def export_example(meta: dict[str, Any], batch: int, seed: int) -> torch.Tensor:
    """Random token ids, right-padded to different lengths (the first row full). The length varies with the
    seed (12, 16, 20 tokens), so export.py's parity checks run at other lengths than the traced one."""
    length = 12 + 4 * (seed % 3)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, meta["vocab_size"], (batch, length), generator=g)
    ids[ids == meta["pad_id"]] = (meta["pad_id"] + 1) % meta["vocab_size"]
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[0] = length
    ids[torch.arange(length) >= lengths[:, None]] = meta["pad_id"]
    return ids


# --- predict.py ---------------------------------------------------------------------------------------------


def predict_files(inputs: list[str], texts: list[str] | None = None, text_column: str = "text") -> list[data.TextInput]:
    """The texts named by ``inputs`` (.txt: one per line; .csv: the text column) and literal ``texts``."""
    return data.predict_inputs(inputs, texts or (), text_column)


def predict_loader(files: list[data.TextInput], meta: dict[str, Any], batch_size: int) -> DataLoader:
    """Batches of (token ids, indices into ``files``), in the order of ``files``, each padded to its longest."""
    encoder = encoder_from_meta(meta)
    dataset = data.TokenizedTexts(encoder.encode([f.text for f in files]).ids, range(len(files)))
    batches = [list(range(i, min(i + batch_size, len(files)))) for i in range(0, len(files), batch_size)]
    return data.loader(dataset, batches, encoder.pad_id)


def write_predictions(
    out: Path, files: list[data.TextInput], logits: np.ndarray | list[np.ndarray], meta: dict[str, Any], top_k: int
) -> Path:
    """``out/predictions.csv``: each text's source, line and text, its top-k labels and softmax probabilities
    (``logits``: one array, or one per batch in the order of ``files``)."""
    keys = ([item.source, item.line, item.text] for item in files)
    return confusion.write_top_k(out, ["file", "line", "text"], keys, logits, meta["classes"], top_k)
