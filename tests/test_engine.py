"""Table-driven engine scenarios: each encodes a line of the guide's trees, matrix or tables
(the architect guide's decision trees, deployment matrix and hyperparameter tables) or a documented
resolution of a conflict between them."""

from __future__ import annotations

from typing import Any

import pytest

from archadvisor.catalog import Catalog
from archadvisor.engine import flips, recommend
from archadvisor.report import to_markdown
from archadvisor.ruleset import load_rules
from archadvisor.spec import build_spec
from archadvisor.vocab import TARGETS

RULES = load_rules()
CATALOG = Catalog(RULES)


def rec(**kw: Any) -> dict[str, Any]:
    """The recommendation in its JSON form: the contract users and files read."""
    kw.setdefault("images", 8000)
    return recommend(build_spec(**kw), RULES, CATALOG).to_json()


# (guide line, inputs, expected architecture or set of acceptable ones, decided-by rule or None)
SELECTION = [
    (
        "Deployment matrix: Edge (Jetson) -> EfficientNet V2-S",
        dict(images=8000, target="jetson"),
        {"efficientnet_v2_s"},
        "deploy.jetson",
    ),
    (
        "Deployment matrix: Edge (Jetson) on an AGX Orin (the guide's row names no device) -> EfficientNet V2-S",
        dict(images=8000, target="jetson-orin"),
        {"efficientnet_v2_s"},
        "deploy.jetson_orin",
    ),
    (
        "Deployment matrix: Edge (Jetson) on an Orin Nano 8GB -> EfficientNet V2-S",
        dict(images=8000, target="jetson-orin-nano"),
        {"efficientnet_v2_s"},
        "deploy.jetson_orin_nano",
    ),
    (
        "Deployment matrix: Mobile (iOS) -> MobileViT-XS",
        dict(images=50_000, target="ios"),
        {"mobilevit_xs"},
        "deploy.ios",
    ),
    (
        "Deployment matrix: Mobile (Android) -> EfficientNet-Lite",
        dict(images=20_000, target="android"),
        {"efficientnet_lite0"},
        "deploy.android",
    ),
    (
        "Deployment matrix: Browser -> MobileNet V3",
        dict(images=20_000, target="browser"),
        {"mobilenet_v3_large"},
        "deploy.browser",
    ),
    (
        "Deployment matrix: Cloud (CPU) -> RegNet-Y-800MF",
        dict(images=5000, target="cloud-cpu"),
        {"regnety_008"},
        "deploy.cloud_cpu",
    ),
    (
        "Deployment matrix: Cloud (GPU) + tree: High compute -> ConvNeXt-Large or ViT-Large",
        dict(images=1_200_000, compute="multi-gpu", target="cloud-gpu"),
        {"convnext_large", "vit_large_patch16_224"},
        None,
    ),
    (
        # served static INT8 on the 2-vCPU VM (deploy.cloud_cpu.cnn_static_int8), RegNet-Y-800MF's ~4.8 ms meets
        # 10 ms; a 4 ms budget leaves the real-time branch's MobileNet V3
        "Tree 1 Latency: Real-time (<10ms) -> MobileNet V3",
        dict(images=5000, target="cloud-cpu", latency_ms=4),
        {"mobilenet_v3_large", "mobilenet_v3_small"},
        None,
    ),
    (
        "Tree 1 Compute: Moderate (single GPU) -> RegNet-Y-800MF or EfficientNet V2-S; Transfer: No -> RegNet",
        dict(images=50_000, target="cloud-gpu", pretrained=False),
        {"regnety_008", "efficientnet_v2_s"},
        None,
    ),
    (
        "Tree 1 Dataset: > 100K -> ConvNeXt or ViT (memory rules out ConvNeXt-Large/ViT-Large at 8 GB)",
        dict(images=1_200_000, compute="multi-gpu", gpu_memory_gb=8),
        {"convnext_small", "vit_base_patch16_224"},
        None,
    ),
    (
        "Small images (<= 64 px) on CPU: small plain CNN with a stride-1 stem (CIFAR ResNet stem)",
        dict(images=1437, classes=10, image_size=32, compute="cpu", target="cloud-cpu", pretrained=False, hflip=False),
        {"simple_cnn"},
        "cls.image_size.tiny_cpu",
    ),
    (
        "Small images (<= 64 px) on GPU: CIFAR-style residual networks",
        dict(images=50_000, image_size=32),
        {"resnet18", "regnety_008", "convnext_atto"},
        None,
    ),
    (
        "Tree 1 Compute: Limited (mobile/edge) -> MobileViT-XS or EfficientNet-Lite",
        dict(images=5000, compute="edge", target="android"),
        {"efficientnet_lite0", "mobilevit_xs"},
        None,
    ),
    (
        "Tree 1 Latency: Interactive (<100ms) on Jetson -> EfficientNet V2-S",
        dict(images=5000, target="jetson", latency_ms=50),
        {"efficientnet_v2_s", "regnety_008"},
        None,
    ),
]


@pytest.mark.parametrize("guide,inputs,expected,decider", SELECTION, ids=[s[0][:60] for s in SELECTION])
def test_selection_follows_the_guide(guide, inputs, expected, decider):
    r = rec(**inputs)
    assert r["architecture"]["name"] in expected, (
        f"{guide}: got {r['architecture']['name']} ({r['architecture']['why']})"
    )
    if decider:
        assert r["decided_by"] == decider
    decided = [t for t in r["trace"] if t.get("decided")]
    assert len(decided) == 1 or r["decided_by"].startswith(("constraints", "tie-break"))


def test_small_images_get_a_small_input_stem_and_never_a_32x_stem():
    r = rec(images=50_000, image_size=32)
    assert r["architecture"]["small_input"] is True
    assert r["training"]["small_input"] is True
    for alt in r["alternatives"]:
        assert CATALOG.get(alt["name"]).small_input, alt["name"]


def test_latency_budget_is_a_hard_constraint():
    r = rec(images=5000, target="cloud-cpu", latency_ms=30)
    assert r["deployment"]["expected_latency_ms"] <= 30
    for alt in r["alternatives"]:
        if alt["meets_constraints"]:
            assert alt["expected_latency_ms"] <= 30


def test_a_budget_nothing_meets_keeps_the_fastest_and_warns():
    r = rec(images=5000, target="cloud-cpu", latency_ms=1)
    assert any("constraint.latency" in w for w in r["warnings"])
    fastest = r["deployment"]["expected_latency_ms"]
    assert r["alternatives"] and all(a["expected_latency_ms"] >= fastest for a in r["alternatives"])
    assert all(a["meets_constraints"] is False and "also misses" in a["why"] for a in r["alternatives"])


def test_target_size_limit_excludes_big_models_on_phones():
    r = rec(images=2_000_000, compute="multi-gpu", target="ios")
    assert r["architecture"]["params_m"] <= 15


def test_forced_arch_that_breaks_a_constraint_is_a_warning():
    r = rec(images=800, target="ios", arch="vit_large_patch16_224")
    assert r["architecture"]["name"] == "vit_large_patch16_224"
    assert r["decided_by"] == "--arch"
    assert any("breaks a hard constraint" in w and "ios" in w for w in r["warnings"])
    assert any("304M parameters for 800 images" in w for w in r["warnings"])  # the guide's overfitting concern


def test_forced_alias_is_accepted():
    assert rec(arch="vit_b_16")["architecture"]["name"] == "vit_base_patch16_224"
    assert rec(arch="regnet_y_800mf")["architecture"]["name"] == "regnety_008"


def test_conflicting_axes_are_resolved_and_traced():
    # dataset size says ConvNeXt/EfficientNetV2, the deployment matrix says MobileViT-XS: the target wins
    r = rec(images=8000, target="ios")
    fired = {t["rule"] for t in r["trace"] if t.get("fired")}
    assert {"cls.dataset.small", "deploy.ios"} <= fired
    assert r["decided_by"] == "deploy.ios"
    assert len(r["alternatives"]) >= 2


# --- detection and the selection table ------------------------------------------------------------
def test_detection_realtime_is_yolov8_nano_or_small():
    r = rec(task="detection", images=5000, latency_ms=20)  # tree 2: Real-time (<30ms) -> YOLOv8-n/s
    assert r["architecture"]["name"] in {"yolov8n", "yolov8s"}
    assert len(r["alternatives"]) >= 2


def test_detection_small_objects_use_p2_head_and_1280px():
    r = rec(task="detection", images=5000, object_size="small")  # tree 2: small objects -> FPN, 1280 px
    assert r["architecture"]["name"] == "yolov8s_p2"
    assert r["training"]["image_size"] == 1280


def test_detection_large_objects_train_at_640():
    r = rec(task="detection", images=5000, object_size="large")
    assert r["training"]["image_size"] == 640
    assert r["architecture"]["name"] in {"yolov8s", "fasterrcnn_resnet50_fpn_v2"}


def test_detection_offline_is_large_model():
    r = rec(
        task="detection", images=50_000, latency_ms=300, target="cloud-gpu"
    )  # tree 2: Offline -> YOLOv8-L / FRCNN-101
    assert r["architecture"]["name"] in {"yolov8l", "fasterrcnn_resnet101_fpn", "rtdetr_l"}


# (source, inputs, acceptable choices): every task chooses along its axes (rules/<task>.yaml)
TASK_TREES = [
    ("guide table, semantic segmentation best choice; Cheng et al. 2022", dict(task="semantic-segmentation", images=50_000),
     {"mask2former_swin_t", "segformer_b2"}),
    ("U-Net for small mask sets (Ronneberger et al. 2015)", dict(task="semantic-segmentation", images=500),
     {"unet_resnet34", "unet"}),
    ("on-device segmentation: LR-ASPP MobileNetV3 (Howard et al. 2019) / guide Mobile column",
     dict(task="semantic-segmentation", images=5000, target="ios"),
     {"lraspp_mobilenet_v3_large", "deeplabv3_mobilevit_s", "segformer_b0"}),
    ("guide table, instance segmentation: Mask R-CNN", dict(task="instance-segmentation", images=5000),
     {"maskrcnn_resnet50_fpn_v2", "mask2former_swin_t_coco"}),
    ("Mask R-CNN R50 is out of reach on CPU: a light backbone", dict(task="instance-segmentation", images=500, compute="cpu"),
     {"maskrcnn_mobilenet_v3_large_fpn", "yolo11n_seg"}),
    ("labelled text: a fine-tuned encoder (Devlin et al. 2019; Warner et al. 2024)", dict(task="text", images=10_000),
     {"modernbert_base", "deberta_v3_base", "distilbert_base_uncased"}),
    ("text served on CPU: a distilled encoder", dict(task="text", images=20_000, target="cloud-cpu"),
     {"distilbert_base_uncased", "minilm_l12_h384"}),
    ("text from scratch: tokenizer and model trained on the texts", dict(task="text", images=5000, pretrained=False),
     {"text_transformer_small", "bilstm_classifier", "fasttext_bag"}),
    ("guide table, code", dict(task="code", images=10_000), {"code_llama_7b", "starcoder2_7b"}),
    ("forecasting with enough history: PatchTST / N-HiTS (Nie et al. 2023; Challu et al. 2023)",
     dict(task="time-series", images=10_000, horizon=24), {"patchtst", "nhits", "dlinear"}),
    ("short history: zero-shot Chronos (Ansari et al. 2024)", dict(task="time-series", images=200),
     {"chronos_bolt_small", "timesfm_1_0"}),
    ("short history, no pretrained weights: a linear model (Zeng et al. 2023)",
     dict(task="time-series", images=200, pretrained=False), {"dlinear", "prophet"}),
    ("UCR: InceptionTime (Ismail Fawaz et al. 2020)", dict(task="time-series-classification", images=5000),
     {"inception_time"}),
    ("small UCR sets on CPU: FCN (Wang et al. 2017)", dict(task="time-series-classification", images=300, compute="cpu"),
     {"fcn1d", "resnet1d"}),
    ("very long series: convolutions with global pooling, not a recurrent final state (Ismail Fawaz et al. 2020; "
     "Bengio et al. 1994)", dict(task="time-series-classification", images=500, length=5000), {"inception_time", "fcn1d"}),
    ("guide table, image generation", dict(task="image-generation", images=10_000), {"stable_diffusion_1_5", "dall_e_3"}),
    ("guide table, text generation", dict(task="text-generation", images=10_000), {"gpt_4_text", "claude_text", "llama3_8b"}),
    ("guide table, speech: Whisper / wav2vec 2.0", dict(task="speech-recognition", images=10_000),
     {"whisper_small", "wav2vec2_base_960h"}),
    ("on-device speech: Whisper-tiny or CTC wav2vec 2.0", dict(task="speech-recognition", images=2000, target="ios"),
     {"whisper_tiny", "wav2vec2_base_960h"}),
    ("guide table, video", dict(task="video", images=10_000), {"timesformer_base", "videomae_base"}),
]  # fmt: skip


@pytest.mark.parametrize(("source", "inputs", "best"), TASK_TREES, ids=[t[0][:60] for t in TASK_TREES])
def test_every_task_chooses_along_its_axes(source, inputs, best):
    r = rec(**inputs)
    assert r["architecture"]["name"] in best, (source, r["architecture"]["name"], r["decided_by"])
    assert r["training"]["lr"] > 0 and r["training"]["epochs"] >= 1
    assert any(t["kind"] == "vote" and t["fired"] for t in r["trace"]), "no rule of the task's tree fired"


@pytest.mark.parametrize(
    "inputs",
    [dict(task="text", images=20_000, target="cloud-cpu"), dict(task="text", images=5000, latency_ms=20),
     dict(task="text", images=50, target="android"), dict(task="code", images=100, latency_ms=200),
     dict(task="text-generation", images=10, target="ios"), dict(task="image-generation", images=100, target="browser")],
)  # fmt: skip
def test_hosted_apis_are_never_chosen_where_they_are_ruled_out(inputs):
    """A deployment target, a latency budget or a labelled training set rules out a hosted API; it is not the
    choice and not an alternative there."""
    r = rec(**inputs)
    hosted = {e.name for e in CATALOG.external if e.hosted}
    assert r["architecture"]["name"] not in hosted, r["architecture"]
    assert not hosted & {a["name"] for a in r["alternatives"]}


def test_a_hosted_api_stays_an_option_for_a_handful_of_labels():
    r = rec(task="text", images=100)
    assert "gpt_4" in {r["architecture"]["name"]} | {a["name"] for a in r["alternatives"]}


def test_alternatives_obey_the_constraints_of_the_choice():
    r = rec(task="semantic-segmentation", images=500, compute="cpu")
    sizes = {e.name: e.params_m for e in CATALOG.external}
    for alt in r["alternatives"]:
        assert sizes[alt["name"]] is None or sizes[alt["name"]] <= 30, alt


# --- the recipe tables -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "inputs",
    [dict(images=8000, target="jetson"), dict(images=1_200_000, compute="multi-gpu"), dict(images=300, target="ios"),
     dict(images=50_000, pretrained=False), dict(images=5000, gpu_memory_gb=8, gpus=2, compute="multi-gpu")],
)  # fmt: skip
def test_lr_follows_the_batch_scaling_rule(inputs):
    """Linear scaling LR = base x batch/256 is an SGD rule (Goyal et al. 2017); AdamW scales by the square root
    (Malladi et al. 2022); fine-tuning keeps its small LR whatever the batch."""
    r = rec(**inputs)
    t = r["training"]
    assert t["effective_batch_size"] == t["batch_size"] * max(1, r["inputs"]["gpus"]) * t["grad_accum_steps"]
    rule = r["provenance"]["training.lr"]["rule"]
    ratio = t["effective_batch_size"] / 256
    if t["pretrained"]:
        assert t["lr"] == t["base_lr"] and 1e-5 <= t["lr"] <= 1e-3
    elif t["optimizer"]["name"] == "sgd":
        assert rule == "lr.scaling" and t["lr"] == pytest.approx(t["base_lr"] * ratio, rel=1e-3)
    else:
        assert rule == "lr.scaling_sqrt" and t["lr"] == pytest.approx(t["base_lr"] * ratio**0.5, rel=1e-3)


def test_fine_tune_gets_lower_lr_shorter_schedule_lighter_regularization():
    ft = rec(images=5000, arch="convnext_tiny")["training"]
    sc = rec(images=5000, arch="convnext_tiny", pretrained=False)["training"]
    assert ft["pretrained"] and not sc["pretrained"]
    assert ft["base_lr"] == 1e-4  # tree 1: "< 10K: small learning rate (1e-4)"
    assert ft["epochs"] == 30 and sc["epochs"] == 200  # Epochs table, 1K-10K: fine-tune 30-50, scratch 200-300
    assert ft["drop_path"] < sc["drop_path"] and ft["weight_decay"] < sc["weight_decay"]
    assert ft["freeze"]["mode"] == "progressive" and sc["freeze"]["mode"] == "none"


@pytest.mark.parametrize(
    "images,level,mix",
    [(500, "very-heavy", True), (5000, "heavy", True), (50_000, "moderate", False), (500_000, "light", False)],
)
def test_augmentation_strength_by_dataset_size(images, level, mix):
    a = rec(images=images, pretrained=False)["augmentation"]  # Augmentation Strength table, trained end to end
    assert a["level"] == level
    assert (a["mixup_alpha"] > 0) == mix
    names = [o["name"] for o in a["ops"]]
    assert names[:3] == ["random_resized_crop", "horizontal_flip", "color_jitter"]  # basic, always


def test_a_linear_probe_gets_a_useful_lr_and_light_augmentation():
    """< 1K images with pretrained weights: the head alone trains, at ~1e-3 (the PyTorch transfer-learning
    tutorial's fixed feature extractor), not 1e-4 x 16/256; heavy augmentation cannot teach a frozen backbone."""
    r = rec(images=300, image_size=512, compute="single-gpu", target="cloud-gpu")
    t = r["training"]
    assert t["freeze"]["mode"] == "head-only" and t["lr"] == pytest.approx(1e-3)
    assert r["augmentation"]["level"] == "light" and r["augmentation"]["mixup_alpha"] == 0
    assert any("cross-validation" in w for w in r["warnings"])
    for alt in r["alternatives"]:  # alternatives obey the same data-size limit as the choice
        assert alt["params_m"] <= 30, alt


def test_cpu_compute_picks_a_model_that_trains_on_a_few_cores():
    r = rec(images=640, image_size=64, compute="cpu", pretrained=False)
    assert r["architecture"]["params_m"] <= 12
    assert r["training"]["lr"] >= 1e-3  # SGD at a useful rate, or AdamW not scaled down linearly


def test_label_smoothing_small_data_zero_standard_point_one():
    assert rec(images=5000)["training"]["label_smoothing"] == 0.0  # "Small datasets: 0.0 (can hurt)"
    assert rec(images=500_000, pretrained=False)["training"]["label_smoothing"] == 0.1  # "Standard: 0.1"
    assert rec(images=500_000)["training"]["label_smoothing"] == 0.05  # "Fine-tuning: 0.0-0.05"


def test_optimizer_sgd_for_cnn_from_scratch_adamw_otherwise():
    assert rec(images=500_000, arch="resnet50", pretrained=False)["training"]["optimizer"]["name"] == "sgd"
    assert rec(images=500_000, arch="resnet50")["training"]["optimizer"]["name"] == "adamw"
    # ConvNeXt's published recipe is AdamW (conflict resolved in rules/recipes.yaml)
    assert rec(images=500_000, arch="convnext_tiny", pretrained=False)["training"]["optimizer"]["name"] == "adamw"
    assert (
        rec(images=500_000, arch="vit_small_patch16_224", pretrained=False)["training"]["optimizer"]["name"] == "adamw"
    )


def test_drop_path_by_depth():
    assert rec(images=500_000, arch="resnet18", pretrained=False)["training"]["drop_path"] == 0.05  # shallow 0.0-0.1
    assert rec(images=500_000, arch="resnet50", pretrained=False)["training"]["drop_path"] == 0.1  # medium 0.1-0.2
    assert rec(images=500_000, arch="convnext_tiny", pretrained=False)["training"]["drop_path"] == 0.2  # deep 0.2-0.4


def test_ema_decay_by_dataset_size():
    assert rec(images=1_200_000, pretrained=False)["training"]["ema_decay"] == 0.9999  # ImageNet scale
    assert rec(images=50_000, pretrained=False)["training"]["ema_decay"] == 0.999  # medium


def test_progressive_resizing_for_10k_plus_from_scratch():
    t = rec(images=50_000, image_size=224, pretrained=False, arch="resnet50")["training"]
    prog = t["progressive_resizing"]
    assert prog["enabled"]
    assert prog["schedule"][0] == [0, 128] and prog["schedule"][-1][1] == 224
    assert [e for e, _ in prog["schedule"]] == sorted(e for e, _ in prog["schedule"])
    assert t["epochs"] == 50  # Epochs table, 10K-100K, Progressive Resizing column
    assert not rec(images=5000)["training"]["progressive_resizing"]["enabled"]


def test_batch_shrinks_with_gpu_memory_and_accumulates():
    big = rec(images=500_000, arch="resnet50", gpu_memory_gb=40)["training"]
    small = rec(images=500_000, arch="resnet50", gpu_memory_gb=8)["training"]
    assert small["batch_size"] < big["batch_size"]
    assert small["grad_accum_steps"] >= big["grad_accum_steps"]


def test_freeze_policy_by_dataset_size():
    assert rec(images=500, arch="convnext_tiny")["training"]["freeze"]["mode"] == "head-only"
    assert rec(images=5000, arch="convnext_tiny")["training"]["freeze"]["mode"] == "progressive"
    assert rec(images=50_000, arch="convnext_tiny")["training"]["freeze"]["mode"] == "none"


def test_no_hflip_removes_the_flip_and_small_images_keep_a_third():
    a = rec(images=1437, image_size=32, compute="cpu", hflip=False)["augmentation"]
    names = [o["name"] for o in a["ops"]]
    assert "horizontal_flip" not in names
    crop = next(o for o in a["ops"] if o["name"] == "random_resized_crop")
    assert crop["params"]["scale"][0] >= 0.3


def test_short_runs_get_an_ema_horizon_that_fits():
    t = rec(images=300, arch="resnet18")["training"]
    steps = t["epochs"] * t["steps_per_epoch"]
    assert 1 / (1 - t["ema_decay"]) <= steps / 10 + 1


def test_scratch_on_tiny_data_warns():
    assert any("use transfer learning" in w for w in rec(images=300, pretrained=False)["warnings"])


def test_every_recipe_value_has_provenance():
    r = rec(images=8000, target="jetson")
    for key in ("training.lr", "training.optimizer", "training.weight_decay", "training.epochs", "training.label_smoothing",
                "training.drop_path", "training.ema_decay", "augmentation.level"):  # fmt: skip
        assert r["provenance"][key] and r["provenance"][key] != "(default)", key


def test_flips_name_a_change_that_really_flips():
    spec = build_spec(images=8000, target="jetson")
    found = flips(spec, RULES, CATALOG)
    assert found
    for f in found:
        flag, _, value = f["change"].partition(" ")
        assert f["architecture"] != "efficientnet_v2_s"
    # and re-running with the first change gives that architecture
    first = found[0]
    key = first["change"].split()[0].lstrip("-").replace("-", "_")
    value = first["change"].split()[1] if " " in first["change"] else None
    kwargs = {"target": value} if key == "target" else {}
    if kwargs:
        assert rec(**{**dict(images=8000, target="jetson"), **kwargs})["architecture"]["name"] == first["architecture"]
    assert spec._replace() == spec


def test_a_user_devices_file_overrides_one_target_and_keeps_the_others(tmp_path):
    (tmp_path / "dev.yaml").write_text(
        """kind: devices
schema: 1
targets:
  browser:
    device: "fast laptop"
    runtime: "onnxruntime-web WebGPU"
    precision: fp32
    peak_gmacs_per_s: 1000
    peak_source: a
    memory_bandwidth_gb_s: 50
    bandwidth_source: a
    bytes_per_param: 4
    sources: {a: "an assumption for this test"}
    benchmarks:
      - {model: mobilenet_v3_large, kind: cnn, gmacs: 0.2166, latency_ms: 5.0, source: a, base: true}
      - {model: resnet50, kind: cnn, gmacs: 4.0892, latency_ms: 20.0, source: a, base: true}
""",
        encoding="utf-8",
    )
    rules = load_rules([tmp_path])
    catalog = Catalog(rules)
    browser = recommend(build_spec(images=5000, target="browser"), rules, catalog).to_json()["deployment"]
    assert "fast laptop" in browser["latency_basis"]
    assert browser["expected_latency_ms"] == pytest.approx(5.0, rel=0.05)  # the fit passes through its points
    jetson = recommend(build_spec(images=5000, target="jetson"), rules, catalog).to_json()["deployment"]
    assert jetson["latency_basis"] == rec(images=5000, target="jetson")["deployment"]["latency_basis"]


# --- task recipes: each task's own reference recipe, no classification leaks ----------------------------
NOT_FOR_DENSE = {"random_resized_crop", "rand_augment", "trivial_augment", "random_erasing", "random_grayscale"}


def test_segmentation_recipe_is_torchvisions_reference():
    """torchvision references/segmentation: SGD 0.02 for 32 images, momentum 0.9, wd 1e-4, poly 0.9; scale
    jitter 0.5-2.0, flip, padded crop; no MixUp/CutMix/erasing (they tear image and mask apart)."""
    r = rec(task="semantic-segmentation", images=5000, arch="deeplabv3_resnet50")
    t, a = r["training"], r["augmentation"]
    assert t["optimizer"]["name"] == "sgd" and t["optimizer"]["momentum"] == 0.9
    assert t["lr"] == pytest.approx(0.02 * t["effective_batch_size"] / 32, rel=1e-3)
    assert t["weight_decay"] == 1e-4 and t["schedule"] == "poly" and t["poly_power"] == 0.9
    assert t["image_size"] == 512  # the crop, not a classification 224
    for key in ("label_smoothing", "dropout", "drop_path", "ema_decay", "progressive_resizing", "freeze"):
        assert t[key] is None, key
    names = [o["name"] for o in a["ops"]]
    assert names[0] == "scale_jitter" and "random_crop" in names and not NOT_FOR_DENSE & set(names)
    assert a["mixup_alpha"] == a["cutmix_alpha"] == 0
    crop = next(o for o in a["ops"] if o["name"] == "random_crop")
    assert crop["params"]["pad_mask"] == 255  # padded pixels are ignored by the loss


def test_small_from_scratch_segmentation_gets_adamw_and_dice():
    """Under 2K masks from scratch: AdamW 2e-3 at batch 16 (rule opt.segmentation_scratch_small, measured on the
    bundled demo), CE + Dice (nnU-Net, Isensee et al. 2021: rule loss.segmentation_small); at 32 px the 512 px row's
    per-device batch grows to the effective batch, so nothing accumulates. At 5K masks, or fine-tuning, the
    torchvision reference (SGD, cross-entropy) stays."""
    r = rec(task="semantic-segmentation", images=1800, classes=11, image_size=32, compute="cpu", pretrained=False,
            arch="unet_small")  # fmt: skip
    t = r["training"]
    assert t["optimizer"]["name"] == "adamw" and t["lr"] == 2e-3 and t["weight_decay"] == 0.01
    assert t["batch_size"] == 16 and t["grad_accum_steps"] == 1 and t["effective_batch_size"] == 16
    assert r["task_settings"]["loss"] == "cross_entropy+dice"
    assert r["provenance"]["task_settings.loss"]["rule"] == "loss.segmentation_small"
    # a U-Net is a convolutional network: NCHW is kept for a measured reason, not because it is not one
    assert t["channels_last"] is False and r["provenance"]["training.channels_last"]["rule"] == "memory_format.dense"
    large = rec(task="semantic-segmentation", images=5000, pretrained=False, arch="unet_small")
    assert large["training"]["optimizer"]["name"] == "sgd" and large["task_settings"]["loss"] == "cross_entropy"
    tuned = rec(task="semantic-segmentation", images=1800, pretrained=True, arch="unet_resnet18")["training"]
    assert tuned["optimizer"]["name"] == "sgd"


def test_yolo_keeps_ultralytics_semantics():
    """ultralytics: lr0 0.01 kept, gradients accumulated to nbs=64, momentum 0.937, wd 5e-4, clip 10, EMA."""
    t = rec(task="detection", images=5000, arch="yolov8s")["training"]
    assert t["lr"] == 0.01 and t["effective_batch_size"] == 64
    assert t["optimizer"]["momentum"] == 0.937 and t["weight_decay"] == 5e-4
    assert t["grad_clip_norm"] == 10.0 and t["ema_decay"] is not None
    assert t["dropout"] is None and t["drop_path"] is None and t["label_smoothing"] is None


def test_torchvision_detectors_use_the_reference_schedule():
    """references/detection: SGD 0.02 per 16 images, 1000 warmup iterations, LR x0.1 at 16 and 22 of 26."""
    t = rec(task="detection", images=50_000, arch="fasterrcnn_resnet50_fpn_v2")["training"]
    assert t["lr"] == pytest.approx(0.02 * t["effective_batch_size"] / 16, rel=1e-3)
    assert t["schedule"] == "multistep" and t["epochs"] == 26 and t["milestones"] == [16, 22]
    assert t["warmup_steps"] == 1000 and t["grad_clip_norm"] is None
    small = rec(task="detection", images=2000, arch="fasterrcnn_resnet50_fpn_v2")["training"]
    assert small["epochs"] == 36 and small["milestones"] == [28, 34]  # the 3x schedule


def test_text_fine_tuning_recipe():
    """BERT-style fine-tuning: AdamW 2e-5..5e-5, 2-5 epochs, warmup 6-10 % of steps, linear decay, max length."""
    r = rec(task="text", images=20_000)
    t = r["training"]
    assert 2e-5 <= t["lr"] <= 5e-5 and 2 <= t["epochs"] <= 5 and t["optimizer"]["name"] == "adamw"
    total = t["epochs"] * t["steps_per_epoch"]
    assert 0.06 <= t["warmup_steps"] / total <= 0.10 and t["schedule"] == "linear"
    assert t["label_smoothing"] is None and r["augmentation"] is None
    scratch = rec(task="text", images=20_000, pretrained=False)["training"]
    assert scratch["lr"] == 1e-3 and scratch["epochs"] > t["epochs"] and scratch["pretrained"] is False


def test_forecasting_recipe_has_no_classification_values():
    r = rec(task="time-series", images=5000, horizon=24)
    t = r["training"]
    assert t["label_smoothing"] is None and t["ema_decay"] is None and t["freeze"] is None
    assert t["monitor"] == {"metric": "val_mase", "mode": "min"} and t["optimizer"]["name"] == "adamw"
    assert t["grad_clip_norm"] == 1.0  # recurrent models (Pascanu et al. 2013)


def test_a_forecast_has_no_classes_and_gets_the_sequence_models_batch_and_optimizer():
    """A forecast has no classes and no mirror images: null in the JSON and absent from the report (a given
    --classes is noted and ignored). Its optimizer and batch rows are the sequence models' own (LTSF-Linear,
    PatchTST: Adam, batch 16-128 on one device), not BERT fine-tuning's."""
    spec = build_spec(task="time-series", images=5000, classes=5, horizon=12, frequency="MS", compute="cpu",
                      target="cloud-cpu", arch="dlinear")  # fmt: skip
    r = recommend(spec, RULES, CATALOG)
    j = r.to_json()
    assert j["inputs"]["classes"] is None and j["inputs"]["hflip"] is None and j["training"]["num_classes"] is None
    assert any(w.startswith("--classes 5 does not apply to time-series") for w in j["warnings"])
    analysis = to_markdown(r).split("## Architecture choice")[0]
    assert "classes" not in analysis and "5000 time steps per series" in analysis and "horizon 12" in analysis
    prov, t = j["provenance"], j["training"]
    assert (
        prov["training.optimizer"]["rule"] == "opt.time_series"
        and "Zeng et al. 2023" in prov["training.optimizer"]["reason"]
    )
    assert prov["training.batch_size"]["rule"] == "batch.time_series" and t["grad_accum_steps"] == 1
    assert t["batch_size"] == t["effective_batch_size"] == 64
    # a classification task keeps its classes and its mirror-image input
    cls = rec(task="time-series-classification", images=500, classes=4)
    assert cls["inputs"]["classes"] == 4 and cls["training"]["num_classes"] == 4 and cls["inputs"]["hflip"] is None
    assert rec(task="classification", images=500, hflip=False)["inputs"]["hflip"] is False


def test_speech_gets_specaugment_and_a_whisper_lr():
    r = rec(task="speech-recognition", images=5000)
    assert "spec_augment" in [o["name"] for o in r["augmentation"]["ops"]]
    assert r["training"]["lr"] == 1e-5


# --- licences ---------------------------------------------------------------------------------------------


def test_every_model_names_its_code_and_weights_licence():
    unknown = [v.name for v in CATALOG.variants if v.license.code_kind == "other" and v.license.code == "unknown"]
    unknown += [e.name for e in CATALOG.external if e.license is None or e.license.code == "unknown"]
    assert not unknown, unknown


@pytest.mark.parametrize(
    ("inputs", "name", "kind"),
    [(dict(task="detection", images=2000, arch="yolov8s"), "yolov8s", "copyleft"),  # ultralytics: AGPL-3.0
     (dict(task="detection", images=2000, arch="yolo_nas_s"), "yolo_nas_s", "non-commercial"),  # Deci weights licence
     (dict(task="text-generation", images=100, arch="llama3_8b"), "llama3_8b", "gated"),  # Meta Llama 3 licence
     (dict(task="text", images=50, arch="gpt_4"), "gpt_4", "proprietary")],
)  # fmt: skip
def test_restrictive_terms_on_the_choice_are_warned_with_a_permissive_alternative(inputs, name, kind):
    r = rec(**inputs)
    assert r["architecture"]["license"]["kind"] == kind
    warning = next(w for w in r["warnings"] if w.startswith(f"{name} is {kind}"))
    assert "permissive alternative" in warning or "--permissive" in warning


@pytest.mark.parametrize("task", ["classification", "detection", "semantic-segmentation", "instance-segmentation",
                                  "text", "code", "time-series", "image-generation", "text-generation",
                                  "speech-recognition", "video", "time-series-classification"])  # fmt: skip
def test_permissive_keeps_only_permissive_models(task):
    r = rec(task=task, images=5000, permissive=True, target="cloud-gpu")
    assert r["inputs"]["permissive"] is True
    kinds = [r["architecture"]["license"]["kind"]] + [a["license"]["kind"] for a in r["alternatives"]]
    if any(t["rule"] == "license.permissive" and "nothing meets it" in t["because"] for t in r["trace"]):
        assert any("license.permissive" in w for w in r["warnings"])  # no permissive model for the task: said
    else:
        assert set(kinds) <= {"permissive", "none"}, (task, kinds)


def test_scratch_training_does_not_bind_the_weights_licence():
    r = rec(images=50_000, target="ios", pretrained=False, arch="mobilevit_xs")  # Apple sample-code weights unused
    assert r["architecture"]["license"] == {"code": "MIT", "weights": "not used", "kind": "permissive"}


@pytest.mark.parametrize("target", ["jetson", "jetson-orin", "jetson-orin-nano"])
def test_a_budget_inside_the_estimate_band_is_warned(target):
    base = rec(images=8000, target=target, arch="efficientnet_v2_s")["deployment"]
    low, high = base["latency_range_ms"]
    budget = (base["expected_latency_ms"] + high) / 2  # above the estimate, below the band's top
    r = rec(images=8000, target=target, arch="efficientnet_v2_s", latency_ms=budget)
    assert any("inside the estimate's band" in w and target in w for w in r["warnings"]), r["warnings"]
    clear = rec(images=8000, target=target, arch="efficientnet_v2_s", latency_ms=high * 1.5)
    assert not any("inside the estimate's band" in w for w in clear["warnings"])


def test_the_orin_targets_are_their_own_devices():
    """AGX Orin 64GB and Orin Nano 8GB (Super) get their own rows and profiles (Ultralytics' Jetson benchmark
    tables, rules/devices.yaml): a large model runs fastest on the AGX Orin, then the Orin Nano, then the AGX
    Xavier (NVIDIA: 275 / 67 / 32 INT8 TOPS), and the plan's precision is the profile's (TensorRT FP16)."""
    ms = {}
    for target, row in (("jetson-orin", "deploy.jetson_orin"), ("jetson-orin-nano", "deploy.jetson_orin_nano"),
                        ("jetson", "deploy.jetson")):  # fmt: skip
        d = rec(images=50_000, target=target, arch="convnext_base")["deployment"]
        assert d["rule"] == row and d["precision"] == "fp16" and "TensorRT" in d["runtime"]
        assert "not converted" not in d["latency_basis"] and "x2 for" not in d["latency_basis"]
        ms[target] = d["expected_latency_ms"]
    assert ms["jetson-orin"] < ms["jetson-orin-nano"] < ms["jetson"], ms
    assert "AGX Orin" in rec(images=8000, target="jetson-orin")["deployment"]["latency_basis"]
    # the Orin Nano's 8 GB keep the Xavier's 60M-parameter limit; the AGX Orin's 64 GB allow more
    assert RULES.targets["jetson-orin-nano"]["max_params_m"] == RULES.targets["jetson"]["max_params_m"]
    assert RULES.targets["jetson-orin"]["max_params_m"] > RULES.targets["jetson"]["max_params_m"]


# --- latency for models outside the zoo, and in the plan's precision ------------------------------------


def test_detectors_with_published_compute_get_labelled_estimates_and_the_budget_is_checked():
    r = rec(task="detection", images=2000, target="cloud-cpu", latency_ms=100)
    d = r["deployment"]
    assert d["expected_latency_ms"] is not None and d["expected_latency_ms"] <= 100
    assert "estimate" in d["latency_basis"] and "GMACs" in d["latency_basis"] and d["latency_measured"] is False
    assert any(t["rule"] == "constraint.latency" and t["fired"] for t in r["trace"])
    for alt in r["alternatives"]:  # the alternatives meet the same budget
        assert alt["expected_latency_ms"] is not None and alt["expected_latency_ms"] <= 100, alt


def test_the_estimate_is_in_the_plans_precision():
    """cloud-gpu: the profile is TensorRT INT8 (NVIDIA's table), the plan serves fp16: dense FP16 is half INT8's
    throughput on an A100 (datasheet), so the fp16 estimate is 2x and says so."""
    from archadvisor.latency import estimate_latency_ms

    v = CATALOG.get("convnext_tiny")
    int8 = estimate_latency_ms(v, "cloud-gpu", 224)
    fp16 = estimate_latency_ms(v, "cloud-gpu", 224, precision="fp16")
    assert fp16.ms == pytest.approx(2 * int8.ms) and "fp16" in fp16.basis
    r = rec(images=50_000, target="cloud-gpu", arch="convnext_tiny")
    assert r["deployment"]["precision"] == "fp16"
    assert r["deployment"]["expected_latency_ms"] == pytest.approx(fp16.ms, rel=1e-2)


@pytest.mark.parametrize("target", TARGETS)
def test_plan_precision_and_profile_precision_agree(target):
    """Every deployment row's precision is its device profile's, or the profile converts to it (precision_factors):
    the estimate never silently stays in another precision than the one the plan serves."""
    from archadvisor.latency import load_devices

    plan = RULES.targets[target]["precision"]
    profile = load_devices()["targets"][target]
    assert plan == profile["precision"] or plan in profile.get("precision_factors", {}), (target, plan)
    d = rec(images=5000, target=target)["deployment"]
    assert d["precision"] == plan and "not converted" not in d["latency_basis"]
    if plan != profile["precision"]:  # the factor of the plan's quantization (int8-static) where the profile has one
        key = d["quantize"] if d["quantize"] in profile["precision_factors"] else plan
        assert f"for the plan's {key} (the profile is {profile['precision']})" in d["latency_basis"]


def test_cloud_cpu_int8_dynamic_is_estimated_at_fp32_and_says_why():
    """onnxruntime's quantize_dynamic runs convolutions as ConvInteger, which has no optimized CPU kernel
    (microsoft/onnxruntime#12854): the int8-dynamic plan, which a transformer keeps (its MatMuls quantize
    dynamically), gets the fp32 figure (factor 1), with that reason in the basis."""
    from archadvisor.latency import estimate_latency_ms

    r = rec(images=5000, target="cloud-cpu", arch="vit_tiny_patch16_224")
    d = r["deployment"]
    assert (d["precision"], d["quantize"], d["rule"]) == ("int8", "int8-dynamic", "deploy.cloud_cpu")
    fp32 = estimate_latency_ms(CATALOG.get("vit_tiny_patch16_224"), "cloud-cpu", 224)
    assert d["expected_latency_ms"] == pytest.approx(fp32.ms, rel=1e-2)
    assert "x1 for the plan's int8 (the profile is fp32)" in d["latency_basis"] and "ConvInteger" in d["latency_basis"]


def test_a_cnn_on_cloud_cpu_is_served_static_int8_at_the_measured_speed_up():
    """CNNs on CPU: static INT8 (calibrated QDQ), as onnxruntime's quantization docs recommend for CNNs; the
    estimate takes the speed-up measured by bench/cpu_int8_static.py (committed in bench/results/cpu_int8.json),
    and the refine row is the plan's rule, its provenance and a fired trace entry."""
    import json
    from pathlib import Path

    from archadvisor.latency import estimate_latency_ms, load_devices

    measured = json.loads((Path(__file__).parents[1] / "bench" / "results" / "cpu_int8.json").read_text())
    factor = load_devices()["targets"]["cloud-cpu"]["precision_factors"]["int8-static"]["factor"]
    assert factor == measured["summary"]["median_static_over_eager"] and factor < 1.0
    r = rec(images=5000, target="cloud-cpu")  # the guide's Cloud (CPU) row: RegNet-Y-800MF, a CNN
    d = r["deployment"]
    assert r["architecture"]["kind"] == "cnn"
    assert (d["precision"], d["quantize"], d["rule"]) == ("int8", "int8-static", "deploy.cloud_cpu.cnn_static_int8")
    assert r["provenance"]["deployment.quantize"]["rule"] == "deploy.cloud_cpu.cnn_static_int8"
    assert r["provenance"]["deployment.runtime"]["rule"] == "deploy.cloud_cpu"  # the rest of the row stands
    assert any(t["rule"] == "deploy.cloud_cpu.cnn_static_int8" and t["fired"] for t in r["trace"])
    fp32 = estimate_latency_ms(CATALOG.get(r["architecture"]["name"]), "cloud-cpu", 224)
    assert d["expected_latency_ms"] == pytest.approx(fp32.ms * factor, rel=1e-2)
    assert "for the plan's int8-static" in d["latency_basis"]
    # other targets keep their row: a CNN on a Jetson is TensorRT FP16
    assert rec(images=5000, target="jetson")["deployment"]["quantize"] == "none"


# --- current classification models (2023-2024) from libraries, competing with the zoo -------------------------

# (source, name, params M, GMACs at 224 px, ImageNet top-1, kind, weights licence): the figures rules/catalog.yaml
# must carry; params / GMACs as timm 1.0.31 builds them (results/benchmark-infer-amp-nchw-pt291-cu130-pro6000maxq.csv
# infer_gmacs to 0.02), top-1 from timm's results-imagenet.csv @ aa4b5850, DINOv2's from its paper's linear probe
LIBRARY_CLASSIFIERS = [
    ("Qin et al. 2024, MobileNetV4-Conv-S (timm e2400_r224_in1k)", "mobilenetv4_conv_small", 3.77, 0.19, 73.756, "cnn", "Apache-2.0"),
    ("Qin et al. 2024, MobileNetV4-Conv-M (timm e500_r224_in1k)", "mobilenetv4_conv_medium", 9.72, 0.83, 79.092, "cnn", "Apache-2.0"),
    ("Qin et al. 2024, MobileNetV4-Hybrid-M (timm e500_r224_in1k)", "mobilenetv4_hybrid_medium", 11.07, 0.94, 80.432, "hybrid", "Apache-2.0"),
    ("Woo et al. 2023, ConvNeXt V2-Atto (timm fcmae_ft_in1k, cc-by-nc-4.0)", "convnextv2_atto", 3.71, 0.55, 76.644, "cnn", "CC-BY-NC-4.0"),
    ("Woo et al. 2023, ConvNeXt V2-Nano (timm fcmae_ft_in1k)", "convnextv2_nano", 15.62, 2.45, 81.856, "cnn", "CC-BY-NC-4.0"),
    ("Woo et al. 2023, ConvNeXt V2-Tiny (timm fcmae_ft_in1k)", "convnextv2_tiny", 28.64, 4.47, 82.948, "cnn", "CC-BY-NC-4.0"),
    ("Oquab et al. 2023, DINOv2 ViT-S/14 (Table 4 linear probe; weights Apache-2.0)", "dinov2_vits14", 21.63, 5.51, 81.1, "transformer", "Apache-2.0"),
    ("Oquab et al. 2023, DINOv2 ViT-B/14 (Table 4 linear probe)", "dinov2_vitb14", 85.72, 21.94, 84.5, "transformer", "Apache-2.0"),
]  # fmt: skip


@pytest.mark.parametrize("source,name,params_m,gmacs,top1,kind,weights", LIBRARY_CLASSIFIERS,
                         ids=[c[1] for c in LIBRARY_CLASSIFIERS])  # fmt: skip
def test_library_classifiers_carry_their_published_facts(source, name, params_m, gmacs, top1, kind, weights):
    e = CATALOG.external_model(name)
    assert e is not None and e.task == "classification", source
    assert e.params_m == pytest.approx(params_m, abs=0.01) and e.gmacs == pytest.approx(gmacs, abs=0.02)
    assert e.imagenet_top1 == pytest.approx(top1) and e.input_size == 224 and e.arch_kind == kind
    assert e.license.weights == weights and not e.generatable  # advice only: archadvisor has no model file for it
    assert source.split(",")[0].split(" et al.")[0] in e.source


def test_library_classifiers_compete_and_the_trace_says_where_they_come_from():
    """MobileNetV4 is the successor of MobileNetV3 under the real-time rule (Qin et al. 2024): on an Android budget
    that MobileNetV3-Large (4.8 ms estimated) misses, MobileNetV4-Conv-S (73.8% top-1) beats MobileNetV3-Small
    (67.7%) by the same votes; the trace names the pool, the choice says where to get it."""
    r = rec(images=50_000, target="android", latency_ms=4.5)
    arch = r["architecture"]
    assert arch["name"] == "mobilenetv4_conv_small" and r["decided_by"] == "cls.latency.realtime"
    assert arch["kind"] == "external" and "timm" in arch["why"] and arch["imagenet_top1"] == pytest.approx(73.756)
    assert r["deployment"]["expected_latency_ms"] <= 4.5 and "estimate" in r["deployment"]["latency_basis"]
    pool = next(t for t in r["trace"] if t["rule"] == "catalog.pool")
    assert (
        "library models" in pool["because"]
        and "dinov2_vits14" in pool["because"]
        and "rules/catalog.yaml" in pool["because"]
    )
    # the recipe is the classification recipe of its kind, not another task's
    assert r["training"]["optimizer"]["name"] in ("adamw", "sgd") and r["augmentation"] is not None


def test_a_library_top_choice_is_scaffolded_as_the_best_zoo_candidate_and_says_so():
    from archadvisor.engine import for_generated

    r = recommend(build_spec(images=50_000, target="android", latency_ms=4.5), RULES, CATALOG)
    g = r.generated
    assert g is not None and g.substitute and CATALOG.get(g.name) is not None and CATALOG.get(g.name).scaffold
    assert g.name == next(c["name"] for c in r.to_json()["scores"] if CATALOG.get(c["name"]) is not None)
    assert "mobilenetv4_conv_small is not generated by archadvisor" in g.why and "best-ranked" in g.why
    sub = for_generated(r, RULES, CATALOG).to_json()
    assert sub["architecture"]["name"] == g.name and sub["generated"]["substitute"] is True
    assert any(w.startswith(f"scaffold generates {g.name} in place of mobilenetv4_conv_small") for w in sub["warnings"])


@pytest.mark.parametrize(
    "inputs,check",
    [
        # DINOv2 (Oquab et al. 2023): frozen features for few labels; it ranks among the alternatives at 300 images
        (dict(images=300), lambda r: "dinov2_vits14" in [a["name"] for a in r["alternatives"]]),
        # ... but not from scratch: the rule needs pretrained weights (its value is the pre-training)
        (dict(images=300, pretrained=False), lambda r: all(s["name"] != "dinov2_vits14" or "cls.dataset.tiny_transfer"
                                                            not in s["votes"] for s in r["scores"])),
        # ConvNeXt V2's weights are CC-BY-NC-4.0 (timm convnext.py _cfgv2): --permissive drops them
        (dict(images=50_000, permissive=True), lambda r: not any(s["name"].startswith("convnextv2") for s in r["scores"])),
        # images <= 64 px need a small-input stem (cls.small_images.stem): no library model has one
        (dict(images=50_000, image_size=32), lambda r: CATALOG.get(r["architecture"]["name"]) is not None
                                                       and all(CATALOG.get(s["name"]) for s in r["scores"])),
        # the deployment size limit holds for them as for the zoo: 15M on Android excludes ConvNeXt V2-Nano (15.6M)
        (dict(images=50_000, target="android"), lambda r: "convnextv2_nano" not in [s["name"] for s in r["scores"]]),
    ],
    ids=["dinov2-few-labels", "dinov2-not-from-scratch", "permissive-drops-cc-by-nc", "small-images-zoo-only",
         "android-size-limit"],
)  # fmt: skip
def test_library_classifiers_obey_the_same_constraints(inputs, check):
    assert check(rec(**inputs))


def test_a_library_classifier_can_be_forced_and_an_unknown_name_lists_them():
    from archadvisor.errors import InputError

    r = rec(images=5000, arch="dinov2_vits14")
    assert r["architecture"]["name"] == "dinov2_vits14" and r["generated"] is None
    assert r["architecture"]["license"]["kind"] == "permissive"  # DINOv2 weights: Apache-2.0 since Aug 2023
    with pytest.raises(InputError, match="dinov2_vits14"):
        rec(images=5000, arch="dinov2_vits15")
