"""Test data: the first 200 months of the bundled Mauna Loa CO2, and one short training run the tests share."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo" / "co2_monthly.csv"
# one epoch of 8 batches on CPU: enough to write every file a run writes, in seconds
TINY = [
    "--epochs",
    "1",
    "--set",
    "data.batch_size=16",
    "--set",
    "training.limit_train_batches=8",
    "--set",
    "data.horizon=6",
    "--set",
    "data.lookback=24",
]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "co2.csv"
    path.write_text("".join(DEMO.read_text(encoding="utf-8").splitlines(keepends=True)[:201]), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python train.py`` for one short epoch on the tiny data, in this process."""
    import train

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = tmp_path_factory.mktemp("run")
    train.main(["--data", str(tiny_data), "--out", str(out), *TINY])
    return out
