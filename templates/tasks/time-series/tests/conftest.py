"""The task's test data for the core's tests and its own: the first 200 months of the bundled Mauna Loa CO2.

Fixtures every task part provides (the core's tests use them without knowing the task):
  tiny_data       a dataset root in the task's layout (here: one CSV), small enough for a 2-epoch run in seconds
  predict_inputs  input paths for predict.py (here: the same CSV)
  fixed_batch     (inputs, targets) to check that one optimizer step lowers the loss
  same_predictions  asserts that two predict.py outputs (PyTorch, onnxruntime) agree
"""

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

import data
import task

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo" / "co2_monthly.csv"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "co2.csv"
    path.write_text("".join(DEMO.read_text(encoding="utf-8").splitlines(keepends=True)[:201]), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def predict_inputs(tiny_data: Path) -> list[str]:
    return [str(tiny_data)]


@pytest.fixture
def fixed_batch() -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    series = data.read_csv(DEMO)
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    horizon, lookback = task.horizon_lookback(cfg, series)
    w = data.make_windows(series, lookback=lookback, horizon=horizon)
    x, y, s = data.window_arrays(series, w, w.train[:16])
    return torch.from_numpy(x), (torch.from_numpy(y), torch.from_numpy(s))


@pytest.fixture
def same_predictions() -> Callable[[Path, Path], None]:
    """forecast.csv of two runs: the same series and times, values within 1e-4 relative."""

    def check(a_path: Path, b_path: Path) -> None:
        a, b = pd.read_csv(a_path), pd.read_csv(b_path)
        assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
        numeric = a.select_dtypes("number").columns
        for col in a.columns:
            if col in numeric:
                assert a[col].to_numpy() == pytest.approx(b[col].to_numpy(), rel=1e-4), col
            else:
                assert a[col].tolist() == b[col].tolist(), col

    return check
