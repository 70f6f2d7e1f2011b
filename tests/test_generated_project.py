"""End-to-end: generated projects pass their own tests and really train, for every task kind the scaffolder has.

Per task kind (TASK_KINDS; a new kind plugs in with one entry):
* one project, generated with pretrained weights allowed, runs its own full pytest offline (the core's and the
  task's tests: build, a step lowers the loss, resume, extension, export and predict parity, data checks);
* the demo trains with the engine's recommendation to the kind's target (classification: digits >= 98.5 %),
  then the README's commands run as written (evaluate, predict, export, predict --onnx);
* ``torchrun --nproc_per_node 2`` on CPU (gloo) completes an epoch;
* a run killed with SIGKILL mid-epoch and resumed ends with the metrics of an uninterrupted run.
Every other family of the catalog is only built, run forward and exported in-process (fast). The demo with the
full recommended schedule is marked ``bench`` (``make test`` deselects it).

Subprocesses use the test interpreter, so the project runs against exactly the installed torch/torchvision.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from zoo_support import catalog, families, smallest_per_family

from archadvisor.recommendation import Recommendation
from archadvisor.resources import model_file, templates_dir
from archadvisor.scaffold import SCAFFOLD_TASKS, render_project, write_project

FIXTURE = Path(__file__).parent / "fixtures" / "rec_digits.json"

# one thread per process: the checks run side by side (pytest-xdist), and oversubscribed OpenMP threads
# on 2 cores cost far more than they save on these small convolutions
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
# no network for a generated project's own tests: the hubs are offline, caches empty, URLs hit a closed port
CLOSED = "http://127.0.0.1:9"
OFFLINE = {"HF_HUB_OFFLINE": "1", "https_proxy": CLOSED, "HTTPS_PROXY": CLOSED, "http_proxy": CLOSED,
           "HTTP_PROXY": CLOSED, "no_proxy": "", "NO_PROXY": ""}  # fmt: skip


@dataclass(frozen=True)
class TaskKind:
    """What the end-to-end tests need to know about one task kind."""

    name: str
    demo_inputs: dict[str, Any]  # the flags of `make demo` for this kind
    demo_epochs: int  # CI's cap on the demo run
    summary_key: str  # the monitored metric in summary.json
    target: float  # the demo's stated target
    untrained: float  # what a model that learned nothing scores (chance)
    full_test_arch: str  # the family variant whose project runs its own full pytest, pretrained allowed
    demo_data: str  # the bundled demo dataset the project writes on first use
    metrics_header: list[str] = field(default_factory=list)
    # the whole demo-to-target run, the README's commands, torchrun and SIGKILL-resume; False: the short run below
    full_demo: bool = True
    # the short demo run (full_demo False): the flags after `python train.py`, and by how much it must beat chance
    short_run: list[str] = field(default_factory=list)
    short_margin: float = 0.0
    # time series: the short run must clearly beat the task's own baseline instead of an untrained model: the
    # summary.json key of that baseline and the margin (accuracy points over it, or a MASE ratio below it)
    baseline_key: str | None = None
    baseline_margin: float = 0.0
    margin: float = 50.0  # the demo's best score beats an untrained model by at least this much
    ema: bool = True  # the recipe validates EMA weights
    report_files: tuple[str, ...] = ("confusion_matrix.png", "per_class.json")  # what evaluate.py writes
    # the full-pytest project from the engine's recommendation for these inputs (default: the fixture's recipe
    # with full_test_arch swapped in, pretrained weights allowed)
    full_test_inputs: dict[str, Any] | None = None
    # run files a second run of the same data copies from the first, to be comparable (text: the tokenizer, whose
    # training is not reproducible)
    shared_run_files: tuple[str, ...] = ()
    # the SIGKILL-resume test: epochs of each run, and how long after the first checkpoint the kill comes (the
    # forecasting demo's epochs take ~0.2 s: more of them, and an earlier kill, so it lands mid-run)
    kill_epochs: int = 3
    kill_delay: float = 0.5


TASK_KINDS = [
    TaskKind(
        name="classification",
        # the same flags as `make demo`; CI caps the run at 15 epochs (the recommended schedule is 200 with early
        # stopping): with the light augmentation picked for 32 px images, >= 98.5 % comes by epoch 5-11
        demo_inputs=dict(
            task="classification",
            images=1437,
            classes=10,
            image_size=32,
            compute="cpu",
            target="cloud-cpu",
            pretrained=False,
            hflip=False,
        ),  # fmt: skip
        demo_epochs=15,
        summary_key="best_val_acc1",
        target=98.5,
        untrained=10.0,
        full_test_arch="resnet18",
        demo_data="demo/digits",
        metrics_header=["epoch", "lr", "train_loss", "val_loss", "val_acc1", "seconds"],
    ),
    TaskKind(
        name="text",
        # the bundled fortunes (4 categories, 471 / 157 texts) on CPU from scratch: the engine picks fastText;
        # the majority class is 31.8 %, TF-IDF + logistic regression 76.4 %
        demo_inputs=dict(task="text", images=471, classes=4, compute="cpu", target="cloud-cpu", pretrained=False),
        demo_epochs=20,
        summary_key="best_val_acc1",
        target=52.0,  # the majority class + 20 points: clearly learned
        untrained=31.8,
        full_test_arch="text_transformer_small",
        demo_data="demo",
        metrics_header=["epoch", "lr", "train_loss", "val_loss", "val_acc1", "val_macro_f1", "seconds"],
        margin=20.0,
        ema=False,
        report_files=("per_class.json",),
        full_test_inputs=dict(
            task="text",
            images=471,
            classes=4,
            compute="cpu",
            target="cloud-cpu",
            pretrained=False,
            arch="text_transformer_small",
        ),  # fmt: skip
        shared_run_files=("tokenizer.json",),
    ),
]
TASK_KINDS.append(
    TaskKind(
        name="semantic-segmentation",
        # digit scenes: 1800 train / 128 val masks of 32 px, 11 classes (background + 10 digits), CPU serving
        demo_inputs=dict(
            task="semantic-segmentation",
            images=1800,
            classes=11,
            image_size=32,
            compute="cpu",
            target="cloud-cpu",
            pretrained=False,
            hflip=False,
            arch="unet_small",
        ),  # fmt: skip
        demo_epochs=12,
        summary_key="best_val_miou",
        target=30.0,  # bench/seg_time_to_miou.py's target; CI runs the short run only
        untrained=8.1,  # an untrained (or background-only) model: ~89 % pixels background, 1 of 11 classes
        full_test_arch="unet_small",
        demo_data="demo/digit_scenes",
        metrics_header=["epoch", "lr", "train_loss", "val_loss", "val_miou", "val_dice", "val_pixel_acc", "seconds"],
        full_demo=False,
        # the recipe as generated (AdamW 2e-3, batch 16, ce+dice), 12 epochs = 1350 steps, without augmentation:
        # which digit a pixel is appears only after ~700 steps (data.DemoSpec), and in a run this short scale and
        # colour jitter only delay it (measured: 66.8 % after 12 epochs without; 11.7 % after 9 epochs with)
        short_run=["--epochs", "12", "--set", "augmentation.ops=[]"],
        short_margin=10.0,
    )
)
TASK_KINDS += [
    TaskKind(
        name="time-series-classification",
        demo_inputs=dict(
            task="time-series-classification",
            images=50,
            classes=2,
            length=150,
            compute="cpu",
            target="cloud-cpu",
            arch="fcn1d",
        ),  # fmt: skip
        demo_epochs=40,
        summary_key="test_acc1",
        target=90.0,
        untrained=50.0,
        full_test_arch="fcn",
        demo_data="demo/GunPoint",
        metrics_header=["epoch", "lr", "train_loss", "val_loss", "val_acc1", "val_macro_f1", "seconds"],
        # the recipe as generated (batch min(N / 10, 16) = 5: 8 steps per epoch on GunPoint's 40 fit series;
        # patience 50), shortened to 40 epochs (~1 min of CPU): FCN learns GunPoint slowly, 25 stay below 1-NN
        short_run=["--epochs", "40"],
        full_demo=False,
        baseline_key="baseline_test_acc1",
        baseline_margin=5.0,  # accuracy points over 1-NN Euclidean on the same split
        # 8 steps an epoch (a fraction of a second on an idle CPU): 3 epochs could end before the kill lands
        kill_epochs=12,
        kill_delay=0.1,
    ),
    TaskKind(
        name="time-series",
        demo_inputs=dict(
            task="time-series", images=444, frequency="MS", compute="cpu", target="cloud-cpu", arch="dlinear"
        ),  # fmt: skip
        demo_epochs=15,
        summary_key="best_val_mase",
        target=0.7,
        untrained=1.3,
        full_test_arch="dlinear",
        demo_data="demo/co2_monthly.csv",
        metrics_header=["epoch", "lr", "train_loss", "val_loss", "val_mase", "val_smape", "val_mae", "seconds"],
        short_run=["--epochs", "15"],
        full_demo=False,
        baseline_key="baseline_val_mase",
        baseline_margin=0.5,  # MASE at most 0.5 x seasonal naive's (a ratio)
        kill_epochs=6,
        kill_delay=0.1,
    ),
]
KIND_IDS = [k.name for k in TASK_KINDS]
FULL_DEMO = [k for k in TASK_KINDS if k.full_demo]
SHORT_RUN = [k for k in TASK_KINDS if not k.full_demo and k.baseline_key is None]
# time series: the short run against the task's baseline (tests at the end of this file)
SERIES_KINDS = [k for k in TASK_KINDS if k.baseline_key is not None]
SERIES_IDS = [k.name for k in SERIES_KINDS]
# torchrun DDP and SIGKILL-resume: the full-demo kinds and the time-series kinds (their demos train in seconds)
DDP_KINDS = FULL_DEMO + SERIES_KINDS
DDP_IDS = [k.name for k in DDP_KINDS]


# task kinds with end-to-end tests of their own file (tests/test_detection_project.py)
OWN_E2E_TESTS = {"detection", "instance-segmentation"}


def test_every_scaffold_task_has_a_task_kind_entry() -> None:
    assert set(KIND_IDS) | OWN_E2E_TESTS == set(SCAFFOLD_TASKS)


def _ruff(folder: Path) -> None:
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        result = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=folder, capture_output=True, text=True,
                                check=False)  # fmt: skip
        assert result.returncode == 0, f"{folder.name}: ruff {args[0]}\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("kind", TASK_KINDS, ids=KIND_IDS)
def test_the_generated_project_is_ruff_clean_under_its_own_settings(kind: TaskKind, tmp_path: Path) -> None:
    """What a user's `ruff check .` and `ruff format --check .` say in the project as generated (its ruff.toml)."""
    pytest.importorskip("ruff")
    _ruff(scaffold(demo_rec(kind), tmp_path / "project"))


def test_every_model_file_is_ruff_clean_under_the_project_settings(tmp_path: Path) -> None:
    """Each templates/models file is some project's model.py (or its encoder's file): checked with the settings
    every project ships (core/ruff.toml), so the models the demos do not use are covered too."""
    pytest.importorskip("ruff")
    for model in sorted((templates_dir() / "models").glob("*.py")):
        folder = tmp_path / model.stem
        folder.mkdir()
        shutil.copy(templates_dir() / "core" / "ruff.toml", folder / "ruff.toml")
        shutil.copy(model, folder / "model.py")
        _ruff(folder)


def fixture_rec() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def demo_rec(kind: TaskKind, inputs: dict[str, Any] | None = None) -> Recommendation:
    """The engine's recommendation for the demo inputs: what `archadvisor scaffold` would render."""
    from archadvisor.catalog import Catalog
    from archadvisor.engine import recommend
    from archadvisor.ruleset import load_rules
    from archadvisor.spec import build_spec

    rules = load_rules()
    return recommend(build_spec(**(inputs or kind.demo_inputs)), rules, Catalog(rules))


def scaffold(rec: dict[str, Any] | Recommendation, out: Path, name: str = "project") -> Path:
    typed = rec if isinstance(rec, Recommendation) else Recommendation.from_json(rec)
    write_project(render_project(typed, name=name), out, force=False)
    return out


def run(
    cmd: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=timeout, check=False)
    assert result.returncode == 0, (
        f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


def read_metrics(out: Path) -> list[dict[str, float]]:
    with open(out / "metrics.csv", encoding="utf-8") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


SCAFFOLDABLE = [v for v in smallest_per_family() if families()[v["family"]]["scaffold"]]
VARIANTS = {v["name"]: v for v in catalog()["variants"]}


def family_rec(variant: dict[str, Any], *, pretrained: bool = False) -> dict[str, Any]:
    """The fixture with the architecture swapped for ``variant`` and its family's recipe choices."""
    family = families()[variant["family"]]
    rec = fixture_rec()
    small = family["small_input"]
    rec["architecture"].update(
        name=variant["name"], family=family["name"], module=family["module"], kind=family["kind"], small_input=small
    )
    rec["generated"] = {"name": variant["name"], "module": family["module"], "build": variant["name"],
                        "substitute": False, "why": "the recommended model"}  # fmt: skip
    rec["training"].update(
        # small-input stems keep 32 px images large enough; the others downsample 32x, so give them 64 px
        image_size=32 if small else 64,
        small_input=small,
        channels_last=family["kind"] == "cnn",
        drop_path=0.1,
        dropout=0.1,
        pretrained=pretrained,
    )
    if family["kind"] != "cnn":
        rec["training"].update(
            optimizer={"name": "adamw", "momentum": None, "nesterov": None, "betas": [0.9, 0.999]},
            lr=1e-3,
            weight_decay=0.05,
        )
    return rec


# --- one project per task kind passes its own full tests, offline, with pretrained weights allowed -----------


@pytest.mark.slow
@pytest.mark.parametrize("kind", TASK_KINDS, ids=KIND_IDS)
def test_project_passes_its_own_tests_offline(kind: TaskKind, tmp_path: Path) -> None:
    """`scaffold --arch resnet18` with pretrained weights on (segmentation: the demo's unet_small, which has no
    pretrained encoder; text: the small Transformer from scratch, its tests fine-tune a tiny local BERT), then the
    project's pytest with no network."""
    if kind.full_test_inputs is not None:
        project = scaffold(demo_rec(kind, kind.full_test_inputs), tmp_path / "project")
        assert yaml.safe_load((project / "config.yaml").read_text())["model"]["arch"] == kind.full_test_arch
    else:
        if kind.name == "classification":
            rec = family_rec(VARIANTS[kind.full_test_arch], pretrained=True)
        else:
            rec = demo_rec(kind).to_json()
            assert rec["generated"]["build"] == kind.full_test_arch
        rec["deployment"].update(precision="int8", quantize="int8-static")  # the calibrated INT8 path
        project = scaffold(rec, tmp_path / "project")
        cfg = yaml.safe_load((project / "config.yaml").read_text())
        assert cfg["model"]["pretrained"] is rec["training"]["pretrained"]
    env = {**ENV, **OFFLINE, "TORCH_HOME": str(tmp_path / "torch"), "HF_HOME": str(tmp_path / "hf")}
    run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"], cwd=project, timeout=600, env=env)
    assert not (tmp_path / "torch").exists() or not any((tmp_path / "torch").rglob("*.pth")), "nothing downloaded"


# --- text: one project per text model runs its own tests ----------------------------------------------------

# the models the Transformer project above does not train: the owned RNNs and bag of embeddings from scratch, and
# a project generated to fine-tune a hub encoder (its tests fine-tune a tiny BERT they build in a temporary folder
# and point model.pretrained at: nothing is downloaded)
TEXT_MODEL_PROJECTS = ["bilstm_classifier", "bigru_classifier", "fasttext_bag", "bert_base_uncased"]
# the project tests whose outcome does not depend on the model (one-line errors of the scripts, config checks, lr
# schedules, data checks, the TF-IDF baseline, model.py's variants): the Transformer project ran them already
TEXT_MODEL_INDEPENDENT = [
    *(f"tests/test_core.py::{name}" for name in (
        "test_cosine_schedule_ends_at_min_lr", "test_poly_schedule_follows_its_power",
        "test_multistep_schedule_drops_tenfold_at_each_milestone_epoch", "test_linear_schedule_goes_straight_to_min_lr",
        "test_warmup_counts_optimizer_steps_when_warmup_steps_is_set", "test_missing_checkpoint_is_one_line",
        "test_missing_onnx_file_is_one_line", "test_export_without_the_export_packages_says_what_to_install",
        "test_a_second_train_py_into_the_same_folder_is_refused",
        "test_checkpoints_are_written_through_temporary_files_of_their_own",
        "test_unsafe_pickle_is_refused_in_one_line_without_running_it", "test_a_broken_config_is_one_line",
        "test_overrides_are_checked_and_1e_3_is_a_number")),
    *(f"tests/test_task.py::{name}" for name in (
        "test_a_file_that_is_not_utf8_stops_the_run_in_one_line", "test_a_label_only_in_val_is_an_error",
        "test_the_baseline_adds_its_scores_to_the_summary", "test_every_model_trains_under_bf16_autocast_and_ignores_padding",
        "test_fine_tunes_a_local_pretrained_folder_then_predicts_from_the_checkpoint_alone",
        "test_a_hub_model_without_network_is_one_line", "test_a_pretrained_only_model_cannot_train_from_scratch")),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("arch", TEXT_MODEL_PROJECTS)
def test_every_text_model_project_passes_its_own_tests(arch: str, tmp_path: Path) -> None:
    """`scaffold --task text --arch ARCH` (pretrained weights allowed), then the project's pytest offline, less the
    model-independent tests: training, resume, extension, checkpoints, evaluate, export with INT8 and predict
    parity on this model (bert_base_uncased: the core's tests on the fine-tuning path, on a local tiny BERT)."""
    kind = next(k for k in TASK_KINDS if k.name == "text")
    assert kind.full_test_inputs is not None
    rec = demo_rec(kind, {**kind.full_test_inputs, "arch": arch, "pretrained": True})
    project = scaffold(rec, tmp_path / "project")
    cfg = yaml.safe_load((project / "config.yaml").read_text())
    assert cfg["model"]["arch"] == arch
    fine_tunes = rec.generated is not None and rec.generated.build.startswith("hf:")
    assert cfg["model"]["pretrained"] == (rec.generated.build[3:] if fine_tunes else False)
    env = {**ENV, **OFFLINE, "HF_HOME": str(tmp_path / "hf")}
    deselect = [arg for name in TEXT_MODEL_INDEPENDENT for arg in ("--deselect", name)]
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *deselect], cwd=project,
                 timeout=600, env=env)  # fmt: skip
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 20, result.stdout[-2000:]
    assert not (tmp_path / "hf").exists() or not any((tmp_path / "hf").rglob("*.safetensors")), "nothing downloaded"


# --- every other family: build, forward and export in-process ------------------------------------------------

PROJECT_MODULES = ("task", "data", "model", "weights", "train", "export", "checkpoint", "errors", "evaluate",
                   "config_schema", "task_schema")  # fmt: skip


@contextmanager
def project_modules(project: Path) -> Iterator[dict[str, ModuleType]]:
    """Import a generated project's modules in this process, then forget them (the next project has its own)."""
    saved = {name: sys.modules.pop(name) for name in PROJECT_MODULES if name in sys.modules}
    sys.path.insert(0, str(project))
    try:
        yield {name: importlib.import_module(name) for name in ("task", "export")}
    finally:
        sys.path.remove(str(project))
        for name in PROJECT_MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


@pytest.mark.parametrize("variant", SCAFFOLDABLE, ids=[v["name"] for v in SCAFFOLDABLE])
def test_family_builds_runs_forward_and_exports(variant: dict[str, Any], tmp_path: Path) -> None:
    module = families()[variant["family"]]["module"]
    if not model_file(module).is_file():
        pytest.skip(f"templates/models/{module}.py is not written yet")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import torch

    rec = family_rec(variant)
    project = scaffold(rec, tmp_path / "project")
    with project_modules(project) as mods:
        task, export = mods["task"], mods["export"]
        size = rec["training"]["image_size"]
        meta = {"arch": variant["name"], "num_classes": 3, "classes": ["a", "b", "c"], "image_size": size,
                "small_input": rec["training"]["small_input"], "eval_crop_pct": 1.0, "mean": [0.5] * 3,
                "std": [0.25] * 3}  # fmt: skip
        torch.manual_seed(0)
        model = task.model_from_meta(meta).eval()
        with torch.no_grad():
            assert model(task.export_example(meta, 2, seed=0)).shape == (2, 3)
        spec = yaml.safe_load((project / "config.yaml").read_text())["export"]
        exporter = export.export_onnx(model, tmp_path / "model.onnx", meta, spec["opset"], export.use_dynamo(spec))
        assert "dynamo=" in exporter
        _, scaled = export.max_onnx_diff(tmp_path / "model.onnx", model, meta)
        assert scaled <= export.FP32_TOLERANCE


SEGMENTATION_MODELS = ["unet_resnet18", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"]


@pytest.mark.parametrize("arch", SEGMENTATION_MODELS)
def test_segmentation_model_builds_runs_forward_and_exports(arch: str, tmp_path: Path) -> None:
    """The other segmentation models `scaffold --arch` generates (the project test covers unet_small): built from
    the project's files, forward at the crop size, exported with dynamic height and width, checked in ORT."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import torch

    kind = next(k for k in TASK_KINDS if k.name == "semantic-segmentation")
    rec = demo_rec(TaskKind(**{**kind.__dict__, "demo_inputs": {**kind.demo_inputs, "arch": arch}}))
    assert rec.generated is not None and rec.generated.build == arch
    project = scaffold(rec, tmp_path / "project")
    assert (project / "resnet.py").is_file() == (arch == "unet_resnet18"), "the encoder family beside model.py"
    with project_modules(project) as mods:
        task, export = mods["task"], mods["export"]
        meta = {"arch": arch, "num_classes": 3, "classes": ["a", "b", "c"], "norm": "batch", "image_size": 64,
                "mean": [0.5] * 3, "std": [0.25] * 3, "class_pixels": [1, 1, 1]}  # fmt: skip
        torch.manual_seed(0)
        model = task.model_from_meta(meta).eval()
        with torch.no_grad():
            assert model(task.export_example(meta, 2, seed=0)).shape == (2, 3, 64, 64)
        spec = yaml.safe_load((project / "config.yaml").read_text())["export"]
        export.export_onnx(model, tmp_path / "model.onnx", meta, spec["opset"], export.use_dynamo(spec))
        _, scaled = export.max_onnx_diff(tmp_path / "model.onnx", model, meta)  # 64x64 and 59x53
        assert scaled <= export.FP32_TOLERANCE


# the project's own tests that depend on the model (build and backward, a step lowers the loss, exact resume, ONNX
# parity, evaluate and predict): the model-independent ones (error paths, config checks) run once, in unet_small's
# full pytest above
MODEL_TESTS = ("builds_and_backpropagates or lowers_the_loss or resume_reproduces or export_matches_pytorch or "
               "onnx_file_agree or summary_and_the_evaluation or predict_writes_a_mask")  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("arch", SEGMENTATION_MODELS)
def test_segmentation_family_project_passes_its_model_tests(arch: str, tmp_path: Path) -> None:
    """One project per other segmentation family (U-Net with a zoo encoder, DeepLabV3, LR-ASPP), scaffolded as
    `scaffold --arch` would, runs its own model-dependent tests offline."""
    kind = next(k for k in TASK_KINDS if k.name == "semantic-segmentation")
    rec = demo_rec(TaskKind(**{**kind.__dict__, "demo_inputs": {**kind.demo_inputs, "arch": arch}}))
    project = scaffold(rec, tmp_path / "project")
    assert yaml.safe_load((project / "config.yaml").read_text())["model"]["arch"] == arch
    env = {**ENV, **OFFLINE, "TORCH_HOME": str(tmp_path / "torch"), "HF_HOME": str(tmp_path / "hf")}
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "-k", MODEL_TESTS],
                 cwd=project, timeout=600, env=env)  # fmt: skip
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) == 7, result.stdout[-2000:]  # every test MODEL_TESTS names


def test_every_scaffoldable_family_is_covered() -> None:
    scaffoldable = {f["name"] for f in catalog()["families"] if f["scaffold"]}
    assert {v["family"] for v in SCAFFOLDABLE} == scaffoldable


# --- the demo really trains, and the README's commands work as written afterwards ------------------------------


def readme_commands(project: Path) -> list[list[str]]:
    """The `python ...` lines of the README's quick start, without their comments, train.py excepted."""
    readme = (project / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.startswith("python ")]
    return [c for c in commands if c[1] != "train.py"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", FULL_DEMO, ids=[k.name for k in FULL_DEMO])
def test_demo_reaches_its_target_then_the_readme_commands_work(kind: TaskKind, tmp_path: Path) -> None:
    rec = demo_rec(kind)
    project = scaffold(rec, tmp_path / "demo", name="demo")
    run([sys.executable, "train.py", "--epochs", str(kind.demo_epochs)], cwd=project, timeout=400)
    out = project / "runs" / "train"
    summary = json.loads((out / "summary.json").read_text())
    assert summary[kind.summary_key] >= kind.target, summary
    assert summary[kind.summary_key] > kind.untrained + kind.margin, "clearly better than an untrained model"
    metrics = read_metrics(out)
    assert list(metrics[0]) == kind.metrics_header
    assert len(metrics) == summary["epochs_run"]
    monitored = kind.summary_key.removeprefix("best_")
    assert max(m[monitored] for m in metrics) == pytest.approx(summary[kind.summary_key])
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(summary["checkpoint"]) == out / "best.pt"

    # the README's commands, exactly as written: evaluate, predict, export, predict through ONNX
    commands = readme_commands(project)
    assert [c[1] for c in commands] == ["evaluate.py", "predict.py", "export.py", "predict.py"]
    results = {}
    for command in commands:
        results[" ".join(command)] = run([sys.executable, *command[1:]], cwd=project, timeout=300)
    evaluation = json.loads(results[" ".join(commands[0])].stdout.strip().splitlines()[-1])
    assert evaluation["ema"] is kind.ema
    assert evaluation[monitored] == pytest.approx(summary[kind.summary_key], abs=100 * 2 / evaluation["samples"])
    assert all((out / name).is_file() for name in kind.report_files)
    report = json.loads((out / "export" / "report.json").read_text())
    assert report["onnx_max_abs_diff"] <= 1e-4 and report["torchscript_max_abs_diff"] <= 1e-4
    # the plan's quantization (cloud-cpu: static INT8 for a CNN, deploy.cloud_cpu.cnn_static_int8), calibrated on
    # the validation images, within a point of fp32
    assert report["quantize"] == rec.deployment.quantize
    assert kind.name != "classification" or report["quantize"] == "int8-static"
    assert report[f"{monitored}_fp32"] == pytest.approx(evaluation[monitored], abs=1e-6)
    assert report[f"{monitored}_int8"] >= report[f"{monitored}_fp32"] - 1.0
    # predictions through PyTorch and through onnxruntime: the same top-1 for every input
    outs = [Path(c[c.index("--out") + 1]) for c in commands if c[1] == "predict.py"]
    rows = [list(csv.DictReader((project / o / "predictions.csv").open(encoding="utf-8"))) for o in outs]
    assert len(rows[0]) == len(rows[1]) > 0
    assert [r["label_1"] for r in rows[0]] == [r["label_1"] for r in rows[1]]
    for a, b in zip(rows[0], rows[1], strict=True):
        assert float(a["prob_1"]) == pytest.approx(float(b["prob_1"]), abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("kind", SHORT_RUN, ids=[k.name for k in SHORT_RUN])
def test_a_short_demo_run_clearly_beats_an_untrained_model(kind: TaskKind, tmp_path: Path) -> None:
    """`python train.py` for a few epochs on the bundled demo (the recipe as generated, shortened), against the
    same project's untrained model on the same validation split."""
    project = scaffold(demo_rec(kind), tmp_path / "demo", name="demo")
    run([sys.executable, "train.py", *kind.short_run], cwd=project, timeout=900)
    out = project / "runs" / "train"
    summary = json.loads((out / "summary.json").read_text())
    metrics = read_metrics(out)
    assert list(metrics[0]) == kind.metrics_header and len(metrics) == summary["epochs_run"]
    monitored = kind.summary_key.removeprefix("best_")
    assert max(m[monitored] for m in metrics) == pytest.approx(summary[kind.summary_key])
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the untrained model: the project's own model at its seed, validated by the project's own metrics
    code = ("import json, torch, train, task; cfg = train.load_config(train.parse_args([])); "
            "d = task.build_data(cfg, task.data_stage(cfg, 0), rank=0, world_size=1, pin_memory=False); "
            "meta = task.data_meta(cfg, d); torch.manual_seed(cfg['run']['seed']); "
            "m = task.build_model(cfg, meta); "
            "print(json.dumps(train.evaluate(m, d.val_loader, task.Metrics(meta, torch.device('cpu')), "
            "device=torch.device('cpu'))))")  # fmt: skip
    untrained = json.loads(run([sys.executable, "-c", code], cwd=project, timeout=120).stdout.strip().splitlines()[-1])
    trained = summary[kind.summary_key]
    print(f"{kind.name}: {monitored} {untrained[monitored]:.1f} untrained -> {trained:.1f} after "
          f"{summary['epochs_run']} epochs ({summary['wall_seconds']:.0f} s)")  # fmt: skip
    assert trained > max(untrained[monitored], kind.untrained) + kind.short_margin, (untrained, summary)


@pytest.mark.bench
@pytest.mark.parametrize("kind", FULL_DEMO, ids=[k.name for k in FULL_DEMO])
def test_demo_with_the_full_recommended_schedule(kind: TaskKind, tmp_path: Path) -> None:
    """The recommended schedule as generated (no epoch cap; early stopping ends it)."""
    project = scaffold(demo_rec(kind), tmp_path / "demo", name="demo")
    run([sys.executable, "train.py"], cwd=project, timeout=3600)
    summary = json.loads((project / "runs" / "train" / "summary.json").read_text())
    assert summary[kind.summary_key] >= kind.target, summary


def test_bundled_digits_are_the_stratified_seeded_split() -> None:
    """demo/digits.npz is scikit-learn's digits split as data.py says (so the project needs no scikit-learn)."""
    np = pytest.importorskip("numpy")
    datasets = pytest.importorskip("sklearn.datasets")
    model_selection = pytest.importorskip("sklearn.model_selection")

    digits = datasets.load_digits()
    x_train, x_val, y_train, y_val = model_selection.train_test_split(
        digits.images, digits.target, test_size=0.2, stratify=digits.target, random_state=0
    )
    bundled = np.load(templates_dir() / "tasks" / "classification" / "demo" / "digits.npz")
    np.testing.assert_array_equal(bundled["train_images"], x_train.astype(np.uint8))
    np.testing.assert_array_equal(bundled["val_images"], x_val.astype(np.uint8))
    np.testing.assert_array_equal(bundled["train_labels"], y_train)
    np.testing.assert_array_equal(bundled["val_labels"], y_val)


# --- multi-process training and crash recovery --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("kind", DDP_KINDS, ids=DDP_IDS)
def test_torchrun_two_cpu_processes_complete_an_epoch(kind: TaskKind, tmp_path: Path) -> None:
    project = scaffold(demo_rec(kind), tmp_path / "demo", name="demo")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "train.py", "--device", "cpu", "--epochs", "1", "--out", "runs/ddp"]  # fmt: skip
    result = run(cmd, cwd=project, timeout=300)
    assert "device cpu x 2" in result.stdout
    assert result.stdout.count("epoch 1/1") == 1, "only rank 0 logs"
    out = project / "runs" / "ddp"
    assert len(read_metrics(out)) == 1
    assert json.loads((out / "summary.json").read_text())["epochs_run"] == 1
    assert (out / "last.pt").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("kind", DDP_KINDS, ids=DDP_IDS)
def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(kind: TaskKind, tmp_path: Path) -> None:
    project = scaffold(demo_rec(kind), tmp_path / "demo", name="demo")
    epochs = kind.kill_epochs
    train = [sys.executable, "train.py", "--epochs", str(epochs)]
    run([*train, "--out", "runs/whole"], cwd=project, timeout=300)

    # the same run, killed (with its loader workers) shortly after the first epoch's checkpoint
    killed = project / "runs" / "killed"
    killed.mkdir(parents=True)
    for name in kind.shared_run_files:
        shutil.copy(project / "runs" / "whole" / name, killed / name)
    proc = subprocess.Popen(
        [*train, "--out", "runs/killed"], cwd=project, env=ENV, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not (killed / "metrics.csv").exists():
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    time.sleep(kind.kill_delay)  # into the second epoch
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = len(read_metrics(killed))
    if kind.full_demo:
        assert done == 1, "the kill should land mid-epoch 2"
    else:  # epochs of a fraction of a second: mid-run, in whichever epoch (or checkpoint write) it lands
        assert 1 <= done < epochs and not (killed / "summary.json").exists(), "the kill should land mid-run"

    run([*train, "--out", "runs/killed", "--resume"], cwd=project, timeout=300)
    whole, resumed = read_metrics(project / "runs" / "whole"), read_metrics(killed)
    assert len(whole) == len(resumed) == epochs
    for a, b in zip(whole, resumed, strict=True):
        for key in a.keys() - {"seconds"}:
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (key, a, b)


def test_demo_rec_is_the_small_image_cpu_recipe() -> None:
    """The demo trains what users get: simple_cnn, light augmentation, no flip (digits are not mirror-symmetric)."""
    config = yaml.safe_load(render_project(demo_rec(TASK_KINDS[0]), name="digits")["config.yaml"])
    assert config["model"]["arch"] == "simple_cnn"
    assert [op["name"] for op in config["augmentation"]["ops"]] == ["random_resized_crop", "color_jitter"]
    assert not re.search(r"\bsize\b", json.dumps(config["augmentation"]["ops"])), "the crop size is data.image_size"


# --- time series: a short run clearly beats the task's baseline; every model builds and exports ---


@pytest.mark.slow
@pytest.mark.parametrize("kind", SERIES_KINDS, ids=SERIES_IDS)
def test_series_short_run_beats_its_baseline(kind: TaskKind, tmp_path: Path) -> None:
    """GunPoint: test accuracy >= 1-NN + 5 points; CO2: validation MASE <= half of seasonal naive's; then
    predict.py writes the task's file."""
    project = scaffold(demo_rec(kind), tmp_path / "demo", name="demo")
    run([sys.executable, "train.py", *kind.short_run], cwd=project, timeout=400)
    out = project / "runs" / "train"
    summary = json.loads((out / "summary.json").read_text())
    assert list(read_metrics(out)[0]) == kind.metrics_header
    value, baseline = summary[kind.summary_key], summary[kind.baseline_key]
    if kind.summary_key.endswith("mase"):
        assert value <= kind.baseline_margin * baseline and value <= kind.target, summary
    else:
        assert value >= baseline + kind.baseline_margin and value >= kind.target, summary
    written = "forecast.csv" if kind.name == "time-series" else "predictions.csv"
    run([sys.executable, "predict.py", kind.demo_data, "--out", "runs/predict"], cwd=project, timeout=120)
    assert (project / "runs" / "predict" / written).is_file()


def test_series_demo_recs_generate_the_named_models() -> None:
    for kind in SERIES_KINDS:
        rec = demo_rec(kind)
        assert rec.generated is not None and rec.generated.build == kind.full_test_arch
        files = render_project(rec, name="demo")
        assert yaml.safe_load(files["config.yaml"])["model"]["arch"] == rec.generated.build
        assert files["model.py"] == model_file(rec.generated.module).read_bytes()


def series_models() -> list[tuple[str, str]]:
    """(task, model name) of every time-series model archadvisor generates."""
    from archadvisor.catalog import Catalog
    from archadvisor.ruleset import load_rules

    tasks = {k.name for k in SERIES_KINDS}
    return [(e.task, e.name) for e in Catalog(load_rules()).external if e.task in tasks and e.generatable]


SERIES_MODELS = series_models()


@pytest.mark.parametrize(("task", "arch"), SERIES_MODELS, ids=[f"{t}:{a}" for t, a in SERIES_MODELS])
def test_series_model_builds_runs_forward_and_exports(task: str, arch: str, tmp_path: Path) -> None:
    """Every generatable time-series model: scaffolded, built from a checkpoint's meta, run forward, exported to
    ONNX with the project's exporter choice (dynamic length where model.py says so) and checked against
    onnxruntime at other lengths than the traced one, and to TorchScript (traced), in this process."""
    pytest.importorskip("onnxruntime")
    import torch

    kind = next(k for k in SERIES_KINDS if k.name == task)
    rec = demo_rec(TaskKind(**{**kind.__dict__, "demo_inputs": {**kind.demo_inputs, "arch": arch}}))
    assert rec.generated is not None and rec.generated.name == arch
    project = scaffold(rec, tmp_path / "project")
    with project_modules(project) as mods:
        task_mod, export = mods["task"], mods["export"]
        if task == "time-series":
            meta = {"arch": rec.generated.build, "lookback": 48, "horizon": 12, "channels": 1}
            shape = (2, 12, 1)
        else:
            meta = {"arch": rec.generated.build, "num_classes": 3, "classes": ["a", "b", "c"], "channels": 2,
                    "length": 64}  # fmt: skip
            shape = (2, 3)
        torch.manual_seed(0)
        model = task_mod.model_from_meta(meta).eval()
        with torch.no_grad():
            assert model(task_mod.export_example(meta, 2, seed=0)).shape == shape
        spec = yaml.safe_load((project / "config.yaml").read_text())["export"]
        export.export_onnx(model, tmp_path / "model.onnx", meta, spec["opset"], export.use_dynamo(spec))
        # the parity checks' inputs are shorter than the traced one where the model takes any length (and the
        # ONNX graph's length axis is then symbolic); PatchTST and DLinear keep their trained lookback
        dynamic = task_mod.DYNAMIC_LENGTH
        assert arch not in ("patchtst", "dlinear", "nlinear") or not dynamic
        length_axis = 1 if task == "time-series" else 2
        traced, checked = (task_mod.export_example(meta, 2, seed) for seed in (0, 2))
        assert (checked.shape[length_axis] < traced.shape[length_axis]) is dynamic
        _, scaled = export.max_onnx_diff(tmp_path / "model.onnx", model, meta)
        assert scaled <= export.FP32_TOLERANCE
        dims = export.onnx_session(tmp_path / "model.onnx").get_inputs()[0].shape
        assert isinstance(dims[length_axis], str) is dynamic, dims
        _, scaled = export.export_torchscript(model, tmp_path / "model.ts", meta)
        assert scaled <= export.FP32_TOLERANCE


def test_rnn_forecaster_project_reads_covariates_and_known_future_values(tmp_path: Path) -> None:
    """The CI project is DLinear's, whose tests check that covariates are refused: an LSTM forecaster's project
    runs its own covariate tests (observed covariates; known ones over the horizon, predict.py --future and its
    one-line errors, the ONNX export of the longer window), offline."""
    kind = next(k for k in SERIES_KINDS if k.name == "time-series")
    rec = demo_rec(TaskKind(**{**kind.__dict__, "demo_inputs": {**kind.demo_inputs, "arch": "lstm"}}))
    project = scaffold(rec, tmp_path / "project")
    assert yaml.safe_load((project / "config.yaml").read_text())["model"]["arch"] == "lstm_forecaster"
    result = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", "tests/test_task.py", "-k",
                  "covariates or future"], cwd=project, timeout=600, env={**ENV, **OFFLINE})  # fmt: skip
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) == 4 and "skipped" not in result.stdout, result.stdout[-2000:]


# --- the Temporal Fusion Transformer: a project of its own on pytorch-forecasting ------------------------------


@pytest.mark.slow
def test_tft_project_passes_its_own_tests_offline(tmp_path: Path) -> None:
    """`scaffold --arch temporal_fusion_transformer` on the CO2 demo, its pyproject installed (`pip install -e
    .[test]`: pytorch-forecasting 1.8.0, lightning 2.6, pandas < 3.1) into a venv that sees this interpreter's
    packages through a .pth file, so torch is reused and only what the pins ask for is installed there, shadowing
    (this interpreter's pandas 3.1 stays untouched: pip does not uninstall outside its environment). The registry
    is reachable for the install only; the project's own pytest then runs offline."""
    inputs = dict(task="time-series", images=444, frequency="MS", compute="cpu", target="cloud-cpu",
                  arch="temporal_fusion_transformer")  # fmt: skip
    rec = demo_rec(TASK_KINDS[0], inputs)
    assert rec.generated is not None and rec.generated.module == "pytorch_forecasting"
    project = scaffold(rec, tmp_path / "project")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    parents = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "archadvisor-test-parent.pth").write_text("\n".join(parents) + "\n", encoding="utf-8")
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e",
                              f"{project}[test]"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600,
                             check=False)  # fmt: skip
    unreachable = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable")
    if install.returncode != 0 and any(text in install.stderr for text in unreachable):
        pytest.skip(f"no package registry to install pytorch-forecasting from: {install.stderr.strip()[-300:]}")
    assert install.returncode == 0, install.stderr[-4000:]
    env = {**ENV, **OFFLINE}
    env.pop("PYTHONPATH", None)
    result = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
                 cwd=project, timeout=600, env=env)  # fmt: skip
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]
