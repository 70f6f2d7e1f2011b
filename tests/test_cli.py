"""The command line, in process with typer's CliRunner (issue 2, sections 4, 5 and 7).

What is pinned here:
- every output format of ``recommend`` (rich panels, json, yaml, markdown) and ``--save``;
- the recommendation's JSON contract (archadvisor/recommendation.py), for all eleven tasks
  (``assert_complete``, also used by test_hypothesis.py);
- ``explain`` (the decision path, which rule decided, flips that really flip), ``archs``, ``rules``,
  ``--rules DIR`` overrides, ``--version`` and shell completion;
- bad input: one ``error:`` line on stderr naming the flag, the value and the valid choices (with the
  closest match), exit code 2, never a traceback.

Nothing is mocked: every test runs the real rules in rules/ through the real engine.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from archadvisor import __version__
from archadvisor.catalog import load_catalog
from archadvisor.cli import app, app_for
from archadvisor.ruleset import load_rules
from archadvisor.vocab import COMPUTE, TARGETS, TASKS

FIXTURES = Path(__file__).parent / "fixtures"
GOOD_RULES = FIXTURES / "good_rules" / "prefer_resnet"

# A wide terminal so rich never wraps a rule id or a panel title in the middle.
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})

BASE = ["--task", "classification", "--images", "8000", "--target", "jetson"]

# --- the JSON contract (archadvisor/recommendation.py) ------------------------------------------------
TOP_KEYS = {
    "task",
    "inputs",
    "architecture",
    "alternatives",
    "training",
    "augmentation",
    "deployment",
    "trace",
    "warnings",
}
INPUT_KEYS = {"task", "images", "classes", "image_size", "compute", "gpus", "gpu_memory_gb", "latency_ms", "target",
              "pretrained", "object_size"}  # fmt: skip
ARCH_KEYS = {"name", "family", "params_m", "gmacs", "imagenet_top1", "reference", "why"}
TRAINING_KEYS = {"pretrained", "freeze", "image_size", "optimizer", "lr", "batch_size", "weight_decay", "epochs",
                 "warmup_epochs", "schedule", "label_smoothing", "dropout", "drop_path", "ema_decay",
                 "early_stopping_patience", "grad_accum_steps", "progressive_resizing"}  # fmt: skip
AUG_KEYS = {"level", "ops", "mixup_alpha", "cutmix_alpha"}
DEPLOY_KEYS = {"target", "export", "runtime", "precision", "expected_latency_ms"}
TRACE_KEYS = {"rule", "file", "because"}
# Tasks whose selection has ranked alternatives to offer (the issue: "at least 2 when the task has them").
TASKS_WITH_ALTERNATIVES = ("classification", "detection")
# Image-only augmentations: meaningless on text, code, tabular series or audio.
IMAGE_OPS = {"random_resized_crop", "horizontal_flip", "color_jitter", "rand_augment", "trivial_augment",
             "random_erasing", "mosaic"}  # fmt: skip
NON_IMAGE_TASKS = ("text", "code", "time-series", "text-generation", "speech-recognition")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def assert_complete(rec: dict[str, Any], *, task: str | None = None, target: str | None = None) -> None:
    """Fail unless ``rec`` is a complete Recommendation (its JSON contract) with sane values."""
    missing = TOP_KEYS - set(rec)
    assert not missing, f"top-level keys missing: {sorted(missing)}"
    if task is not None:
        assert rec["task"] == task
    assert INPUT_KEYS <= set(rec["inputs"]), sorted(INPUT_KEYS - set(rec["inputs"]))
    assert rec["inputs"]["task"] == rec["task"]

    arch = rec["architecture"]
    assert ARCH_KEYS <= set(arch), f"architecture lacks {sorted(ARCH_KEYS - set(arch))}"
    assert isinstance(arch["name"], str) and arch["name"]
    assert isinstance(arch["why"], str) and arch["why"].strip()
    assert isinstance(arch["reference"], str) and arch["reference"].strip()
    catalog = load_catalog()
    if rec["task"] == "classification":
        variant = catalog.get(arch["name"])
        assert variant is not None, f"{arch['name']} is not a catalog variant"
        assert arch["family"] == variant.family
        assert _number(arch["params_m"]) and arch["params_m"] > 0
        assert _number(arch["gmacs"]) and arch["gmacs"] > 0
    else:
        ext = catalog.external_model(arch["name"])
        assert ext is not None and ext.task == rec["task"], f"{arch['name']} is not a {rec['task']} model"

    alts = rec["alternatives"]
    assert isinstance(alts, list)
    for alt in alts:
        assert {"name", "why"} <= set(alt)
        assert alt["name"] != arch["name"], "the choice is listed as its own alternative"
        assert isinstance(alt["why"], str) and alt["why"].strip()
    assert len({a["name"] for a in alts}) == len(alts), "duplicate alternatives"
    if rec["task"] in TASKS_WITH_ALTERNATIVES:
        assert len(alts) >= 2, f"{rec['task']}: {len(alts)} alternatives, the contract says at least 2"

    t = rec["training"]
    assert TRAINING_KEYS <= set(t), f"training lacks {sorted(TRAINING_KEYS - set(t))}"
    assert isinstance(t["pretrained"], bool)
    optimizer = t["optimizer"]["name"] if isinstance(t["optimizer"], dict) else t["optimizer"]
    assert optimizer in ("adamw", "sgd"), optimizer
    assert _number(t["lr"]) and 0 < t["lr"] < 1, t["lr"]
    assert isinstance(t["batch_size"], int) and t["batch_size"] >= 1
    assert isinstance(t["grad_accum_steps"], int) and t["grad_accum_steps"] >= 1
    assert isinstance(t["epochs"], int) and t["epochs"] >= 1
    assert isinstance(t["warmup_epochs"], int) and 0 <= t["warmup_epochs"] < t["epochs"], (
        t["warmup_epochs"],
        t["epochs"],
    )
    from archadvisor.vocab import IMAGE_TASKS

    if rec["task"] in IMAGE_TASKS:
        assert isinstance(t["image_size"], int) and t["image_size"] >= 8
    else:  # text, code, time series, speech: no resolution
        assert t["image_size"] is None and rec["inputs"]["image_size"] is None
    assert _number(t["weight_decay"]) and t["weight_decay"] >= 0
    # a setting that does not apply to the task is null, never a classification value
    for key in ("label_smoothing", "dropout", "drop_path"):
        if rec["task"] == "classification":
            assert _number(t[key]) and 0 <= t[key] < 1, key
        else:
            assert t[key] is None or (_number(t[key]) and 0 <= t[key] < 1), key
    assert t["ema_decay"] is None or (_number(t["ema_decay"]) and 0 < t["ema_decay"] < 1)
    assert isinstance(t["early_stopping_patience"], int) and t["early_stopping_patience"] >= 1
    assert isinstance(t["schedule"], str) and t["schedule"]

    aug = rec["augmentation"]
    if rec["task"] in IMAGE_TASKS:  # elsewhere null where no augmentation applies
        assert aug is not None
    if aug is not None:
        assert AUG_KEYS <= set(aug), f"augmentation lacks {sorted(AUG_KEYS - set(aug))}"
        assert isinstance(aug["ops"], list)
        assert _number(aug["mixup_alpha"]) and aug["mixup_alpha"] >= 0
        assert _number(aug["cutmix_alpha"]) and aug["cutmix_alpha"] >= 0

    dep = rec["deployment"]
    assert DEPLOY_KEYS <= set(dep), f"deployment lacks {sorted(DEPLOY_KEYS - set(dep))}"
    assert dep["target"] == rec["inputs"]["target"]
    if target is not None:
        assert dep["target"] == target
    for key in ("export", "runtime", "precision"):
        assert isinstance(dep[key], str) and dep[key]
    if rec["task"] == "classification":
        assert _number(dep["expected_latency_ms"]) and dep["expected_latency_ms"] > 0

    assert isinstance(rec["trace"], list) and rec["trace"], "empty trace"
    for item in rec["trace"]:
        assert TRACE_KEYS <= set(item), item
        assert all(isinstance(item[k], str) and item[k] for k in TRACE_KEYS), item
    assert isinstance(rec["warnings"], list) and all(isinstance(w, str) and w for w in rec["warnings"])


# --- helpers -----------------------------------------------------------------------------------------
def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), prog_name="archadvisor")


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output
    return result


def rec_json(*args: str) -> dict[str, Any]:
    return json.loads(ok("recommend", *args, "--format", "json").stdout)


def assert_one_line_error(result: Result, *needles: str) -> str:
    """Exit code 2, exactly one non-empty stderr line starting with ``error:`` containing every needle."""
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 2, f"exit {result.exit_code}, expected 2: {result.output!r} {result.exception!r}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got {lines!r}"
    line = lines[0]
    assert line.startswith("error:"), line
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert result.stdout.strip() == "", f"an error printed output too: {result.stdout!r}"
    return line


# --- recommend: formats ------------------------------------------------------------------------------
def test_recommend_json_is_complete() -> None:
    rec = rec_json(*BASE)
    assert_complete(rec, task="classification", target="jetson")
    assert rec["inputs"]["images"] == 8000


def test_recommend_json_names_the_deciding_rule_in_the_trace() -> None:
    rec = rec_json(*BASE)
    decided = [t for t in rec["trace"] if t.get("decided")]
    assert len(decided) == 1, decided
    assert decided[0]["rule"] == rec["decided_by"]
    assert decided[0]["fired"] is True
    rule_files = {t["rule"]: t["file"] for t in rec["trace"]}
    # every rule of the classification selection was considered (fired or not) and traced
    sel = load_rules().selections["classification"]
    for rule in sel["rules"] + sel.get("constraints", []):
        assert rule["id"] in rule_files, f"{rule['id']} missing from the trace"
        assert rule_files[rule["id"]].endswith(".yaml")


def test_recommend_yaml_equals_json() -> None:
    as_json = rec_json(*BASE)
    as_yaml = yaml.safe_load(ok("recommend", *BASE, "--format", "yaml").stdout)
    assert as_yaml == as_json


def test_recommend_markdown_has_the_output_format_sections() -> None:
    text = ok("recommend", *BASE, "--format", "markdown").stdout
    rec = rec_json(*BASE)
    assert text.startswith("# ")
    for heading in ("Task analysis", "Architecture choice", "Model structure", "Training recipe", "Deployment",
                    "Expected performance"):  # fmt: skip
        assert f"## {heading}" in text, heading
    assert rec["architecture"]["name"] in text
    for alt in rec["alternatives"]:
        assert alt["name"] in text


def test_recommend_rich_panels_follow_the_guide_output_format() -> None:
    out = ok("recommend", *BASE).stdout
    for title in ("TASK ANALYSIS", "ARCHITECTURE CHOICE", "MODEL STRUCTURE", "OPTIMIZATION", "EXPECTED PERFORMANCE"):
        assert title in out, title
    assert rec_json(*BASE)["architecture"]["name"] in out


def test_recommend_is_deterministic() -> None:
    assert ok("recommend", *BASE, "--format", "json").stdout == ok("recommend", *BASE, "--format", "json").stdout


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml", ".md"])
def test_save_writes_the_same_recommendation(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"rec{suffix}"
    printed = ok("recommend", *BASE, "--format", "json", "--save", str(out)).stdout
    assert out.is_file()
    body = out.read_text(encoding="utf-8")
    if suffix == ".json":
        assert json.loads(body) == json.loads(printed)
    elif suffix in (".yaml", ".yml"):
        assert yaml.safe_load(body) == json.loads(printed)
    else:
        assert body == ok("recommend", *BASE, "--format", "markdown").stdout


def test_save_alongside_rich_panels(tmp_path: Path) -> None:
    out = tmp_path / "rec.json"
    printed = ok("recommend", *BASE, "--save", str(out)).stdout
    assert "ARCHITECTURE CHOICE" in printed
    with out.open(encoding="utf-8") as fh:
        saved = json.load(fh)
    assert saved == rec_json(*BASE)


def test_forced_arch_is_evaluated_and_its_broken_constraint_warned() -> None:
    rec = rec_json("--task", "classification", "--images", "8000", "--target", "ios", "--arch", "vit_large_patch16_224")
    assert_complete(rec, task="classification", target="ios")
    assert rec["architecture"]["name"] == "vit_large_patch16_224"
    assert rec["decided_by"] == "--arch"
    assert any("vit_large_patch16_224" in w and "ios" in w for w in rec["warnings"]), rec["warnings"]


def test_forced_arch_accepts_readable_alias() -> None:
    rec = rec_json("--images", "8000", "--arch", "vit_b_16")
    assert rec["architecture"]["name"] == "vit_base_patch16_224"


def test_forced_arch_that_fits_has_no_constraint_warning() -> None:
    rec = rec_json(*BASE)
    forced = rec_json(*BASE, "--arch", rec["architecture"]["name"])
    assert forced["architecture"]["name"] == rec["architecture"]["name"]
    assert not any("breaks a hard constraint" in w for w in forced["warnings"]), forced["warnings"]


def test_contradiction_with_a_forced_arch_is_a_warning() -> None:
    """A contradiction is answered, not refused: --latency-ms 5 --target cloud-cpu with ViT-L forced, with warnings."""
    rec = rec_json("--images", "8000", "--latency-ms", "5", "--target", "cloud-cpu", "--arch", "vit_large_patch16_224")
    assert_complete(rec, task="classification", target="cloud-cpu")
    assert rec["architecture"]["name"] == "vit_large_patch16_224"
    assert rec["deployment"]["expected_latency_ms"] > 5
    assert any("exceed" in w and "ms" in w for w in rec["warnings"]), rec["warnings"]


def test_an_impossible_latency_budget_still_gets_an_answer_and_a_warning() -> None:
    rec = rec_json("--images", "8000", "--latency-ms", "0.001", "--target", "cloud-cpu")
    assert_complete(rec, task="classification", target="cloud-cpu")
    assert rec["warnings"], "nothing meets 1 microsecond: the user must be told"


def test_samples_is_an_alias_of_images() -> None:
    assert rec_json("--samples", "8000") == rec_json("--images", "8000")


@pytest.mark.parametrize("task", TASKS)
def test_every_task_gets_a_complete_recommendation(task: str) -> None:
    rec = rec_json("--task", task, "--images", "5000")
    assert_complete(rec, task=task)


@pytest.mark.parametrize("task", ["text-generation", "speech-recognition"])
def test_foundation_model_tasks_render_in_every_format(task: str) -> None:
    args = ("--task", task, "--images", "5000")
    assert "ARCHITECTURE CHOICE" in ok("recommend", *args).stdout
    assert "## Architecture choice" in ok("recommend", *args, "--format", "markdown").stdout
    assert yaml.safe_load(ok("recommend", *args, "--format", "yaml").stdout)["task"] == task


def test_non_image_tasks_get_no_image_augmentation() -> None:
    """Honesty: random crops, flips, colour jitter and MixUp/CutMix of pixels mean nothing for text or audio."""
    offenders = {}
    for task in NON_IMAGE_TASKS:
        aug = rec_json("--task", task, "--images", "5000")["augmentation"]
        if aug is None:  # nothing applies: null, not a classification pipeline
            continue
        names = {op["name"] if isinstance(op, dict) else op for op in aug["ops"]}
        bad = sorted(names & IMAGE_OPS) + [f"{k} {aug[k]}" for k in ("mixup_alpha", "cutmix_alpha") if aug[k]]
        if bad:
            offenders[task] = bad
    assert not offenders, f"image augmentation recommended for non-image tasks: {offenders}"


def test_warnings_do_not_invent_parameter_counts() -> None:
    """Honesty: a model with no published size (a hosted API) must not be warned about as 'NNM parameters'."""
    offenders = {}
    for task in TASKS:
        rec = rec_json("--task", task, "--images", "5000")
        if rec["architecture"]["params_m"] is None:
            bad = [w for w in rec["warnings"] if "M parameters" in w]
            if bad:
                offenders[f"{task} ({rec['architecture']['name']})"] = bad
    assert not offenders, f"warnings quote a size the catalog does not have: {offenders}"


def test_external_alternatives_are_not_ranked_by_imagenet() -> None:
    """Honesty: ImageNet top-1 says nothing about detection, text, speech or video models."""
    offenders = {}
    for task in TASKS:
        if task == "classification":
            continue
        alts = rec_json("--task", task, "--images", "5000")["alternatives"]
        bad = [f"{a['name']}: {a['why']}" for a in alts if "ImageNet" in a["why"]]
        if bad:
            offenders[task] = bad
    assert not offenders, f"non-vision alternatives justified by ImageNet: {offenders}"


def test_detection_object_size_changes_the_trace() -> None:
    rec = rec_json("--task", "detection", "--images", "5000", "--object-size", "small")
    assert_complete(rec, task="detection")
    fired = {t["rule"] for t in rec["trace"] if t.get("fired")}
    assert "det.objects.small" in fired


def test_object_size_outside_detection_is_a_warning_not_an_error() -> None:
    rec = rec_json("--images", "5000", "--object-size", "small")
    assert rec["inputs"]["object_size"] is None
    assert any("--object-size" in w for w in rec["warnings"])


# --- explain -----------------------------------------------------------------------------------------
def test_explain_tree_shows_every_rule_the_decider_and_flips() -> None:
    out = ok("explain", *BASE).stdout
    assert "DECIDED" in out
    assert "flip" in out.lower()
    sel = load_rules().selections["classification"]
    for rule in sel["rules"] + sel.get("constraints", []):
        assert rule["id"] in out, f"{rule['id']} not shown by explain"
    rec = rec_json(*BASE)
    assert rec["decided_by"] in out


def test_explain_json_has_flips_and_agrees_with_recommend() -> None:
    data = json.loads(ok("explain", *BASE, "--format", "json").stdout)
    rec = rec_json(*BASE)
    assert data["architecture"] == rec["architecture"]["name"]
    assert data["decided_by"] == rec["decided_by"]
    assert isinstance(data["flips"], list) and data["flips"], "no flip found for a 8000-image jetson problem"
    for flip in data["flips"]:
        assert {"change", "architecture"} <= set(flip)
        assert flip["architecture"] != rec["architecture"]["name"]


def _apply(args: list[str], change: str) -> list[str]:
    """``args`` with one explain flip applied: ``--flag value``, ``--no-flag``/``--flag`` or ``no --flag``."""
    out = list(args)
    words = shlex.split(change)
    if words[0] == "no":  # "no --latency-ms": drop the flag
        i = out.index(words[1])
        del out[i : i + 2]
        return out
    flag = words[0]
    if len(words) == 1:  # a boolean switch
        return [a for a in out if a.lstrip("-").removeprefix("no-") != flag.lstrip("-").removeprefix("no-")] + [flag]
    if flag in out:
        out[out.index(flag) + 1] = words[1]
    else:
        out += words
    return out


@pytest.mark.parametrize(
    "args",
    [
        BASE,
        ["--task", "classification", "--images", "500", "--target", "cloud-cpu", "--latency-ms", "50"],
        ["--task", "classification", "--images", "200000", "--compute", "multi-gpu"],
    ],
    ids=["jetson-8k", "cloud-cpu-50ms", "multi-gpu-200k"],
)
def test_each_flip_really_flips_the_recommendation(args: list[str]) -> None:
    """The flips are claims about the engine: applying one must give the architecture it names."""
    data = json.loads(ok("explain", *args, "--format", "json").stdout)
    for flip in data["flips"]:
        flipped = rec_json(*_apply(args, flip["change"]))
        assert flipped["architecture"]["name"] == flip["architecture"], (flip, _apply(args, flip["change"]))


def test_explain_accepts_the_problem_flags_and_validates_format() -> None:
    assert_one_line_error(invoke("explain", *BASE, "--format", "yaml"), "--format", "'yaml'", "json")


# --- archs -------------------------------------------------------------------------------------------
def test_archs_table() -> None:
    out = ok("archs").stdout
    assert "catalog" in out
    for name in ("resnet50", "convnext_tiny", "efficientnet_v2_s", "mobilenet_v3_large", "yolov8s"):
        assert name in out


def test_archs_json_lists_the_whole_catalog() -> None:
    rows = json.loads(ok("archs", "--format", "json").stdout)
    catalog = load_catalog()
    assert {r["name"] for r in rows} == set(catalog.names()) | {e.name for e in catalog.external}


@pytest.mark.parametrize("family", ["ResNet", "resnet"])
def test_archs_family_filter(family: str) -> None:
    rows = json.loads(ok("archs", "--family", family, "--format", "json").stdout)
    assert rows and {r["family"] for r in rows} == {"ResNet"}
    assert {"resnet18", "resnet50"} <= {r["name"] for r in rows}
    assert "ResNet" in ok("archs", "--family", family).stdout


@pytest.mark.parametrize("task", ["detection", "speech-recognition", "classification"])
def test_archs_task_filter(task: str) -> None:
    rows = json.loads(ok("archs", "--task", task, "--format", "json").stdout)
    assert rows and {r["task"] for r in rows} == {task}


def test_archs_bad_family_and_task() -> None:
    assert_one_line_error(invoke("archs", "--family", "Resnett"), "--family", "'Resnett'", "did you mean 'ResNet'")
    assert_one_line_error(invoke("archs", "--task", "detectoin"), "--task", "did you mean 'detection'")
    assert_one_line_error(invoke("archs", "--format", "yaml"), "--format", "'yaml'")


# --- rules -------------------------------------------------------------------------------------------
def _n_files(line: str) -> int:
    return int(line.split("ok:")[1].split("files")[0])


def test_rules_validate_builtin_and_good_override() -> None:
    builtin = ok("rules", "validate").stdout
    assert builtin.startswith("ok:")
    with_dir = ok("rules", "validate", str(GOOD_RULES)).stdout
    assert with_dir.startswith("ok:")
    assert _n_files(with_dir) == _n_files(builtin) + len(list(GOOD_RULES.glob("*.yaml")))


def test_rules_validate_missing_dir() -> None:
    assert_one_line_error(invoke("rules", "validate", "/no/such/dir"), "/no/such/dir")


def test_rules_show_lists_every_rule_with_its_condition() -> None:
    out = ok("rules", "show").stdout
    rs = load_rules()
    for sel in rs.selections.values():
        for rule in sel["rules"] + sel.get("constraints", []):
            assert rule["id"] in out
    for row in rs.targets.values():
        assert row["id"] in out
    for table in rs.tables:
        for row in table["rows"]:
            assert row["id"] in out
    assert "images < 10000" in out  # conditions are rendered readably, not as YAML


def test_rules_show_kind_filter() -> None:
    out = ok("rules", "show", "--kind", "deployment").stdout
    assert "deploy.jetson" in out and "cls.dataset.small" not in out
    assert_one_line_error(invoke("rules", "show", "--kind", "selections"), "--kind", "did you mean 'selection'")


def test_rules_override_changes_the_recommendation() -> None:
    base = rec_json("--images", "8000")
    assert base["architecture"]["name"] != "resnet50", "pick another fixture: the built-in rules already say resnet50"
    over = rec_json("--images", "8000", "--rules", str(GOOD_RULES))
    assert_complete(over, task="classification")
    assert over["architecture"]["name"] == "resnet50"
    entry = next(t for t in over["trace"] if t["rule"] == "cls.dataset.small")
    assert Path(entry["file"]).name == "classification_override.yaml"
    assert "team policy" in entry["because"]
    assert over["decided_by"] == "cls.dataset.small"


def test_rules_override_shows_in_rules_show_and_explain() -> None:
    out = ok("rules", "show", "--kind", "selection", "--rules", str(GOOD_RULES)).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("cls.dataset.small "))
    assert "resnet50" in line and "efficientnet_v2_s" not in line
    assert "classification_override.yaml" in ok("explain", "--images", "8000", "--rules", str(GOOD_RULES)).stdout


def test_rules_on_archs_uses_the_override_dir() -> None:
    rows = json.loads(ok("archs", "--family", "ResNet", "--format", "json", "--rules", str(GOOD_RULES)).stdout)
    assert rows


# --- the on-disk rules cache must be invisible ------------------------------------------------------
def _cli(args: list[str], cache_home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    return subprocess.run([sys.executable, "-m", "archadvisor", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [["recommend", *BASE, "--format", "json"], ["explain", *BASE, "--format", "json"],
     ["recommend", "--images", "8000", "--rules", str(GOOD_RULES), "--format", "json"]],
    ids=["recommend", "explain", "override"],
)  # fmt: skip
def test_cold_warm_and_corrupt_rules_cache_give_the_same_answer(tmp_path: Path, args: list[str]) -> None:
    """A fresh process with an empty cache, one with a warm cache and one whose cache files were
    corrupted all print exactly what the in-process command prints."""
    expected = ok(*args).stdout
    cold = _cli(args, tmp_path)
    assert cold.returncode == 0, cold.stderr
    warm = _cli(args, tmp_path)
    assert warm.returncode == 0, warm.stderr
    for f in tmp_path.rglob("*"):
        if f.is_file():
            f.write_text('{"catalog": "garbage"', encoding="utf-8")
    corrupt = _cli(args, tmp_path)
    assert corrupt.returncode == 0, corrupt.stderr
    assert json.loads(cold.stdout) == json.loads(expected)
    assert warm.stdout == cold.stdout
    assert corrupt.stdout == cold.stdout


def test_bad_rules_are_reported_even_with_a_warm_cache(tmp_path: Path) -> None:
    bad = FIXTURES / "bad_rules" / "unknown_variable"
    assert _cli(["recommend", *BASE, "--format", "json"], tmp_path).returncode == 0
    for _ in range(2):
        result = _cli(["recommend", *BASE, "--rules", str(bad)], tmp_path)
        assert result.returncode == 2 and "num_images" in result.stderr and "Traceback" not in result.stderr


# --- version, help, completion -----------------------------------------------------------------------
def test_version() -> None:
    assert ok("--version").stdout == f"archadvisor {__version__}\n"


def test_version_matches_the_package_metadata() -> None:
    from importlib.metadata import version

    assert version("archadvisor") == __version__


def test_help_lists_the_commands_and_completion() -> None:
    out = ok("--help").stdout
    for cmd in ("recommend", "explain", "archs", "rules"):
        assert cmd in out
    assert "--install-completion" in out


def test_no_arguments_prints_help() -> None:
    result = invoke()
    assert result.exit_code in (0, 2)  # click prints help for a bare group; either code is conventional
    assert "recommend" in result.output and "Traceback" not in result.output


def test_show_completion_bash(monkeypatch: pytest.MonkeyPatch) -> None:
    # typer asks shellingham for the parent shell unless told not to: under `sh -c` it answers "sh"
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    out = ok("--show-completion", "bash").stdout
    assert "complete" in out and "_ARCHADVISOR_COMPLETE" in out


# --- bad input: one line, exit 2 ---------------------------------------------------------------------
BAD_FLAGS = [
    # (extra args, substrings the one line must contain)
    (["--task", "clasification"], ["--task", "'clasification'", "did you mean 'classification'", "speech-recognition"]),
    (["--task", "segmentation"], ["--task", "'segmentation'", "semantic-segmentation"]),
    (["--images", "abc"], ["--images", "'abc'", "integer"]),
    (["--images", "0"], ["--images", "'0'", "1.."]),
    (["--images", "-5"], ["--images", "'-5'"]),
    (["--images", "1.5"], ["--images", "'1.5'", "integer"]),
    (["--classes", "1"], ["--classes", "'1'", "2"]),
    (["--classes", "ten"], ["--classes", "'ten'"]),
    (["--image-size", "4"], ["--image-size", "'4'", "8", "2048"]),
    (["--image-size", "4096"], ["--image-size", "'4096'", "8", "2048"]),
    (["--image-size", "224px"], ["--image-size", "'224px'"]),
    (["--compute", "gpu"], ["--compute", "'gpu'", *COMPUTE]),
    (["--compute", "multigpu"], ["--compute", "did you mean 'multi-gpu'"]),
    (["--gpus", "-1"], ["--gpus", "'-1'"]),
    (["--gpus", "two"], ["--gpus", "'two'"]),
    (["--gpu-memory-gb", "0"], ["--gpu-memory-gb", "'0'"]),
    (["--gpu-memory-gb", "lots"], ["--gpu-memory-gb", "'lots'"]),
    (["--latency-ms", "0"], ["--latency-ms", "'0'"]),
    (["--latency-ms", "-1"], ["--latency-ms", "'-1'"]),
    (["--latency-ms", "abc"], ["--latency-ms", "'abc'"]),
    (["--latency-ms", "nan"], ["--latency-ms", "'nan'"]),
    (["--latency-ms", "inf"], ["--latency-ms", "'inf'"]),
    (["--target", "jetsn"], ["--target", "'jetsn'", "did you mean 'jetson'", *TARGETS]),
    (["--target", "raspberry-pi"], ["--target", "'raspberry-pi'", "cloud-cpu"]),
    (["--object-size", "tiny"], ["--object-size", "'tiny'", "small", "large", "variable"]),
    (["--object-size", "smal"], ["--object-size", "did you mean 'small'"]),
    (["--arch", "resnet51"], ["--arch", "'resnet51'", "did you mean 'resnet50'"]),
    (["--arch", "convnext_tiyn"], ["--arch", "did you mean 'convnext_tiny'"]),
    (["--format", "xml"], ["--format", "'xml'", "json", "yaml", "markdown"]),
    (["--format", "jsno"], ["--format", "did you mean 'json'"]),
    (["--rules", "/no/such/rules/dir"], ["--rules", "/no/such/rules/dir"]),
]


@pytest.mark.parametrize("extra,needles", BAD_FLAGS, ids=[" ".join(e) for e, _ in BAD_FLAGS])
def test_bad_flag_is_one_line_exit_2(extra: list[str], needles: list[str]) -> None:
    args = ["--images", "8000", *extra] if extra[0] != "--images" else extra
    assert_one_line_error(invoke("recommend", *args), *needles)


@pytest.mark.parametrize(
    "extra,needles",
    [(["--task", "clasification"], ["did you mean 'classification'"]), (["--latency-ms", "-1"], ["--latency-ms"]),
     (["--arch", "resnet51"], ["did you mean 'resnet50'"]), (["--target", "jetsn"], ["did you mean 'jetson'"])],
)  # fmt: skip
def test_explain_validates_the_same_flags(extra: list[str], needles: list[str]) -> None:
    assert_one_line_error(invoke("explain", "--images", "8000", *extra), *needles)


def test_missing_images_is_one_line() -> None:
    assert_one_line_error(invoke("recommend", "--task", "classification"), "--images")


def test_arch_of_another_task_is_rejected_with_that_task_choices() -> None:
    line = assert_one_line_error(invoke("recommend", "--task", "speech-recognition", "--images", "500", "--arch", "resnet50"),
                                 "--arch", "'resnet50'")  # fmt: skip
    assert "whisper_small" in line


def test_rules_path_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("kind: tasks\n", encoding="utf-8")
    assert_one_line_error(invoke("recommend", "--images", "8000", "--rules", str(f)), "--rules", str(f))


def test_rules_dir_without_yaml(tmp_path: Path) -> None:
    assert_one_line_error(invoke("recommend", "--images", "8000", "--rules", str(tmp_path)), str(tmp_path))


@pytest.mark.parametrize("name", ["rec.txt", "rec", "rec.json.bak"])
def test_save_with_a_bad_suffix_writes_nothing(tmp_path: Path, name: str) -> None:
    out = tmp_path / name
    assert_one_line_error(invoke("recommend", *BASE, "--save", str(out)), "--save", ".json")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_save_into_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "dir" / "rec.json"
    assert_one_line_error(invoke("recommend", *BASE, "--save", str(out)), "--save")
    assert not out.exists()


@pytest.mark.parametrize(
    "args,needles",
    [
        (["recommend", "--images", "8000", "--bogus"], ["--bogus"]),
        (["recommend", "--images"], ["--images"]),
        (["recommend", "--images", "8000", "--pretrained", "yes"], ["yes"]),
        (["frobnicate"], ["frobnicate"]),
        (["rules", "frobnicate"], ["frobnicate"]),
        (["archs", "--family"], ["--family"]),
    ],
    ids=[
        "unknown-option",
        "missing-value",
        "extra-argument",
        "unknown-command",
        "unknown-subcommand",
        "archs-missing-value",
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], needles: list[str]) -> None:
    assert_one_line_error(invoke(*args), *needles)


# --- the entry point builds only the command it runs ---------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [["recommend", "--bogus"], ["recommend", "--help"], ["recomend"], ["rules", "validate"], ["rules"],
     ["scaffold", "--help"], ["--help"], ["--version"]],
    ids=["bad-option", "command-help", "typo", "group-command", "bare-group", "scaffold-help", "help", "version"],
)  # fmt: skip
def test_the_entry_point_answers_exactly_like_the_whole_app(tmp_path: Path, args: list[str]) -> None:
    """`archadvisor CMD ...` builds CMD alone (start-up time); output and exit code equal the whole app's."""
    built = app_for(args)
    names = {c.name or c.callback.__name__ for c in built.registered_commands} | {
        g.name for g in built.registered_groups
    }
    if args[0] in ("recommend", "rules", "scaffold"):
        assert built is not app and names == {args[0]}
    else:
        assert built is app  # help, version and typos need every command (the did-you-mean names the close one)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}
    entry = "import sys; from archadvisor.cli import main; sys.argv[0] = 'archadvisor'; main()"
    whole = "from archadvisor.cli import app; app(prog_name='archadvisor')"
    one, every = (
        subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )  # fmt: skip
        for code in (entry, whole)
    )
    assert (one.returncode, one.stdout, one.stderr) == (every.returncode, every.stdout, every.stderr)
    assert one.stdout or one.stderr
