"""Property tests over the command line (issue 2, section 7), in process with CliRunner.

- any valid combination of flags gives a complete recommendation (the JSON contract,
  checked by ``test_cli.assert_complete``) that echoes the inputs, and ``explain`` agrees with it;
- any single invalid flag value gives exit code 2 and one ``error:`` line naming that flag;
- any jumble of known flags and junk ends in exit 0 or 2, never a traceback.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_cli import assert_complete, assert_one_line_error, invoke

from archadvisor.catalog import load_catalog
from archadvisor.vocab import COMPUTE, OBJECT_SIZES, TARGETS, TASKS

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_CATALOG = load_catalog()
VARIANT_NAMES = sorted(_CATALOG.names())
ALIASES = dict(_CATALOG.aliases)
EXTERNAL_BY_TASK = {t: sorted(e.name for e in _CATALOG.external if e.task == t) for t in TASKS}
FORMATS = ("table", "json", "yaml", "markdown")

# text with no decimal digit at all can never be a valid integer; nor a valid number, since the only
# digit-free strings float() accepts are inf/nan spellings, which are out of every range
NO_DIGITS = st.text(alphabet=st.characters(blacklist_categories=("Nd", "Cs")), max_size=12)


def _num(x: float) -> str:
    return repr(float(x))


@st.composite
def valid_problem(draw: st.DrawFn) -> dict[str, Any]:
    """Flag values inside every documented range (None = flag left out)."""
    task = draw(st.sampled_from(TASKS))
    p: dict[str, Any] = {
        "task": task,
        "images": draw(st.integers(1, 5_000_000)),
        "classes": draw(st.none() | st.integers(2, 100_000)),
        "image-size": draw(st.none() | st.integers(8, 2048)),
        "compute": draw(st.none() | st.sampled_from(COMPUTE)),
        "gpus": draw(st.none() | st.integers(0, 64)),
        "gpu-memory-gb": draw(st.none() | st.floats(0.5, 640, allow_nan=False)),
        "latency-ms": draw(st.none() | st.floats(0.05, 100_000, allow_nan=False)),
        "target": draw(st.none() | st.sampled_from(TARGETS)),
        "object-size": draw(st.none() | st.sampled_from(OBJECT_SIZES)) if task == "detection" else None,
        "pretrained": draw(st.none() | st.booleans()),
        "hflip": draw(st.none() | st.booleans()),
    }
    choices = VARIANT_NAMES + sorted(ALIASES) if task == "classification" else EXTERNAL_BY_TASK[task]
    p["arch"] = draw(st.none() | st.sampled_from(choices)) if choices else None
    return p


def to_args(p: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for flag, value in p.items():
        if value is None:
            continue
        if flag in ("pretrained", "hflip"):
            args.append(f"--{flag}" if value else f"--no-{flag}")
        elif isinstance(value, float):
            args.append(f"--{flag}={_num(value)}")
        else:
            args.append(f"--{flag}={value}")
    return args


@SETTINGS
@given(p=valid_problem())
@example(p={"task": "classification", "images": 1, "classes": None, "image-size": 8, "compute": "cpu", "gpus": None,
            "gpu-memory-gb": None, "latency-ms": 0.05, "target": "browser", "object-size": None, "pretrained": False,
            "hflip": False, "arch": None})  # fmt: skip
@example(p={"task": "classification", "images": 5_000_000, "classes": 100_000, "image-size": 2048, "compute": "multi-gpu",
            "gpus": 64, "gpu-memory-gb": 0.5, "latency-ms": None, "target": "cloud-gpu", "object-size": None,
            "pretrained": True, "hflip": True, "arch": "vit_large_patch16_224"})  # fmt: skip
@example(p={"task": "speech-recognition", "images": 3, "classes": None, "image-size": None, "compute": "edge",
            "gpus": 8, "gpu-memory-gb": None, "latency-ms": 1.0, "target": "ios", "object-size": None,
            "pretrained": False, "hflip": None, "arch": None})  # fmt: skip
def test_valid_flags_always_give_a_complete_recommendation(p: dict[str, Any]) -> None:
    args = to_args(p)
    result = invoke("recommend", *args, "--format", "json")
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}: {result.output} {result.exception!r}"
    rec = json.loads(result.stdout)
    assert_complete(rec, task=p["task"], target=p["target"] or "cloud-gpu")
    inputs = rec["inputs"]
    assert inputs["images"] == p["images"]
    from archadvisor.vocab import IMAGE_TASKS

    if p["image-size"] is not None and p["task"] in IMAGE_TASKS:
        assert inputs["image_size"] == p["image-size"]
    elif p["image-size"] is not None:  # no resolution for text/speech/...: ignored with a warning
        assert inputs["image_size"] is None
        assert any("--image-size" in w for w in rec["warnings"])
    from archadvisor.vocab import CLASSLESS_TASKS

    if p["task"] in CLASSLESS_TASKS:  # a forecast or a transcript has no classes: null, and --classes is noted
        assert inputs["classes"] is None and rec["training"]["num_classes"] is None
        assert p["classes"] is None or any("--classes" in w for w in rec["warnings"])
    elif p["classes"] is not None:
        assert inputs["classes"] == p["classes"]
    if p["pretrained"] is not None:
        assert inputs["pretrained"] is p["pretrained"]
    if p["latency-ms"] is not None:
        assert inputs["latency_ms"] == float(_num(p["latency-ms"]))
    if p["arch"] is not None:
        assert rec["architecture"]["name"] == ALIASES.get(p["arch"], p["arch"])
        assert rec["decided_by"] == "--arch"
    elif p["task"] in ("classification", "detection"):
        # at least 2, unless the hard constraints left fewer candidates (alternatives obey them too)
        constrained = any(t["kind"] == "constraint" and t["fired"] and "excludes" in t["because"] for t in rec["trace"])
        assert len(rec["alternatives"]) >= 2 or constrained

    explained = invoke("explain", *args, "--format", "json")
    assert explained.exit_code == 0, f"{args}: {explained.output} {explained.exception!r}"
    data = json.loads(explained.stdout)
    assert data["architecture"] == rec["architecture"]["name"]
    assert isinstance(data["flips"], list)


# --- one bad flag --------------------------------------------------------------------------------
def _enum_junk(choices: tuple[str, ...] | list[str]) -> st.SearchStrategy[str]:
    lowered = {c.lower() for c in choices}
    return st.text(max_size=20).filter(lambda s: s.strip().lower() not in lowered and s not in choices)


BAD_VALUES: dict[str, st.SearchStrategy[str]] = {
    "--task": _enum_junk(TASKS),
    "--compute": _enum_junk(COMPUTE),
    "--target": _enum_junk(TARGETS),
    "--object-size": _enum_junk(OBJECT_SIZES),
    "--format": _enum_junk(FORMATS),
    "--arch": st.text(max_size=24).filter(lambda s: s not in VARIANT_NAMES and s not in ALIASES),
    "--images": NO_DIGITS | st.integers(-(10**6), 0).map(str) | st.sampled_from(["1.5", "1e3", "0x10", "10 000"]),
    "--classes": NO_DIGITS | st.integers(-5, 1).map(str) | st.integers(1_000_001, 10**9).map(str),
    "--image-size": NO_DIGITS | st.integers(-100, 7).map(str) | st.integers(2049, 10**6).map(str) | st.just("224.0"),
    "--gpus": NO_DIGITS | st.integers(-100, -1).map(str) | st.just("1.5"),
    "--gpu-memory-gb": NO_DIGITS | st.floats(-1e6, 0).map(_num) | st.floats(4097, 1e9).map(_num),
    "--latency-ms": NO_DIGITS | st.floats(-1e6, 0).map(_num) | st.sampled_from(["nan", "-inf", "inf", "1e400"]),
    "--horizon": NO_DIGITS | st.integers(-100, 0).map(str) | st.just(str(10**30)),
    "--lookback": NO_DIGITS | st.integers(-100, 0).map(str),
    "--series": NO_DIGITS | st.integers(-100, 0).map(str),
    "--frequency": st.sampled_from(["fortnightly", "0h", "h2", "m", "-1D", "2.5h", "hh"]),
}
# task inputs are validated for the tasks that use them
FLAG_TASK = {"--horizon": "time-series", "--lookback": "time-series", "--series": "time-series",
             "--frequency": "time-series"}  # fmt: skip


@SETTINGS
@given(data=st.data(), flag=st.sampled_from(sorted(BAD_VALUES)))
def test_one_invalid_flag_is_a_clean_exit_2(data: st.DataObject, flag: str) -> None:
    value = data.draw(BAD_VALUES[flag], label=flag)
    task = FLAG_TASK.get(flag, "classification")
    args = ["--task", task, "--images", "8000"]
    args = [a for i, a in enumerate(args) if not (a == flag or (i and args[i - 1] == flag))]
    command = data.draw(st.sampled_from(["recommend", "explain"]), label="command")
    if flag == "--format" and command == "explain":
        command = "recommend"
    # --flag=value: the value is never mistaken for an option, whatever it looks like
    result = invoke(command, *args, f"{flag}={value}")
    assert_one_line_error(result, flag)


# --- jumbles -------------------------------------------------------------------------------------
FLAGS = ["--task", "--images", "--samples", "--classes", "--image-size", "--compute", "--gpus", "--gpu-memory-gb",
         "--latency-ms", "--target", "--object-size", "--arch", "--format", "--pretrained", "--no-pretrained",
         "--hflip", "--no-hflip", "--rules", "--save", "--bogus", "-f", "--horizon", "--lookback", "--frequency",
         "--series", "--channels", "--length", "--permissive"]  # fmt: skip
TOKENS = (
    st.sampled_from(FLAGS)
    | st.sampled_from(list(TASKS) + list(TARGETS) + list(COMPUTE) + ["json", "0", "8000"])
    | (st.text(max_size=10).filter(lambda s: not s.startswith("--save") and s not in ("--help", "-h")))
)


@SETTINGS
@given(command=st.sampled_from(["recommend", "explain", "archs", "rules"]), tokens=st.lists(TOKENS, max_size=8))
def test_any_jumble_of_arguments_ends_cleanly(command: str, tokens: list[str]) -> None:
    # --save would write files wherever the jumble points: keep it out (test_cli.py covers --save)
    tokens = [t for t in tokens if t != "--save"]
    result = invoke(command, *tokens)
    assert "Traceback" not in result.output, (tokens, result.output)
    assert result.exit_code in (0, 2), (tokens, result.exit_code, result.output, repr(result.exception))
    if result.exit_code == 2:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (tokens, lines)


# --- scaffold: any jumble ends in exit 0 or 2, and a failure writes nothing --------------------------------
SCAFFOLD_TOKENS = TOKENS.filter(lambda t: t not in ("--save", "-f", "--format", "--rules"))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(tokens=st.lists(SCAFFOLD_TOKENS, max_size=8))
def test_any_scaffold_jumble_ends_cleanly_and_a_failure_writes_nothing(
    tmp_path_factory: Any, tokens: list[str]
) -> None:
    base = tmp_path_factory.mktemp("scaffold")
    out = base / "project"
    result = invoke("scaffold", *tokens, "--out", str(out))
    assert "Traceback" not in result.output, (tokens, result.output)
    assert result.exit_code in (0, 2), (tokens, result.exit_code, result.output, repr(result.exception))
    if result.exit_code == 2:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), (tokens, lines)
        assert sorted(p.name for p in base.iterdir()) == [], "a failed scaffold left files behind"
    else:
        assert (out / "config.yaml").is_file()
