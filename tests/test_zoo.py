"""The model zoo against its reference implementations, parametrized over rules/catalog.yaml.

A variant added to the catalog is tested here without anyone writing a new test.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from zoo_support import build, build_reference, families, family_module, module_of, smallest_per_family, variants

ALL = variants()
SMALLEST = smallest_per_family()
ids = [v["name"] for v in ALL]
small_ids = [v["name"] for v in SMALLEST]


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(t.shape) for k, t in model.state_dict().items()}


@pytest.mark.parametrize("variant", ALL, ids=ids)
def test_param_count_and_state_dict_match_reference(variant):
    with torch.device("meta"):
        ours = build(variant, num_classes=1000)
        ref = build_reference(variant)
    assert sum(p.numel() for p in ours.parameters()) == variant["params"]
    if ref is None:
        return
    assert sum(p.numel() for p in ref.parameters()) == variant["params"]
    assert _shapes(ours) == _shapes(ref)
    # strict=True: same keys, same shapes; assign=True because meta tensors hold no data
    ours.load_state_dict(ref.state_dict(), strict=True, assign=True)


@pytest.mark.parametrize("variant", SMALLEST, ids=small_ids)
def test_logits_equal_reference_after_loading_its_weights(variant):
    ref = build_reference(variant)
    if ref is None:
        pytest.skip("no reference implementation")
    torch.manual_seed(0)
    ours = build(variant, num_classes=1000)
    ours.load_state_dict(ref.state_dict(), strict=True)
    ours.eval()
    ref.eval()
    size = variant["input_size"]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (ours(x) - ref(x)).abs().max().item()
    assert diff <= 1e-4, f"max abs diff {diff}"


@pytest.mark.parametrize("variant", ALL, ids=ids)
def test_new_class_count_replaces_only_the_head(variant):
    with torch.device("meta"):
        a = _shapes(build(variant, num_classes=1000))
        b = _shapes(build(variant, num_classes=7))
    assert a.keys() == b.keys()
    changed = {k for k in a if a[k] != b[k]}
    assert changed, "the head did not change"
    for k in changed:
        assert b[k][0] == 7, f"{k} changed but is not a 7-class head: {b[k]}"


@pytest.mark.parametrize("variant", SMALLEST, ids=small_ids)
@pytest.mark.parametrize("size", [32, 96])
def test_any_input_size_from_32(variant, size):
    model = build(variant, num_classes=5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size + 16))
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("variant", SMALLEST, ids=small_ids)
def test_drop_path_and_dropout_work(variant):
    from torchvision.ops import StochasticDepth

    model = build(variant, num_classes=5, drop_path_rate=0.2, dropout=0.3)
    if families()[variant["family"]]["name"] != "SimpleCNN":
        rates = [m.p for m in model.modules() if isinstance(m, StochasticDepth)]
        assert rates, "no StochasticDepth module"
        # torchvision/timm use rate * idx / n (the last block gets (n-1)/n of the rate) or linspace to the rate
        assert 0.2 * (len(rates) - 1) / len(rates) - 1e-6 <= max(rates) <= 0.2 + 1e-6
        assert rates == sorted(rates), "drop-path rate must grow with depth"
    assert any(isinstance(m, nn.Dropout) and m.p == pytest.approx(0.3) for m in model.modules())
    x = torch.randn(4, 3, 64, 64)
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    b = model(x)
    assert not torch.allclose(a, b), "train mode should be stochastic"
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


SMALL_INPUT = [v for v in SMALLEST if families()[v["family"]]["small_input"]]


@pytest.mark.parametrize("variant", SMALL_INPUT, ids=[v["name"] for v in SMALL_INPUT])
def test_small_input_keeps_resolution(variant):
    x = torch.randn(2, 3, 32, 32)
    big = build(variant, num_classes=10).eval()
    small = build(variant, num_classes=10, small_input=True).eval()
    with torch.no_grad():
        f_big = big.forward_features(x)
        f_small = small.forward_features(x)
        assert small(x).shape == (2, 10)
    # an ImageNet stem downsamples 32x -> 1x1 at the end; the small stem keeps a 4x4 (or larger) map
    assert f_small.shape[-1] >= 4 * f_big.shape[-1]
    assert f_small.shape[-1] >= 4


@pytest.mark.parametrize("family", list(families().values()), ids=list(families()))
def test_catalog_and_model_files_agree(family):
    mod = family_module(family["module"])
    offered = set(mod.VARIANTS)
    listed = {v["name"] for v in ALL if v["family"] == family["name"]}
    assert offered == listed
    for v in ALL:
        if v["family"] == family["name"]:
            assert module_of(v) == family["module"]


@pytest.mark.parametrize("family", list(families().values()), ids=list(families()))
def test_unknown_variant_is_a_clear_error(family):
    mod = family_module(family["module"])
    with pytest.raises(ValueError, match="not_a_model"):
        mod.build_model("not_a_model", num_classes=10)
