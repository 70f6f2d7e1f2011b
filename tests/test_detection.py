"""The detection / instance-segmentation task part, tested as a generated project will hold it: the task part
(templates/tasks/detection), the model file (templates/models/detection_tv.py as model.py) and the core's
errors.py assembled in a folder, and the part's own tests run there (offline, CPU, small images)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
TASK = TEMPLATES / "tasks" / "detection"


def assemble(dest: Path) -> Path:
    """The files a detection project gets from the task part, the model file and the core."""
    shutil.copytree(TASK, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "digits_coco", ".digits-*"))
    shutil.copy(TEMPLATES / "models" / "detection_tv.py", dest / "model.py")
    shutil.copy(TEMPLATES / "core" / "errors.py", dest / "errors.py")
    shutil.copy(TEMPLATES / "core" / "files.py", dest / "files.py")
    return dest


def test_detection_task_part_passes_its_own_tests(tmp_path: Path) -> None:
    project = assemble(tmp_path / "project")
    env = {**os.environ, "OMP_NUM_THREADS": "2", "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
         "tests/test_task.py"],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_profile_measures_a_torchvision_detector() -> None:
    """`archadvisor profile` builds the detector a project trains (COCO's 91 outputs, random weights) and
    measures it whole: parameters equal torchvision's published count, GMACs, latency, memory of a train step
    on the detector's own losses."""
    import json

    from typer.testing import CliRunner

    from archadvisor.cli import app

    args = ["profile", "ssdlite320_mobilenet_v3_large", "--image-size", "64", "--batch", "2", "--threads", "1",
            "--max-seconds", "0.1", "--format", "json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout[result.stdout.index("{") :])
    assert r["arch"] == "ssdlite320_mobilenet_v3_large" and r["params_match_catalog"] and r["params"] == 3_440_060
    assert 0 < r["gmacs"] < r["catalog"]["gmacs"]  # 64 px: well under the catalog's 320 px figure
    assert r["latency"]["batch1"]["median_ms"] > 0
    assert r["memory"]["train_step"]["peak_mb"] > r["memory"]["inference"]["peak_mb"] > 0
    refused = CliRunner().invoke(app, ["profile", "ssdlite320_mobilenet_v3_large", "--onnx"])
    assert refused.exit_code == 2 and "--onnx" in refused.output and "Traceback" not in refused.output
