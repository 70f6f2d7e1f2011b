"""Tests of the time-series classification part: TEST scored once with the 1-NN baseline beside it, the split
carved from TRAIN, predictions.csv, and one-line data errors."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import data
import predict
import task
import train

ROOT = Path(__file__).resolve().parents[1]


def tiny_args(root: Path, out: Path, *extra: str) -> list[str]:
    return ["--data", str(root), "--out", str(out), "--workers", "0", "--epochs", "1", "--no-pretrained",
            "--set", "data.batch_size=8", *extra]  # fmt: skip


def test_summary_has_test_scores_and_the_one_nn_baseline(tiny_data: Path, tmp_path: Path) -> None:
    summary = train.main(tiny_args(tiny_data, tmp_path))
    written = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    for key in ("best_val_acc1", "test_acc1", "test_macro_f1", "baseline_test_acc1"):
        assert 0 <= written[key] <= 100, key
    assert written == {**summary, "wall_seconds": written["wall_seconds"]}
    # the baseline is 1-NN with the fit split (TRAIN minus val) as its reference set, on TEST
    cfg = train.load_config(train.parse_args(tiny_args(tiny_data, tmp_path)))
    _, fit, _, test = task.splits(cfg)
    assert written["baseline_test_acc1"] == pytest.approx(data.one_nn_accuracy(fit, test))


def test_stop_after_does_not_score_test(tiny_data: Path, tmp_path: Path) -> None:
    summary = train.main(tiny_args(tiny_data, tmp_path, "--epochs", "2", "--stop-after", "1"))
    assert "test_acc1" not in summary


def test_val_is_carved_from_train_stratified(tiny_data: Path) -> None:
    cfg = train.load_config(train.parse_args(tiny_args(tiny_data, Path("unused"))))
    _, fit, val, test = task.splits(cfg)
    assert len(fit) + len(val) == 20 and len(test) == 12
    assert sorted(np.bincount(val.y).tolist()) == [2, 2]


def test_predictions_csv_has_one_row_per_series(tiny_data: Path, tmp_path: Path) -> None:
    train.main(tiny_args(tiny_data, tmp_path / "run"))
    path = predict.main([str(tiny_data / "test.npz"), "--out", str(tmp_path / "p"),
                         "--checkpoint", str(tmp_path / "run" / "best.pt"), "--top-k", "2"])  # fmt: skip
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert path.name == "predictions.csv" and len(rows) == 12
    assert list(rows[0]) == ["file", "series", "label_1", "prob_1", "label_2", "prob_2"]
    assert {r["label_1"] for r in rows} <= {"1", "2"}
    assert all(float(r["prob_1"]) >= float(r["prob_2"]) for r in rows)


def test_data_errors_are_one_line(tiny_data: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "X_TRAIN.ts").write_text("@problemName X\n@classLabel true a b\n@bogus 1\n@data\n1,2,3:a\n")
    (bad / "X_TEST.ts").write_text("@problemName X\n@classLabel true a b\n@data\n1,2,3:a\n")
    result = subprocess.run([sys.executable, "train.py", "--data", str(bad), "--out", str(tmp_path / "o")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 2
    expected = (
        f"error: {bad / 'X_TRAIN.ts'}:3: unknown header tag @bogus; this reader knows @{', @'.join(data.TS_TAGS)}"
    )
    assert result.stderr.strip().splitlines() == [expected]
