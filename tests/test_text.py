"""The text task part (templates/tasks/text) and its models (templates/models/text.py), offline.

The project is assembled the way the scaffolder does it (the core's scripts, the task part, model.py and
weights.py in one folder) with a config.yaml written here, and imported in this process. Nothing touches the
network: the pretrained path runs on a tiny BERT built from a config and saved to a temporary folder.
"""

from __future__ import annotations

import copy
import csv
import importlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from archadvisor.resources import templates_dir

TEMPLATES = templates_dir()
PROJECT_MODULES = ("baseline", "checkpoint", "data", "errors", "evaluate", "export", "model", "predict",
                   "pretrained", "task", "tokenizer", "train", "weights")  # fmt: skip
# what the text part's config.yaml holds (the values the advice names for a from-scratch fastText run)
CONFIG: dict[str, Any] = {
    "model": {"arch": "fasttext_bag", "num_classes": 4, "pretrained": False, "dropout": None},
    "data": {"root": None, "text_column": "text", "label_column": "label", "max_length": 128, "batch_size": 32,
             "num_workers": "auto", "tokenizer": "wordpiece", "vocab_size": 4000, "lowercase": True},
    "training": {"epochs": 6, "monitor": {"metric": "val_acc1", "mode": "max"},
                 "optimizer": {"name": "adamw", "momentum": None, "nesterov": None, "betas": [0.9, 0.999]},
                 "lr": 0.02, "min_lr": 0.0, "weight_decay": 0.0, "schedule": "cosine", "warmup_epochs": 1,
                 "grad_accum_steps": 1, "grad_clip_norm": 1.0, "ema_decay": None, "early_stopping_patience": None,
                 "amp": False, "channels_last": False, "freeze": {"mode": "none", "epochs": 0},
                 "label_smoothing": 0.0},
    "export": {"target": "cloud-cpu", "format": "onnx", "runtime": "onnxruntime", "precision": "fp32",
               "quantize": "int8-dynamic", "opset": 18, "dynamo": None, "expected_latency_ms": None},
    "run": {"seed": 0, "deterministic": False, "out": "runs/train"},
    "augmentation": {"ops": []},
}  # fmt: skip
# small widths: every variant's code path, at test speed
SMALL = {
    "bilstm_classifier": {"embed_dim": 16, "hidden": 16, "layers": 2},
    "bigru_classifier": {"embed_dim": 16, "hidden": 16},
    "text_transformer_small": {"dim": 32, "depth": 2, "heads": 4, "max_len": 64},
    "fasttext_bag": {"dim": 16, "ngram_buckets": 64},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The text project's files in a folder, importable as top-level modules (as the project runs them)."""
    root = tmp_path_factory.mktemp("text_project")
    for path in (TEMPLATES / "core").glob("*.py"):
        shutil.copy(path, root / path.name)
    shutil.copytree(TEMPLATES / "tasks" / "text", root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.j2"))
    shutil.copy(TEMPLATES / "models" / "text.py", root / "model.py")
    shutil.copy(TEMPLATES / "models" / "weights.py", root / "weights.py")
    (root / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False), encoding="utf-8")
    saved = {name: sys.modules.pop(name) for name in PROJECT_MODULES if name in sys.modules}
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for name in PROJECT_MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def mod(name: str) -> ModuleType:
    return importlib.import_module(name)


def config(**sections: dict[str, Any]) -> dict[str, Any]:
    cfg = copy.deepcopy(CONFIG)
    for section, values in sections.items():
        cfg[section].update(values)
    return cfg


def padded(batch: int, length: int, vocab: int, seed: int, pad_id: int = 0) -> torch.Tensor:
    """Random ids right-padded to random lengths (the first row full), no pad id inside a text."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(pad_id + 1, vocab, (batch, length), generator=g)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[0] = length
    ids[torch.arange(length) >= lengths[:, None]] = pad_id
    return ids


def small_model(arch: str, num_classes: int = 3, vocab: int = 100) -> nn.Module:
    torch.manual_seed(0)
    model = mod("model").build_model(arch, num_classes, vocab, 0, **SMALL[arch])
    nn.init.normal_(model.head.weight, std=0.5)  # fastText starts its head at zero: parity would be trivial
    return model


# --- models ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(SMALL))
def test_logits_do_not_change_with_extra_padding(project: Path, arch: str) -> None:
    model = small_model(arch).eval()
    ids = padded(4, 9, 100, seed=1)
    more = torch.cat([ids, torch.zeros(4, 7, dtype=torch.int64)], dim=1)  # 7 more padding columns
    with torch.no_grad():
        a, b = model(ids), model(more)
        alone = model(ids[1:2, : int((ids[1] != 0).sum())])  # the second text unpadded, in a batch of one
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()
    assert torch.allclose(a[1], alone[0], atol=1e-5)
    # and the model does read the text: changing a real token changes the logits
    changed = ids.clone()
    changed[0, 0] = 1 + (int(ids[0, 0]) % 98)
    with torch.no_grad():
        assert not torch.allclose(model(changed)[0], a[0])


@pytest.mark.parametrize("arch", list(SMALL))
def test_backward_reaches_every_parameter(project: Path, arch: str) -> None:
    model = small_model(arch).train()
    ids = padded(6, 11, 100, seed=2)
    nn.functional.cross_entropy(model(ids), torch.tensor([0, 1, 2, 0, 1, 2])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_reverse_within_length_reverses_only_the_text(project: Path) -> None:
    reverse = mod("model").reverse_within_length
    x = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]]).unsqueeze(-1).float()
    lengths = torch.tensor([3, 5])
    assert reverse(x, lengths).squeeze(-1).tolist() == [[3, 2, 1, 0, 0], [8, 7, 6, 5, 4]]
    assert torch.equal(reverse(reverse(x, lengths), lengths), x)


def test_unknown_variant_and_setting_are_errors(project: Path) -> None:
    build = mod("model").build_model
    with pytest.raises(ValueError, match="supported are bilstm_classifier"):
        build("lstm_huge", 2, 10, 0)
    with pytest.raises(ValueError, match="has no setting hidden"):
        build("fasttext_bag", 2, 10, 0, hidden=3)


def export_onnx(model: nn.Module, path: Path, dynamo: bool) -> None:
    example = padded(2, 7, 100, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            dims = {0: torch.export.Dim("batch"), 1: torch.export.Dim("length")}
            torch.onnx.export(model, (example,), str(path), dynamo=True, input_names=["input_ids"],
                              output_names=["logits"], dynamic_shapes=(dims,), opset_version=18, verbose=False)  # fmt: skip
        else:
            axes = {"input_ids": {0: "batch", 1: "length"}, "logits": {0: "batch"}}
            torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input_ids"],
                              output_names=["logits"], dynamic_axes=axes, opset_version=18)  # fmt: skip


def onnx_diff(model: nn.Module, path: Path) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for batch, length, seed in ((1, 3, 1), (5, 19, 2), (3, 40, 3)):  # none of them the traced (2, 7)
        ids = padded(batch, length, 100, seed)
        with torch.no_grad():
            expected = model(ids).numpy()
        worst = max(worst, float(np.abs(session.run(None, {"input_ids": ids.numpy()})[0] - expected).max()))
    return worst


@pytest.mark.parametrize("arch", list(SMALL))
def test_onnx_export_with_dynamic_batch_and_length_matches_onnxruntime(
    project: Path, arch: str, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = small_model(arch).eval()
    path = tmp_path / "model.onnx"
    export_onnx(model, path, dynamo=model.onnx_dynamo)  # the exporter the model class chose
    assert onnx_diff(model, path) <= 1e-5


@pytest.mark.parametrize("arch", ["fasttext_bag", "text_transformer_small"])
def test_the_torchscript_exporter_fails_where_the_models_chose_torch_export(
    project: Path, arch: str, tmp_path: Path
) -> None:
    """Why onnx_dynamo is True for these two: the legacy exporter rejects EmbeddingBag(padding_idx) and
    freezes the traced length into the attention's reshapes."""
    pytest.importorskip("onnxruntime")
    model = small_model(arch).eval()
    assert model.onnx_dynamo
    try:
        export_onnx(model, tmp_path / "legacy.onnx", dynamo=False)
        diff = onnx_diff(model, tmp_path / "legacy.onnx")
    except Exception:  # the exporter refuses, or onnxruntime cannot run the graph at another length
        return
    assert diff > 1e-3, "the TorchScript-based exporter works now: reconsider onnx_dynamo"


# --- tokenizer -------------------------------------------------------------------------------------------------


def demo_split(split: str) -> Any:
    return mod("data").read_split(mod("data").DEMO_ROOT, split)


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_tokenizer_travels_in_a_checkpoint(project: Path, kind: str, tmp_path: Path) -> None:
    tok = mod("tokenizer")
    texts = demo_split("train").texts
    first = tok.train_tokenizer(texts, kind=kind, vocab_size=2000)
    encoder = tok.TextEncoder(first, max_length=24, pad_id=first.token_to_id(tok.PAD))
    assert encoder.pad_id == 0 and 500 < encoder.vocab_size <= 2000
    torch.save({"tokenizer": encoder.to_json()}, tmp_path / "c.pt")
    restored = tok.TextEncoder.from_json(torch.load(tmp_path / "c.pt", weights_only=True)["tokenizer"], 24, 0)
    sample = ["Computers are useless. They can only give you answers.", "", "x" * 3 + " naïve café " * 20]
    a, b = encoder.encode(sample), restored.encode(sample)
    assert all(np.array_equal(x, y) for x, y in zip(a.ids, b.ids, strict=True))
    assert all(ids[0] == first.token_to_id(tok.CLS) for ids in a.ids)  # even the empty text has a token
    assert a.truncated == 1 and len(a.ids[2]) == 24  # the long one is cut and counted
    assert 0 not in np.concatenate(a.ids)  # padding is never a real token


def test_the_tokenizer_is_trained_once_per_run_and_retrained_for_other_texts(project: Path, tmp_path: Path) -> None:
    """Two trainings on the same texts number the pieces differently (hash-ordered ties), so --resume and the
    DDP ranks must reuse the run's tokenizer.json rather than train again."""
    task = mod("task")
    cfg = config(run={"out": str(tmp_path)})
    texts = demo_split("train").texts
    first = task.build_encoder(cfg, texts).to_json()
    saved = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))["tokenizer"]
    assert mod("tokenizer").TextEncoder.from_json(saved, 128, 0).to_json() == first
    assert task.build_encoder(cfg, texts).to_json() == first
    assert task.build_encoder(cfg, texts[:-50]).to_json() != first  # other texts: trained anew
    assert (
        task.build_encoder(config(run={"out": str(tmp_path / "b")}, data={"vocab_size": 500}), texts).vocab_size <= 500
    )


# --- data --------------------------------------------------------------------------------------------------------


def write_layouts(root: Path) -> dict[str, Path]:
    """The same small dataset in the three layouts; labels are strings."""
    rows = {"train": [("good film", "pos"), ("bad film", "neg"), ("great", "pos"), ("", "neg"), ("awful", "neg")],
            "val": [("fine film", "pos"), ("poor", "neg")]}  # fmt: skip
    out = {name: root / name for name in ("csv", "jsonl", "folders")}
    for split, items in rows.items():
        out["csv"].mkdir(exist_ok=True)
        with open(out["csv"] / f"{split}.csv", "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([("label", "text"), *((y, t) for t, y in items)])  # column order is free
        out["jsonl"].mkdir(exist_ok=True)
        lines = [json.dumps({"text": t, "label": y}) for t, y in items]
        (out["jsonl"] / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for i, (t, y) in enumerate(items):
            (out["folders"] / split / y).mkdir(parents=True, exist_ok=True)
            (out["folders"] / split / y / f"{i}.txt").write_text(t, encoding="utf-8")
    return out


def test_three_layouts_read_the_same_and_drop_empty_texts(project: Path, tmp_path: Path) -> None:
    data = mod("data")
    splits = []
    for root in write_layouts(tmp_path).values():
        with pytest.warns(UserWarning, match="dropped 1 empty texts"):
            train = data.read_split(root, "train")
        splits.append((sorted(zip(train.texts, train.labels, strict=True)), train.dropped_empty))
    assert splits[0] == splits[1] == splits[2]
    assert splits[0] == ([("awful", "neg"), ("bad film", "neg"), ("good film", "pos"), ("great", "pos")], 1)
    assert data.class_names(["b", "a", "b"]) == ["a", "b"] and data.class_names(["10", "2", "1"]) == ["1", "2", "10"]


def test_bad_data_is_one_clear_error(project: Path, tmp_path: Path) -> None:
    data = mod("data")
    roots = write_layouts(tmp_path)
    latin1 = roots["csv"] / "val.csv"
    latin1.write_bytes(b"text,label\nfine,pos\ncaf\xe9,neg\n")
    with pytest.raises(data.DataError, match=r"val.csv is not UTF-8: byte 0xe9 at offset 23 \(line 3\)"):
        data.read_split(roots["csv"], "val")
    (roots["jsonl"] / "val.jsonl").write_text('{"text": "meh", "label": "neutral"}\n', encoding="utf-8")
    val = data.read_split(roots["jsonl"], "val")
    with pytest.raises(data.DataError, match="val has labels that train lacks: 'neutral'"):
        data.check_val_classes(roots["jsonl"], ["neg", "pos"], val.labels)
    with pytest.raises(data.DataError, match="has no column 'body'"):
        data.read_split(roots["csv"], "train", text_column="body")
    with pytest.raises(data.DataError, match="expected train.csv"):
        data.read_split(tmp_path / "nothing", "train")


def test_bucketed_batches_cover_the_split_shard_evenly_and_pad_little(project: Path) -> None:
    data = mod("data")
    lengths = [int(n) for n in np.random.default_rng(0).integers(2, 120, size=1001)]
    shards = [data.BucketBatchSampler(lengths, 16, seed=3, rank=r, world_size=2) for r in range(2)]
    batches = [list(s) for s in shards]
    assert len(batches[0]) == len(batches[1]) == len(shards[0])  # DDP: every rank steps the same number of times
    seen = sorted(i for b in batches for batch in b for i in batch)
    assert set(seen) == set(range(1001)) and len(seen) == 1002  # one index repeated to even out the shards
    shards[0].set_epoch(1)
    assert list(shards[0]) != batches[0]  # a new order each epoch ...
    shards[0].set_epoch(0)
    assert list(shards[0]) == batches[0]  # ... and the same order for the same epoch (exact --resume)

    def padding(batch_list: list[list[int]]) -> float:
        cells = sum(len(b) * max(lengths[i] for i in b) for b in batch_list)
        return 1 - sum(lengths[i] for b in batch_list for i in b) / cells

    shuffled = np.random.default_rng(1).permutation(1001).tolist()
    assert padding(batches[0]) < 0.1 < 0.3 < padding([shuffled[i : i + 16] for i in range(0, 1001, 16)])
    ids, targets = data.collate([(np.array([5, 6, 7]), 1), (np.array([8]), 0)], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and targets.tolist() == [1, 0]


def test_macro_f1_and_per_class_scores_match_scikit_learn(project: Path) -> None:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    task = mod("task")
    rng = np.random.default_rng(0)
    targets = torch.from_numpy(rng.integers(0, 3, 200))  # class 3 never occurs, nor is it predicted
    logits = torch.from_numpy(rng.normal(size=(200, 4))).float()
    logits[:, 3] -= 100
    metrics = task.Metrics({"classes": ["a", "b", "c", "d"]}, torch.device("cpu"))
    metrics.update(logits[:120], targets[:120])
    metrics.update(logits[120:], targets[120:])
    predicted = logits.argmax(1).numpy()
    values = metrics.compute()
    assert values["val_macro_f1"] == pytest.approx(100 * f1_score(targets.numpy(), predicted, average="macro"))
    assert values["val_acc1"] == pytest.approx(100 * float((predicted == targets.numpy()).mean()))
    p, r, f, s = precision_recall_fscore_support(targets.numpy(), predicted, labels=[0, 1, 2], zero_division=0)
    rows = metrics.per_class()[:3]
    assert [row["f1"] for row in rows] == pytest.approx(list(100 * f))
    assert [row["precision"] for row in rows] == pytest.approx(list(100 * p))
    assert [row["recall"] for row in rows] == pytest.approx(list(100 * r))
    assert [row["support"] for row in rows] == list(s)


# --- the demo, the baseline, training through the core, predict and export -------------------------------------


@pytest.fixture(scope="module")
def demo_run(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo_run")
    mod("train").main(["--out", str(out), "--config", str(project / "config.yaml")])
    return out


def test_demo_fasttext_beats_the_majority_class_and_the_baseline_is_recorded(project: Path, demo_run: Path) -> None:
    scores = mod("baseline").main(["--config", str(project / "config.yaml"), "--out", str(demo_run)])
    summary = json.loads((demo_run / "summary.json").read_text(encoding="utf-8"))
    majority = scores["majority_val_acc1"]
    assert majority == pytest.approx(100 * 50 / 157)  # computers: 50 of the 157 val texts
    assert summary["best_val_acc1"] >= majority + 20, summary  # clearly learned, in a few seconds of CPU
    assert summary["baseline_val_acc1"] >= majority + 20 and 0 < summary["baseline_val_macro_f1"] <= 100
    best = torch.load(demo_run / "best.pt", weights_only=True)
    assert isinstance(best["meta"]["tokenizer"], str) and best["meta"]["classes"] == ["computers", "food", "love",
                                                                                      "sports"]  # fmt: skip
    assert 0 < best["metrics"]["val_macro_f1"] <= 100


def test_predict_reads_text_files_csvs_and_literal_texts(project: Path, demo_run: Path, tmp_path: Path) -> None:
    task, checkpoint = mod("task"), mod("checkpoint")
    train = demo_split("train")
    seen = train.texts[train.labels.index("computers")]  # a training text: the model has fitted it
    (tmp_path / "a.txt").write_text(f"{seen}\n\nI love you\n", encoding="utf-8")
    with open(tmp_path / "b.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("id", "text"), ("1", "The pizza and the wine were delicious")])
    files = task.predict_files([str(tmp_path / "a.txt"), str(tmp_path / "b.csv")], texts=["The team won the game"])
    assert [(Path(f.source).name, f.line) for f in files] == [("a.txt", 1), ("a.txt", 3), ("b.csv", 2), ("--text", 1)]
    model, ckpt = checkpoint.load_model(demo_run / "best.pt")
    with torch.no_grad():
        logits = np.concatenate([model(ids).numpy() for ids, _ in task.predict_loader(files, ckpt["meta"], 3)])
    path = task.write_predictions(tmp_path / "out", files, logits, ckpt["meta"], top_k=2)
    rows = list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))
    assert list(rows[0]) == ["file", "line", "text", "label_1", "prob_1", "label_2", "prob_2"]
    assert [r["text"] for r in rows][-1] == "The team won the game"
    assert rows[0]["label_1"] == "computers" and rows[0]["text"] == seen
    assert all(1 >= float(r["prob_1"]) >= float(r["prob_2"]) >= 0 for r in rows)
    written = mod("predict").main([str(tmp_path / "a.txt"), "--out", str(tmp_path / "core"),
                                   "--checkpoint", str(demo_run / "best.pt")])  # fmt: skip
    assert len(list(csv.DictReader(written.read_text(encoding="utf-8").splitlines()))) == 2


def test_export_through_the_core_has_a_dynamic_length_and_int8(project: Path, demo_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    report = mod("export").main([str(demo_run / "best.pt"), "--out", str(tmp_path), "--config",
                                 str(project / "config.yaml")])  # fmt: skip
    assert "dynamo=True" in report["exporter"] and report["onnx_max_scaled_diff"] <= 1e-4
    assert abs(report["val_acc1_int8"] - report["val_acc1_fp32"]) <= 5.0
    written = mod("predict").main([str(project / "demo" / "val.csv"), "--out", str(tmp_path / "p"), "--checkpoint",
                                   str(demo_run / "best.pt"), "--onnx", str(tmp_path / "model.onnx")])  # fmt: skip
    assert len(list(csv.DictReader(written.read_text(encoding="utf-8").splitlines()))) == 157


# --- pretrained fine-tuning, offline ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_bert(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with random weights and a WordPiece vocabulary of the demo, saved as a local folder."""
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_bert")
    tok = mod("tokenizer").train_tokenizer(demo_split("train").texts, vocab_size=1000)
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    pieces = [t for t, _ in vocab]  # [PAD] [UNK] [CLS] first, then the learned pieces
    (folder / "vocab.txt").write_text("\n".join([*pieces[:3], "[SEP]", "[MASK]", *pieces[3:]]) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), model_max_length=64).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab) + 2, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=0)  # fmt: skip
    BertForMaskedLM(config).save_pretrained(folder)  # an encoder without a classifier, as on the hub
    return folder


def test_fine_tunes_a_local_pretrained_folder_and_rebuilds_it_offline(project: Path, tiny_bert: Path) -> None:
    task = mod("task")
    cfg = config(model={"arch": "bert_base_uncased", "pretrained": str(tiny_bert)}, data={"batch_size": 16})
    loaded = task.build_data(cfg, 0, rank=0, world_size=1, pin_memory=False)
    meta = task.data_meta(cfg, loaded, log=lambda *a, **k: None)
    assert meta["pad_id"] == 0 and meta["max_length"] == 64  # the tokenizer's limit, below data.max_length 128
    model = task.build_model(cfg, meta, log=lambda *a, **k: None)
    ids, targets = next(iter(loaded.train_loader))
    assert ids[:, 0].eq(loaded.encoder.tokenizer.token_to_id("[CLS]")).all()  # BERT's own template
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = nn.functional.cross_entropy(model(ids), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    rebuilt = task.model_from_meta(meta)  # from the checkpoint's config alone: nothing read from the folder
    rebuilt.load_state_dict(model.state_dict())
    model.eval(), rebuilt.eval()
    with torch.no_grad():
        assert torch.allclose(model(ids), rebuilt(ids), atol=1e-6)
        longer = torch.cat([ids, torch.full((len(ids), 5), meta["pad_id"])], dim=1)
        assert torch.allclose(model(ids), model(longer), atol=1e-5)  # padding is masked


def test_a_hub_model_without_network_is_one_line(project: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import errors, pretrained; "
            "errors.run_main(lambda: pretrained.load_encoder('distilbert/distilbert-base-uncased', 128))")  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TRANSFORMERS_VERBOSITY": "error"}
    result = subprocess.run([sys.executable, "-c", code, str(project)], capture_output=True, text=True, env=env,
                            timeout=120, check=False)  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot load the pretrained model 'distilbert/distilbert-base-uncased'")
    assert "--local-dir DIR" in lines[0] and "model.pretrained: DIR" in lines[0]
