"""profile / compare: bad settings and unwritable chart paths fail in one line (exit 2) before anything is
measured or written; compare writes no chart unless asked; the small-input stem follows the rules' threshold.

The error cases run in-process through the real app (its one error handler); a few run as subprocesses to show
torch is never imported on the way to the error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archadvisor.cli import app

REPO = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "torchvision", "timm", "onnxscript"}
QUICK = ["--batch", "2", "--threads", "1", "--max-seconds", "0.1", "--format", "json"]


def _one_line_error(res, *fragments: str) -> str:
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), res.stderr
    assert "Traceback" not in res.output
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    """Runs a command in an empty folder; the test then checks nothing was written there."""
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


# ---------------------------------------------------------------------------------------------------------------
# bounds: the flag, the value and the valid range, before torch work starts

BOUNDS = [
    (["profile", "resnet18", "--batch", "99999999999999999999"], ["--batch", "99999999999999999999", "1..4096"]),
    (["profile", "resnet18", "--batch", "5000"], ["--batch", "5000", "1..4096"]),
    (["profile", "resnet18", "--batch", "0"], ["--batch", "1..4096"]),
    (["profile", "resnet18", "--batch", "-3"], ["--batch", "1..4096"]),
    (["profile", "resnet18", "--batch", "4096"], ["--batch", "4096", "at most 1783 at 224 px"]),
    (["profile", "resnet18", "--batch", "100", "--image-size", "2048"], ["--batch", "at most 21 at 2048 px"]),
    (["profile", "resnet18", "--threads", "20000"], ["--threads", "20000", "1..256"]),
    (["profile", "resnet18", "--threads", "100000"], ["--threads", "100000", "1..256"]),
    (["profile", "resnet18", "--threads", "0"], ["--threads", "1..256"]),
    (["profile", "resnet18", "--image-size", "4"], ["--image-size", "4", "8..2048"]),
    (["profile", "resnet18", "--image-size", "99999999999"], ["--image-size", "8..2048"]),
    (["profile", "resnet18", "--max-seconds", "0"], ["--max-seconds", "0.1..600"]),
    (["profile", "resnet18", "--max-seconds", "-1"], ["--max-seconds", "0.1..600"]),
    (["profile", "resnet18", "--max-seconds", "nan"], ["--max-seconds", "nan", "0.1..600"]),
    (["profile", "resnet18", "--max-seconds", "inf"], ["--max-seconds", "inf", "0.1..600"]),
    (["profile", "resnet18", "--max-seconds", "1e308"], ["--max-seconds", "0.1..600"]),
    (["profile", "resnet18", "--max-seconds", "soon"], ["--max-seconds", "soon"]),
    (["profile", "resnet18", "--batch", "two"], ["--batch", "two"]),
    (["profile", "resnet18", "--device", "tpu"], ["--device", "tpu"]),
    (["profile", "resnet18", "--format", "yml"], ["--format", "yml"]),
    (["profile", "resnet81"], ["did you mean 'resnet18'"]),
    (["compare", "resnet18", "simple_cnn", "--threads", "100000"], ["--threads", "100000", "1..256"]),
    (["compare", "resnet18", "simple_cnn", "--batch", "99999999999999999999"], ["--batch", "1..4096"]),
    (["compare", "resnet18", "simple_cnn", "--max-seconds", "nan"], ["--max-seconds", "0.1..600"]),
    (["compare", "resnet18"], ["two or more"]),
    (["compare", "resnet18", "resnet18"], ["each architecture once"]),
]


@pytest.mark.parametrize(("args", "fragments"), BOUNDS, ids=[" ".join(a[2:]) or a[1] for a, _ in BOUNDS])
def test_bad_settings_fail_in_one_line_and_write_nothing(cli, tmp_path, args, fragments):
    _one_line_error(cli(*args), *fragments)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args",
    [
        ["profile", "resnet18", "--threads", "20000"],  # libgomp aborted here once
        ["profile", "resnet18", "--threads", "100000"],  # and segfaulted here (exit 139)
        ["profile", "resnet18", "--batch", "99999999999999999999"],
        ["compare", "resnet18", "simple_cnn", "--chart", "/nonexistent/dir/c.png"],
    ],
)
def test_the_error_comes_before_torch_is_imported(tmp_path, args):
    env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "archadvisor", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and errors[0].startswith("error: invalid value for "), errors
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not {m.split(".")[0] for m in imported} & HEAVY
    assert {p.name for p in tmp_path.iterdir()} <= {"cache"}  # nothing but the rules cache


def test_help_states_the_ranges(cli):
    res = cli("profile", "--help")
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    for fragment in ("1..4096", "1..256", "8..2048", "0.1..600"):
        assert fragment in text, fragment
    res = cli("compare", "--help")
    assert "no chart" in " ".join(res.stdout.split())


# ---------------------------------------------------------------------------------------------------------------
# --chart: checked before measuring; no chart unless asked


def _chart_cases(tmp_path: Path) -> list[tuple[str, str]]:
    (tmp_path / "adir.png").mkdir()
    return [
        (str(tmp_path / "missing" / "c.png"), "an existing directory"),
        (str(tmp_path / "adir.png"), "not a directory"),
        (str(tmp_path / "c.jpg"), "ending in .png"),
        ("/proc/c.png", "can write"),  # a virtual file system: unwritable even for root
    ]


def test_unwritable_chart_paths_fail_before_measuring(cli, tmp_path, monkeypatch):
    import archadvisor.measure.profile as profile_module

    def must_not_run(*a, **k):
        raise AssertionError("measured before the chart path was checked")

    monkeypatch.setattr(profile_module, "profile_model", must_not_run)
    for path, why in _chart_cases(tmp_path):
        _one_line_error(cli("compare", "simple_cnn", "resnet18", "--chart", path), "--chart", path, why)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.png"]  # no probe file left behind


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_chart_into_a_read_only_folder_fails(cli, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        _one_line_error(cli("compare", "simple_cnn", "resnet18", "--chart", str(ro / "c.png")), "can write")
    finally:
        ro.chmod(0o700)


def test_compare_without_chart_writes_no_file(cli, tmp_path):
    res = cli("compare", "simple_cnn", "mobilenet_v3_small", "--image-size", "32", *QUICK)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["chart"] is None and out["pareto_front"] == ["mobilenet_v3_small"]
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# the small-input threshold comes from the rules, not from a constant in the measuring code


def test_small_input_stem_follows_the_rules_threshold(cli, monkeypatch):
    from archadvisor.ruleset import RuleSet

    res = cli("profile", "simple_cnn", "--image-size", "32", *QUICK)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["small_input"] is True  # 32 <= 64, the built-in rules' value
    monkeypatch.setattr(RuleSet, "small_input_max_px", property(lambda self: 16))
    res = cli("profile", "simple_cnn", "--image-size", "32", *QUICK)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["small_input"] is False


def test_measure_candidates_takes_the_decision_from_the_caller():
    from archadvisor import measure
    from archadvisor.catalog import load_catalog

    v = load_catalog().resolve("simple_cnn")
    (small,) = measure.measure_candidates([v], 32, small_input=[True], threads=1, max_seconds=0.1)
    (plain,) = measure.measure_candidates([v], 32, small_input=[False], threads=1, max_seconds=0.1)
    assert small["small_input"] is True and plain["small_input"] is False
    with pytest.raises(ValueError, match="small_input flags"):
        measure.measure_candidates([v, v], 32, small_input=[True])


def test_pure_helpers_import_no_torch(tmp_path):
    code = (
        "from archadvisor import measure\n"
        "measure.pareto_front([(1.0, 2.0)]); measure.timing_stats([1.0, 2.0, 3.0], 0, 0.1, 1.0)\n"
        "measure.check_run_options(image_size=None, batch=1, threads=None, max_seconds=1.0)\n"
        "measure.check_chart_path(__import__('pathlib').Path('x.png'))\n"
        "import sys; assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("command", [["profile", "simple_cnn"], ["compare", "simple_cnn", "resnet18"]])
def test_without_torch_one_line_says_what_to_install(cli, tmp_path, monkeypatch, command):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    _one_line_error(cli(*command), "torch", "pip install 'archadvisor[torch]'")
    assert list(tmp_path.iterdir()) == []
