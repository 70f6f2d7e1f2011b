"""Tests of the project core: the model learns, training resumes exactly and extends, exports and predictions
agree, and bad input gets one line. The data comes from the task part's fixtures (tests/conftest.py), so these
tests are the same in every generated project; none of them touches the network: pretrained weights off, or
weights the task's tests build locally (conftest.offline_pretrained; text: a tiny encoder for a fine-tuning project).
"""

import copy
import csv
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import conftest
import pytest
import torch
import yaml
from torch import nn

import task
import train

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
MONITOR = CONFIG["training"]["monitor"]
# the task part may size these runs for a CPU test ({"section.key": value}, e.g. detection: small images, amp
# off); what the tests assert stays the same
CORE_TEST_SETTINGS: dict[str, Any] = getattr(conftest, "CORE_TEST_SETTINGS", {})


def offline_pretrained() -> Any:
    """model.pretrained for the tests, which never download weights: false (from scratch), or what the task's
    conftest.py supplies locally (text: a tiny encoder built in a temporary folder, where the project fine-tunes)."""
    return getattr(conftest, "offline_pretrained", lambda: False)()


def tiny_config(root: Path) -> dict[str, Any]:
    cfg = copy.deepcopy(CONFIG)
    for dotted, value in CORE_TEST_SETTINGS.items():
        section, key = dotted.split(".", 1)
        cfg[section][key] = copy.deepcopy(value)
    cfg["data"].update({"root": str(root), "num_workers": 0, "batch_size": 8})
    cfg["model"]["pretrained"] = offline_pretrained()
    return cfg


def tiny_args(data: Path, out: Path, *extra: str) -> list[str]:
    source = offline_pretrained()
    weights = ["--pretrained", str(source)] if source else ["--no-pretrained"]
    settings = [arg for key, value in CORE_TEST_SETTINGS.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
    return ["--data", str(data), "--out", str(out), "--workers", "1", "--epochs", "2", *weights,
            "--set", "data.batch_size=8", "--set", "training.warmup_epochs=1", *settings, *extra]  # fmt: skip


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


@pytest.mark.parametrize(
    ("planned", "run", "expected"),
    [
        ({"epochs": 50, "warmup_epochs": 5}, 15, {"warmup_epochs": 2}),  # 5/50 of 15 = 1.5 -> 2
        ({"epochs": 50, "warmup_epochs": 5}, 4, {"warmup_epochs": 1}),  # at least one epoch
        ({"epochs": 50, "warmup_epochs": 5}, 50, {"warmup_epochs": 5}),  # as planned
        ({"epochs": 50, "warmup_epochs": 5}, 60, {"warmup_epochs": 5}),  # --resume --epochs 60 extends
        ({"epochs": 50, "warmup_epochs": 0}, 10, {"warmup_epochs": 0}),  # no warmup stays none
        # torchvision detection's 1000 warmup iterations over a 26-epoch plan, run for 13
        ({"epochs": 26, "warmup_epochs": 0, "warmup_steps": 1000}, 13, {"warmup_steps": 500, "warmup_epochs": 0}),
    ],
)
def test_a_shortened_run_keeps_its_warmup_share(planned: dict[str, int], run: int, expected: dict[str, int]) -> None:
    """--epochs 15 on a 50-epoch plan with 5 warmup epochs warms up for 2, not for a third of the run."""
    t = {**CONFIG["training"], "warmup_steps": None, **planned, "epochs": run}
    scaled, note = train.shorten_warmup(t, {**t, **planned})
    assert {key: scaled[key] for key in expected} == expected
    changed = any(planned.get(key) != value for key, value in expected.items())
    assert (note is not None) == changed, note
    if changed:
        assert f"training.epochs {planned['epochs']} -> {run}" in note and "warmup" in note
    assert t["epochs"] == run and all(t[key] == planned[key] for key in expected)  # the config is not changed


def test_the_planned_warmup_is_config_yaml_s_unless_a_set_chooses_it(tmp_path: Path) -> None:
    planned = train.planned_training(train.parse_args(["--epochs", "1", "--set", "training.lr=0.5"]))
    assert planned is not None and planned["epochs"] == CONFIG["training"]["epochs"]
    assert planned["lr"] == CONFIG["training"]["lr"]  # before the overrides
    assert train.planned_training(train.parse_args(["--epochs", "1", "--set", "training.warmup_epochs=3"])) is None
    # the schedule the run builds from it: the shortened warmup ends where the note says
    t = {**CONFIG["training"], "epochs": 10, "warmup_epochs": 0, "warmup_steps": None}
    scaled, _ = train.shorten_warmup({**t, "warmup_epochs": 4}, {**t, "epochs": 20, "warmup_epochs": 4})
    lrs = lr_curve(schedule="constant", epochs=10, warmup_epochs=scaled["warmup_epochs"])
    assert scaled["warmup_epochs"] == 2 and lrs[19] == pytest.approx(1.0) and lrs[9] == pytest.approx(0.5)


def test_train_says_when_it_shortens_the_warmup(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 1-epoch run of this project's plan: its warmup keeps its share of the planned run (at least one unit),
    train.py says so, and the schedule it builds warms up for that long (setup only: nothing trains)."""
    source = offline_pretrained()
    weights = ["--pretrained", str(source)] if source else ["--no-pretrained"]
    args = ["--data", str(tiny_data), "--out", str(tmp_path), "--workers", "1", "--epochs", "1", *weights,
            "--set", "data.batch_size=8"]  # fmt: skip
    run = train.setup(train.parse_args(args))
    try:
        out = capsys.readouterr().out
        t, steps = CONFIG["training"], run.steps_per_epoch
        key = "warmup_steps" if t.get("warmup_steps") is not None else "warmup_epochs"
        # the planned warmup's share of a 1-epoch run, rounded, at least 1 (a step-counted warmup keeps steps)
        kept = max(1, int(t[key] / t["epochs"] + 0.5)) if t[key] else 0
        shortened = t["epochs"] > 1 and kept < t[key]
        if shortened:
            assert f"training.epochs {t['epochs']} -> 1: warmup {t[key]} -> {kept}" in out, out
        else:
            assert "note: training.epochs" not in out, out
        warmup = (kept if shortened else t[key]) * (1 if key == "warmup_steps" else steps)
        warmup = max(0, min(warmup, steps - 1))
        first = run.optimizer.param_groups[0]["lr"] / run.scheduler.base_lrs[0]
        assert first == pytest.approx(1 / warmup if warmup else 1.0)
    finally:
        run.lock.close()


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
    from checkpoint import load_model

    if getattr(load_model(full_run / "best.pt")[0], "onnx_dynamo", None) is True:
        pytest.skip("model.py says this model exports with the torch.export-based exporter only (onnx_dynamo)")

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


# --- a user's results are never replaced or mixed unasked ----------------------------------------------------


def test_a_new_run_into_a_folder_with_a_run_needs_resume_or_overwrite(tiny_data: Path, full_run: Path,
                                                                      tmp_path: Path) -> None:  # fmt: skip
    import shutil

    shutil.copytree(full_run, tmp_path, dirs_exist_ok=True)
    best = (tmp_path / "best.pt").read_bytes()
    with pytest.raises(train.ProjectError, match="already holds a run .*--resume.*--overwrite"):
        train.main(tiny_args(tiny_data, tmp_path))
    assert (tmp_path / "best.pt").read_bytes() == best
    train.main(tiny_args(tiny_data, tmp_path, "--overwrite", "--epochs", "1"))
    assert [m["epoch"] for m in read_metrics(tmp_path)] == [1]  # a new run, not the old one's history


def test_a_second_train_py_into_the_same_folder_is_refused(tiny_data: Path, tmp_path: Path) -> None:
    import fcntl

    tmp_path.mkdir(exist_ok=True)
    with open(tmp_path / ".train.lock", "a+", encoding="utf-8") as held:  # what a running train.py holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 12345\n")
        held.flush()
        with pytest.raises(train.ProjectError, match="in use by another train.py \\(pid 12345\\)"):
            train.main(tiny_args(tiny_data, tmp_path))
    assert not list(tmp_path.glob("*.pt"))


def test_checkpoints_are_written_through_temporary_files_of_their_own(tmp_path: Path) -> None:
    from checkpoint import save_atomic

    save_atomic({"a": torch.zeros(1)}, tmp_path / "last.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no shared last.pt.tmp left behind


def test_a_non_finite_loss_stops_the_run_at_its_step(tiny_data: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    calls, build_loss = [], task.build_loss

    def loss_fn(cfg: dict[str, Any], meta: Any = None) -> Any:
        real = build_loss(cfg, meta)

        def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            calls.append(1)
            value = real(outputs, targets)
            return value * float("nan") if len(calls) == 2 else value

        return loss

    monkeypatch.setattr(train.task, "build_loss", loss_fn)
    # the second loss: batch 2 of epoch 1, or batch 1 of epoch 2 where an epoch is one step (the detection demo)
    with pytest.raises(train.ProjectError, match=r"not finite at epoch (1, batch 2|2, batch 1) of") as err:
        train.main(tiny_args(tiny_data, tmp_path))
    # the epoch with the bad loss is never saved: nothing at all when it was the first
    first_epoch = "epoch 1," in str(err.value)
    assert (tmp_path / "last.pt").exists() is not first_epoch
    assert (tmp_path / "best.pt").exists() is not first_epoch


# --- checkpoints that are not this project's: one line -------------------------------------------------------


def unsafe_pickle() -> bytes:
    """A pickle that would call print() when unpickled without weights_only (harmless, and never loaded)."""
    import pickle

    class Unsafe:
        def __reduce__(self) -> Any:
            return (print, ("this must never run",))

    return pickle.dumps(Unsafe())


@pytest.mark.parametrize("kind", ["empty", "truncated", "foreign", "unsafe", "other_model"])
def test_resume_from_a_file_that_is_not_this_projects_last_pt(tiny_data: Path, full_run: Path, tmp_path: Path,
                                                              kind: str) -> None:  # fmt: skip
    import io

    good = (full_run / "last.pt").read_bytes()
    foreign, other = io.BytesIO(), io.BytesIO()
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, foreign)
    wrong = torch.load(full_run / "last.pt", weights_only=True)
    wrong["model"] = {"conv.weight": torch.zeros(1)}
    torch.save(wrong, other)
    data = {"empty": b"", "truncated": good[: len(good) // 2], "foreign": foreign.getvalue(),
            "unsafe": unsafe_pickle(), "other_model": other.getvalue()}[kind]  # fmt: skip
    (tmp_path / "last.pt").write_bytes(data)
    with pytest.raises(train.ProjectError) as info:
        train.main(tiny_args(tiny_data, tmp_path, "--resume"))
    message = str(info.value)
    assert "\n" not in message and "weights_only" not in message
    assert "not a checkpoint this project wrote" in message or "not a last.pt of this project" in message


def test_unsafe_pickle_is_refused_in_one_line_without_running_it(tmp_path: Path) -> None:
    (tmp_path / "best.pt").write_bytes(unsafe_pickle())
    result = script("evaluate.py", str(tmp_path / "best.pt"))
    assert result.returncode == 2 and "this must never run" not in result.stdout
    expected = (
        f"error: {tmp_path / 'best.pt'} is not a checkpoint this project wrote (it holds Python objects, not only "
        "tensors; it was not loaded, since that could run code); pass a best.pt / last.pt that train.py wrote "
        "(or train again: python train.py --overwrite)"
    )
    assert result.stderr.strip().splitlines() == [expected]


def test_a_last_pt_without_rng_state_resumes(tiny_data: Path, full_run: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    import shutil

    shutil.copytree(full_run, tmp_path, dirs_exist_ok=True)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    del ckpt["rng"]
    torch.save(ckpt, tmp_path / "last.pt")
    train.main([*tiny_args(tiny_data, tmp_path, "--resume"), "--epochs", "3"])
    assert "no RNG state" in capsys.readouterr().out
    assert len(read_metrics(tmp_path)) == 3


def test_allow_config_change_extends_with_the_new_hyperparameters(tiny_data: Path, full_run: Path,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    import shutil

    shutil.copytree(full_run, tmp_path, dirs_exist_ok=True)
    args = [*tiny_args(tiny_data, tmp_path, "--resume", "--allow-config-change", "--set", "training.weight_decay=0.0",
                       "--set", "training.schedule=constant"), "--epochs", "3"]  # fmt: skip
    train.main(args)
    extended = read_metrics(tmp_path)
    assert len(extended) == 3
    assert extended[2]["lr"] == pytest.approx(CONFIG["training"]["lr"], rel=1e-6)  # constant: the peak rate
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["config"]["training"]["weight_decay"] == 0.0
    assert all(g["weight_decay"] == 0.0 for g in last["optimizer"]["param_groups"])


def test_evaluate_refuses_another_familys_checkpoint(full_run: Path, tmp_path: Path) -> None:
    import evaluate

    ckpt = torch.load(full_run / "best.pt", weights_only=True)
    ckpt["meta"]["arch"] = "some_other_family_b0"
    torch.save(ckpt, tmp_path / "best.pt")
    with pytest.raises(train.ProjectError, match="holds a 'some_other_family_b0' model; this project's model.py"):
        evaluate.main([str(tmp_path / "best.pt")])


def test_export_refuses_to_replace_a_file_or_an_export_without_force(
    full_run: Path, exported: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    import export

    (tmp_path / "notes.onnx").write_text("mine\n")
    for out in (tmp_path / "notes.onnx", exported[0]):
        with pytest.raises(train.ProjectError, match="pass --force"):
            export.main([str(full_run / "best.pt"), "--out", str(out)])
    assert (tmp_path / "notes.onnx").read_text() == "mine\n"


# --- config.yaml is checked before anything runs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("training:\n  lr: 0.1\n", "training.epochs is missing"),
        ("run:\n  seed: 0\nrun:\n  seed: 1\n", "line 3: key 'run' is given twice"),
    ],
    ids=["empty", "partial", "duplicate"],
)
def test_a_broken_config_is_one_line(tiny_data: Path, tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(train.ProjectError, match=message):
        train.main(["--config", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_overrides_are_checked_and_1e_3_is_a_number(tiny_data: Path, tmp_path: Path) -> None:
    from config_schema import load_config

    assert load_config(ROOT / "config.yaml", {"training.lr": yaml_value("1e-3")})["training"]["lr"] == 0.001
    for flags, message in [(["--epochs", "0"], "training.epochs is 0"), (["--workers", "two"], "num_workers is 'two'"),
                           (["--seed", "-1"], "run.seed is -1"), (["--device", "tpu"], "--device 'tpu'"),
                           (["--set", "training.lrr=0.1"], "did you mean training.lr"),
                           (["--set", "training.lr=.nan"], "training.lr is nan")]:  # fmt: skip
        with pytest.raises(train.ProjectError, match=message):
            train.main([*tiny_args(tiny_data, tmp_path), *flags])


def yaml_value(text: str) -> Any:
    from config_schema import parse

    return parse(text, "test")
