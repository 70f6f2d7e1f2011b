"""The generated project's config schema (config_schema.py + the task's task_schema.py), in process, no torch.

Table-driven: the hostile configs in tests/fixtures/configs/ (each an edit of the rendered config.yaml and the
one-line error it must give). Fuzzed with hypothesis: valid values of the keys users edit most pass; any value
at any key, unknown keys and random YAML text either pass or raise the one-line ConfigError, never another
exception (issue 14, sections 6 and 7).
"""

from __future__ import annotations

import copy
import importlib
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archadvisor.recommendation import Recommendation
from archadvisor.scaffold import render_project

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted((FIXTURES / "configs").glob("*.yaml"))
Project = tuple[ModuleType, str, dict[str, Any]]  # config_schema, the rendered config.yaml, that file parsed


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModuleType, str, dict[str, Any]]]:
    """config_schema imported from a freshly rendered project (and the config.yaml text it renders)."""
    rec = Recommendation.from_json(json.loads((FIXTURES / "rec_digits.json").read_text(encoding="utf-8")))
    files = render_project(rec, name="digits")
    root = tmp_path_factory.mktemp("schema")
    for name in ("config_schema.py", "task_schema.py", "errors.py"):
        (root / name).write_bytes(files[name])
    saved = {m: sys.modules.pop(m) for m in ("config_schema", "task_schema", "errors") if m in sys.modules}
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("config_schema")
        text = files["config.yaml"].decode("utf-8")
        yield module, text, module.parse(text, "config.yaml")
    finally:
        sys.path.remove(str(root))
        for m in ("config_schema", "task_schema", "errors"):
            sys.modules.pop(m, None)
        sys.modules.update(saved)


def test_the_schema_imports_without_torch(project: Project) -> None:
    import subprocess

    folder = Path(project[0].__file__).parent
    code = "import sys; sys.modules['torch'] = None; import config_schema; config_schema.schema()"
    subprocess.run([sys.executable, "-c", code], cwd=folder, check=True, capture_output=True)


def put(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        cfg = cfg.setdefault(key, {})
    cfg[leaf] = value


def check(schema: ModuleType, text: str) -> dict[str, Any] | str:
    """The validated config, or the ConfigError's message (asserted to be one line); nothing else escapes."""
    try:
        return schema.validate(schema.parse(text, "config.yaml"))
    except schema.ConfigError as e:
        message = str(e)
        assert message and "\n" not in message and "Traceback" not in message
        return message


def test_the_rendered_config_passes(project: Project) -> None:
    schema, text, _ = project
    assert isinstance(check(schema, text), dict)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_hostile_config(project: Project, case: Path) -> None:
    schema, text, parsed = project
    spec = schema.parse(case.read_text(encoding="utf-8"), str(case))  # the project's reading: 1e-3 is a number
    if "text" in spec:
        text = spec["text"]
    elif "append" in spec:
        text = text + spec["append"]
    else:
        cfg = copy.deepcopy(parsed)
        for key, value in spec["set"].items():
            put(cfg, key, value)
        text = json.dumps(cfg, allow_nan=True).replace("NaN", ".nan")  # JSON is YAML (NaN spelled as YAML's)
    result = check(schema, text)
    if spec["expect"] is None:
        assert isinstance(result, dict), result
    else:
        assert isinstance(result, str) and spec["expect"] in result, result


# --- fuzzing ---------------------------------------------------------------------------------------------

VALID = {
    "training.lr": st.floats(min_value=1e-8, max_value=10, allow_nan=False),
    "training.epochs": st.integers(min_value=1, max_value=10_000),
    "training.grad_accum_steps": st.integers(min_value=1, max_value=64),
    "data.num_workers": st.one_of(st.integers(min_value=0, max_value=256), st.just("auto")),
    "run.seed": st.integers(min_value=0, max_value=2**32 - 1),
    "training.schedule": st.sampled_from(["cosine", "constant"]),
    "training.ema_decay": st.one_of(st.none(), st.floats(min_value=0.5, max_value=0.9999)),
    "data.skip_unreadable": st.booleans(),
}
ANY_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


def dotted_keys(tree: Any, prefix: str = "") -> list[str]:
    keys = []
    for key, value in tree.items():
        keys.append(prefix + key)
        if isinstance(value, dict):
            keys += dotted_keys(value, f"{prefix}{key}.")
    return keys


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(edits=st.dictionaries(st.sampled_from(sorted(VALID)), st.none(), min_size=1, max_size=4), data=st.data())
def test_valid_values_pass(project: Project, edits: dict[str, None], data: st.DataObject) -> None:
    schema, _, parsed = project
    cfg = copy.deepcopy(parsed)
    for key in edits:
        put(cfg, key, data.draw(VALID[key], label=key))
    cfg["training"]["min_lr"] = min(cfg["training"]["min_lr"], cfg["training"]["lr"])
    assert schema.validate(copy.deepcopy(cfg)) == cfg


@FUZZ
@given(data=st.data(), value=ANY_VALUE, unknown=st.text(min_size=1, max_size=10))
def test_any_value_anywhere_passes_or_is_one_line(
    project: Project, data: st.DataObject, value: Any, unknown: str
) -> None:
    schema, _, parsed = project
    cfg = copy.deepcopy(parsed)
    key = data.draw(st.sampled_from(dotted_keys(cfg) + [f"training.{unknown}", unknown]), label="key")
    put(cfg, key, value)
    try:
        schema.validate(cfg)
    except schema.ConfigError as e:
        assert "\n" not in str(e), str(e)
    if isinstance(value, float) and not math.isfinite(value) and key in ("training.lr", "training.min_lr"):
        with pytest.raises(schema.ConfigError):
            schema.validate(cfg)


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.text(alphabet=" :-[]{}\n#&*!|>'\"%@`,?0a.e", max_size=200)))
def test_random_yaml_text_passes_or_is_one_line(project: Project, text: str) -> None:
    check(project[0], text)
