"""Malformed rule files: one fixture directory per error kind (issue 2, section 5).

Each directory under tests/fixtures/bad_rules/ holds one user rule file with one mistake. Whichever
command reads it (``rules validate DIR`` or any command given ``--rules DIR``) must stop with exit
code 2 and one ``error:`` line naming the file, the line (``file.yaml:LINE``, where the YAML has
one), the rule id (where the file parsed far enough to have one) and what is wrong. The good
fixtures under tests/fixtures/good_rules/ must validate and change what the engine says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from archadvisor.cli import app

FIXTURES = Path(__file__).parent / "fixtures"
BAD = FIXTURES / "bad_rules"
GOOD = FIXTURES / "good_rules"

runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


@dataclass(frozen=True)
class Case:
    """One malformed-rules fixture and what its error line must say."""

    name: str  # the directory under bad_rules/
    file: str  # the one file in it
    lines: tuple[int, ...]  # acceptable line numbers: the start of the offending rule or the exact line
    rule: str | None  # the rule id the message must name (None: the file did not parse that far)
    needles: tuple[str, ...]  # what is wrong, in words the user typed or will type
    any_of: tuple[str, ...] = ()  # at least one of these (wording of the problem may vary)


CASES = [
    # the parser gives up on line 10; the brace left open on line 9 is the mistake
    Case("yaml_syntax", "classification_extra.yaml", (9, 10), None, ("YAML",)),
    Case("unknown_key", "classification_extra.yaml", (7, 10), "user.unknown_key", ("'prefers'", "did you mean 'prefer'")),
    Case("wrong_type", "classification_extra.yaml", (7, 10), "user.wrong_type", ("'prefer'",), ("list", "sequence")),
    Case("unknown_architecture", "classification_extra.yaml", (7, 10), "user.unknown_arch",
         ("'resnet51'", "did you mean 'resnet50'")),
    Case("unknown_operator", "classification_extra.yaml", (7, 9), "user.unknown_op", ("'lessthan'", "lt")),
    Case("unknown_variable", "classification_extra.yaml", (7, 9), "user.unknown_var",
         ("'num_images'", "did you mean 'images'")),
    Case("empty_file", "classification_extra.yaml", (), None, ("empty",)),
    Case("unknown_kind", "classification_extra.yaml", (2,), None, ("'selections'", "did you mean 'selection'")),
    Case("unreachable_row", "recipes_extra.yaml", (10,), "user.epochs.after_catch_all", ("user.epochs.default",),
         ("unreachable", "never")),
    Case("contradictory_condition", "classification_extra.yaml", (7, 9), "user.contradiction", (),
         ("never", "contradict", "unreachable", "unsatisfiable")),
    Case("bad_enum_value", "classification_extra.yaml", (7, 9), "user.bad_enum", ("'jetsn'", "did you mean 'jetson'")),
    Case("missing_key", "classification_extra.yaml", (7,), "user.missing_key", ("'because'",)),
    Case("bad_recipe_value", "recipes_extra.yaml", (7, 9), "user.epochs.words", ("'epochs'", "'ten'")),
    Case("duplicate_key", "classification_extra.yaml", (7, 10, 11), None, ("'prefer'", "duplicate")),
    Case("classes_on_classless_task", "tasks_extra.yaml", (5, 8), "time-series",
         ("default_classes 2", "has no classes")),
    Case("refine_reads_images", "deployment_extra.yaml", (15, 16), "user.refine.big_data",
         ("'images'", "task, kind, family, arch")),
    Case("unknown_quantize", "deployment_extra.yaml", (15, 17), "user.refine.cnn",
         ("'int8-statik'", "did you mean 'int8-static'")),
]  # fmt: skip

# every way a user can hand a rules directory to the tool
COMMANDS = {
    "rules-validate": lambda d: ["rules", "validate", str(d)],
    "recommend": lambda d: ["recommend", "--images", "8000", "--rules", str(d)],
    "explain": lambda d: ["explain", "--images", "8000", "--rules", str(d)],
    "archs": lambda d: ["archs", "--rules", str(d)],
    "rules-show": lambda d: ["rules", "show", "--rules", str(d)],
}


def invoke(args: list[str]) -> Result:
    return runner.invoke(app, args, prog_name="archadvisor")


def error_line(result: Result) -> str:
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output!r} {result.exception!r}"
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error:"), lines[0]
    assert result.stdout.strip() == "", result.stdout
    return lines[0]


def test_every_fixture_dir_is_covered() -> None:
    """A new fixture without a row here would be tested by nothing."""
    assert {p.name for p in BAD.iterdir() if p.is_dir()} == {c.name for c in CASES}
    for case in CASES:
        assert [p.name for p in (BAD / case.name).iterdir()] == [case.file], case.name


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_rules_are_one_located_line(case: Case, command: str) -> None:
    directory = BAD / case.name
    line = error_line(invoke(COMMANDS[command](directory)))
    path = directory / case.file
    assert case.file in line, line
    # the path printed is one the user can open
    printed = line.removeprefix("error: ").split(case.file)[0] + case.file
    assert Path(printed).resolve() == path.resolve(), printed
    if case.lines:
        assert any(f"{case.file}:{n}:" in line for n in case.lines), f"expected {case.file}:{case.lines}: {line}"
    if case.rule is not None:
        assert case.rule in line, f"rule id {case.rule!r} not named: {line}"
    for needle in case.needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    if case.any_of:
        assert any(w in line.lower() for w in case.any_of), f"none of {case.any_of} in {line!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_file_next_to_a_good_one_is_still_found(tmp_path: Path, case: Case) -> None:
    """Errors are not masked by other (valid) files in the same directory."""
    for good in (GOOD / "prefer_resnet").glob("*.yaml"):
        (tmp_path / good.name).write_bytes(good.read_bytes())
    (tmp_path / case.file).write_bytes((BAD / case.name / case.file).read_bytes())
    line = error_line(invoke(["rules", "validate", str(tmp_path)]))
    assert case.file in line
    if case.rule is not None:
        assert case.rule in line


def test_builtin_rules_validate() -> None:
    result = invoke(["rules", "validate"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok:")


@pytest.mark.parametrize("name", sorted(p.name for p in GOOD.iterdir() if p.is_dir()))
def test_good_override_dirs_validate(name: str) -> None:
    result = invoke(["rules", "validate", str(GOOD / name)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok:")


def _rec(*args: str) -> dict:
    result = invoke(["recommend", *args, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_deployment_override_replaces_the_target_row() -> None:
    base = _rec("--images", "8000", "--target", "jetson")
    over = _rec("--images", "8000", "--target", "jetson", "--rules", str(GOOD / "jetson_int8"))
    assert base["deployment"]["precision"] != "int8"
    assert over["deployment"]["precision"] == "int8"
    assert "--int8" in over["deployment"]["runtime"]
    trace = {t["rule"]: t for t in over["trace"]}
    assert Path(trace["deploy.jetson"]["file"]).name == "deployment_override.yaml"
    # other targets keep the built-in row
    other = _rec("--images", "8000", "--target", "android", "--rules", str(GOOD / "jetson_int8"))
    assert other["deployment"] == _rec("--images", "8000", "--target", "android")["deployment"]


def test_several_rules_dirs_all_apply() -> None:
    rec = _rec("--images", "8000", "--target", "jetson",
               "--rules", str(GOOD / "jetson_int8"), "--rules", str(GOOD / "prefer_resnet"))  # fmt: skip
    assert rec["architecture"]["name"] == "resnet50"
    assert rec["deployment"]["precision"] == "int8"


def test_override_changes_the_rules_digest() -> None:
    """Generated projects record the digest: a user override must not look like the built-in rules."""
    base = _rec("--images", "8000")
    over = _rec("--images", "8000", "--rules", str(GOOD / "prefer_resnet"))
    assert base["rules_digest"] != over["rules_digest"]
