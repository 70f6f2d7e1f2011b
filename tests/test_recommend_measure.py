"""recommend --measure: measured on this machine when it is the target, estimates (labelled) elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from archadvisor.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_measure_on_cloud_cpu_ranks_measured_candidates():
    args = ["recommend", "--images", "1437", "--classes", "10", "--image-size", "32", "--compute", "cpu",
            "--target", "cloud-cpu", "--no-pretrained", "--measure", "--format", "json"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rec = json.loads(result.stdout)
    dep = rec["deployment"]
    assert dep["latency_measured"] is True
    assert dep["latency_basis"].startswith("measured here")
    rules = {t["rule"] for t in rec["trace"]}
    assert {"measure.pool", "measure"} <= rules
    note = next(t["because"] for t in rec["trace"] if t["rule"] == "measure")
    assert rec["architecture"]["name"] in note  # the winner was among the measured
    assert "median of" in note


def test_measure_for_an_edge_target_is_an_estimate_and_stays_torch_free():
    cmd = [sys.executable, "-X", "importtime", "-m", "archadvisor", "recommend", "--images", "8000",
           "--target", "jetson", "--measure", "--format", "json"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rec = json.loads(proc.stdout)
    assert rec["deployment"]["latency_measured"] is False
    assert "estimate" in rec["deployment"]["latency_basis"]
    note = next(t["because"] for t in rec["trace"] if t["rule"] == "measure")
    assert "not this machine" in note
    assert not any(line.split("|")[-1].strip().startswith("torch") for line in proc.stderr.splitlines())
