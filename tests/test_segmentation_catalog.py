"""`archs --task semantic-segmentation` shows params and GMACs measured from the shipped model code.

Every generatable segmentation model of the catalog is built from its own model file (templates/models, random
init, no download) and measured here: parameters exactly as counted, GMACs with the profiler's counter
(archadvisor.measure.flops) at a 64 px input, scaled to the catalog's input size as the catalog itself scales
(External.gmacs_at: quadratic in the side). The catalog's figures must be within 1 % (params) and 3 % (GMACs:
DeepLabV3's image pooling and odd feature-map sizes do not scale exactly) of what the code gives.
"""

from __future__ import annotations

import pytest

from archadvisor.catalog import Catalog
from archadvisor.ruleset import load_rules

torch = pytest.importorskip("torch")

# the class count the catalog figures are for: torchvision's segmentation weights (VOC's 21 classes)
NUM_CLASSES = 21
MEASURE_PX = 64


def segmentation_models() -> list:
    return [e for e in Catalog(load_rules()).external if e.task == "semantic-segmentation" and e.generatable]


MODELS = segmentation_models()


def test_every_scaffoldable_segmentation_family_is_measured() -> None:
    assert {e.build for e in MODELS} >= {"unet_small", "unet_resnet18", "deeplabv3_resnet50",
                                         "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"}  # fmt: skip


@pytest.mark.parametrize("entry", MODELS, ids=[e.name for e in MODELS])
def test_catalog_params_and_gmacs_are_the_codes(entry) -> None:
    from archadvisor.measure.flops import count_gmacs
    from archadvisor.resources import load_model_module

    torch.manual_seed(0)
    model = load_model_module(entry.module).build_model(entry.build, NUM_CLASSES).eval()
    params = sum(p.numel() for p in model.parameters())
    assert params == pytest.approx(entry.params_m * 1e6, rel=0.01), f"{entry.name}: {params / 1e6:.2f}M in code"
    gmacs, _ = count_gmacs(model, torch.randn(1, 3, MEASURE_PX, MEASURE_PX))
    scaled = gmacs * (entry.input_size / MEASURE_PX) ** 2
    assert entry.gmacs_at(MEASURE_PX) == pytest.approx(gmacs, rel=0.03), (
        f"{entry.name}: {scaled:.2f} GMACs at {entry.input_size} px from code, catalog {entry.gmacs}"
    )


# --- `archadvisor profile` measures the segmentation models -----------------------------------------------------


@pytest.mark.parametrize("name", ["unet_small", "lraspp_mobilenet_v3_large"])
def test_profile_measures_a_segmentation_model(name: str) -> None:
    """The per-pixel model at a small input: its code's params and GMACs, a per-pixel training step's memory."""
    from archadvisor.measure.flops import count_gmacs
    from archadvisor.measure.profile import profile_model
    from archadvisor.resources import load_model_module

    catalog = Catalog(load_rules())
    entry = catalog.external_model(name)
    r = profile_model(entry, small_input_max_px=64, image_size=32, batch=2, threads=1, max_seconds=0.2)
    model = load_model_module(entry.module).build_model(entry.build, NUM_CLASSES).eval()
    assert r["arch"] == name and r["family"] == f"semantic-segmentation ({entry.module})"
    assert r["params"] == sum(p.numel() for p in model.parameters()) and r["params_match_catalog"]
    assert r["gmacs"] == pytest.approx(
        count_gmacs(model, torch.randn(1, 3, 32, 32))[0], abs=1e-4
    )  # rounded to 4 decimals
    assert r["memory"]["train_step"]["peak_mb"] > r["memory"]["inference"]["peak_mb"] > 0
    assert r["latency"]["batch1"]["median_ms"] > 0


def test_profile_cli_names_the_segmentation_models_on_a_typo() -> None:
    from typer.testing import CliRunner

    from archadvisor.cli import app

    result = CliRunner().invoke(app, ["profile", "unet_smal"])
    assert result.exit_code == 2
    assert "unet_small" in result.output and "lraspp_mobilenet_v3_large" in result.output
