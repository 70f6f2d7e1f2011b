"""The wheel: it carries the rules and templates, and the installed tool works outside the repo.

The build runs on a copy of the source tree (not in the working tree, which other runs may be
building at the same time), offline: ``pip wheel --no-deps --no-build-isolation --no-index`` with
the setuptools already in the environment. The wheel is unpacked with ``pip install --no-deps
--target`` and run with only that directory on PYTHONPATH, from a directory that is not the repo.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# never copied: the environment, caches, build outputs, and things the wheel does not contain
SKIP_TOP = {".venv", ".git", "tests", "bench", "build", "dist", ".pytest_cache", ".ruff_cache", ".hypothesis", "runs",
            "demo-project", ".ci", "scripts"}  # fmt: skip


def _copy_source(dest: Path, *, keep_bytecode: bool = False) -> Path:
    src = dest / "src"
    ignore = (
        shutil.ignore_patterns("*.egg-info")
        if keep_bytecode
        else shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    )
    src.mkdir()
    for item in REPO.iterdir():
        if item.name in SKIP_TOP or item.name.endswith(".egg-info"):
            continue
        if item.is_dir():
            shutil.copytree(item, src / item.name, ignore=ignore)
        else:
            shutil.copy2(item, src / item.name)
    return src


def _build_wheel(src: Path, out: Path) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", str(src),
         "-w", str(out)],
        capture_output=True, text=True, timeout=300, check=False, cwd=src,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    wheels = list(out.glob("archadvisor-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    return _build_wheel(_copy_source(tmp), tmp / "dist")


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return target


def _run(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(target), XDG_CACHE_HOME=str(cwd / "cache"), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120,
                          check=False)  # fmt: skip


@pytest.mark.slow
def test_wheel_contains_rules_and_templates(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in sorted((REPO / "rules").glob("*.yaml")):
        assert f"archadvisor/rules/{f.name}" in names, f"rules/{f.name} is not in the wheel"
    templates = [
        p
        for p in (REPO / "templates").rglob("*")
        # caches that tools leave in a checkout (ruff puts .ruff_cache next to templates/core/ruff.toml)
        if p.is_file() and not {"__pycache__", ".ruff_cache", ".pytest_cache"} & set(p.parts) and p.suffix != ".pyc"
    ]
    assert any(p.parent.name == "models" and p.suffix == ".py" for p in templates)
    for p in templates:
        rel = p.relative_to(REPO / "templates").as_posix()
        assert f"archadvisor/templates/{rel}" in names, f"templates/{rel} is not in the wheel"
    for module in (REPO / "archadvisor").rglob("*.py"):  # subpackages too (archadvisor/measure/)
        rel = module.relative_to(REPO).as_posix()
        assert rel in names, f"{rel} is not in the wheel"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "archadvisor = archadvisor.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow
def test_wheel_carries_no_bytecode(tmp_path: Path) -> None:
    """Running the tests imports templates/models/*.py by path, which leaves __pycache__ beside them;
    a wheel built from that tree must not ship those .pyc files (stale, interpreter-specific)."""
    src = _copy_source(tmp_path, keep_bytecode=True)
    stale = src / "templates" / "models" / "__pycache__"
    stale.mkdir(exist_ok=True)
    (stale / "resnet.cpython-311.pyc").write_bytes(b"\x00stale")
    (src / "archadvisor" / "__pycache__").mkdir(exist_ok=True)
    (src / "archadvisor" / "__pycache__" / "cli.cpython-311.pyc").write_bytes(b"\x00stale")
    names = zipfile.ZipFile(_build_wheel(src, tmp_path / "dist")).namelist()
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n], [n for n in names if ".pyc" in n]


@pytest.mark.slow
def test_installed_wheel_recommends_outside_the_repo(installed: Path, tmp_path: Path) -> None:
    where = _run(installed, tmp_path, "-c",
                 "import archadvisor, archadvisor.resources as r; print(archadvisor.__file__); print(r.rules_dir()); "
                 "print(r.templates_dir())")  # fmt: skip
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert Path(line).resolve().is_relative_to(installed.resolve()), f"{line} is not from the installed wheel"
        assert not Path(line).resolve().is_relative_to(REPO), line

    proc = _run(installed, tmp_path, "-m", "archadvisor", "recommend", "--task", "classification", "--images", "8000",
                "--target", "jetson", "--format", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads(proc.stdout)
    assert rec["task"] == "classification" and rec["architecture"]["name"]
    assert rec["deployment"]["target"] == "jetson"

    # the same answer as the working tree gives
    here = subprocess.run([sys.executable, "-m", "archadvisor", "recommend", "--task", "classification", "--images",
                           "8000", "--target", "jetson", "--format", "json"],
                          capture_output=True, text=True, cwd=REPO, timeout=120, check=False)  # fmt: skip
    assert here.returncode == 0, here.stderr
    expected = json.loads(here.stdout)
    for key in ("architecture", "alternatives", "training", "augmentation", "deployment", "rules_digest"):
        assert rec[key] == expected[key], key


@pytest.mark.slow
@pytest.mark.parametrize(
    "args", [["rules", "validate"], ["archs", "--format", "json"], ["--version"], ["profile", "--help"]]
)
def test_installed_wheel_other_commands(installed: Path, tmp_path: Path, args: list[str]) -> None:
    proc = _run(installed, tmp_path, "-m", "archadvisor", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()


@pytest.mark.slow
def test_installed_wheel_reports_errors_in_one_line(installed: Path, tmp_path: Path) -> None:
    proc = _run(installed, tmp_path, "-m", "archadvisor", "recommend", "--task", "clasification", "--images", "10")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert "did you mean 'classification'" in proc.stderr
