"""Semantic segmentation: the U-Net and torchvision model files, and the task part (data, transforms, loss,
metrics, predict outputs, the demo), each on tiny inputs (CPU, seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from seg_support import project_modules

from archadvisor.resources import load_model_module

torch.set_num_threads(min(2, torch.get_num_threads()))
unet = load_model_module("unet")
seg_tv = load_model_module("segmentation_tv")


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def seg(tmp_path_factory: pytest.TempPathFactory):
    with project_modules(tmp_path_factory.mktemp("seg_project")) as modules:
        yield modules


# --- U-Net ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(unet.VARIANTS))
def test_unet_any_input_size_gives_same_size_logits(arch: str) -> None:
    model = unet.build_model(arch, 4).eval()
    with torch.no_grad():
        for h, w in ((37, 50), (64, 32)):
            assert model(torch.randn(1, 3, h, w)).shape == (1, 4, h, w)


def test_plain_unet_decoder_halves_channels_after_each_skip() -> None:
    model = unet.build_model("unet", 2)
    widths = unet.VARIANTS["unet"].widths
    assert [up.up.out_channels for up in model.up] == list(widths[-2::-1])
    for up in model.up:
        assert up.up.out_channels == up.up.in_channels // 2  # the 2x2 up-convolution halves
        assert up.conv[0][0].in_channels == 2 * up.up.out_channels  # upsampled + skip
        assert up.conv[0][0].out_channels == up.up.out_channels  # and the first conv halves again
    assert n_params(model) == pytest.approx(31.04e6, rel=1e-3)  # the paper's 64-1024 network


@pytest.mark.parametrize("encoder", ["resnet18", "resnet34"])
def test_unet_resnet_is_state_dict_compatible_with_smp(encoder: str) -> None:
    smp = pytest.importorskip("segmentation_models_pytorch")
    ref = smp.Unet(encoder_name=encoder, encoder_weights=None, classes=3).eval()
    ours = unet.build_model(f"unet_{encoder}", 3).eval()
    assert list(ours.state_dict()) == list(ref.state_dict())
    assert n_params(ours) == n_params(ref)
    ours.load_state_dict(ref.state_dict(), strict=True)
    with torch.no_grad():
        for h, w in ((64, 96), (32, 32)):
            x = torch.randn(2, 3, h, w)
            assert (ours(x) - ref(x)).abs().max().item() <= 1e-4
        assert ours(torch.randn(1, 3, 45, 70)).shape == (1, 3, 45, 70)  # smp would resize inside; we pad/crop


def test_unet_mobilenet_v3_matches_smp_layout_where_smp_has_it() -> None:
    smp = pytest.importorskip("segmentation_models_pytorch")
    ref = smp.Unet(encoder_name="tu-mobilenetv3_large_100", encoder_weights=None, classes=3)
    ours = unet.build_model("unet_mobilenet_v3_large", 3)
    assert tuple(ref.encoder.out_channels[1:]) == unet.VARIANTS["unet_mobilenet_v3_large"].channels
    assert n_params(ours) == n_params(ref)
    decoder = {k: v.shape for k, v in ours.state_dict().items() if not k.startswith("encoder.")}
    assert decoder == {k: v.shape for k, v in ref.state_dict().items() if not k.startswith("encoder.")}
    # the encoder is torchvision's MobileNetV3 (its ImageNet weights load), not timm's as in smp
    import torchvision

    tv = torchvision.models.mobilenet_v3_large(weights=None).features.state_dict()
    assert {f"encoder.features.{k}" for k in tv} == {k for k in ours.state_dict() if k.startswith("encoder.")}


def test_unet_group_norm_trains_on_a_batch_of_one() -> None:
    model = unet.build_model("unet_resnet18", 3, norm="group")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.decoder.modules())
    assert not any("running_mean" in k for k in model.decoder.state_dict())
    plain = unet.build_model("unet_small", 3, norm="group")
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    out = plain.train()(torch.randn(1, 3, 20, 28))
    out.mean().backward()
    assert out.shape == (1, 3, 20, 28)


def test_unet_rejects_unknown_variants_with_a_suggestion() -> None:
    with pytest.raises(ValueError, match="unet_resnet34"):
        unet.build_model("unet_resnet43", 2)
    assert unet.required_files("unet_resnet18") == ["resnet.py"]
    assert unet.required_files("unet") == []


# --- torchvision DeepLabV3 / LR-ASPP ----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", list(seg_tv.VARIANTS))
def test_torchvision_segmentation_builds_offline_and_matches_torchvision(
    arch: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torchvision
    from torch import hub

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(hub, "load_state_dict_from_url", no_download)
    model = seg_tv.build_model(arch, 5)
    aux = seg_tv.VARIANTS[arch].aux
    kw = {"aux_loss": True} if aux else {}
    ref = torchvision.models.get_model(arch, weights=None, weights_backbone=None, num_classes=5, **kw)
    assert n_params(model) == n_params(ref)
    model.load_state_dict(ref.state_dict(), strict=True)
    model.eval(), ref.eval()
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (1, 5, 40, 56)
        assert torch.equal(out, ref(x)["out"])
    train_out = model.train()(torch.randn(2, 3, 32, 32))
    if aux:
        assert isinstance(train_out, tuple) and [t.shape for t in train_out] == [(2, 5, 32, 32)] * 2
    else:
        assert train_out.shape == (2, 5, 32, 32)


# --- data: layout checks ------------------------------------------------------------------------------------------


def write_pair(root: Path, split: str, stem: str, mask: np.ndarray, image_size: tuple[int, int] | None = None) -> None:
    (root / split / "images").mkdir(parents=True, exist_ok=True)
    (root / split / "masks").mkdir(parents=True, exist_ok=True)
    h, w = image_size or mask.shape
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(root / split / "images" / f"{stem}.png")
    Image.fromarray(mask.astype(np.uint8), mode="L").save(root / split / "masks" / f"{stem}.png")


def test_check_split_accepts_ignore_and_counts_class_pixels(seg, tmp_path: Path) -> None:
    mask = np.array([[0, 1, 255], [2, 2, 0]], np.uint8)
    write_pair(tmp_path, "train", "a", mask)
    split = seg.data.check_split(tmp_path, "train", 3)
    assert [p.name for p, _ in split.pairs] == ["a.png"]
    assert split.class_pixels.tolist() == [2, 1, 2]


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("no_mask", r"b\.png: no mask .*masks/b\.png"),
        ("size", r"mask is 4x3, its image b\.png is 5x3"),
        ("value", r"value 3 is not a class index \(there are 3 classes"),
        ("rgb", r"mask mode RGB"),
        ("empty", r"empty split"),
    ],
)
def test_check_split_names_each_problem_in_one_line(seg, tmp_path: Path, problem: str, message: str) -> None:
    ok = np.zeros((3, 4), np.uint8)
    if problem != "empty":
        write_pair(tmp_path, "train", "a", ok)
        write_pair(tmp_path, "train", "b", np.where(np.eye(3, 4) > 0, 3 if problem == "value" else 1, 0))
    else:
        (tmp_path / "train" / "images").mkdir(parents=True)
        (tmp_path / "train" / "masks").mkdir(parents=True)
    if problem == "no_mask":
        (tmp_path / "train" / "masks" / "b.png").unlink()
    if problem == "size":
        Image.fromarray(np.zeros((3, 5, 3), np.uint8)).save(tmp_path / "train" / "images" / "b.png")
    if problem == "rgb":
        Image.fromarray(np.zeros((3, 4, 3), np.uint8)).save(tmp_path / "train" / "masks" / "b.png")
    with pytest.raises(seg.data.DataError, match=message) as info:
        seg.data.check_split(tmp_path, "train", 3)
    assert isinstance(info.value, seg.errors.ProjectError)  # the core turns it into exit status 2
    assert "\n" not in str(info.value)


def test_palette_masks_are_read_as_indices(seg, tmp_path: Path) -> None:
    indices = np.array([[0, 1], [2, 255]], np.uint8)
    img = Image.fromarray(indices, mode="P")
    img.putpalette(seg.task.palette(256).ravel().tolist())
    img.save(tmp_path / "m.png")
    assert seg.data.read_mask(tmp_path / "m.png").tolist() == indices.tolist()


# --- transforms -----------------------------------------------------------------------------------------------


def test_geometric_pipeline_keeps_mask_aligned_with_image(seg) -> None:
    """Image channel 0 encodes the mask (30 + 40 x class) in 16x16 blocks. After scale jitter, padded crop and flip,
    every pixel inside a block (its 5x5 neighbourhood one label: away from the bilinear blend at block edges)
    must decode to its mask label; padding is 255 in the mask and 0 in the image; masks stay nearest-only."""
    from torchvision import tv_tensors

    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 5, (3, 4))
    blocks[0, 0] = 255
    mask = np.kron(blocks, np.ones((16, 16), np.int64)).astype(np.uint8)  # 48 x 64
    code = np.where(mask == 255, 250, 30 + mask.astype(np.int64) * 40).astype(np.uint8)
    image = tv_tensors.Image(torch.from_numpy(np.stack([code, code, code])))
    aug = {"ops": [{"name": "scale_jitter", "scale": [0.5, 2.0]}, {"name": "random_crop"}, {"name": "horizontal_flip"}]}
    transform = seg.data.build_train_transform(aug, 56, mean=[0.0] * 3, std=[1.0] * 3)
    padded_seen = flipped_seen = False
    for seed in range(12):
        torch.manual_seed(seed)
        x, m = transform(image, tv_tensors.Mask(torch.from_numpy(mask)))
        assert x.shape == (3, 56, 56) and m.shape == (56, 56)
        assert set(m.unique().tolist()) <= {0, 1, 2, 3, 4, 255}  # nearest: no blended labels
        m = m.long()
        decoded = torch.where(x[0] * 255 > 245, 255, ((x[0] * 255 - 30) / 40).round().long())
        windows = torch.nn.functional.pad(m, (2, 2, 2, 2), value=-1).unfold(0, 5, 1).unfold(1, 5, 1)
        interior = (windows == m[..., None, None]).flatten(-2).all(-1)
        real = interior & (x[0] > 0)  # padding (image 0, mask 255) is checked below
        assert real.sum() > 100
        agree = (decoded[real] == m[real]).float().mean().item()
        assert agree > 0.99, f"seed {seed}: image and mask disagree on {1 - agree:.1%} of the inner pixels"
        # over all real pixels (block edges included), the mask as it is fits the image better than shifted by 1
        labelled = (m != 255) & (x[0] > 0)
        aligned = (decoded[labelled] == m[labelled]).float().mean().item()
        for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            moved = torch.roll(m, (dy, dx), (0, 1))
            assert (decoded[labelled] == moved[labelled]).float().mean().item() < aligned
        pad = (x == 0).all(0)
        assert (m[pad] == 255).all()
        padded_seen |= bool(pad.any())
        flipped_seen |= bool(decoded[0, 0] == m[0, 0] and m[0, 0] != 255 and m[0, -1] == 255)
    assert padded_seen  # some scales were below 1: crops were padded with 255


def test_photometric_ops_change_the_image_only(seg) -> None:
    from torchvision import tv_tensors

    mask = torch.randint(0, 3, (32, 32), dtype=torch.uint8)
    image = tv_tensors.Image(torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8))
    aug = {"ops": [{"name": "color_jitter", "brightness": 0.5, "contrast": 0.5, "saturation": 0.5, "hue": 0.1}]}
    transform = seg.data.build_train_transform(aug, 32, mean=[0.0] * 3, std=[1.0] * 3)
    torch.manual_seed(0)
    x, m = transform(image, tv_tensors.Mask(mask))
    assert torch.equal(m, mask) and not torch.allclose(x, image.float() / 255)


# --- loss -------------------------------------------------------------------------------------------------------


def test_loss_ignores_255_and_adds_dice_and_aux(seg) -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8)
    targets = torch.randint(0, 3, (2, 8, 8))
    targets[:, :2] = 255
    ce = seg.losses.SegmentationLoss("ce")
    changed = logits.clone()
    changed[:, :, :2] = 100 * torch.randn(2, 3, 2, 8)  # only ignored pixels change
    assert torch.allclose(ce(logits, targets), ce(changed, targets))
    valid = targets != 255
    expected = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[valid], targets[valid])
    assert torch.allclose(ce(logits, targets), expected)
    dice = seg.losses.SegmentationLoss("dice")(logits, targets)
    assert 0 < dice.item() < 1
    both = seg.losses.SegmentationLoss("ce+dice")(logits, targets)
    assert torch.allclose(both, ce(logits, targets) + dice)
    perfect = 50 * torch.nn.functional.one_hot(targets.clamp(max=2), 3).permute(0, 3, 1, 2).float()
    assert seg.losses.soft_dice_loss(perfect, targets).item() < 1e-3
    aux = torch.randn(2, 3, 8, 8)
    with_aux = seg.losses.SegmentationLoss("ce", aux_weight=0.4)((logits, aux), targets)
    assert torch.allclose(with_aux, ce(logits, targets) + 0.4 * ce(aux, targets))
    assert seg.losses.SegmentationLoss("ce")(logits, torch.full_like(targets, 255)).item() == 0.0


def test_median_frequency_class_weights(seg) -> None:
    weights = seg.losses.median_frequency_weights(np.array([700, 200, 100, 0]))
    # frequencies 0.7, 0.2, 0.1 (median 0.2): weights 2/7, 1, 2; the absent class 0
    assert weights.tolist() == pytest.approx([2 / 7, 1.0, 2.0, 0.0])
    cfg = {"loss": {"name": "ce", "class_weights": "median_frequency", "aux_weight": 0.5}}
    loss = seg.task.build_loss(cfg, {"class_pixels": [700, 200, 100, 0]})
    assert loss.class_weights.tolist() == pytest.approx(weights.tolist())
    with pytest.raises(seg.errors.ProjectError, match="supported are ce, dice, ce\\+dice"):
        seg.task.build_loss({"loss": {**cfg["loss"], "name": "focal", "class_weights": "none"}}, None)


# --- metrics ------------------------------------------------------------------------------------------------------


def test_metrics_match_torchmetrics_jaccard_over_the_whole_set(seg) -> None:
    from torchmetrics.classification import MulticlassJaccardIndex

    n = 5
    ours = seg.metrics.ConfusionMatrix(n)
    ref = MulticlassJaccardIndex(num_classes=n, ignore_index=255, average=None)
    g = torch.Generator().manual_seed(0)
    per_batch = []
    for size in (8, 16, 12):  # batches of different sizes: per-batch averaging would be wrong
        targets = torch.randint(0, n - 1, (2, size, size), generator=g)  # class 4 never occurs
        targets[:, 0] = 255
        logits = torch.randn(2, n, size, size, generator=g)
        logits[:, 4] = -10  # ... and is never predicted
        ours.update(logits, targets)
        ref.update(logits.argmax(1), targets)
        one = seg.metrics.ConfusionMatrix(n)
        one.update(logits, targets)
        per_batch.append(one.iou().nanmean().item())
    iou, expected = ours.iou(), ref.compute().double()
    assert torch.allclose(iou[:4], expected[:4], atol=1e-12)
    assert torch.isnan(iou[4])  # absent from labels and predictions: no IoU ...
    summary = ours.summary()
    assert summary["val_miou"] == pytest.approx(100 * expected[:4].mean().item())  # ... and not in the mean
    assert summary["val_miou"] != pytest.approx(100 * np.mean(per_batch), abs=1e-6)
    m = ours.matrix.double()
    assert summary["val_pixel_acc"] == pytest.approx(100 * (m.diag().sum() / m.sum()).item())
    dice = (2 * m.diag() / (m.sum(0) + m.sum(1)))[:4]
    assert summary["val_dice"] == pytest.approx(100 * dice.mean().item())


@pytest.mark.slow
def test_metrics_are_summed_over_ddp_ranks(tmp_path: Path) -> None:
    """Two gloo processes, each with half the batches, report the metrics of all of them."""
    script = tmp_path / "ddp_metrics.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, sys, torch, torch.distributed as dist, torch.multiprocessing as mp
            sys.path.insert(0, {str(Path(__file__).resolve().parents[1] / "templates/tasks/semantic-segmentation")!r})
            from metrics import ConfusionMatrix

            def batches():
                g = torch.Generator().manual_seed(0)
                return [(torch.randn(1, 3, 6, 6, generator=g), torch.randint(0, 3, (1, 6, 6), generator=g))
                        for _ in range(4)]

            def run(rank):
                os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[1])
                torch.set_num_threads(1)
                dist.init_process_group("gloo", rank=rank, world_size=2)
                cm = ConfusionMatrix(3)
                for logits, targets in batches()[rank::2]:
                    cm.update(logits, targets)
                summary = cm.summary()
                if rank == 0:
                    full = ConfusionMatrix(3)
                    for logits, targets in batches():
                        full.update(logits, targets)
                    assert torch.equal(cm.matrix, full.matrix), (cm.matrix, full.matrix)
                    assert abs(summary["val_miou"] - 100 * full.iou().nanmean().item()) < 1e-9
                    print("ok", summary["val_miou"])
                dist.destroy_process_group()

            if __name__ == "__main__":
                mp.spawn(run, nprocs=2)
            """
        ),
        encoding="utf-8",
    )
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = subprocess.run([sys.executable, str(script), str(port)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok")


# --- predict outputs ------------------------------------------------------------------------------------------


def test_write_predictions_masks_overlays_and_fractions(seg, tmp_path: Path) -> None:
    files = []
    for stem, (h, w) in (("small", (5, 7)), ("big", (9, 6))):
        Image.fromarray(np.full((h, w, 3), 200, np.uint8)).save(tmp_path / f"{stem}.jpg")
        files.append(tmp_path / f"{stem}.jpg")
    logits = np.zeros((2, 3, 9, 7), np.float32)  # one batch, padded to 9 x 7
    logits[0, 1, :, :4] = 1  # small: class 1 on the left 4 columns, class 0 elsewhere
    logits[1, 2] = 1  # big: all class 2
    meta = {"num_classes": 3, "classes": ["bg", "cat", "dog"]}
    out = tmp_path / "preds"
    path = seg.task.write_predictions(out, files, [logits], meta)
    small = np.asarray(Image.open(out / "small.png"))
    assert small.shape == (5, 7) and small.dtype == np.uint8
    assert (small[:, :4] == 1).all() and (small[:, 4:] == 0).all()
    assert np.asarray(Image.open(out / "big.png")).shape == (9, 6)
    overlay = np.asarray(Image.open(out / "small_overlay.png"))
    assert overlay.shape == (5, 7, 3) and (overlay[:, 4:] == 200).all() and not (overlay[:, :4] == 200).all()
    fractions = json.loads(path.read_text())
    assert fractions[str(files[0])] == pytest.approx({"bg": 3 / 7, "cat": 4 / 7, "dog": 0.0})
    assert fractions[str(files[1])]["dog"] == 1.0


# --- the demo and a short training run ----------------------------------------------------------------------------


def demo_config(root: Path, image_size: int = 64, batch_size: int = 8) -> dict:
    return {
        "data": {"root": str(root), "image_size": image_size, "batch_size": batch_size, "num_workers": 0,
                 "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        "augmentation": {"ops": [{"name": "horizontal_flip"}]},
        "model": {"arch": "unet_small", "num_classes": 11, "norm": "batch", "pretrained": False},
        "loss": {"name": "ce", "class_weights": "none", "aux_weight": 0.5},
        "run": {"seed": 0},
    }  # fmt: skip


# the demo's generator at a quarter of the pixels and a third of the scenes: the same code, a CPU-sized test
SMALL_DEMO = dict(size=32, train=96, val=32, glyphs=(1, 2), glyph_px=(14, 24))


@pytest.fixture(scope="module")
def demo_root(seg, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seg.data.prepare_demo(tmp_path_factory.mktemp("demo") / "scenes", seg.data.DemoSpec(**SMALL_DEMO))


def test_demo_scenes_are_seeded_and_labelled_by_the_glyphs_own_pixels(seg, demo_root: Path, tmp_path: Path) -> None:
    assert (demo_root / "classes.txt").read_text().split() == seg.data.DEMO_CLASSES
    again = seg.data.prepare_demo(tmp_path / "again", seg.data.DemoSpec(**SMALL_DEMO))
    for split in ("train", "val"):
        for name in ("images/0005.png", "masks/0005.png"):
            assert (demo_root / split / name).read_bytes() == (again / split / name).read_bytes()
    split = seg.data.check_split(demo_root, "train", 11)
    assert len(split.pairs) == 96 and (split.class_pixels[1:] > 0).all()  # every digit occurs
    image, mask = (np.asarray(Image.open(p)).astype(int) for p in split.pairs[0])
    background = np.median(image[mask == 0], axis=0)
    ink = np.abs(image - background).sum(-1)
    assert ink[mask > 0].mean() > 4 * ink[mask == 0].mean()  # labelled pixels are the drawn ones


STEPS = 30  # 5 epochs of 96 demo scenes in batches of 16


@pytest.mark.slow
def test_a_short_run_clearly_beats_an_untrained_unet_on_the_demo(seg, demo_root: Path) -> None:
    cfg = demo_config(demo_root, image_size=32, batch_size=16)
    loaded = seg.task.build_data(cfg, 64, rank=0, world_size=1, pin_memory=False)
    meta = seg.task.data_meta(cfg, loaded, log=lambda *a: None)
    torch.manual_seed(0)
    # a tiny U-Net: the paper's network at 8-64 channels, 4 levels (0.12M parameters)
    model = seg.model.UNet(seg.model.UNetConfig((8, 16, 32, 64)), meta["num_classes"])
    loss_fn = seg.task.build_loss(cfg, meta)

    def val_miou() -> float:
        metrics = seg.task.Metrics(meta, torch.device("cpu"))
        model.eval()
        with torch.no_grad():
            for batch in loaded.val_loader:
                metrics.update(model(batch[0]), batch[1])
        return metrics.compute()["val_miou"]

    untrained = val_miou()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for epoch in range(STEPS // len(loaded.train_loader)):
        loaded.train_sampler.set_epoch(epoch)
        for batch in loaded.train_loader:
            images, masks = seg.task.to_device(batch, torch.device("cpu"))
            loss = loss_fn(model(images), masks)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.train()
    trained = val_miou()
    warnings.warn(f"demo: val mIoU {untrained:.1f}% untrained -> {trained:.1f}% after {STEPS} steps", stacklevel=1)
    assert trained > untrained + 5
