"""The advice commands never import torch (issue 2, section 6).

torch takes seconds to import; ``recommend``, ``explain``, ``archs`` and ``rules`` must answer in the
time any typer + rich CLI needs. Each command runs in a fresh interpreter under ``python -X importtime``,
which logs every module imported; the test fails on any module of torch (or of the libraries that
import it: torchvision, timm, onnxscript). It also checks that the command did its work (exit 0, and the engine
or the rules loader really was imported), so an early crash cannot pass as "no torch".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# torch and the libraries that import it on import
HEAVY = {"torch", "torchvision", "timm", "onnxscript"}
GOOD_RULES = Path(__file__).parent / "fixtures" / "good_rules" / "prefer_resnet"

PROBLEM = ["--task", "classification", "--images", "8000", "--target", "jetson"]
COMMANDS = {
    "recommend": (["recommend", *PROBLEM, "--format", "json"], "archadvisor.engine"),
    "recommend-table": (["recommend", *PROBLEM], "archadvisor.engine"),
    "recommend-markdown": (["recommend", *PROBLEM, "--format", "markdown"], "archadvisor.engine"),
    "recommend-detection": (["recommend", "--task", "detection", "--images", "900", "--format", "json"], "archadvisor.engine"),
    "recommend-rules": (["recommend", *PROBLEM, "--rules", str(GOOD_RULES), "--format", "json"], "archadvisor.engine"),
    "recommend-latency": (["recommend", *PROBLEM, "--latency-ms", "20", "--format", "yaml"], "archadvisor.engine"),
    "explain": (["explain", *PROBLEM], "archadvisor.engine"),
    "explain-json": (["explain", *PROBLEM, "--format", "json"], "archadvisor.engine"),
    "archs": (["archs"], "archadvisor.catalog"),
    "archs-json": (["archs", "--family", "ResNet", "--format", "json"], "archadvisor.catalog"),
    "rules-validate": (["rules", "validate"], "archadvisor.ruleset"),
    "rules-validate-dir": (["rules", "validate", str(GOOD_RULES)], "archadvisor.ruleset"),
    "rules-show": (["rules", "show"], "archadvisor.ruleset"),
    "version": (["--version"], "archadvisor.cli"),
    "help": (["--help"], "archadvisor.cli"),
}  # fmt: skip


def imported_modules(stderr: str) -> list[str]:
    """Module names from ``-X importtime`` lines: ``import time: self | cumulative | name``."""
    names = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.append(name)
    return names


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_command_never_imports_torch(name: str, cache: str, tmp_path: Path) -> None:
    args, must_import = COMMANDS[name]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-X", "importtime", "-m", "archadvisor", *args]
    if cache == "warm":  # the second run reads whatever the first one cached
        subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = imported_modules(proc.stderr)
    assert must_import in modules, f"{must_import} was never imported: did the command run?"
    heavy = sorted({m for m in modules if m.split(".")[0] in HEAVY})
    assert not heavy, f"archadvisor {' '.join(args)} imported {heavy[:10]}"
    assert proc.stdout.strip(), "the command printed nothing"


@pytest.mark.slow
def test_parser_reads_importtime_output() -> None:
    """The check above is only as good as this parser: it must see torch when torch is imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import torch"], capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip("torch is not installed here")
    modules = imported_modules(proc.stderr)
    assert "torch" in modules and any(m.startswith("torch.") for m in modules)


# modules the warm `recommend --format json` path has no use for: the rules come from the JSON cache
# (yaml only parses rule files on a cold cache), records are NamedTuples (dataclasses execs code per class)
NOT_ON_THE_WARM_PATH = {"yaml", "dataclasses", "pandas", "numpy", "jinja2"}


def test_warm_recommend_imports_nothing_it_does_not_need(tmp_path: Path) -> None:
    """The start-up budget (bench/cli_latency.py): each of these costs milliseconds at every start."""
    args, _ = COMMANDS["recommend"]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-X", "importtime", "-m", "archadvisor", *args]
    cold = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert "yaml" in imported_modules(cold.stderr)  # a cold cache parses the rule files: the check can see yaml
    warm = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert warm.returncode == 0, warm.stderr[-3000:]
    modules = imported_modules(warm.stderr)
    assert "archadvisor.engine" in modules
    extra = sorted({m.split(".")[0] for m in modules} & NOT_ON_THE_WARM_PATH)
    assert not extra, f"warm `archadvisor recommend` imported {extra}"
