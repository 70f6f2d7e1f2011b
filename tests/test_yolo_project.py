"""A YOLO top choice (issue 11): a project on ultralytics' own trainer, or, with --permissive, the closest
permissive model, said in the output, the trace and the recommendation's ``generated`` field (never a silent swap).

* scaffold decisions, through the CLI: the ultralytics project for a YOLO top choice and for ``--arch yolo...``;
  ``--permissive`` (with or without ``--arch``) gives a torchvision detector and says why;
* the rendered project: the recipe's values as ultralytics' train arguments, AGPL-3.0 in README and pyproject,
  ruff-clean, and rendered without importing torch or ultralytics;
* slow: ultralytics installed into a folder of its own (the registry is reachable at install time only), then
  the project's own tests run offline: one epoch at 64 px, evaluate, ONNX export checked against onnxruntime,
  predict from the checkpoint and from the ONNX file.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_generated_project import ENV, OFFLINE, run
from typer.testing import CliRunner

from archadvisor.catalog import Catalog
from archadvisor.cli import app
from archadvisor.engine import recommend
from archadvisor.recommendation import Recommendation
from archadvisor.ruleset import load_rules
from archadvisor.scaffold import render_project, write_project
from archadvisor.spec import build_spec
from archadvisor.ultralytics_project import LICENSE_NOTICE, MODULE, NOT_GUARANTEED, REQUIREMENT

# real-time on a Jetson: the rules' top choice is YOLO11n (ultralytics, AGPL-3.0)
YOLO_FLAGS = ["--task", "detection", "--images", "2000", "--classes", "10", "--latency-ms", "20", "--target", "jetson"]
YOLO_INPUTS = dict(task="detection", images=2000, classes=10, latency_ms=20, target="jetson")
TORCHVISION = {"ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_fpn",
               "fasterrcnn_mobilenet_v3_large_320_fpn", "fasterrcnn_resnet50_fpn_v2", "fcos_resnet50_fpn",
               "retinanet_resnet50_fpn_v2"}  # fmt: skip


def scaffold(tmp_path: Path, *flags: str) -> tuple[Path, str]:
    out = tmp_path / "project"
    result = CliRunner().invoke(app, ["scaffold", *flags, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def yolo_rec(**changes: object) -> Recommendation:
    rules = load_rules()
    return recommend(build_spec(**{**YOLO_INPUTS, **changes}), rules, Catalog(rules))


def test_a_yolo_top_choice_generates_the_ultralytics_project_and_says_so(tmp_path: Path) -> None:
    out, output = scaffold(tmp_path, *YOLO_FLAGS)
    assert "scaffolded project (yolo11n, yolo11n)" in output
    assert f"licence: {LICENSE_NOTICE}" in output and NOT_GUARANTEED[0] in output
    assert not (out / "model.py").exists() and not (out / "checkpoint.py").exists(), "not the PyTorch core"
    assert "YOLO(" in (out / "train.py").read_text() and (out / "demo" / "digits.npz").is_file()
    config = yaml.safe_load((out / "config.yaml").read_text())
    rec = yolo_rec().to_json()
    t = rec["training"]
    assert config["model"] == {"arch": "yolo11n", "yaml": "yolo11n.yaml", "weights": None}
    assert config["train"]["optimizer"] == "SGD" and config["train"]["lr0"] == t["lr"] == 0.01
    assert config["train"]["momentum"] == t["optimizer"]["momentum"] == 0.937
    assert (config["train"]["batch"], config["train"]["nbs"]) == (t["batch_size"], t["effective_batch_size"])
    assert config["train"]["lrf"] == pytest.approx(t["min_lr"] / t["lr"]) and config["train"]["cos_lr"] is False
    assert (config["train"]["epochs"], config["train"]["imgsz"]) == (t["epochs"], t["image_size"])
    ops = {op["name"]: op["params"] for op in rec["augmentation"]["ops"]}
    assert config["train"]["mosaic"] == ops["mosaic"]["p"]
    assert config["train"]["close_mosaic"] == ops["mosaic"]["close_last_epochs"]
    assert config["train"]["hsv_s"] == ops["hsv"]["s"] and config["train"]["fliplr"] == ops["horizontal_flip"]["p"]
    assert config["train"]["plots"] is False, "plots download a font"
    readme = (out / "README.md").read_text()
    assert "## Licence: AGPL-3.0" in readme and LICENSE_NOTICE in readme
    assert all(item in readme for item in NOT_GUARANTEED)
    pyproject = (out / "pyproject.toml").read_text()
    assert f'"{REQUIREMENT}"' in pyproject and 'license = "AGPL-3.0-only"' in pyproject
    manifest = yaml.safe_load((out / ".archadvisor.yaml").read_text())
    assert manifest["model_file"] == "ultralytics:yolo11n.yaml"


def test_the_recommendation_records_what_is_generated_and_why() -> None:
    rec = yolo_rec()
    g = rec.generated
    assert g is not None and (g.name, g.module, g.build, g.substitute) == ("yolo11n", MODULE, "yolo11n.yaml", False)
    assert "ultralytics" in g.why and "AGPL-3.0" in g.why and "--permissive" in g.why
    assert [t.because for t in rec.trace if t.rule == "scaffold.ultralytics"] == [g.why]
    assert rec.architecture.scaffold and not any("no project template" in w for w in rec.warnings)
    again = Recommendation.from_json(json.loads(json.dumps(rec.to_json())))  # a saved recommendation reads back
    assert again.generated == g


def test_permissive_generates_a_torchvision_detector_and_names_what_it_left_out(tmp_path: Path) -> None:
    out, output = scaffold(tmp_path, *YOLO_FLAGS, "--permissive")
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"]["arch"] in TORCHVISION and (out / "model.py").is_file()
    assert "--permissive left out the ultralytics YOLO models (" in output and "yolo11n" in output
    rec = yolo_rec(permissive=True)
    assert rec.generated is not None and rec.generated.module == "detection_tv"
    assert any("--permissive left out the ultralytics YOLO models" in t.because for t in rec.trace)


def test_a_forced_yolo_under_permissive_is_replaced_and_the_reason_given(tmp_path: Path) -> None:
    rec = yolo_rec(arch="yolo11n", permissive=True)
    g = rec.generated
    assert g is not None and g.substitute and g.name in TORCHVISION
    assert g.why.startswith("yolo11n runs on ultralytics (AGPL-3.0) and --permissive asks for permissive licences")
    out, output = scaffold(tmp_path, *YOLO_FLAGS, "--arch", "yolo11n", "--permissive")
    assert f"note: {g.why}" in output and "in place of yolo11n" in (out / "README.md").read_text()


@pytest.mark.parametrize(("arch", "model_yaml"), [("yolo11s", "yolo11s.yaml"), ("yolov8s_p2", "yolov8s-p2.yaml")])
def test_arch_names_a_yolo_model(tmp_path: Path, arch: str, model_yaml: str) -> None:
    out, _ = scaffold(tmp_path, "--task", "detection", "--images", "5000", "--arch", arch)
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["yaml"] == model_yaml


def test_a_yolo_segmentation_choice_still_falls_back_to_torchvision_with_the_reason() -> None:
    rules = load_rules()
    rec = recommend(build_spec(task="instance-segmentation", images=2000, classes=3, target="jetson"),
                    rules, Catalog(rules))  # fmt: skip
    assert rec.architecture.name == "yolo11n_seg"
    assert rec.generated is not None and rec.generated.substitute and rec.generated.module == "detection_tv"


def test_the_project_is_ruff_clean_and_rendered_without_torch_or_ultralytics(tmp_path: Path) -> None:
    pytest.importorskip("ruff")
    saved = tmp_path / "rec.json"
    saved.write_text(json.dumps(yolo_rec().to_json()))
    code = (
        "import json, sys; from pathlib import Path\n"
        "from archadvisor.scaffold import render_project, write_project\n"
        "from archadvisor.recommendation import Recommendation\n"
        f"rec = Recommendation.from_json(json.loads(Path({str(saved)!r}).read_text()))\n"
        f"write_project(render_project(rec, name='digits'), Path({str(tmp_path / 'p')!r}), force=False)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'ultralytics', 'cv2')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        ruff = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=tmp_path / "p", capture_output=True,
                              text=True, check=False)  # fmt: skip
        assert ruff.returncode == 0, ruff.stdout + ruff.stderr


# what ultralytics imports that this interpreter may lack (import name -> the pip requirements that provide it);
# opencv's headless build: the same cv2 without the GUI libraries. Installed with --no-deps: torch, numpy,
# matplotlib, pillow, pyyaml and scipy come from this interpreter, and nothing replaces them.
RUNTIME = {"cv2": ["opencv-python-headless>=4.7"], "polars": ["polars>=0.20", "polars-runtime-32"],
           "psutil": ["psutil>=5.8"], "thop": ["ultralytics-thop>=2.2.3"],
           "requests": ["requests>=2.23", "charset-normalizer", "idna", "urllib3", "certifi"]}  # fmt: skip


@pytest.mark.slow
def test_the_ultralytics_project_passes_its_own_tests_offline(tmp_path: Path) -> None:
    """The registry is reached only by pip, here; the project's tests then run with every proxy closed."""
    write_project(render_project(yolo_rec(), name="yolo_digits"), tmp_path / "project", force=False)
    site = tmp_path / "site"
    missing = [req for module, reqs in RUNTIME.items() if importlib.util.find_spec(module) is None for req in reqs]
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--target", str(site), REQUIREMENT, *missing]  # fmt: skip
    installed = subprocess.run(pip, capture_output=True, text=True, timeout=300, check=False)
    if installed.returncode != 0:
        pytest.skip(f"ultralytics could not be installed from the registry: {installed.stderr.strip()[-300:]}")
    env = {**ENV, **OFFLINE, "PYTHONPATH": str(site)}
    run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"], cwd=tmp_path / "project",
        timeout=600, env=env)  # fmt: skip
    config_dir = tmp_path / "project" / ".ultralytics"
    assert not list(tmp_path.glob("project/**/*.ttf")) and not list(config_dir.glob("**/*.pt")), "nothing downloaded"
