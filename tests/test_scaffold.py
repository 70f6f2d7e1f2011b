"""The project renderer: what it renders, what it refuses, and how it writes (no torch involved)."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from archadvisor import __version__
from archadvisor.errors import InputError
from archadvisor.recommendation import Provenance, Recommendation
from archadvisor.resources import templates_dir
from archadvisor.scaffold import (
    FileAction,
    ScaffoldError,
    plan,
    project_name,
    supported_augmentations,
    write_project,
)
from archadvisor.scaffold import render_project as render_typed


def render_project(rec: dict[str, Any], *, name: str) -> dict[str, bytes]:
    """Render a recommendation given in its JSON form (as a saved, possibly tampered, file would be)."""
    return render_typed(Recommendation.from_json(copy.deepcopy(rec)), name=name)


def why(rec: dict[str, Any], key: str) -> str:
    return Provenance(**rec["provenance"][key]).text()


FIXTURE = Path(__file__).parent / "fixtures" / "rec_digits.json"
CORE = templates_dir() / "core"
TASK = templates_dir() / "tasks" / "classification"


@pytest.fixture
def rec() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file under root with its bytes, mode and mtime (ns): equal snapshots mean untouched."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def config_lines(files: dict[str, bytes]) -> dict[str, str]:
    """config.yaml's `key: value  # comment` lines by key (last wins; keys are unique enough for these tests)."""
    lines = {}
    for line in files["config.yaml"].decode().splitlines():
        if ":" in line and not line.lstrip().startswith(("#", "-")):
            lines[line.split(":", 1)[0].strip()] = line
    return lines


# --- rendering -------------------------------------------------------------------------------------------


def test_renders_the_whole_project_reproducibly(rec: dict[str, Any]) -> None:
    files = render_project(rec, name="digits")
    core = {".gitignore", "README.md", "pyproject.toml", "ruff.toml", "config.yaml", "train.py", "evaluate.py",
            "predict.py", "export.py", "checkpoint.py", "errors.py", "tests/test_core.py"}  # fmt: skip
    task = {"task.py", "data.py", "demo/digits.npz", "tests/conftest.py", "tests/test_task.py"}
    assert core | task | {".archadvisor.yaml", "model.py", "weights.py"} <= set(files)
    assert not any(path.endswith(".j2") or path.split("/")[-1].startswith("_") for path in files), "no partials"
    assert files == render_project(copy.deepcopy(rec), name="digits"), "rendering must be reproducible"
    models = templates_dir() / "models"
    assert files["model.py"] == (models / f"{rec['architecture']['module']}.py").read_bytes()
    assert files["weights.py"] == (models / "weights.py").read_bytes()
    # non-template files, binary included, are copied byte for byte: the core's and the task's
    for rel in ("train.py", "predict.py", "tests/test_core.py"):
        assert files[rel] == (CORE / rel).read_bytes()
    for rel in ("task.py", "demo/digits.npz", "tests/test_task.py"):
        assert files[rel] == (TASK / rel).read_bytes()


def test_config_yaml_carries_the_recipe_and_its_rules(rec: dict[str, Any]) -> None:
    files = render_project(rec, name="digits")
    cfg = yaml.safe_load(files["config.yaml"])
    t = rec["training"]
    assert cfg["model"]["arch"] == rec["architecture"]["name"]
    assert cfg["model"]["small_input"] is t["small_input"]
    assert cfg["data"]["root"] is None, "the default run trains on the bundled demo"
    assert cfg["data"]["image_size"] == t["image_size"]
    assert cfg["data"]["batch_size"] == t["batch_size"]
    for key in ("epochs", "lr", "min_lr", "weight_decay", "warmup_epochs", "grad_accum_steps", "grad_clip_norm",
                "label_smoothing", "ema_decay", "early_stopping_patience", "amp", "channels_last", "schedule"):  # fmt: skip
        assert cfg["training"][key] == t[key], key
    assert cfg["training"]["optimizer"] == t["optimizer"]
    assert cfg["augmentation"]["mixup_alpha"] == rec["augmentation"]["mixup_alpha"]
    assert [op["name"] for op in cfg["augmentation"]["ops"]] == [op["name"] for op in rec["augmentation"]["ops"]]
    assert cfg["export"]["quantize"] == rec["deployment"]["quantize"]
    # each value names the rule that chose it, "(default)" when the recommendation has no provenance for it
    assert cfg["training"]["monitor"] == t["monitor"]
    assert cfg["data"]["eval_crop_pct"] == rec["augmentation"]["eval_crop_pct"]
    lines = config_lines(files)
    assert lines["lr"].endswith("# " + why(rec, "training.lr"))
    assert lines["arch"].endswith("# " + why(rec, "architecture"))
    assert why(rec, "training.optimizer") in lines["optimizer"]
    assert lines["label_smoothing"].endswith("# " + why(rec, "training.label_smoothing"))
    min_lr = why(rec, "training.min_lr")
    assert lines["min_lr"].endswith(f"# where cosine, poly and linear end: {min_lr}")
    # a value without provenance says so
    del rec["provenance"]["training.label_smoothing"]
    assert config_lines(render_project(rec, name="digits"))["label_smoothing"].endswith("# (default)")


def test_provenance_never_names_the_tools_own_files_and_stays_in_its_comment(rec: dict[str, Any]) -> None:
    # a saved recommendation cannot carry a newline into a comment (refused on load), and records never do
    assert Provenance("a.b", "rules/x.yaml", "line one\n# model: evil").text() == "a.b: line one # model: evil"
    files = render_project(rec, name="digits")
    text = files["config.yaml"].decode()
    for internal in ("archadvisor/recipe.py", "rules/recipes.yaml", "rules/classification.yaml"):
        assert internal not in text
    cfg = yaml.safe_load(text)
    assert cfg["training"]["lr"] == rec["training"]["lr"]


@pytest.mark.parametrize("hflip", [True, False])
def test_config_ops_are_the_recipes_ops_as_decided(hflip: bool) -> None:
    """Each setting is decided once, in the recipe: the flip (by --hflip) and the crop size (training.image_size)
    reach config.yaml as the recommendation has them, nothing added, stripped or rewritten on the way."""
    from archadvisor.catalog import Catalog
    from archadvisor.engine import recommend
    from archadvisor.ruleset import load_rules
    from archadvisor.spec import build_spec

    rules = load_rules()
    typed = recommend(build_spec(images=20_000, image_size=128, hflip=hflip), rules, Catalog(rules))
    ops = yaml.safe_load(render_typed(typed, name="p")["config.yaml"])["augmentation"]["ops"]
    assert ops == [{"name": op.name, **op.params} for op in typed.augmentation.ops]
    assert ("horizontal_flip" in [op["name"] for op in ops]) is hflip
    crop = next(op for op in ops if op["name"] == "random_resized_crop")
    assert "size" not in crop  # data.image_size is the crop size


def test_missing_recommendation_key_fails_loudly(rec: dict[str, Any]) -> None:
    del rec["training"]["lr"]
    with pytest.raises(InputError, match="training.lr"):
        render_project(rec, name="digits")


def test_manifest_records_how_to_regenerate(rec: dict[str, Any]) -> None:
    rec["rules_digest"] = "sha256:0123abcd"
    files = render_project(rec, name="digits")
    manifest = yaml.safe_load(files[".archadvisor.yaml"])
    assert manifest["archadvisor_version"] == __version__
    assert manifest["rules_digest"] == "sha256:0123abcd"
    assert manifest["inputs"] == rec["inputs"]
    assert manifest["arch"] == rec["architecture"]["name"]
    assert manifest["name"] == "digits"
    command = manifest["regenerate"]
    for flag in ("--task classification", "--images 1437", "--image-size 32", "--no-pretrained", "--no-hflip",
                 f"--arch {rec['architecture']['name']}", "--name digits"):  # fmt: skip
        assert flag in command
    # the digests are those of the rendered files, so edits to the project can be told apart
    for path, digest in manifest["files"].items():
        assert digest == "sha256:" + hashlib.sha256(files[path]).hexdigest()
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}", files[".archadvisor.yaml"].decode()), "no timestamps"


def test_readme_explains_the_choice_and_the_commands(rec: dict[str, Any]) -> None:
    readme = render_project(rec, name="digits")["README.md"].decode()
    assert rec["architecture"]["why"] in readme
    for alt in rec["alternatives"]:
        assert alt["name"] in readme
    for command in ("python train.py", "python evaluate.py", "python export.py", "python predict.py", "torchrun",
                    "#SBATCH", "--resume --epochs"):  # fmt: skip
        assert command in readme
    # parameters at the project's class count, not ImageNet's; no article before a model name
    assert f"{rec['architecture']['params_m_for_classes']}M parameters at 10 classes" in readme
    assert "1000 classes" not in readme
    assert not re.search(r"\bA \*\*|\bA [a-z_]+\d", readme)


def test_readme_says_when_the_imagenet_top1_was_measured_at_another_size(rec: dict[str, Any]) -> None:
    rec["architecture"].update(imagenet_top1=84.2, top1_image_size=384, params_m_for_classes=None, params_m=21.5)
    readme = render_project(rec, name="digits")["README.md"].decode()
    assert "ImageNet top-1 84.2% measured at 384 px (this recipe trains at 32 px)" in readme
    assert "21.5M parameters with an ImageNet head (1000 classes)" in readme
    rec["architecture"]["top1_image_size"] = 32
    assert "measured at" not in render_project(rec, name="digits")["README.md"].decode()


def test_pyproject_declares_the_dependencies_and_extras(rec: dict[str, Any]) -> None:
    import tomllib

    pyproject = tomllib.loads(render_project(rec, name="digits")["pyproject.toml"].decode())
    deps = " ".join(pyproject["project"]["dependencies"])
    for package in ("torch", "torchvision", "pyyaml", "tqdm", "matplotlib"):
        assert package in deps
    extras = pyproject["project"]["optional-dependencies"]
    assert {"onnx", "onnxruntime", "onnxscript"} <= {d.split(">")[0] for d in extras["export"]}
    assert any(d.startswith("pytest") for d in extras["test"])
    assert pyproject["project"]["name"] == "digits"
    assert pyproject["project"]["license"] == "MIT", "an SPDX string: setuptools >= 77 warns about a table"
    assert pyproject["build-system"]["requires"] == ["setuptools>=77"]


@pytest.mark.parametrize(
    ("folder", "expected"),
    [("my-project", "my_project"), ("3d", "p3d"), ("class", "class_project"), ("My Project!", "my_project"),
     ("digits", "digits"), ("---", "project"), ("café-ml", "cafe_ml"), ("match", "match_project")],
)  # fmt: skip
def test_project_name_derives_a_package_name_from_the_folder(rec: dict[str, Any], folder: str, expected: str) -> None:
    name = project_name(folder)
    assert name == expected
    assert name.isidentifier()
    render_project(rec, name=name)  # accepted by the renderer


# --- what cannot be scaffolded -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["my-project", "1st", "class", "", "a b", "../x"])
def test_name_must_be_a_python_identifier(rec: dict[str, Any], name: str) -> None:
    with pytest.raises(ScaffoldError, match="identifier"):
        render_project(rec, name=name)


def test_other_tasks_say_what_can_be_generated(rec: dict[str, Any]) -> None:
    rec["task"] = "speech-recognition"
    with pytest.raises(ScaffoldError, match="classification"):
        render_project(rec, name="x")


def test_a_model_without_a_model_file_is_refused(rec: dict[str, Any]) -> None:
    rec["generated"] = None
    with pytest.raises(ScaffoldError, match="no model file"):
        render_project(rec, name="x")


@pytest.mark.parametrize("module", ["../../etc/passwd", "/etc/passwd", "weights", "resnet.py", "_x"])
def test_module_name_cannot_point_outside_the_model_folder(rec: dict[str, Any], module: str) -> None:
    rec["generated"]["module"] = module  # a tampered rec.json
    with pytest.raises(ScaffoldError, match="model file"):
        render_project(rec, name="x")


def test_unknown_augmentation_is_refused_with_the_supported_list(rec: dict[str, Any]) -> None:
    rec["augmentation"]["ops"].append({"name": "mosaic", "params": {}})
    with pytest.raises(ScaffoldError, match="random_resized_crop"):
        render_project(rec, name="x")


def test_renderer_reads_the_augmentations_the_project_builds() -> None:
    ops = supported_augmentations()
    assert {"random_resized_crop", "horizontal_flip", "rand_augment", "random_erasing"} <= set(ops)
    # every op the engine can emit for images is one the project builds
    from archadvisor.recipe import derive_augmentation

    for policy in ("none", "rand_augment", "trivial_augment"):
        aug = derive_augmentation({"aug_level": "very-heavy", "policy": policy, "random_erasing": 0.25}, image_size=224,
                                  hflip=True, task="classification", small_images=False)  # fmt: skip
        assert {o.name for o in aug.ops} <= set(ops)


# --- writing -----------------------------------------------------------------------------------------------


def test_writes_into_a_new_folder(rec: dict[str, Any], tmp_path: Path) -> None:
    files = render_project(rec, name="digits")
    out = tmp_path / "a" / "digits"
    actions = write_project(files, out, force=False)
    assert {a.status for a in actions} == {"create"}
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == set(files)
    for rel, data in files.items():
        assert (out / rel).read_bytes() == data
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "train.py").stat().st_mode & 0o777 == 0o666 & ~umask
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["digits"], "no staging folder left behind"


def test_empty_folder_is_fine(rec: dict[str, Any], tmp_path: Path) -> None:
    write_project(render_project(rec, name="digits"), tmp_path, force=False)
    assert (tmp_path / "train.py").is_file()


def test_non_empty_folder_is_refused_and_left_untouched(rec: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    (tmp_path / "config.yaml").write_text("my: config\n")
    before = snapshot(tmp_path)
    with pytest.raises(ScaffoldError, match="not empty.*--force") as info:
        write_project(render_project(rec, name="digits"), tmp_path, force=False)
    assert "\n" not in str(info.value)
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "notes.txt"]


def test_force_overwrites_generated_files_and_keeps_the_rest(rec: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    (tmp_path / "config.yaml").write_text("my: config\n")
    files = render_project(rec, name="digits")
    actions = {a.path: a.status for a in write_project(files, tmp_path, force=True)}
    assert actions["config.yaml"] == "conflict"
    assert actions["train.py"] == "create"
    assert (tmp_path / "config.yaml").read_bytes() == files["config.yaml"]
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_plan_reports_create_identical_conflict(rec: dict[str, Any], tmp_path: Path) -> None:
    files = render_project(rec, name="digits")
    assert {a.status for a in plan(files, tmp_path / "new")} == {"create"}
    write_project(files, tmp_path, force=False)
    (tmp_path / "train.py").write_text("# my edits\n")
    (tmp_path / "README.md").unlink()
    statuses = {a.path: a.status for a in plan(files, tmp_path)}
    assert statuses["train.py"] == "conflict"
    assert statuses["README.md"] == "create"
    assert statuses["config.yaml"] == "identical"
    assert FileAction("data.py", "identical") in plan(files, tmp_path)


@pytest.mark.parametrize("path", ["../escape.py", "/tmp/absolute.py", "a/../../escape.py", "C:\\x.py", ""])
def test_paths_escaping_the_project_are_refused(tmp_path: Path, path: str) -> None:
    out = tmp_path / "project"
    with pytest.raises(ScaffoldError, match="refusing"):
        write_project({"ok.py": b"", path: b"x"}, out, force=False)
    assert list(tmp_path.iterdir()) == [], "nothing may be written when any path is refused"


def test_symlink_escape_is_refused(rec: dict[str, Any], tmp_path: Path) -> None:
    out, outside = tmp_path / "project", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "demo").symlink_to(outside)
    with pytest.raises(ScaffoldError, match="outside"):
        write_project(render_project(rec, name="digits"), out, force=True)
    assert list(outside.iterdir()) == []


# --- the generated code itself ----------------------------------------------------------------------------


def test_generated_project_is_ruff_clean(rec: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("ruff")
    write_project(render_project(rec, name="digits"), tmp_path, force=False)
    ruff = [sys.executable, "-m", "ruff"]
    for args in (
        ["check", "--line-length", "120", "--no-cache", "."],
        ["format", "--check", "--line-length", "120", "--no-cache", "."],
    ):
        result = subprocess.run(ruff + args, cwd=tmp_path, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_scaffold_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import json, sys; from pathlib import Path\n"
        "from archadvisor.scaffold import render_project, write_project\n"
        "from archadvisor.recommendation import Recommendation\n"
        f"rec = Recommendation.from_json(json.loads(Path({str(FIXTURE)!r}).read_text()))\n"
        f"write_project(render_project(rec, name='digits'), Path({str(tmp_path / 'p')!r}), force=False)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'numpy')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
    imported = [
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    ]
    assert "archadvisor.scaffold" in imported
    assert not [m for m in imported if m.split(".")[0] in ("torch", "torchvision")]
