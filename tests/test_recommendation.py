"""The typed Recommendation: save / load round trip, a strict reader for saved files, `scaffold --from` with
flags, and thresholds read from the rules wherever code needs them (no copies in code)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from archadvisor.catalog import Catalog
from archadvisor.cli import app
from archadvisor.engine import recommend
from archadvisor.errors import InputError
from archadvisor.latency import estimate_latency_ms
from archadvisor.recommendation import Recommendation
from archadvisor.ruleset import load_rules
from archadvisor.spec import build_spec
from archadvisor.vocab import TASKS

runner = CliRunner()
RULES = load_rules()
CATALOG = Catalog(RULES)
DIGITS = ["--images", "1437", "--classes", "10", "--image-size", "32", "--compute", "cpu", "--target", "cloud-cpu",
          "--no-pretrained", "--no-hflip"]  # fmt: skip


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), prog_name="archadvisor")


def one_line_error(result: Any, *needles: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# --- the value and its JSON contract ----------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_json_round_trips_exactly_for_every_task(task: str) -> None:
    rec = recommend(build_spec(task=task, images=5000), RULES, CATALOG)
    assert Recommendation.from_json(json.loads(json.dumps(rec.to_json()))) == rec


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_then_scaffold_from_renders_the_same_project(tmp_path: Path, suffix: str) -> None:
    saved = tmp_path / f"rec{suffix}"
    assert invoke("recommend", *DIGITS, "--save", str(saved), "-f", "json").exit_code == 0
    loaded = (json.loads if suffix == ".json" else yaml.safe_load)(saved.read_text(encoding="utf-8"))
    direct = recommend(build_spec(images=1437, classes=10, image_size=32, compute="cpu", target="cloud-cpu",
                                  pretrained=False, hflip=False), RULES, CATALOG)  # fmt: skip
    assert Recommendation.from_json(loaded) == direct
    a, b = tmp_path / "a", tmp_path / "b"
    assert invoke("scaffold", *DIGITS, "--out", str(a), "--name", "digits").exit_code == 0
    assert invoke("scaffold", "--from", str(saved), "--out", str(b), "--name", "digits").exit_code == 0
    for path in sorted(p for p in a.rglob("*") if p.is_file()):
        assert path.read_bytes() == (b / path.relative_to(a)).read_bytes(), path


def test_provenance_is_a_record_not_prose() -> None:
    rec = recommend(build_spec(images=8000, target="jetson", pretrained=False), RULES, CATALOG)
    lr = rec.provenance["training.lr"]
    assert lr.rule == "lr.scaling" and lr.reason and "256" in lr.reason
    arch = rec.provenance["architecture"]
    assert arch.rule == rec.decided_by and arch.file == "rules/deployment.yaml"
    assert rec.why("training.lr").startswith("lr.scaling: ")
    assert rec.why("no.such.key") == "(default)"


# --- a saved file is untrusted input ----------------------------------------------------------------------


def _saved() -> dict[str, Any]:
    return recommend(build_spec(images=8000), RULES, CATALOG).to_json()


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d["inputs"].update(pretrained="false"), "inputs.pretrained"),
        (lambda d: d["training"].update(lr="1e-3"), "training.lr"),
        (lambda d: d["training"].update(lr=True), "training.lr"),
        (lambda d: d.update(architecture="resnet50"), "architecture"),
        (lambda d: d.update(inputs="x"), "inputs"),
        (lambda d: d["augmentation"].update(ops=5), "augmentation.ops"),
        (lambda d: d["augmentation"].pop("ops"), "augmentation.ops"),
        (lambda d: d["training"].update(image_size="32px"), "training.image_size"),
        (lambda d: d["provenance"]["training.lr"].update(rule="x\n  pretrained: evil.pt"), "control characters"),
        (lambda d: d.update(schema=1), "schema"),
        (lambda d: d.update(extra_key=1), "extra_key"),
    ],
    ids=["bool-as-string", "number-as-string", "bool-as-number", "section-as-string", "inputs-as-string",
         "ops-as-number", "ops-missing", "size-as-string", "newline-injection", "old-schema", "unknown-key"],
)  # fmt: skip
def test_a_tampered_file_is_refused_with_the_field_named(mutate: Any, needle: str) -> None:
    data = _saved()
    mutate(data)
    with pytest.raises(InputError) as err:
        Recommendation.from_json(data)
    assert needle in str(err.value), str(err.value)
    assert "\n" not in str(err.value)


def test_scaffold_from_a_tampered_file_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    data = _saved()
    data["inputs"]["pretrained"] = "false"
    saved = tmp_path / "rec.json"
    saved.write_text(json.dumps(data), encoding="utf-8")
    out = tmp_path / "p"
    one_line_error(invoke("scaffold", "--from", str(saved), "--out", str(out)), "--from", "inputs.pretrained")
    assert not out.exists()


@pytest.mark.parametrize(
    "text",
    ["a: &a [1, 2]\nb: *a\n", "!!python/object/apply:os.system ['echo hi']\n", "[[[[" * 30 + "]]]]" * 30],
    ids=["alias", "python-tag", "deep-nesting"],
)
def test_scaffold_from_hostile_yaml_is_one_line(tmp_path: Path, text: str) -> None:
    saved = tmp_path / "rec.yaml"
    saved.write_text(text, encoding="utf-8")
    one_line_error(invoke("scaffold", "--from", str(saved), "--out", str(tmp_path / "p")), "--from")
    assert not (tmp_path / "p").exists()


# --- flags beside --from override the saved inputs -------------------------------------------------------


def _config_of(out: Path) -> dict[str, Any]:
    return yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))


def test_flags_beside_from_override_and_rerun_the_engine(tmp_path: Path) -> None:
    saved = tmp_path / "rec.json"
    flags = ["--images", "1437", "--classes", "10", "--image-size", "32", "--compute", "cpu", "--target", "cloud-cpu"]
    assert invoke("recommend", *flags, "--arch", "resnet18", "--save", str(saved), "-f", "json").exit_code == 0
    assert json.loads(saved.read_text())["inputs"]["pretrained"] is True
    out = tmp_path / "p"
    result = invoke("scaffold", "--from", str(saved), "--no-pretrained", "--no-hflip", "--out", str(out))
    assert result.exit_code == 0, result.output
    cfg = _config_of(out)
    assert cfg["model"]["pretrained"] is False
    assert "horizontal_flip" not in [op["name"] for op in cfg["augmentation"]["ops"]]
    assert cfg["model"]["arch"] == "resnet18"  # the saved --arch is kept
    manifest = yaml.safe_load((out / ".archadvisor.yaml").read_text())
    assert manifest["inputs"]["pretrained"] is False and manifest["inputs"]["hflip"] is False


def test_rules_beside_from_rerun_the_engine_with_them(tmp_path: Path) -> None:
    saved = tmp_path / "rec.json"
    assert (
        invoke("recommend", "--images", "50000", "--target", "cloud-cpu", "--save", str(saved), "-f", "json").exit_code
        == 0
    )
    rules = Path(__file__).parent / "fixtures" / "good_rules" / "prefer_resnet"
    out = tmp_path / "p"
    assert invoke("scaffold", "--from", str(saved), "--rules", str(rules), "--out", str(out)).exit_code == 0
    with_rules = invoke("recommend", "--images", "50000", "--target", "cloud-cpu", "--rules", str(rules), "-f", "json")
    assert _config_of(out)["model"]["arch"] == json.loads(with_rules.stdout)["architecture"]["name"]


# --- thresholds come from the rules --------------------------------------------------------------------


def _stem_override(tmp_path: Path, max_px: int) -> Path:
    """A --rules dir that moves the small-input threshold of the built-in constraint to ``max_px``."""
    src = yaml.safe_load((Path(__file__).parents[1] / "rules" / "classification.yaml").read_text())
    stem = next(c for c in src["constraints"] if c.get("require_small_input"))
    stem["when"]["value"] = max_px
    d = tmp_path / "rules"
    d.mkdir()
    body = {
        "kind": "selection",
        "schema": 1,
        "task": "classification",
        "axes": src["axes"],
        "constraints": [stem],
        "rules": [],
    }
    (d / "stem.yaml").write_text(yaml.safe_dump(body), encoding="utf-8")
    return d


def test_the_small_input_threshold_moves_everything_with_the_rules(tmp_path: Path) -> None:
    rules_dir = _stem_override(tmp_path, 96)
    rules = load_rules([rules_dir])
    assert rules.small_input_max_px == 96 and RULES.small_input_max_px == 64
    args = ["--images", "5000", "--image-size", "96", "--compute", "cpu", "--target", "cloud-cpu", "--no-pretrained"]
    base = json.loads(invoke("recommend", *args, "--arch", "resnet18", "-f", "json").stdout)
    moved = json.loads(invoke("recommend", *args, "--arch", "resnet18", "--rules", str(rules_dir), "-f", "json").stdout)
    # recommend: the stem, the eval crop, and the compute behind the latency estimate follow the rule
    assert base["architecture"]["small_input"] is False and moved["architecture"]["small_input"] is True
    assert base["augmentation"]["eval_crop_pct"] == 0.875 and moved["augmentation"]["eval_crop_pct"] == 1.0
    assert moved["architecture"]["gmacs_at_input"] == pytest.approx(
        16 * base["architecture"]["gmacs_at_input"], rel=1e-3
    )
    resnet18 = Catalog(rules).get("resnet18")
    plan = moved["deployment"]  # served static INT8 (deploy.cloud_cpu.cnn_static_int8)
    small = estimate_latency_ms(resnet18, "cloud-cpu", 96, small_input=True, precision=plan["precision"],
                                quantize=plan["quantize"]).ms  # fmt: skip
    assert moved["deployment"]["expected_latency_ms"] == pytest.approx(small, rel=1e-3)
    assert moved["deployment"]["expected_latency_ms"] > base["deployment"]["expected_latency_ms"]
    # the generated config follows too
    out = tmp_path / "p"
    assert invoke("scaffold", *args, "--arch", "resnet18", "--rules", str(rules_dir), "--out", str(out)).exit_code == 0
    cfg = _config_of(out)
    assert cfg["model"]["small_input"] is True and cfg["data"]["eval_crop_pct"] == 1.0


@pytest.mark.slow
def test_profile_follows_the_small_input_threshold_of_the_rules(tmp_path: Path) -> None:
    """`profile` builds what the rules say: the moved threshold gives resnet18 its small-input stem at 96 px
    (16x the compute of the ImageNet stem), measured on the real model."""
    pytest.importorskip("torch")
    rules_dir = _stem_override(tmp_path, 96)
    common = ["profile", "resnet18", "--image-size", "96", "--batch", "2", "--max-seconds", "0.2", "-f", "json"]
    base, moved = invoke(*common), invoke(*common, "--rules", str(rules_dir))
    assert base.exit_code == 0 and moved.exit_code == 0, (base.output, moved.output)
    b, m = json.loads(base.stdout), json.loads(moved.stdout)
    assert b["small_input"] is False and m["small_input"] is True
    assert m["gmacs"] > 10 * b["gmacs"]  # the stride-1 stem keeps 16x the pixels through every stage


def test_a_stem_rule_that_is_not_a_size_bound_is_refused(tmp_path: Path) -> None:
    d = _stem_override(tmp_path, 64)
    f = d / "stem.yaml"
    body = yaml.safe_load(f.read_text())
    body["constraints"][0]["when"] = {"var": "images", "op": "lt", "value": 100}
    f.write_text(yaml.safe_dump(body), encoding="utf-8")
    one_line_error(invoke("rules", "validate", str(d)), "require_small_input")


# --- messages ---------------------------------------------------------------------------------------------


def test_missing_images_says_what_is_missing() -> None:
    line = one_line_error(invoke("recommend", "--target", "jetson"), "missing --images")
    assert "None" not in line


@pytest.mark.parametrize(("name", "needle"), [("class", "keyword"), ("my-project", "identifier")])
def test_bad_project_name_names_the_flag(tmp_path: Path, name: str, needle: str) -> None:
    one_line_error(invoke("scaffold", *DIGITS, "--name", name, "--out", str(tmp_path / "p")), "--name", needle)
    assert not (tmp_path / "p").exists()


def test_out_folder_with_a_dash_gets_a_valid_package_name(tmp_path: Path) -> None:
    out = tmp_path / "my-project"
    result = invoke("scaffold", *DIGITS, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "scaffolded my_project " in result.stdout
    assert yaml.safe_load((out / ".archadvisor.yaml").read_text())["name"] == "my_project"


def test_format_is_case_insensitive() -> None:
    assert invoke("recommend", "--images", "8000", "--format", "JSON").exit_code == 0
    one_line_error(invoke("recommend", "--images", "8000", "--format", "jsn"), "did you mean 'json'")


def test_alternatives_do_not_repeat_the_choices_reason() -> None:
    rec = recommend(build_spec(images=8000, target="jetson"), RULES, CATALOG)
    for alt in rec.alternatives:
        assert alt.why != rec.architecture.why


# --- task inputs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [("H", "h"), ("h", "h"), ("hourly", "h"), ("D", "D"), ("daily", "D"), ("W", "W"), ("M", "ME"), ("ME", "ME"),
     ("MS", "MS"), ("monthly", "ME"), ("Q", "QE"), ("QE", "QE"), ("Y", "YE"), ("YE", "YE"), ("A", "YE"),
     ("yearly", "YE"), ("15min", "15min"), ("15T", "15min"), ("1h", "h"), ("Monthly", "ME")],
)  # fmt: skip
def test_frequency_spellings_old_and_new_are_stored_canonically(given: str, canonical: str) -> None:
    rec = json.loads(
        invoke("recommend", "--task", "time-series", "--samples", "500", "--frequency", given, "-f", "json").stdout
    )
    assert rec["inputs"]["frequency"] == canonical


@pytest.mark.parametrize("bad", ["fortnightly", "0h", "h2", "", "m"])
def test_a_bad_frequency_is_one_line_with_the_choices(bad: str) -> None:
    one_line_error(invoke("recommend", "--task", "time-series", "--samples", "500", "--frequency", bad), "--frequency")


def test_forecast_inputs_are_recorded_and_round_trip(tmp_path: Path) -> None:
    args = ["--task", "time-series", "--samples", "400", "--horizon", "12", "--lookback", "48", "--frequency", "MS",
            "--series", "3", "--channels", "2"]  # fmt: skip
    saved = tmp_path / "rec.json"
    rec = json.loads(invoke("recommend", *args, "--save", str(saved), "-f", "json").stdout)
    assert {k: rec["inputs"][k] for k in ("horizon", "lookback", "frequency", "series", "channels")} == {
        "horizon": 12, "lookback": 48, "frequency": "MS", "series": 3, "channels": 2}  # fmt: skip
    assert Recommendation.from_json(json.loads(saved.read_text())).inputs.horizon == 12


@pytest.mark.parametrize("flag", ["--horizon", "--lookback", "--series", "--channels", "--length"])
@pytest.mark.parametrize("value", ["0", "-3", "two", "99999999999999999999"])
def test_task_input_counts_are_bounded(flag: str, value: str) -> None:
    task = "text" if flag == "--length" else "time-series"
    one_line_error(invoke("recommend", "--task", task, "--samples", "500", flag, value), flag)


def test_a_task_input_for_another_task_is_a_warning() -> None:
    rec = json.loads(invoke("recommend", "--images", "8000", "--horizon", "24", "-f", "json").stdout)
    assert rec["inputs"]["horizon"] is None
    assert any("--horizon 24 does not apply to classification" in w for w in rec["warnings"])


def test_counts_are_bounded() -> None:
    one_line_error(invoke("recommend", "--images", "99999999999999999999999"), "--images", "1..")


@pytest.mark.parametrize(
    ("task", "ok"), [("detection", True), ("instance-segmentation", True), ("classification", False)]
)
def test_one_class_is_allowed_where_background_is_implicit(task: str, ok: bool) -> None:
    result = invoke("recommend", "--task", task, "--images", "500", "--classes", "1", "-f", "json")
    if ok:
        assert result.exit_code == 0 and json.loads(result.stdout)["inputs"]["classes"] == 1
    else:
        one_line_error(result, "--classes", "2..")


def test_sequence_classification_is_a_task_of_its_own() -> None:
    rec = json.loads(
        invoke("recommend", "--task", "time-series-classification", "--samples", "200", "-f", "json").stdout
    )
    assert rec["architecture"]["name"] == "inception_time"
    assert rec["training"]["monitor"] == {"metric": "val_acc1", "mode": "max"}
    assert rec["augmentation"] is None or not {op["name"] for op in rec["augmentation"]["ops"]} & {
        "random_resized_crop"
    }
    forecast = json.loads(invoke("recommend", "--task", "time-series", "--samples", "200", "-f", "json").stdout)
    assert forecast["training"]["monitor"] == {"metric": "val_mase", "mode": "min"}


# --- what scaffold generates ----------------------------------------------------------------------------


def test_an_ungeneratable_choice_names_the_best_candidate_archadvisor_generates() -> None:
    rec = recommend(build_spec(task="semantic-segmentation", images=50_000), RULES, CATALOG)
    assert rec.architecture.name in {"mask2former_swin_t", "segformer_b2"}
    g = rec.generated
    assert g is not None and g.substitute and g.module in {"unet", "segmentation_tv"}
    assert rec.architecture.name in g.why and g.name in g.why
    assert any(t.rule == "scaffold.substitute" for t in rec.trace)
    ranked = [s.name for s in rec.scores]
    assert g.name not in ranked or all(
        not CATALOG.external_model(n).generatable for n in ranked[: ranked.index(g.name)]
    )


def test_a_generatable_choice_is_generated_as_it_is() -> None:
    rec = recommend(build_spec(task="time-series-classification", images=5000), RULES, CATALOG)
    assert rec.generated is not None and not rec.generated.substitute
    assert (rec.generated.name, rec.generated.module, rec.generated.build) == (
        "inception_time",
        "inceptiontime",
        "inceptiontime",
    )
    digits = recommend(build_spec(images=1437, classes=10, image_size=32, compute="cpu", target="cloud-cpu",
                                  pretrained=False, hflip=False), RULES, CATALOG)  # fmt: skip
    assert digits.generated.module == "simple_cnn" and digits.generated.build == "simple_cnn"


def test_scaffold_with_a_forced_ungeneratable_arch_lists_what_it_can(tmp_path: Path) -> None:
    out = tmp_path / "p"
    line = one_line_error(
        invoke("scaffold", "--images", "8000", "--arch", "vit_base_patch16_224x", "--out", str(out)), "--arch"
    )
    assert not out.exists() and "did you mean" in line


# --- the questions ---------------------------------------------------------------------------------------


def test_the_questions_ask_the_task_first_reask_bad_answers_and_summarize(tmp_path: Path, monkeypatch: Any) -> None:
    from archadvisor import cli

    monkeypatch.setattr(cli, "_interactive", lambda: True)
    out = tmp_path / "p"
    answers = "\n".join([
        "clasification",  # a typo: the validator's one line, then asked again
        "classification",
        "zero",  # not a number: asked again
        "1437",
        "10",
        "32",
        "cpu",
        "cloud-cpu",
        "",  # no latency budget
        "n",  # no pretrained weights
        "n",  # digits are not mirror-symmetric
    ]) + "\n"  # fmt: skip
    result = runner.invoke(app, ["scaffold", "--out", str(out)], input=answers, prog_name="archadvisor")
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.index("Task (") < text.index("Labelled training examples")
    assert "did you mean 'classification'" in text and "invalid value for --images: 'zero'" in text
    assert "chose simple_cnn" in text and "recipe: sgd" in text
    cfg = _config_of(out)
    assert cfg["model"]["pretrained"] is False and cfg["model"]["arch"] == "simple_cnn"


def test_the_questions_use_the_flags_defaults(tmp_path: Path, monkeypatch: Any) -> None:
    from archadvisor import cli

    monkeypatch.setattr(cli, "_interactive", lambda: True)
    out = tmp_path / "p"
    # Enter everywhere but the required count: the same answer as `scaffold --images 5000`
    answers = "\n".join(["", "5000", "", "", "", "", "", "y", "y"]) + "\n"
    result = runner.invoke(app, ["scaffold", "--out", str(out)], input=answers, prog_name="archadvisor")
    assert result.exit_code == 0, result.output
    flags = tmp_path / "q"
    assert invoke("scaffold", "--images", "5000", "--out", str(flags)).exit_code == 0
    assert _config_of(out) == _config_of(flags)


HOSTILE_FROM = sorted(p for p in (Path(__file__).parent / "fixtures" / "hostile_from").iterdir() if p.suffix != ".md")


@pytest.mark.parametrize("path", HOSTILE_FROM, ids=[p.name for p in HOSTILE_FROM])
def test_hostile_from_files_are_one_line_and_write_nothing(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "project"
    one_line_error(invoke("scaffold", "--from", str(path), "--out", str(out)), "--from")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert not Path("/tmp/archadvisor-pwned").exists()
