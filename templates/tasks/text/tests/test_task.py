"""Tests of the text part: the data checks, the tokenizer in the checkpoint, predict.py on files and --text, the
TF-IDF baseline in summary.json, the models under AMP, and fine-tuning a pretrained encoder offline (a tiny BERT
built from a config and saved to a temporary folder: nothing is downloaded)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import offline_pretrained, tiny_config, weights_args
from torch import nn

import baseline
import checkpoint
import model as model_file
import predict
import task
import train

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
# no network: the hub is offline, caches point at empty folders, URLs hit a closed port
CLOSED = "http://127.0.0.1:9"
OFFLINE = {"HF_HUB_OFFLINE": "1", "https_proxy": CLOSED, "HTTPS_PROXY": CLOSED, "http_proxy": CLOSED,
           "HTTP_PROXY": CLOSED, "TRANSFORMERS_VERBOSITY": "error"}  # fmt: skip


def tiny_args(data: Path, out: Path, *extra: str, weights: list[str] | None = None) -> list[str]:
    """One epoch on tiny_data; ``weights``: train.py's weights flags (default: the tests', conftest.weights_args)."""
    return ["--data", str(data), "--out", str(out), "--workers", "0", "--epochs", "1",
            *(weights_args() if weights is None else weights), "--set", "data.batch_size=8",
            "--set", "training.warmup_epochs=0", *extra]  # fmt: skip


def script(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / name), *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch from scratch, or fine-tuning tiny_bert in a fine-tuning project."""
    out = tmp_path_factory.mktemp("run")
    train.main(tiny_args(tiny_data, out))
    return out


# --- data ----------------------------------------------------------------------------------------------------


def test_a_file_that_is_not_utf8_stops_the_run_in_one_line(tiny_data: Path, tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_bytes((tiny_data / "train.csv").read_bytes())
    (tmp_path / "val.csv").write_bytes(b"text,label\nfine,food\ncaf\xe9,love\n")
    result = script("train.py", *tiny_args(tmp_path, tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "val.csv is not UTF-8: byte 0xe9 at offset 24 (line 3)" in result.stderr


def test_a_label_only_in_val_is_an_error(tiny_data: Path, tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_bytes((tiny_data / "train.csv").read_bytes())
    (tmp_path / "val.csv").write_text("text,label\nthe match ended in a draw,sports\n", encoding="utf-8")
    with pytest.raises(task.data.DataError, match="val has labels that train lacks: 'sports'"):
        train.main(tiny_args(tmp_path, tmp_path / "run"))


# --- the run's outputs -----------------------------------------------------------------------------------------


def test_the_checkpoint_carries_its_tokenizer_and_the_summary_its_macro_f1(tiny_run: Path) -> None:
    best = torch.load(tiny_run / "best.pt", weights_only=True)
    meta = best["meta"]
    assert meta["classes"] == ["computers", "food", "love"] and isinstance(meta["tokenizer"], str)
    encoder = task.encoder_from_meta(meta)  # rebuilt from the checkpoint alone
    assert encoder.vocab_size == meta["vocab_size"] and encoder.pad_id == meta["pad_id"]
    assert 0 <= best["metrics"]["val_macro_f1"] <= 100
    summary = json.loads((tiny_run / "summary.json").read_text(encoding="utf-8"))
    assert summary["best_val_acc1"] == pytest.approx(best["metrics"]["val_acc1"])


def test_the_tests_fine_tune_the_local_tiny_bert_where_the_project_fine_tunes(tiny_run: Path) -> None:
    """A fine-tuning project's tests (the core's too) run on the pretrained path, on a folder built here."""
    meta = torch.load(tiny_run / "best.pt", weights_only=True)["meta"]
    if CONFIG["model"]["pretrained"]:
        assert meta["pretrained"] == offline_pretrained() and Path(meta["pretrained"]).is_dir()
        assert json.loads(meta["hf_config"])["model_type"] == "bert"
    else:
        assert meta["pretrained"] is None and meta["hf_config"] is None


def test_the_baseline_adds_its_scores_to_the_summary(tiny_data: Path, tiny_run: Path) -> None:
    scores = baseline.main(["--data", str(tiny_data), "--out", str(tiny_run)])
    summary = json.loads((tiny_run / "summary.json").read_text(encoding="utf-8"))
    assert summary["baseline_val_acc1"] == scores["baseline_val_acc1"] and 0 <= scores["baseline_val_acc1"] <= 100
    assert 0 <= summary["baseline_val_macro_f1"] <= 100 and "best_val_acc1" in summary  # the network's kept
    assert scores["majority_val_acc1"] == pytest.approx(100 / 3)


def test_predict_takes_text_files_csvs_and_literal_texts(tiny_data: Path, tiny_run: Path, tmp_path: Path) -> None:
    with open(tmp_path / "new.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("id", "text"), ("7", "The soup was cold")])
    (tmp_path / "new.txt").write_text("My computer crashed\n\nI miss you\n", encoding="utf-8")
    written = predict.main([str(tmp_path / "new.txt"), str(tmp_path / "new.csv"), "--text", "Pass the salt",
                            "--text", "Reboot it", "--out", str(tmp_path / "p"), "--top-k", "2",
                            "--checkpoint", str(tiny_run / "best.pt")])  # fmt: skip
    rows = list(csv.DictReader(written.read_text(encoding="utf-8").splitlines()))
    assert [(Path(r["file"]).name, r["line"], r["text"]) for r in rows] == [
        ("new.txt", "1", "My computer crashed"), ("new.txt", "3", "I miss you"), ("new.csv", "2", "The soup was cold"),
        ("--text", "1", "Pass the salt"), ("--text", "2", "Reboot it")]  # fmt: skip
    assert list(rows[0]) == ["file", "line", "text", "label_1", "prob_1", "label_2", "prob_2"]
    assert all(r["label_1"] in ("computers", "food", "love") and 1 >= float(r["prob_1"]) >= float(r["prob_2"])
               for r in rows)  # fmt: skip
    only_texts = predict.main(["--text", "Hello", "--out", str(tmp_path / "q"), "--checkpoint",
                               str(tiny_run / "best.pt")])  # fmt: skip
    assert len(list(csv.DictReader(only_texts.read_text(encoding="utf-8").splitlines()))) == 1


# --- the models ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(model_file.VARIANTS))
def test_every_model_trains_under_bf16_autocast_and_ignores_padding(arch: str) -> None:
    """AMP as train.py runs it on CPU (bf16 autocast): finite loss and gradients for the RNNs too; padding
    columns do not change the logits (the models derive their mask from the padding id)."""
    torch.manual_seed(0)
    m = model_file.build_model(arch, 3, 200, 0)
    ids = torch.randint(1, 200, (4, 12))
    ids[1, 7:] = 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = nn.functional.cross_entropy(m(ids), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    m.eval()
    with torch.no_grad():
        wider = torch.cat([ids, torch.zeros(4, 5, dtype=ids.dtype)], dim=1)
        assert torch.allclose(m(ids), m(wider), atol=1e-5)


# --- fine-tuning a pretrained encoder, offline -----------------------------------------------------------------


def test_fine_tunes_a_local_pretrained_folder_then_predicts_from_the_checkpoint_alone(
    tiny_data: Path, tiny_bert: Path, tmp_path: Path
) -> None:
    weights = ["--pretrained", str(tiny_bert)]
    args = tiny_args(tiny_data, tmp_path / "run", "--set", "training.lr=0.001", weights=weights)
    summary = train.main(args)
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert best["meta"]["pretrained"] == str(tiny_bert) and best["meta"]["hf_config"]
    assert best["meta"]["max_length"] == min(64, CONFIG["data"]["max_length"])  # the model's limit applies
    assert summary["best_val_acc1"] >= 0
    model, _ = checkpoint.load_model(tmp_path / "run" / "best.pt")  # rebuilt from its config: no folder read
    assert any(name.startswith("model.bert.") for name, _ in model.named_parameters())
    written = predict.main(["--text", "The cake was delicious", "--out", str(tmp_path / "p"), "--checkpoint",
                            str(tmp_path / "run" / "best.pt")])  # fmt: skip
    assert next(csv.DictReader(written.open(encoding="utf-8")))["label_1"] in ("computers", "food", "love")


def test_a_hub_model_without_network_is_one_line(tiny_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    args = tiny_args(tiny_data, tmp_path / "run", weights=["--pretrained", "distilbert/distilbert-base-uncased"])
    result = script("train.py", *args, env={**OFFLINE, "HF_HOME": str(tmp_path / "hf")})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot load the pretrained model 'distilbert/distilbert-base-uncased'")
    assert "model.pretrained: DIR" in lines[0]


def test_a_pretrained_only_model_cannot_train_from_scratch(tiny_data: Path) -> None:
    cfg = tiny_config(tiny_data)
    cfg["model"].update(arch="distilbert_base_uncased", pretrained=False)
    meta = task.data_meta(cfg, task.build_data(cfg, 0, rank=0, world_size=1, pin_memory=False), log=lambda *a: None)
    with pytest.raises(task.ProjectError, match="trains from scratch only as one of"):
        task.build_model(cfg, meta, log=lambda *a: None)
