"""`archadvisor scaffold --task text`: what the advice tells the scaffolder, and what the project gets.

The owned models are generated from templates/models/text.py (build = the variant); the pretrained encoders from
the same file with build ``hf:<hub id>``, which the project fine-tunes through transformers. Nothing here trains
or downloads (tests/test_generated_project.py trains the demo and runs a project's own tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml
from typer.testing import CliRunner

from archadvisor.catalog import Catalog
from archadvisor.cli import app
from archadvisor.engine import recommend
from archadvisor.recommendation import Recommendation
from archadvisor.resources import templates_dir
from archadvisor.ruleset import load_rules
from archadvisor.scaffold import ScaffoldError, render_project
from archadvisor.spec import build_spec

OWNED = ("text_transformer_small", "bilstm_classifier", "bigru_classifier", "fasttext_bag")
HUB_IDS = {"modernbert_base": "answerdotai/ModernBERT-base", "deberta_v3_base": "microsoft/deberta-v3-base",
           "minilm_l12_h384": "microsoft/MiniLM-L12-H384-uncased",
           "distilbert_base_uncased": "distilbert/distilbert-base-uncased",
           "bert_base_uncased": "google-bert/bert-base-uncased"}  # fmt: skip


def text_rec(**inputs: Any) -> Recommendation:
    rules = load_rules()
    return recommend(build_spec(task="text", **inputs), rules, Catalog(rules))


def rendered(rec: Recommendation) -> tuple[dict[str, Any], dict[str, Any], str]:
    files = render_project(rec, name="texts")
    config = yaml.safe_load(files["config.yaml"])
    return config, tomllib.loads(files["pyproject.toml"].decode()), files["README.md"].decode()


def test_pretrained_allowed_fine_tunes_a_hub_encoder_with_the_bert_recipe() -> None:
    rec = text_rec(images=2000)
    assert rec.generated is not None and rec.generated.module == "text"
    assert rec.generated.build == f"hf:{HUB_IDS[rec.generated.name]}" and not rec.generated.substitute
    assert rec.task_settings.max_length == 256 and rec.training.monitor.metric == "val_acc1"
    assert not any("scaffold" in w or "template" in w for w in rec.warnings)
    config, pyproject, readme = rendered(rec)
    assert config["model"] == {"arch": rec.generated.name, "num_classes": 2, "pretrained": HUB_IDS[rec.generated.name],
                               "dropout": rec.training.dropout}  # fmt: skip
    t = config["training"]
    assert t["lr"] == 2e-5 and t["schedule"] == "linear" and t["grad_clip_norm"] == 1.0
    assert t["monitor"] == {"metric": "val_acc1", "mode": "max"} and config["data"]["max_length"] == 256
    total = rec.training.epochs * rec.training.steps_per_epoch
    assert t["warmup_steps"] == rec.training.warmup_steps and 0.06 <= t["warmup_steps"] / total <= 0.07
    deps = " ".join(pyproject["project"]["dependencies"])
    assert "tokenizers" in deps and "scikit-learn" in deps and "transformers" in deps
    assert pyproject["project"]["optional-dependencies"]["pretrained"][0].startswith("transformers")
    assert f"huggingface-cli download {HUB_IDS[rec.generated.name]} --local-dir DIR" in readme


def test_from_scratch_trains_an_owned_model_and_its_tokenizer() -> None:
    rec = text_rec(images=2000, pretrained=False)
    assert rec.generated is not None and rec.generated.build == rec.generated.name in OWNED
    config, pyproject, readme = rendered(rec)
    assert config["model"]["pretrained"] is False and config["model"]["arch"] == rec.generated.name
    assert config["training"]["lr"] == 1e-3 and config["training"]["epochs"] == 20
    assert config["data"]["tokenizer"] == "wordpiece" and config["augmentation"] == {"ops": []}
    assert "transformers" not in " ".join(pyproject["project"]["dependencies"])
    assert "pretrained" in pyproject["project"]["optional-dependencies"]
    assert "python baseline.py" in readme and "--text" in readme


@pytest.mark.parametrize("arch", OWNED)
def test_an_owned_model_trains_from_scratch_even_where_pretrained_weights_are_allowed(arch: str) -> None:
    rec = text_rec(images=2000, arch=arch)
    assert rec.generated is not None and rec.generated.build == arch
    assert rec.training.pretrained is False  # no published weights to fine-tune
    # AdamW 1e-3; the fastText bag 1e-2 without weight decay (rule lr.task.text_fasttext: 1e-3 underfits it)
    assert (rec.training.lr, rec.training.weight_decay) == ((1e-2, 0.0) if arch == "fasttext_bag" else (1e-3, 0.01))
    assert rec.training.grad_clip_norm == (None if arch == "fasttext_bag" else 1.0)  # fastText does not clip
    assert rendered(rec)[0]["model"]["pretrained"] is False


@pytest.mark.parametrize("arch", sorted(HUB_IDS))
def test_every_hub_encoder_is_generated_for_fine_tuning_only(arch: str) -> None:
    rec = text_rec(images=2000, arch=arch)
    assert rec.generated is not None and rec.generated.build == f"hf:{HUB_IDS[arch]}"
    assert rendered(rec)[0]["model"]["pretrained"] == HUB_IDS[arch]
    tampered = rec.to_json()
    tampered["training"]["pretrained"] = False
    with pytest.raises(ScaffoldError, match="generated only for fine-tuning"):
        render_project(Recommendation.from_json(tampered), name="texts")


def test_the_hub_ids_the_catalog_names_are_the_projects_own() -> None:
    """pretrained.py resolves model.pretrained: true through its HUB_IDS; the catalog's builds say the same."""
    import ast

    source = (templates_dir() / "tasks" / "text" / "pretrained.py").read_text(encoding="utf-8")
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.Assign) and n.targets[0].id == "HUB_IDS")
    assert ast.literal_eval(node.value) == HUB_IDS
    catalog = Catalog(load_rules())
    assert {e.name: e.build for e in catalog.external if e.build and e.build.startswith("hf:")} == {
        name: f"hf:{hub}" for name, hub in HUB_IDS.items()
    }


def test_archs_lists_the_owned_models_with_the_params_their_code_has() -> None:
    """The catalog's counts are measured from templates/models/text.py at a vocabulary of 8000, 2 classes."""
    torch = pytest.importorskip("torch")
    import importlib.util

    spec = importlib.util.spec_from_file_location("text_models", templates_dir() / "models" / "text.py")
    assert spec is not None and spec.loader is not None
    models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(models)
    catalog = {e.name: e for e in Catalog(load_rules()).external if e.task == "text"}
    assert set(models.VARIANTS) == set(OWNED)
    for arch in OWNED:
        torch.manual_seed(0)
        params = sum(p.numel() for p in models.build_model(arch, 2, 8000, 0).parameters())
        assert catalog[arch].params_m == round(params / 1e6, 2), arch
        assert "vocabulary of 8000 pieces, 2 classes" in catalog[arch].metric
    result = CliRunner().invoke(app, ["archs", "--task", "text", "-f", "json"])
    assert result.exit_code == 0
    assert {r["name"] for r in yaml.safe_load(result.stdout)} >= set(OWNED)


def test_cli_scaffolds_a_text_project(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["scaffold", "--task", "text", "--samples", "471", "--classes", "4",
                                      "--compute", "cpu", "--no-pretrained", "--out", str(tmp_path / "p")])  # fmt: skip
    assert result.exit_code == 0, result.output
    project = tmp_path / "p"
    for name in (
        "train.py",
        "task.py",
        "data.py",
        "tokenizer.py",
        "pretrained.py",
        "baseline.py",
        "model.py",
        "demo/train.csv",
        "demo/val.csv",
        "tests/conftest.py",
        "tests/test_task.py",
        "tests/test_core.py",
    ):
        assert (project / name).is_file(), name  # fmt: skip
    assert not list(project.rglob("_*.j2"))
