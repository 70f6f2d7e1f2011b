"""templates/models/weights.py, offline: reference weights (random, never downloaded) saved to a file and loaded
into our model files; head replacement; clear errors; and that the file loader really refuses arbitrary pickles.
"""

from collections.abc import Callable

import pytest
import timm
import torch
import torchvision
from torch import nn
from zoo_support import build, smallest_per_family

from archadvisor.resources import load_model_module

weights = load_model_module("weights")

# (our model file, variant, the reference implementation built with random weights for a class count)
REFERENCES: list[tuple[str, str, Callable[[int], nn.Module]]] = [
    ("resnet", "resnet18", lambda n: torchvision.models.resnet18(weights=None, num_classes=n)),
    ("convnext", "convnext_atto", lambda n: timm.create_model("convnext_atto", pretrained=False, num_classes=n)),
    # dynamic_img_size: timm's ViT takes 64 px test images too (our vit.py always does); the state_dict is the same
    (
        "vit",
        "vit_tiny_patch16_224",
        lambda n: timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=n, dynamic_img_size=True),
    ),
]
REF_IDS = [r[1] for r in REFERENCES]


def _x(size: int = 64) -> torch.Tensor:
    return torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))


def _reference(make: Callable[[int], nn.Module], num_classes: int = 1000) -> nn.Module:
    """A reference model whose BatchNorm statistics are not the defaults, so loading them is observable."""
    torch.manual_seed(1)
    ref = make(num_classes)
    ref.train()
    with torch.no_grad():
        ref(_x())
    return ref.eval()


def _save(tmp_path, obj, name: str = "weights.pt"):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(("module", "arch", "make"), REFERENCES, ids=REF_IDS)
def test_same_class_count_loads_everything_and_logits_match(tmp_path, module, arch, make):
    ref = _reference(make)
    path = _save(tmp_path, ref.state_dict())
    ours = load_model_module(module).build_model(arch, num_classes=1000).eval()
    with torch.no_grad():
        assert not torch.allclose(ours(_x()), ref(_x())), "fresh models should differ before loading"

    report = weights.load_pretrained(ours, path)

    assert report.loaded == report.total == len(ref.state_dict())
    assert report.skipped == ()
    assert report.source == str(path)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(_x()), ref(_x()), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("module", "arch", "make"), REFERENCES, ids=REF_IDS)
def test_new_class_count_skips_only_the_head_and_reports_it(tmp_path, module, arch, make):
    ref = _reference(make)
    path = _save(tmp_path, ref.state_dict())
    ours = load_model_module(module).build_model(arch, num_classes=7)
    before = _snapshot(ours)

    report = weights.load_pretrained(ours, path)

    head = weights.head_parameter_names(ours)
    assert report.skipped_keys == head
    for s in report.skipped:
        assert s.is_head and s.checkpoint_shape[0] == 1000 and s.model_shape[0] == 7
    assert report.loaded == report.total - len(head)
    after, ref_sd = ours.state_dict(), ref.state_dict()
    for k, v in after.items():
        expected = before[k] if k in head else ref_sd[k]
        assert torch.equal(v, expected), k
    text = str(report)
    assert f"loaded {report.loaded}/{report.total}" in text
    assert all(k in text for k in head) and "(1000," in text and "(7," in text


def test_checkpoint_dicts_and_wrapper_prefixes_are_unwrapped(tmp_path):
    ref = _reference(REFERENCES[0][2])
    sd = ref.state_dict()
    # a DDP training checkpoint: weights under "model" with the "module." prefix, next to the optimizer state
    checkpoint = {"model": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3, "optimizer": {"lr": 0.1}}
    ours = load_model_module("resnet").build_model("resnet18")
    report = weights.load_pretrained(ours, _save(tmp_path, checkpoint))
    assert report.checkpoint_key == "model"
    assert report.loaded == len(sd) and not report.skipped
    assert all(torch.equal(ours.state_dict()[k], v) for k, v in sd.items())

    # torch.compile's wrapper on both sides: "_orig_mod." keys, and a compiled model as the target
    compiled_ref = torch.compile(ref)
    assert next(iter(compiled_ref.state_dict())).startswith("_orig_mod.")
    target = torch.compile(load_model_module("resnet").build_model("resnet18"))
    report = weights.load_pretrained(target, _save(tmp_path, compiled_ref.state_dict(), "compiled.pt"))
    assert report.loaded == len(sd) and not report.skipped


def test_prefer_ema_picks_the_ema_weights(tmp_path):
    sd = _reference(REFERENCES[0][2]).state_dict()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}
    path = _save(tmp_path, {"model": sd, "model_ema": ema})
    ours = load_model_module("resnet").build_model("resnet18")

    assert weights.load_pretrained(ours, path).checkpoint_key == "model"
    assert torch.equal(ours.fc.weight, sd["fc.weight"])
    assert weights.load_pretrained(ours, path, prefer_ema=True).checkpoint_key == "model_ema"
    assert torch.equal(ours.fc.weight, ema["fc.weight"])


class _Payload:
    """Unpickling this object creates a file: the harmless stand-in for code an attacker would run."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_file_loader_uses_weights_only_and_refuses_arbitrary_objects(tmp_path):
    marker = tmp_path / "payload_ran"
    sd = dict(nn.Linear(2, 2).state_dict())
    path = _save(tmp_path, {**sd, "extra": _Payload(str(marker))})
    # the payload is live: a plain (unsafe) torch.load runs it
    torch.load(path, weights_only=False)
    assert marker.exists()
    marker.unlink()

    with pytest.raises(weights.PretrainedWeightsError, match="weights_only=True refused"):
        weights.load_pretrained(nn.Linear(2, 2), path)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_file_is_a_clear_error(tmp_path, damage):
    good = _save(tmp_path, nn.Linear(4, 3).state_dict(), "good.pt").read_bytes()
    data = {"garbage": b"this is not a checkpoint", "truncated": good[: len(good) // 2], "empty": b""}[damage]
    path = tmp_path / "bad.pt"
    path.write_bytes(data)
    with pytest.raises(weights.PretrainedWeightsError, match=r"bad\.pt is not a (readable )?PyTorch weights file"):
        weights.load_pretrained(nn.Linear(4, 3), path)


def test_missing_file_and_dict_without_weights_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file"):
        weights.load_pretrained(nn.Linear(4, 3), tmp_path / "nope.pt")
    path = _save(tmp_path, {"epoch": 3, "optimizer": {"lr": 0.1}})
    with pytest.raises(weights.PretrainedWeightsError, match="without model weights.*epoch, optimizer"):
        weights.load_pretrained(nn.Linear(4, 3), path)


def test_wrong_architecture_is_an_error_naming_the_keys_and_changes_nothing(tmp_path):
    path = _save(tmp_path, torchvision.models.resnet34(weights=None).state_dict())
    ours = load_model_module("resnet").build_model("resnet18")
    before = _snapshot(ours)
    with pytest.raises(weights.PretrainedWeightsError, match="another architecture") as info:
        weights.load_pretrained(ours, path)
    assert "layer1.2.conv1.weight" in str(info.value)
    assert all(torch.equal(v, before[k]) for k, v in ours.state_dict().items())

    # same keys, other widths (ViT-S weights into ViT-Ti)
    path = _save(tmp_path, timm.create_model("vit_small_patch16_224", pretrained=False).state_dict(), "vits.pt")
    with pytest.raises(weights.PretrainedWeightsError, match="with another shape") as info:
        weights.load_pretrained(load_model_module("vit").build_model("vit_tiny_patch16_224"), path)
    assert "pos_embed: checkpoint (1, 197, 384), model (1, 197, 192)" in str(info.value)


def test_small_input_stem_loads_with_strict_backbone_false(tmp_path):
    ref = _reference(REFERENCES[0][2])
    path = _save(tmp_path, ref.state_dict())
    ours = load_model_module("resnet").build_model("resnet18", num_classes=10, small_input=True)
    with pytest.raises(weights.PretrainedWeightsError, match="strict_backbone=False") as info:
        weights.load_pretrained(ours, path)
    assert "conv1.weight: checkpoint (64, 3, 7, 7), model (64, 3, 3, 3)" in str(info.value)

    report = weights.load_pretrained(ours, path, strict_backbone=False)
    assert report.skipped_keys == ["conv1.weight", "fc.weight", "fc.bias"]
    assert [s.is_head for s in report.skipped] == [False, True, True]
    assert torch.equal(ours.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)


def test_an_in_memory_state_dict_is_accepted():
    ref = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    ours = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    report = weights.load_pretrained(ours, {"state_dict": ref.state_dict()})
    assert report.loaded == 4 and report.checkpoint_key == "state_dict"
    assert torch.equal(ours[2].weight, ref[2].weight)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("torchvision:NoSuch_Weights.IMAGENET1K_V1", "unknown torchvision weights"),
        ("torchvision:ResNet50_Weights.NOPE", "unknown torchvision weights"),
        ("torchvision:resnet50", "unknown torchvision weights"),
        ("timm:convnext_tny.fb_in1k", "timm has no pretrained weights.*convnext_tiny.fb_in1k"),
    ],
)
def test_unknown_named_sources_fail_before_any_download(source, message):
    with pytest.raises(weights.PretrainedWeightsError, match=message):
        weights.load_pretrained(nn.Linear(4, 3), source)


@pytest.mark.parametrize("variant", smallest_per_family(), ids=[v["name"] for v in smallest_per_family()])
def test_head_is_exactly_what_the_class_count_changes(variant):
    # the building-free rule (last nn.Linear) against the truth: the tensors that differ between two class counts
    with torch.device("meta"):
        a = build(variant, num_classes=1000)
        b = build(variant, num_classes=7)
    changed = {k for k, v in a.state_dict().items() if v.shape != b.state_dict()[k].shape}
    assert set(weights.head_parameter_names(a)) == changed


def test_freeze_backbone_trains_only_the_head():
    torch.manual_seed(0)
    model = load_model_module("vit").build_model("vit_tiny_patch16_224", num_classes=5)
    head = weights.head_parameter_names(model)
    assert head == ["head.weight", "head.bias"]

    assert weights.freeze_backbone(model) == head
    before = _snapshot(model)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    nn.functional.cross_entropy(model(_x(32)), torch.tensor([0, 1])).backward()
    opt.step()
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) != (name in head), name
        assert (p.grad is None) != (name in head), name

    trainable = weights.freeze_backbone(model, trainable=True)
    assert trainable == [n for n, _ in model.named_parameters()]


def test_load_report_reads_well():
    report = weights.LoadReport(
        source="w.pt",
        loaded=60,
        total=62,
        skipped=(weights.SkippedTensor("fc.weight", (1000, 512), (10, 512), True),),
        checkpoint_key="model_ema",
    )
    assert str(report).splitlines() == [
        "loaded 60/62 tensors from w.pt [model_ema]",
        "skipped 1 (they keep the model's own initialisation):",
        "  fc.weight: checkpoint (1000, 512), model (10, 512) (head)",
    ]
