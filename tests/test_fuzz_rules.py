"""Fuzzing rule files (issue 14, Deliver): random field values and types in every kind of rule file.

Each example starts from a valid entry of one kind (a selection rule and constraint, a recipe table,
a deployment row, a task row, a catalog family and variant, a device profile), copied from the
built-in rules, and then replaces, deletes or adds fields with values of any type: ids and texts
with control characters, unknown operators and variables, wrong value types, huge numbers, NaN,
nested and deep conditions, module paths. The file goes through ``rules validate DIR`` or
``recommend --rules DIR`` in process. Whatever the file says, the run ends with exit code 0, or with
exit code 2 and one ``error:`` line without a traceback, and a run that fails writes nothing (no
validated-rules cache file).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from typer.testing import CliRunner

from archadvisor.cli import app
from archadvisor.conditions import OPERATORS, VARIABLES
from archadvisor.resources import rules_dir

# 3 tests x 100 examples; about 0.1 s each (the built-in rules are validated with every example)
SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI stays deterministic
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def _builtin(name: str) -> dict[str, Any]:
    return yaml.safe_load((rules_dir() / name).read_text(encoding="utf-8"))


_CATALOG = _builtin("catalog.yaml")
_DEVICES = _builtin("devices.yaml")
TEMPLATES: dict[str, dict[str, Any]] = {
    "selection": {
        "kind": "selection",
        "schema": 1,
        "task": "classification",
        "axes": {"dataset": 1},
        "constraints": [
            {"id": "fuzz.c", "when": {"var": "target", "op": "eq", "value": "ios"}, "because": "c", "max_params_m": 50}
        ],
        "rules": [
            {
                "id": "fuzz.r",
                "axis": "dataset",
                "when": {"all": [{"var": "images", "op": "lt", "value": 10_000}, {"var": "pretrained", "op": "eq", "value": True}]},
                "prefer": ["resnet50"],
                "because": "r",
            }
        ],
    },
    "recipes": {
        "kind": "recipes",
        "schema": 1,
        "tables": [
            {
                "name": "fuzz_table",
                "rows": [
                    {"id": "fuzz.row", "when": {"var": "params_m", "op": "lt", "value": 5}, "set": {"epochs": 10}, "because": "a"},
                    {"id": "fuzz.default", "set": {"epochs": 20, "optimizer": "sgd"}, "because": "b"},
                ],
            }
        ],
    },
    "deployment": {"kind": "deployment", "schema": 1, "targets": [_builtin("deployment.yaml")["targets"][2]]},
    "tasks": {"kind": "tasks", "schema": 1, "tasks": [_builtin("tasks.yaml")["tasks"][0]]},
    "catalog": {
        "kind": "catalog",
        "schema": 1,
        "families": [next(f for f in _CATALOG["families"] if f["name"] == "ResNet")],
        "variants": [next(v for v in _CATALOG["variants"] if v["name"] == "resnet18")],
        "aliases": {"fuzz_alias": "resnet18"},
    },
    "devices": {"kind": "devices", "schema": 1, "targets": {"jetson": _DEVICES["targets"]["jetson"]}},
}  # fmt: skip
FILE_NAMES = {kind: f"{kind}_fuzz.yaml" for kind in TEMPLATES}

# strings a rule author (or an attacker) might type: names that exist, near misses, control characters
NAMES = list(VARIABLES) + list(OPERATORS) + ["all", "any", "not", "var", "op", "value", "resnet50", "ResNet"]
HOSTILE_TEXT = ["", " ", "\n", "a\nb: 1", "x #:\n  pretrained: evil.pt", "\x00", "\t", "\u2028", "\x85", "é", "🙂",
                "../../tmp/evil", "/proc/self/cwd/evil", "weights", "resnet", "simple_cnn", "{{ x }}", "*a", "&a", "!!python/object"]  # fmt: skip
texts = st.one_of(
    st.sampled_from(NAMES + HOSTILE_TEXT),
    st.text(max_size=12),
    st.text(alphabet=st.characters(max_codepoint=0x9F), max_size=6),  # ASCII, controls and C1
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.sampled_from([0, 1, -1, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.one_of(texts, st.integers(-3, 3)), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> Any:
    """Mostly well-shaped conditions with random parts, sometimes junk, sometimes very deep."""
    if draw(st.integers(0, 20)) == 0:
        leaf: Any = {"var": "images", "op": "lt", "value": 10}
        for _ in range(draw(st.integers(20, 120))):
            leaf = {draw(st.sampled_from(["not", "all", "any"])): leaf}
            if "not" not in leaf:
                leaf = {next(iter(leaf)): [next(iter(leaf.values()))]}
        return leaf
    choice = draw(st.integers(0, 5 if depth < 4 else 2))
    if choice == 0:
        return draw(values)
    if choice <= 2:
        leaf = {
            "var": draw(st.sampled_from(list(VARIABLES)) | values),
            "op": draw(st.sampled_from(list(OPERATORS)) | values),
            "value": draw(values | st.sampled_from([[1, 2], [2, 1], ["cpu", "edge"], [], True, None])),
        }
        for key in draw(st.lists(st.sampled_from(["var", "op", "value"]), max_size=1)):
            del leaf[key]
        return leaf
    key = draw(st.sampled_from(["all", "any", "not"]))
    if key == "not":
        return {"not": draw(conditions(depth + 1))}
    return {key: draw(st.lists(conditions(depth + 1), max_size=3))}


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place a value sits in the document: key paths and list indices."""
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def rule_files(draw: st.DrawFn) -> tuple[str, str]:
    """(file name, YAML text): a valid entry of one kind with 0-3 fields replaced, deleted or added."""
    kind = draw(st.sampled_from(sorted(TEMPLATES)))
    doc = copy.deepcopy(TEMPLATES[kind])
    for _ in range(draw(st.integers(0, 3))):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "replace", "condition", "delete", "add", "duplicate"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "condition":
            parent[path[-1]] = draw(conditions())
        elif action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(texts)] = draw(values)
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
    try:
        text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()), sort_keys=False)
    except (yaml.YAMLError, ValueError, OverflowError):  # pragma: no cover - safe_dump takes any plain data
        text = str(doc)
    if draw(st.integers(0, 9)) == 0:  # a raw edit: YAML syntax errors, tabs, anchors, odd bytes
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at]
            + draw(st.sampled_from(["{", "]", "\t", "&a ", "*a", "<<: ", ": :", "\x01", "\ufeff"]))
            + text[at:]
        )
    return FILE_NAMES[kind], text


def _cache_files(root: Path) -> set[Path]:
    return set(root.rglob("*.json"))


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def _run(cache_home: Path, name: str, text: str | bytes, args: list[str]) -> int:
    with tempfile.TemporaryDirectory(dir=cache_home) as d:
        directory = Path(d) / "rules"
        directory.mkdir()
        blob = text if isinstance(text, bytes) else text.encode("utf-8", errors="surrogatepass")
        (directory / name).write_bytes(blob)
        before = _cache_files(cache_home / "cache")
        result = runner.invoke(app, [*args[:-1], args[-1].replace("DIR", str(directory))], prog_name="archadvisor")
        assert "Traceback" not in result.output, result.output
        assert result.exit_code in (0, 2), f"exit {result.exit_code}: {result.output!r} {result.exception!r}\n{text}"
        if result.exit_code == 2:
            assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
            lines = result.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), f"{lines}\n{text}"
            assert result.stdout == "", result.stdout
            assert _cache_files(cache_home / "cache") == before, "a failed run wrote a cache file"
        if currently_in_test_context():  # --hypothesis-show-statistics: how often each side is reached
            event(f"exit {result.exit_code}")
        return result.exit_code


@SETTINGS
@given(doc=rule_files())
def test_validate_any_rule_file_ends_cleanly(cache_home: Path, doc: tuple[str, str]) -> None:
    _run(cache_home, *doc, ["rules", "validate", "DIR"])


@SETTINGS
@given(
    doc=rule_files(), images=st.sampled_from(["50", "8000", "2000000"]), target=st.sampled_from(["ios", "cloud-gpu"])
)
def test_recommend_with_any_rule_file_ends_cleanly(
    cache_home: Path, doc: tuple[str, str], images: str, target: str
) -> None:
    """Rule files that validate are then used: the engine must take whatever validation let through."""
    _run(cache_home, *doc, ["recommend", "--images", images, "--target", target, "--format", "json", "--rules", "DIR"])


@SETTINGS
@given(
    name=st.sampled_from(sorted(FILE_NAMES.values())),
    text=st.text(max_size=200) | st.binary(max_size=200) | st.sampled_from(["kind: selection\n", "kind: devices\n"]),
)
def test_any_bytes_as_a_rule_file_end_cleanly(cache_home: Path, name: str, text: str | bytes) -> None:
    _run(cache_home, name, text, ["rules", "validate", "DIR"])


def test_the_templates_are_valid(cache_home: Path) -> None:
    """Unmutated, every template validates (exit 0): the mutations explore both sides of the validator."""
    for kind, doc in TEMPLATES.items():
        assert _run(cache_home, FILE_NAMES[kind], yaml.safe_dump(doc), ["rules", "validate", "DIR"]) == 0, kind
    assert _cache_files(cache_home / "cache")  # and a successful run keeps the fast path
