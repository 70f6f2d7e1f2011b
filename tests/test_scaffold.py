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
                 "--name digits", "--out . --force"):  # fmt: skip
        assert flag in command
    # the rules chose the architecture: --arch would record it as forced (and change config.yaml's provenance)
    assert "--arch" not in command
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
    rec["generated"]["module"] = module  # a tampered rec.json: refused when read ...
    with pytest.raises(InputError, match="generated.module"):
        render_project(rec, name="x")
    # ... and again where the file is read, for a value that never went through a file (defence in depth)
    typed = Recommendation.from_json(json.loads(FIXTURE.read_text(encoding="utf-8")))
    tampered = typed._replace(generated=typed.generated._replace(module=module))
    with pytest.raises(ScaffoldError, match="model file"):
        render_typed(tampered, name="x")


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


# --- writing, all or nothing (issue 14, section 3) -----------------------------------------------------------


def dead_pid() -> int:
    """The id of a process that has exited (a killed scaffold's staging folder carries such an id)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(child.stdout)


def test_force_stages_everything_before_replacing_anything(
    rec: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while staging (here: the disk fills after 2 files) leaves the old project exactly as it was."""
    old = render_project(rec, name="old")
    write_project(old, tmp_path)
    (tmp_path / "notes.txt").write_text("mine\n")
    before = snapshot(tmp_path)
    real_open, written = open, []

    def filling_disk(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode and ".archadvisor-staging-" in str(path):
            written.append(path)
            if len(written) > 2:
                raise OSError(28, "No space left on device")
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", filling_disk)
    with pytest.raises(ScaffoldError, match="cannot write .*No space left"):
        write_project(render_project(rec, name="new"), tmp_path, force=True)
    monkeypatch.undo()
    assert snapshot(tmp_path) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".archadvisor-staging")]


KILL_AFTER = """
import json, os, signal, sys
from pathlib import Path
import archadvisor.scaffold as scaffold
from archadvisor.recommendation import Recommendation

rec = json.loads(Path(sys.argv[1]).read_text())
rec["training"]["lr"] = 0.5  # a different recipe: config.yaml, README.md and the manifest change
files = scaffold.render_project(Recommendation.from_json(rec), name="digits")
phase, real_stage = sys.argv[3], scaffold._stage
if phase == "staging":  # SIGKILL after the first staged file
    def stage(files, staging):
        real_stage(dict(list(files.items())[:1]), staging)
        os.kill(os.getpid(), signal.SIGKILL)
    scaffold._stage = stage
else:  # SIGKILL after moving the first file in
    real_replace = os.replace
    def replace(src, dst):
        real_replace(src, dst)
        os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace
scaffold.write_project(files, Path(sys.argv[2]), force=True)
"""


@pytest.mark.parametrize("phase", ["staging", "moving"])
def test_a_killed_force_leaves_the_old_project_or_is_completed_next_time(
    rec: dict[str, Any], tmp_path: Path, phase: str
) -> None:
    """SIGKILL while staging: the project is untouched (and the next run removes the staging folder); SIGKILL
    while moving files in: the next scaffold completes the move before it writes, so no old file stays beside a
    new one and the manifest describes the files that are there."""
    write_project(render_project(rec, name="digits"), tmp_path)
    (tmp_path / "notes.txt").write_text("mine\n")
    before = snapshot(tmp_path)
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER, str(FIXTURE), str(tmp_path), phase], check=False)
    assert killed.returncode == -9
    staging = [p for p in tmp_path.iterdir() if p.name.startswith(".archadvisor-staging-")]
    assert len(staging) == 1
    if phase == "staging":
        assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(staging[0].name)} == before
    changed = copy.deepcopy(rec)
    changed["training"]["lr"] = 0.5
    new = render_project(changed, name="digits")
    actions = write_project(new, tmp_path, force=True)  # the next scaffold: recovers, then writes
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".archadvisor-staging-")]
    assert all((tmp_path / rel).read_bytes() == data for rel, data in new.items())
    assert (tmp_path / "notes.txt").read_text() == "mine\n"
    manifest = yaml.safe_load((tmp_path / ".archadvisor.yaml").read_text())
    for rel, digest in manifest["files"].items():
        assert digest == "sha256:" + hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest(), rel
    assert {a.status for a in actions} <= {"identical", "conflict"}


def test_stale_staging_beside_a_fresh_folder_is_removed(rec: dict[str, Any], tmp_path: Path) -> None:
    stale = tmp_path / f".digits.archadvisor-staging-{dead_pid()}-abc"
    (stale / "tests").mkdir(parents=True)
    (stale / "train.py").write_text("half\n")
    live = tmp_path / f".digits.archadvisor-staging-{os.getpid()}-xyz"  # a scaffold still running
    live.mkdir()
    write_project(render_project(rec, name="digits"), tmp_path / "digits")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["digits", live.name])


@pytest.mark.parametrize(
    ("make", "blocked"),
    [
        (lambda p: (p / "config.yaml").mkdir(), "config.yaml is a directory"),
        (lambda p: (p / "tests").write_text("my notes\n"), "tests is a file"),
    ],
    ids=["config.yaml-dir", "tests-file"],
)
def test_force_over_a_folder_or_file_in_the_way_writes_nothing(
    rec: dict[str, Any], tmp_path: Path, make: Any, blocked: str
) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    make(tmp_path)
    before = snapshot(tmp_path)
    entries = sorted(p.name for p in tmp_path.iterdir())
    result = cli("scaffold", "--from", str(FIXTURE), "--out", str(tmp_path), "--force")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and blocked in result.output, result.output
    assert "Traceback" not in result.output
    assert snapshot(tmp_path) == before and sorted(p.name for p in tmp_path.iterdir()) == entries


def cli(*args: str) -> Any:
    from typer.testing import CliRunner

    from archadvisor.cli import app

    return CliRunner().invoke(app, list(args), prog_name="archadvisor")


def test_regenerate_on_an_untouched_project_replaces_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest's `regenerate` command, run as documented in the project, finds every file identical."""
    import shlex

    out = tmp_path / "digits_demo"
    first = cli("scaffold", "--task", "classification", "--images", "1437", "--classes", "10", "--image-size", "32",
                "--compute", "cpu", "--target", "cloud-cpu", "--no-pretrained", "--no-hflip", "--out", str(out))  # fmt: skip
    assert first.exit_code == 0, first.output
    before = snapshot(out)
    command = shlex.split(yaml.safe_load((out / ".archadvisor.yaml").read_text())["regenerate"])
    assert command[:2] == ["archadvisor", "scaffold"]
    monkeypatch.chdir(out)
    again = cli(*command[1:])
    assert again.exit_code == 0, again.output
    assert f"0 created, 0 replaced, {len(before)} unchanged" in again.output
    assert snapshot(out) == before


# --- --out that cannot hold a project: one line, exit 2, nothing written (issue 14, section 6) ----------------


def refused(out: Path, *, match: str) -> None:
    result = cli("scaffold", "--from", str(FIXTURE), "--out", str(out))
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output and match in result.output, result.output


def test_out_under_a_device_file_is_refused() -> None:
    refused(Path("/dev/null/project"), match="/dev/null is not a directory")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="no /proc on this system")
def test_out_in_a_virtual_file_system_is_refused() -> None:
    refused(Path("/proc/archadvisor-project"), match="virtual file system (proc)")
    assert not Path("/proc/archadvisor-project").exists()


def test_out_as_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    refused(tmp_path / "link", match="is a symbolic link")
    refused(tmp_path / "dangling", match="dangling symbolic link")
    assert list((tmp_path / "empty").iterdir()) == [] and not (tmp_path / "nowhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "empty", "link"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders: permissions do not bind")
def test_out_under_a_read_only_parent_is_refused(tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        refused(parent / "a" / "project", match="permission denied")
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(0o755)


def test_a_failed_fresh_write_removes_the_folders_it_made(
    rec: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read-only case as root can run: a write that fails midway leaves no parent folder and no staging."""
    import archadvisor.scaffold as scaffold

    def full_disk(files: Any, staging: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scaffold, "_stage", full_disk)
    with pytest.raises(ScaffoldError, match="No space left on device"):
        write_project(render_project(rec, name="digits"), tmp_path / "a" / "b" / "digits")
    assert list(tmp_path.iterdir()) == []


# --- values reach the files through serializers (issue 14, section 2) -----------------------------------------

HOSTILE = "x #:\u2028  pretrained: their_weights.pt\x85lr: 1000\u2029root: /etc #\"'{}[]&*!|>%@`"


def test_hostile_text_in_every_text_field_stays_text(rec: dict[str, Any]) -> None:
    """Line breaks YAML honours (NEL, U+2028/9) in every free-text field end no comment: config.yaml parses,
    without duplicate keys, to the same values, and the text fields that are values come back verbatim."""
    baseline = yaml.safe_load(render_project(rec, name="digits")["config.yaml"])
    hostile = copy.deepcopy(rec)
    for p in hostile["provenance"].values():
        p.update(rule=f"rule{HOSTILE}", reason=HOSTILE)
    hostile["architecture"]["why"] = HOSTILE
    hostile["architecture"]["top1_source"] = HOSTILE
    for alt in hostile["alternatives"]:
        alt["why"] = HOSTILE
    hostile["warnings"] = [HOSTILE]
    hostile["deployment"].update(target=HOSTILE, runtime=HOSTILE, latency_basis=HOSTILE)
    hostile["augmentation"]["level"] = HOSTILE
    files = render_project(hostile, name="digits")
    text = files["config.yaml"].decode()
    for line in text.splitlines():
        assert not line.lstrip().startswith(("pretrained: their", "lr: 1000", "root: /etc")), line
    parsed = unique_keys_load(text)
    expected = copy.deepcopy(baseline)
    expected["export"].update(target=HOSTILE, runtime=HOSTILE)
    assert parsed == expected
    assert yaml.safe_load(files[".archadvisor.yaml"])["name"] == "digits"
    import tomllib

    assert tomllib.loads(files["pyproject.toml"].decode())["project"]["name"] == "digits"


def unique_keys_load(text: str) -> Any:
    """yaml.safe_load that fails on a duplicate key (PyYAML keeps the last one silently)."""

    class Loader(yaml.SafeLoader):
        """A loader of its own: the constructor added below changes no other loader."""

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        keys = [loader.construct_object(k) for k, _ in node.value]
        assert len(keys) == len(set(keys)), f"duplicate keys in {keys}"
        return loader.construct_mapping(node)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


def test_unet_encoder_files_read_statically_equal_the_model_files_own() -> None:
    """scaffold reads which zoo file a U-Net variant loads without importing torch; unet.required_files agrees."""
    pytest.importorskip("torch")
    from archadvisor.resources import load_model_module
    from archadvisor.scaffold import encoder_files

    unet = load_model_module("unet")
    for arch in unet.VARIANTS:
        assert encoder_files("unet", arch) == unet.required_files(arch), arch
    assert encoder_files("segmentation_tv", "deeplabv3_resnet50") == []
