"""Hostile rule directories (issue 14: points 1, 5, 6, 7 and 8 for rule files).

A rule file is untrusted input. Each directory under tests/fixtures/hostile_rules/ (and each one built
here, where the file would be too big to keep in the repository) is handed to ``rules validate DIR``
and to ``recommend --rules DIR``: both must stop with exit code 2 and exactly one ``error:`` line that
names the file, with no traceback and no validated-rules cache file written. A family ``module`` that
points outside the package's model files is refused before anything is imported: the target file of
the traversal fixtures would leave a marker file if it were ever imported.
"""

from __future__ import annotations

import os
import runpy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from archadvisor import ruleset
from archadvisor.cli import app
from archadvisor.resources import load_model_module, model_file, model_modules, shipped_modules, templates_dir

HOSTILE = Path(__file__).parent / "fixtures" / "hostile_rules"
EVIL = HOSTILE / "module_traversal" / "evil.py"
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


@dataclass(frozen=True)
class Case:
    """One hostile rules directory and what its one error line must say."""

    name: str
    file: str  # the file the message must name
    needles: tuple[str, ...]  # all of these appear in the line
    rule: str | None = None  # the rule id the line names, where the file parsed that far
    line: int | None = None  # the line number, where it is exact


CASES = [
    Case("module_traversal", "catalog_override.yaml", ("module", "not a model file shipped"), "ResNet", 5),
    Case("module_helper", "catalog_override.yaml", ("'weights'", "not a model file shipped"), "ResNet", 5),
    Case("alias_bomb", "classification_extra.yaml", ("alias",), None, 6),
    Case("condition_dag", "classification_extra.yaml", ("alias",)),
    Case("deep_not", "classification_extra.yaml", ("nested deeper than 100",)),
    Case("deep_condition", "classification_extra.yaml", ("nested deeper than 32",), "user.deep_all", 9),
    Case("wide_condition", "classification_extra.yaml", ("more than 1000 nodes",), "user.wide", 9),
    Case("utf16", "classification_extra.yaml", ("not UTF-8", "byte offset 0")),
    Case("invalid_utf8", "classification_extra.yaml", ("not valid UTF-8", "byte offset 45")),
    Case("families_int", "catalog_extra.yaml", ("'families' must be a list", "got int")),
    Case("tasks_int", "tasks_extra.yaml", ("'tasks' must be a list", "got int")),
    Case("targets_int", "deployment_extra.yaml", ("'targets' must be a list", "got int")),
    Case("tables_int", "recipes_extra.yaml", ("'tables' must be a list", "got int")),
    Case("var_list", "classification_extra.yaml", ("'var' must be a variable name", "['images']"), "user.var_list", 9),
    Case(
        "op_mapping", "classification_extra.yaml", ("'op' must be an operator name", "{'a': 1}"), "user.op_mapping", 9
    ),
    Case("devices_targets_list", "devices_extra.yaml", ("'targets' must be a mapping", "got list")),
    Case("devices_unknown_key", "devices_extra.yaml", ("targets.jetson.bogus_key", "unknown key"), None, 6),
    Case("duplicate_rule_id", "classification_extra.yaml", ("duplicate id 'user.twice'", ":7"), "user.twice", 12),
    Case("duplicate_row_id", "recipes_extra.yaml", ("duplicate id 'user.row'", ":7"), "user.row", 8),
    Case("empty_id", "classification_extra.yaml", ("'id' must be a non-empty string",), None, 7),
    Case("newline_id", "classification_extra.yaml", ("control characters",), None, 7),
    Case("merge_key", "classification_extra.yaml", ("merge keys",), None, 7),
    Case("mapping_key", "classification_extra.yaml", ("key must be a scalar",), None, 12),
    # found by tests/test_fuzz_rules.py
    Case("between_enum", "classification_extra.yaml", ("'between' needs a numeric variable",), "user.between_enum", 9),
    Case("devices_newline_key", "devices_extra.yaml", ("bad\\nkey", "unknown key")),
    Case("mixed_condition_keys", "classification_extra.yaml", ("unknown key(s) in condition",), "user.mixed_keys", 9),
]

_SEL = "kind: selection\nschema: 1\ntask: classification\naxes: {dataset: 1}\n"
_RULE = "  - id: {id}\n    axis: dataset\n    when: {{var: images, op: lt, value: 10}}\n    prefer: [resnet50]\n    because: x\n"
_FAMILY = (
    "kind: catalog\nschema: 1\nfamilies:\n  - name: ResNet\n    module: {module}\n    kind: cnn\n"
    '    small_input: true\n    scaffold: true\n    paper: "x"\n    structure: "x"\n'
)


def _oversize(d: Path) -> None:
    body = _SEL + "rules:\n" + _RULE.format(id="user.big")
    pad = ruleset.MAX_FILE_BYTES + 1 - len(body)
    (d / "classification_extra.yaml").write_text(body + ("#" * 99 + "\n") * (pad // 100) + "#" * (pad % 100))


def _many_keys(d: Path) -> None:
    keys = ", ".join(f"k{i}: {i}" for i in range(ruleset.MAX_KEYS + 1))
    (d / "classification_extra.yaml").write_text(
        _SEL + "rules:\n" + _RULE.format(id="user.k") + f"    guide: {{{keys}}}\n"
    )


def _many_nodes(d: Path) -> None:
    nodes = ",".join("0" * (ruleset.MAX_NODES + 1))
    (d / "classification_extra.yaml").write_text(
        _SEL + "rules:\n" + _RULE.format(id="user.n") + f"    prefer: [{nodes}]\n"
    )


def _module_absolute(d: Path) -> None:
    (d / "catalog_override.yaml").write_text(_FAMILY.format(module=EVIL.with_suffix("")))


def _module_proc_cwd(d: Path) -> None:
    # the process's own cwd link: absolute, and inside nothing the package owns
    rel = EVIL.with_suffix("").relative_to(Path.cwd()) if EVIL.is_relative_to(Path.cwd()) else EVIL.with_suffix("")
    (d / "catalog_override.yaml").write_text(_FAMILY.format(module=f"/proc/self/cwd/{rel}"))


def _duplicate_across_files(d: Path) -> None:
    (d / "a_extra.yaml").write_text(_SEL + "rules:\n" + _RULE.format(id="user.same"))
    (d / "b_extra.yaml").write_text(_SEL + "rules:\n" + _RULE.format(id="user.same"))


# built here: too big for the repository, or absolute paths of this checkout
GENERATED: dict[str, tuple[Callable[[Path], None], Case]] = {
    "oversize": (_oversize, Case("oversize", "classification_extra.yaml", ("larger than 1,048,576 bytes",))),
    "many_keys": (_many_keys, Case("many_keys", "classification_extra.yaml", ("more than 10,000 keys",), None, 11)),
    "many_nodes": (_many_nodes, Case("many_nodes", "classification_extra.yaml", ("more than 100,000 YAML nodes",))),
    "module_absolute": (_module_absolute, Case("module_absolute", "catalog_override.yaml", ("not a model file shipped",), "ResNet")),
    "module_proc_cwd": (_module_proc_cwd, Case("module_proc_cwd", "catalog_override.yaml", ("/proc/self/cwd/",), "ResNet")),
    "duplicate_across_files": (
        _duplicate_across_files,
        Case("duplicate_across_files", "b_extra.yaml", ("duplicate id 'user.same'", "a_extra.yaml:6"), "user.same", 6),
    ),
}  # fmt: skip

COMMANDS = {
    "rules-validate": lambda d: ["rules", "validate", str(d)],
    "recommend": lambda d: ["recommend", "--images", "8000", "--rules", str(d)],
}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ruleset caches validated rules under $XDG_CACHE_HOME/archadvisor (else ~/.cache): point both away."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ARCHADVISOR_EVIL_MARKER", str(tmp_path / "IMPORTED"))
    return tmp_path


def _cache_files(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("xdg-cache/archadvisor/rules-*.json")) + sorted(tmp_path.glob("home/.cache/**/*.json"))


def invoke(args: list[str]) -> Result:
    return runner.invoke(app, args, prog_name="archadvisor")


def one_error_line(result: Result) -> str:
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, f"exit {result.exit_code}: {result.output!r}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines[0]
    assert result.stdout == "", result.stdout
    return lines[0]


def _check(case: Case, directory: Path, args: list[str], tmp_path: Path) -> str:
    line = one_error_line(invoke(args))
    assert str(directory / case.file) in line or f"{directory.name}/{case.file}" in line, line
    if case.line is not None:
        assert f"{case.file}:{case.line}:" in line, line
    if case.rule is not None:
        assert f"rule {case.rule!r}" in line, line
    for needle in case.needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert "rules/devices.yaml" not in line, line  # a user file's problem is never blamed on a built-in
    assert _cache_files(tmp_path) == [], "a run that failed validation wrote a cache file"
    assert not (tmp_path / "IMPORTED").exists(), "a rule file made archadvisor import a file"
    return line


def test_every_fixture_dir_is_covered() -> None:
    assert {p.name for p in HOSTILE.iterdir() if p.is_dir()} == {c.name for c in CASES}
    for case in CASES:
        assert (HOSTILE / case.name / case.file).is_file(), case.name


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_fixture_is_one_line(case: Case, command: str, tmp_path: Path) -> None:
    directory = HOSTILE / case.name
    _check(case, directory, COMMANDS[command](directory), tmp_path)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", GENERATED)
def test_generated_hostile_dir_is_one_line(name: str, command: str, tmp_path: Path) -> None:
    build, case = GENERATED[name]
    directory = tmp_path / name
    directory.mkdir()
    build(directory)
    _check(case, directory, COMMANDS[command](directory), tmp_path)


def test_the_evil_module_would_leave_a_marker(tmp_path: Path) -> None:
    """The traversal fixtures are a real test: importing their target does leave the marker."""
    runpy.run_path(str(EVIL))
    assert (tmp_path / "IMPORTED").is_file()


@pytest.mark.parametrize("name", ["module_traversal", "module_absolute", "module_proc_cwd"])
def test_measure_never_imports_a_module_a_rule_file_names(name: str, tmp_path: Path) -> None:
    if name == "module_traversal":
        directory = HOSTILE / name
    else:
        directory = tmp_path / name
        directory.mkdir()
        GENERATED[name][0](directory)
    args = ["recommend", "--images", "8000", "--target", "cloud-cpu", "--measure", "--rules", str(directory)]
    line = one_error_line(invoke(args))
    assert "not a model file shipped" in line, line
    assert not (tmp_path / "IMPORTED").exists()
    assert _cache_files(tmp_path) == []


@pytest.mark.parametrize(
    "module",
    [
        "../../tests/fixtures/hostile_rules/module_traversal/evil",
        str(EVIL.with_suffix("")),
        f"/proc/self/cwd/{EVIL.with_suffix('')}",
        "resnet.py",
        "",
        "_private",
        "models/resnet",
        5,
        None,
    ],
)
def test_the_import_site_refuses_anything_not_shipped(module: object, tmp_path: Path) -> None:
    """Defence in depth: load_model_module checks the name and the resolved path itself."""
    with pytest.raises(ValueError, match="not a model file shipped"):
        load_model_module(module)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        model_file(module)  # type: ignore[arg-type]
    assert not (tmp_path / "IMPORTED").exists()


def test_the_whitelist_is_the_shipped_model_files() -> None:
    models = templates_dir() / "models"
    assert model_modules() == {p.stem for p in models.glob("*.py")} - {"weights"}
    assert "weights" in shipped_modules()  # a helper: importable by the package, never named by a rule file
    assert all(model_file(m).parent == models.resolve() for m in shipped_modules())


@pytest.mark.parametrize(
    "args",
    [
        ["recommend", "--images", "8000", "--rules", ""],
        ["explain", "--images", "8000", "--rules", "  "],
        ["rules", "show", "--rules", ""],
        ["rules", "validate", ""],
    ],
)
def test_an_empty_rules_path_is_refused(args: list[str], tmp_path: Path) -> None:
    """Path("") is ".": it would silently read every .yaml of the current folder."""
    line = one_error_line(invoke(args))
    assert "empty path" in line, line
    assert "--rules" in line or "'directory'" in line, line
    assert _cache_files(tmp_path) == []


def test_a_successful_run_still_caches(tmp_path: Path) -> None:
    """The validated-rules cache keeps `recommend` fast: only failed runs write nothing."""
    from archadvisor import ruleset

    ruleset._load.cache_clear()  # the in-process memo would answer without touching the file cache
    good = Path(__file__).parent / "fixtures" / "good_rules" / "prefer_resnet"
    result = invoke(["rules", "validate", str(good)])
    assert result.exit_code == 0, result.output
    assert len(_cache_files(tmp_path)) == 1


def test_a_user_dir_may_still_override_a_builtin_id(tmp_path: Path) -> None:
    """The documented override: a --rules dir reusing a built-in id replaces it (not a duplicate)."""
    d = tmp_path / "override"
    d.mkdir()
    (d / "classification_override.yaml").write_text(_SEL + "rules:\n" + _RULE.format(id="cls.dataset.small"))
    result = invoke(["rules", "validate", str(d)])
    assert result.exit_code == 0, result.output
    # and two --rules dirs overriding the same id: the later wins, as documented
    result = invoke(["recommend", "--images", "8000", "--rules", str(d), "--rules", str(d)])
    assert result.exit_code == 0, result.output


def test_limits_are_far_above_the_builtin_rules() -> None:
    """The built-in files stay well inside every limit (so the limits never bite a real rule file)."""
    for path in sorted(ruleset.rules_dir().glob("*.yaml")):
        assert path.stat().st_size < ruleset.MAX_FILE_BYTES // 10, path
    assert os.environ.get("ARCHADVISOR_EVIL_MARKER")  # the autouse fixture ran
