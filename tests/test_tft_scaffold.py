"""When the advice picks the Temporal Fusion Transformer, scaffold generates a project on pytorch-forecasting
(templates/tasks/time-series-tft) for targets served from Python, and an owned model in its place elsewhere.

No torch and no pytorch-forecasting here: these check the decision and the rendered files; the project's own tests
run in tests/test_generated_project.py (test_tft_project_passes_its_own_tests_offline)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tomllib
import yaml

from archadvisor import engine
from archadvisor.catalog import Catalog
from archadvisor.errors import InputError
from archadvisor.recommendation import Recommendation
from archadvisor.resources import templates_dir
from archadvisor.ruleset import load_rules
from archadvisor.scaffold import ScaffoldError, render_project, write_project
from archadvisor.spec import build_spec

TFT = "temporal_fusion_transformer"
# many related series with long histories: the forecasting tree's choice is TFT (rule ts.data.many_series)
MANY_SERIES = dict(task="time-series", images=200000, series=500)
DEMO = dict(task="time-series", images=444, frequency="MS", compute="cpu", target="cloud-cpu", arch=TFT)


def rec_for(**inputs: Any) -> Recommendation:
    rules = load_rules()
    return engine.recommend(build_spec(**inputs), rules, Catalog(rules))


def test_the_tree_picks_tft_and_scaffold_generates_it_on_pytorch_forecasting() -> None:
    rec = rec_for(**MANY_SERIES)
    assert rec.architecture.name == TFT and rec.decided_by is not None
    assert rec.generated is not None and not rec.generated.substitute
    assert (rec.generated.name, rec.generated.module) == (TFT, "pytorch_forecasting")
    assert "pytorch-forecasting" in rec.generated.why and "no ONNX" in rec.generated.why
    assert any("has no supported torchscript export" in w for w in rec.warnings), rec.warnings
    files = render_project(rec, name="tft")
    assert {"train.py", "predict.py", "series.py", "config.py", "config.yaml", "pyproject.toml", "README.md"} <= set(
        files
    )
    assert "model.py" not in files and "checkpoint.py" not in files, "no owned model, no core files"


def test_forced_tft_on_cloud_cpu_says_the_onnx_plan_does_not_apply() -> None:
    rec = rec_for(**DEMO)
    assert rec.generated is not None and rec.generated.module == "pytorch_forecasting"
    assert any("no supported onnx export" in w and "onnxruntime" in w for w in rec.warnings), rec.warnings


def test_an_on_device_target_gets_an_owned_model_in_place_of_tft() -> None:
    """The tree's TFT for a target whose runtime needs an exported graph (jetson: TensorRT from ONNX): the
    best-ranked owned model, with the reason; a forced --arch there is refused, with the reason in the warnings."""
    rules = load_rules()
    catalog = Catalog(rules)
    spec = build_spec(**MANY_SERIES)
    sel = engine.select(spec, rules, catalog)
    assert sel.winner.name == TFT
    generated = engine._generated(spec._replace(target="jetson"), sel.winner, sel)
    assert generated is not None and generated.substitute and generated.module != "pytorch_forecasting"
    assert "jetson" in generated.why and "no ONNX" in generated.why and generated.name in generated.why

    forced = rec_for(task="time-series", images=5000, target="jetson", arch=TFT)
    assert forced.generated is None
    assert any("cloud-gpu and cloud-cpu targets only" in w for w in forced.warnings), forced.warnings


def test_the_recommendation_round_trips_through_json_and_a_tampered_task_is_refused() -> None:
    rec = rec_for(**DEMO)
    again = Recommendation.from_json(json.loads(json.dumps(rec.to_json())))
    assert again.generated == rec.generated
    assert render_project(again, name="tft") == render_project(rec, name="tft")
    tampered = rec.to_json()
    tampered["task"] = "time-series-classification"
    with pytest.raises(ScaffoldError, match="is a time-series project"):
        render_project(Recommendation.from_json(tampered), name="tft")
    tampered = rec.to_json()
    tampered["generated"]["module"] = "pytorch_forecasting.evil"
    with pytest.raises(InputError, match="generated.module"):
        Recommendation.from_json(tampered)


def _config_module(project: Path) -> Any:
    spec = importlib.util.spec_from_file_location("tft_config", project / "config.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_rendered_project_carries_the_recipe_the_pins_and_the_demo(tmp_path: Path) -> None:
    rec = rec_for(**DEMO)
    project = tmp_path / "tft"
    write_project(render_project(rec, name="tft"), project)
    cfg = yaml.safe_load((project / "config.yaml").read_text(encoding="utf-8"))
    assert _config_module(project).check(cfg, "config.yaml") == cfg, "the generated config passes its own schema"
    assert rec.training is not None
    t = rec.training
    assert (cfg["training"]["lr"], cfg["training"]["epochs"], cfg["data"]["batch_size"]) == (
        t.lr,
        t.epochs,
        t.batch_size,
    )
    assert cfg["training"]["gradient_clip_val"] == t.grad_clip_norm and cfg["model"]["dropout"] == t.dropout
    assert cfg["data"]["frequency"] == "MS" and cfg["trainer"]["accelerator"] == "cpu"
    deps = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert "pytorch-forecasting==1.8.0" in deps and "pandas>=2.2,<3.1" in deps
    assert any(d.startswith("lightning>=2.6,<2.7") for d in deps)
    demo = templates_dir() / "tasks" / "time-series" / "demo"
    assert (project / "demo" / "co2_monthly.csv").read_bytes() == (demo / "co2_monthly.csv").read_bytes()
    readme = (project / "README.md").read_text(encoding="utf-8")
    for gap in (
        "No ONNX or TorchScript export",
        "No exact resume",
        "No weights-only checkpoint loading",
        "No run lock",
    ):
        assert gap in readme
    manifest = yaml.safe_load((project / ".archadvisor.yaml").read_text(encoding="utf-8"))
    assert manifest["arch"] == TFT and manifest["model_file"] == "templates/tasks/time-series-tft/"


def test_the_config_schema_names_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    project = tmp_path / "tft"
    write_project(render_project(rec_for(**DEMO), name="tft"), project)
    config = _config_module(project)
    cfg = yaml.safe_load((project / "config.yaml").read_text(encoding="utf-8"))
    for section, key, value, needle in [
        ("model", "hiden_size", 8, "unknown key model.hiden_size"),
        ("training", "lr", "fast", "training.lr must be a number"),
        ("trainer", "strategy", "fsdp", "trainer.strategy must be one of auto, ddp"),
        ("data", "known_reals", "price", "data.known_reals must be a list of column names"),
    ]:
        bad = json.loads(json.dumps(cfg))
        bad[section][key] = value
        with pytest.raises(config.ProjectError, match=needle):
            config.check(bad, "config.yaml")


def test_scaffolding_tft_imports_neither_torch_nor_pytorch_forecasting(tmp_path: Path) -> None:
    code = (
        "import sys, json\n"
        "from archadvisor.cli import app\n"
        "try:\n"
        f"    app(['scaffold', '--task', 'time-series', '--images', '444', '--frequency', 'MS', '--compute', 'cpu',"
        f" '--target', 'cloud-cpu', '--arch', '{TFT}', '--out', {str(tmp_path / 'p')!r}])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'pytorch_forecasting', 'lightning', 'pandas'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    assert (tmp_path / "p" / "train.py").is_file()


def test_scaffold_refuses_a_forced_tft_for_an_on_device_target_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "p"
    args = ["scaffold", "--task", "time-series", "--images", "5000", "--target", "jetson", "--arch", TFT, "--out"]
    result = subprocess.run([sys.executable, "-m", "archadvisor", *args, str(out)], cwd=Path(__file__).resolve().parents[1],
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "cloud-gpu and cloud-cpu targets only" in lines[0] and "patchtst" in lines[0]
    assert not out.exists()


def test_tft_is_an_alias_of_the_temporal_fusion_transformer() -> None:
    """--arch tft resolves to the time-series table's TFT row (and scaffolds the same project); for a task whose
    table has no TFT it is an invalid --arch, and the zoo's aliases do not list it."""
    rules = load_rules()
    catalog = Catalog(rules)
    assert catalog.external_model("tft") is catalog.external_model(TFT) is not None
    assert "tft" not in catalog.aliases and catalog.canonical("tft") == TFT
    rec = rec_for(**{**DEMO, "arch": "tft"})
    assert rec.architecture.name == TFT
    assert rec.generated is not None and (rec.generated.name, rec.generated.module) == (TFT, "pytorch_forecasting")
    aliased, named = render_project(rec, name="tft"), render_project(rec_for(**DEMO), name="tft")
    answers = ".archadvisor.yaml"  # the answers the project was generated from: --arch as given
    assert {k: v for k, v in aliased.items() if k != answers} == {k: v for k, v in named.items() if k != answers}
    with pytest.raises(InputError, match=r"'tft'"):
        rec_for(task="time-series-classification", images=50, classes=2, length=150, arch="tft")
    with pytest.raises(InputError, match=r"expected one of .*temporal_fusion_transformer.*\btft\b"):
        rec_for(**{**DEMO, "arch": "tfx"})
