"""Tests of the project core: the model learns, training resumes exactly and extends, exports and predictions
agree, and bad input gets one line. The data comes from the task part's fixtures (tests/conftest.py), so these
tests are the same in every generated project; none of them touches the network (pretrained weights off).
"""

import copy
import csv
import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from torch import nn

import task
import train

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
MONITOR = CONFIG["training"]["monitor"]


def tiny_config(root: Path) -> dict[str, Any]:
    cfg = copy.deepcopy(CONFIG)
    cfg["data"].update({"root": str(root), "num_workers": 0, "batch_size": 8})
    cfg["model"]["pretrained"] = False
    return cfg


def tiny_args(data: Path, out: Path, *extra: str) -> list[str]:
    # --no-pretrained: the tests never download weights, whatever the project was generated with
    return ["--data", str(data), "--out", str(out), "--workers", "1", "--epochs", "2", "--no-pretrained",
            "--set", "data.batch_size=8", "--set", "training.warmup_epochs=1", *extra]  # fmt: skip


def read_metrics(out: Path) -> list[dict[str, float]]:
    with open(out / "metrics.csv", encoding="utf-8") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def tiny_meta(root: Path) -> dict[str, Any]:
    cfg = tiny_config(root)
    data = task.build_data(cfg, task.data_stage(cfg, 0), rank=0, world_size=1, pin_memory=False)
    return task.data_meta(cfg, data, log=lambda *a, **k: None)


def fresh_model(root: Path, **model: Any) -> nn.Module:
    cfg = tiny_config(root)
    cfg["model"].update(model)
    return task.build_model(cfg, tiny_meta(root), log=lambda *a, **k: None)


def tiny_loss(root: Path) -> nn.Module:
    """The task's loss as train.py builds it (with the data's meta: e.g. class weights from the masks)."""
    return task.build_loss(tiny_config(root), tiny_meta(root))


def script(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, name, *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=300, check=False)  # fmt: skip


@pytest.fixture(scope="session")
def full_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("full")
    train.main(tiny_args(tiny_data, out))
    return out


@pytest.fixture(scope="session")
def exported(full_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import export

    out = tmp_path_factory.mktemp("export")
    return out, export.main([str(full_run / "best.pt"), "--out", str(out)])


# --- the model learns --------------------------------------------------------------------------------------


def test_model_builds_and_backpropagates(tiny_data: Path, fixed_batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    model = fresh_model(tiny_data)
    inputs, targets = fixed_batch
    outputs = model(inputs)
    tiny_loss(tiny_data)(outputs, targets).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


def test_one_training_step_lowers_the_loss(tiny_data: Path, fixed_batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """One step of train_one_epoch with the configured optimizer lowers the loss on a fixed batch.

    The update must be a descent direction through every layer. How long a step may be depends on the curvature
    of the fresh network (a ViT overshoots at rates a CNN takes easily), so the step is tried at a tenth, a
    hundredth and a thousandth of the peak rate; a real run starts low too (warmup). A wrong gradient fails all.
    """
    inputs, targets = fixed_batch
    loss_fn = tiny_loss(tiny_data)
    t = CONFIG["training"]
    tried = []
    for divisor in (10, 100, 1000):
        torch.manual_seed(0)
        model = fresh_model(tiny_data, drop_path=0.0, dropout=0.0).train()  # deterministic
        optimizer = train.build_optimizer(model, {**t, "lr": t["lr"] / divisor})
        before = loss_fn(model(inputs), targets).item()
        train.train_one_epoch(model, [(inputs, targets)], optimizer, loss_fn, device=torch.device("cpu"),
                              clip_norm=t["grad_clip_norm"])  # fmt: skip
        after = loss_fn(model(inputs), targets).item()
        if after < before:
            return
        tried.append(f"lr {t['lr'] / divisor:g}: {before:.4f} -> {after:.4f}")
    pytest.fail(f"no step lowered the loss ({'; '.join(tried)})")


# --- learning-rate schedules -----------------------------------------------------------------------------


def lr_curve(steps_per_epoch: int = 10, **training: Any) -> list[float]:
    """The lr at every optimizer step of a run with CONFIG's training section updated by ``training``."""
    t = {**CONFIG["training"], "lr": 1.0, "min_lr": 0.0, "epochs": 10, "warmup_epochs": 0, "warmup_steps": None,
         **training}  # fmt: skip
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=t["lr"])
    scheduler = train.build_scheduler(optimizer, t, steps_per_epoch)
    lrs = []
    for _ in range(t["epochs"] * steps_per_epoch):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_cosine_schedule_ends_at_min_lr() -> None:
    lrs = lr_curve(schedule="cosine", min_lr=0.01)
    assert lrs[0] == 1.0 and lrs[50] == pytest.approx(0.505)
    assert lrs[-1] == pytest.approx(0.01, abs=1e-3) and all(a >= b for a, b in itertools.pairwise(lrs))


def test_poly_schedule_follows_its_power() -> None:
    lrs = lr_curve(schedule="poly", poly_power=0.9)
    for step in (0, 25, 50, 99):
        assert lrs[step] == pytest.approx((1 - step / 100) ** 0.9)
    assert lr_curve(schedule="poly", poly_power=2.0)[50] == pytest.approx(0.25)


def test_multistep_schedule_drops_tenfold_at_each_milestone_epoch() -> None:
    lrs = lr_curve(schedule="multistep", milestones=[6, 8])
    assert lrs[59] == 1.0 and lrs[60] == pytest.approx(0.1) and lrs[79] == pytest.approx(0.1)
    assert lrs[80] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.01)
    with pytest.raises(train.ProjectError, match="milestones"):
        lr_curve(schedule="multistep", milestones=None)


def test_linear_schedule_goes_straight_to_min_lr() -> None:
    lrs = lr_curve(schedule="linear", min_lr=0.1)
    for step in (0, 40, 99):
        assert lrs[step] == pytest.approx(0.1 + 0.9 * (1 - step / 100))


def test_warmup_counts_optimizer_steps_when_warmup_steps_is_set() -> None:
    by_steps = lr_curve(schedule="constant", warmup_steps=4, warmup_epochs=3)
    assert by_steps[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])
    by_epochs = lr_curve(schedule="constant", warmup_epochs=2)
    assert by_epochs[19] == pytest.approx(1.0) and by_epochs[9] == pytest.approx(0.5)
    assert by_epochs[0] == pytest.approx(0.05)
    with pytest.raises(train.ProjectError, match="supported are cosine, poly, multistep, linear, constant"):
        lr_curve(schedule="step")


# --- checkpoints: exact resume, extension, refusals --------------------------------------------------------


def test_checkpoint_resume_reproduces_the_uninterrupted_run(tiny_data: Path, full_run: Path, tmp_path: Path) -> None:
    train.main(tiny_args(tiny_data, tmp_path, "--stop-after", "1"))
    assert len(read_metrics(tmp_path)) == 1
    train.main(tiny_args(tiny_data, tmp_path, "--resume"))
    resumed, uninterrupted = read_metrics(tmp_path), read_metrics(full_run)
    assert len(resumed) == len(uninterrupted) == 2
    for a, b in zip(resumed, uninterrupted, strict=True):
        for key in a.keys() - {"seconds"}:
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6, nan_ok=True), key
    # the checkpoint loads without unpickling Python objects, and holds the same weights
    ours = torch.load(tmp_path / "last.pt", weights_only=True)
    theirs = torch.load(full_run / "last.pt", weights_only=True)
    for key, tensor in theirs["model"].items():
        torch.testing.assert_close(ours["model"][key], tensor, rtol=1e-5, atol=1e-6)


def test_resume_refuses_a_changed_config(tiny_data: Path, full_run: Path) -> None:
    with pytest.raises(train.ProjectError, match="training.lr"):
        train.main(tiny_args(tiny_data, full_run, "--resume", "--set", "training.lr=0.12345"))


def test_a_finished_run_extends_with_a_rebuilt_schedule(
    tiny_data: Path, full_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--resume --epochs 3 after a finished 2-epoch run trains a third epoch on the schedule of a 3-epoch run."""
    import shutil

    shutil.copytree(full_run, tmp_path, dirs_exist_ok=True)
    capsys.readouterr()
    summary = train.main([*tiny_args(tiny_data, tmp_path, "--resume"), "--epochs", "3"])
    assert "rebuilt for 3 epochs" in capsys.readouterr().out
    extended = read_metrics(tmp_path)
    assert [m["epoch"] for m in extended] == [1, 2, 3]
    assert repr(extended[:2]) == repr(read_metrics(full_run))  # exact, and NaN (no val loss) equals NaN
    assert summary["epochs_run"] == 3
    # the third epoch's lr is the 3-epoch schedule's value at that step, not the end of the 2-epoch one
    cfg = tiny_config(tiny_data)
    cfg["training"].update(epochs=3, warmup_epochs=1)
    steps = len(task.build_data(cfg, task.data_stage(cfg, 0), rank=0, world_size=1, pin_memory=False).train_loader)
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=cfg["training"]["lr"])
    scheduler = train.build_scheduler(optimizer, cfg["training"], steps)
    for _ in range(2 * steps):
        optimizer.step()
        scheduler.step()
    assert extended[2]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-6)
    with pytest.raises(train.ProjectError, match="already completed 3"):
        train.main([*tiny_args(tiny_data, tmp_path, "--resume"), "--epochs", "2"])


def test_summary_follows_the_monitor(full_run: Path) -> None:
    """best_<monitor> is the best epoch's value; the epoch's other validation metrics come with it."""
    import json

    summary = json.loads((full_run / "summary.json").read_text(encoding="utf-8"))
    history = read_metrics(full_run)
    values = [m[MONITOR["metric"]] for m in history]
    assert summary[f"best_{MONITOR['metric']}"] == pytest.approx((max if MONITOR["mode"] == "max" else min)(values))
    best = history[summary["best_epoch"] - 1]
    assert best[MONITOR["metric"]] == pytest.approx(summary[f"best_{MONITOR['metric']}"])
    others = set(best) - {"epoch", "lr", "train_loss", "seconds", MONITOR["metric"]}
    assert others and all(summary[key] == pytest.approx(best[key], nan_ok=True) for key in others)
    assert torch.load(full_run / "best.pt", weights_only=True)["metrics"][MONITOR["metric"]] == pytest.approx(
        summary[f"best_{MONITOR['metric']}"]
    )


# --- evaluate, export, predict -----------------------------------------------------------------------------


def test_evaluate_reports_the_checkpoint_metrics(full_run: Path, tmp_path: Path) -> None:
    import evaluate

    result = evaluate.main([str(full_run / "best.pt"), "--out", str(tmp_path)])  # the checkpoint's data.root
    best = torch.load(full_run / "best.pt", weights_only=True)
    assert result["ema"] is (best["model_ema"] is not None)
    # train.py validated under autocast, evaluate.py runs fp32: allow one sample's worth of difference
    for key, value in best["metrics"].items():
        # NaN: a metric the task does not compute (detectors return no val loss)
        assert result[key] == pytest.approx(value, rel=0.1, abs=100 / result["samples"] + 1e-6, nan_ok=True), key


def test_export_matches_pytorch(exported: tuple[Path, dict[str, Any]]) -> None:
    import export

    out, report = exported
    if hasattr(task, "check_onnx"):  # detection: checked on real val images, detections matched by content
        check = report["onnx_check"]
        assert check["expected"] > 0 and check["matched"] >= check["expected"] and not check["extra"]
        assert (out / "model.onnx").is_file()
        return
    assert report["onnx_max_scaled_diff"] <= export.FP32_TOLERANCE
    assert report["torchscript_max_scaled_diff"] <= export.FP32_TOLERANCE
    assert "dynamo=" in report["exporter"]
    assert (out / "model.onnx").is_file() and (out / "model.ts").is_file()
    if CONFIG["export"]["quantize"] != "none":
        assert (out / "model.int8.onnx").is_file()
        metric = report["metric"]
        assert abs(report[f"{metric}_int8"] - report[f"{metric}_fp32"]) <= max(5.0, abs(report[f"{metric}_fp32"]))


def test_the_other_onnx_exporter_agrees_too(full_run: Path, tmp_path: Path) -> None:
    """export.dynamo: false runs the TorchScript-based exporter (for models torch.export cannot take)."""
    pytest.importorskip("onnxruntime")
    if hasattr(task, "check_onnx"):
        pytest.skip("the task exports with its one exporter (detection: TorchScript-based, data-dependent NMS)")
    import export

    config = copy.deepcopy(CONFIG)
    config["export"].update(dynamo=False, quantize="none", precision="fp32")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    report = export.main(
        [str(full_run / "best.pt"), "--out", str(tmp_path / "e"), "--config", str(tmp_path / "config.yaml")]
    )
    assert "dynamo=False" in report["exporter"]
    assert report["onnx_max_scaled_diff"] <= export.FP32_TOLERANCE


def test_predictions_from_the_checkpoint_and_the_onnx_file_agree(
    full_run: Path,
    exported: tuple[Path, dict[str, Any]],
    predict_inputs: list[str],
    same_predictions: Any,
    tmp_path: Path,
) -> None:
    """predict.py through PyTorch and through onnxruntime writes the same outputs (the task's fixture compares)."""
    import predict

    ckpt = ["--checkpoint", str(full_run / "best.pt")]
    from_torch = predict.main([*predict_inputs, "--out", str(tmp_path / "torch"), *ckpt])
    from_onnx = predict.main(
        [*predict_inputs, "--out", str(tmp_path / "onnx"), *ckpt, "--onnx", str(exported[0] / "model.onnx")]
    )
    assert from_torch.name == from_onnx.name
    same_predictions(from_torch, from_onnx)


# --- bad input: one line, exit status 2 ---------------------------------------------------------------------


def test_missing_checkpoint_is_one_line(tmp_path: Path) -> None:
    for name in ("evaluate.py", "export.py"):
        result = script(name, str(tmp_path / "none.pt"))
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip() == f"error: no checkpoint at {tmp_path / 'none.pt'} (train first: python train.py)"
    result = script(
        "predict.py", str(tmp_path), "--out", str(tmp_path / "p"), "--checkpoint", str(tmp_path / "none.pt")
    )
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_missing_onnx_file_is_one_line(full_run: Path, predict_inputs: list[str], tmp_path: Path) -> None:
    result = script("predict.py", *predict_inputs, "--out", str(tmp_path), "--checkpoint", str(full_run / "best.pt"),
                    "--onnx", str(tmp_path / "none.onnx"))  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: no ONNX model at {tmp_path / 'none.onnx'} (export one first: python export.py)"
    ]


def test_export_without_the_export_packages_says_what_to_install(full_run: Path) -> None:
    # an import that fails the way a missing package does: None in sys.modules makes `import onnxscript` raise
    code = ("import sys, runpy; sys.modules['onnxscript'] = None; sys.argv = ['export.py', sys.argv[1]]; "
            "runpy.run_path('export.py', run_name='__main__')")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code, str(full_run / "best.pt")], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "error: export.py needs onnxscript: pip install -e '.[export]'"
