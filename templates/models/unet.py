"""U-Net (Ronneberger et al. 2015, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
arXiv:1505.04597), as the paper draws it and with an ImageNet encoder from this project's model zoo.

Two families share one decoder idea (upsample x2, concatenate the encoder's feature map of that resolution,
two 3x3 convolutions that reduce the channels):

* ``unet``, ``unet_small``: the paper's network. Four double-conv stages that double the width after each 2x2
  max pool (64-128-256-512-1024 for ``unet``), and an expansive path whose 2x2 up-convolution halves the
  channels, so after concatenating the skip the block sees 2C channels and its first 3x3 conv brings them back
  to C (the halving the paper's Fig. 1 shows). Convs are padded (the paper's are not, which is why it crops the
  skips); every conv is followed by a normalization layer (the paper had none; BatchNorm is what makes it
  train with a plain SGD/AdamW recipe, Ioffe & Szegedy 2015, arXiv:1502.03167).
* ``unet_resnet18``, ``unet_resnet34``, ``unet_mobilenet_v3_large``: the encoder is the zoo's classifier without
  its head, the decoder is segmentation_models_pytorch's ``Unet`` layout (decoder widths 256-128-64-32-16,
  nearest x2 upsampling, conv-BN-ReLU x2 per block, 3x3 head). With ResNet encoders the model is
  state_dict-compatible with ``smp.Unet(encoder_name="resnet18" | "resnet34")``: the same keys
  (``encoder.conv1 ... encoder.layer4``, ``decoder.blocks.N.conv{1,2}.{0,1}``, ``segmentation_head.0``), the
  same parameter count, and the same logits at input sizes that are multiples of 32. The encoder keys are also
  torchvision's ResNet keys (less ``fc``), so torchvision's ImageNet weights load into ``encoder``.

  MobileNetV3-Large differs from smp. smp builds it from timm (``tu-mobilenetv3_large_100``: keys
  ``encoder.model.conv_stem``, ``encoder.model.blocks...``, BatchNorm eps 1e-5), ours is torchvision's layout
  (``encoder.features.N``, BN eps 1e-3, which torchvision's ImageNet weights need). What matches: the encoder
  taps the same five feature maps (16, 24, 40, 112, 960 channels at strides 2-32), so the decoder keys and
  shapes, and the total parameter count, equal smp's; smp's checkpoints of that model do not load.

Any input size: the input is zero-padded at the bottom/right to a multiple of the network's total stride (16
for ``unet``, 32 with a zoo encoder) and the logits are cropped back, so the output is always B x classes x H x
W. Zero padding adds exactly what every convolution's own padding already adds at the borders (the paper
mirrors the border instead, for its unpadded convs). smp instead resizes feature maps inside the decoder when
the size is not a multiple of 32; at multiples of 32 both are the same computation.

``norm="group"`` replaces the decoder's (and the plain U-Net's) BatchNorm with GroupNorm (Wu & He 2018,
arXiv:1803.08494), whose statistics do not depend on the batch: the choice for batches of 1-4 images. The keys
stay the same, the running-statistics buffers go away (so an smp BatchNorm checkpoint no longer loads).

How a generated project ships it: this file is ``model.py``; a zoo encoder's family file is copied next to it
under its own name (``resnet.py`` or ``mobilenet_v3.py``, see ``ENCODERS[...].module`` and ``required_files``)
and loaded from this file's folder. Imports torch and torchvision only.
"""

import difflib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ENCODERS",
    "VARIANTS",
    "EncoderConfig",
    "UNet",
    "UNetConfig",
    "UNetWithEncoder",
    "build_model",
    "required_files",
]

Norm = Literal["batch", "group"]


# --- configuration: variants as data ----------------------------------------------------------------------------


@dataclass(frozen=True)
class UNetConfig:
    """The paper's U-Net: the width of each resolution level, top (full resolution) to bottom."""

    widths: tuple[int, ...]


@dataclass(frozen=True)
class EncoderConfig:
    """A zoo classifier used as the U-Net's contracting path.

    ``module``: the zoo file that defines it (copied next to model.py); ``arch``: its variant name there;
    ``channels``: the channels of the five feature maps the decoder uses, at strides 2, 4, 8, 16, 32.
    """

    module: str
    arch: str
    channels: tuple[int, int, int, int, int]


VARIANTS: dict[str, UNetConfig | EncoderConfig] = {
    # Fig. 1 of the paper: 64 channels at full resolution, doubled at each of the four poolings (31.0M params)
    "unet": UNetConfig(widths=(64, 128, 256, 512, 1024)),
    # the same network at a quarter of the width (1/16 of the parameters, 1.9M): small data, CPUs
    "unet_small": UNetConfig(widths=(16, 32, 64, 128, 256)),
    # smp's ResNet encoder taps: the stem's ReLU (stride 2), then layer1..layer4 (strides 4..32)
    "unet_resnet18": EncoderConfig("resnet", "resnet18", (64, 64, 128, 256, 512)),
    "unet_resnet34": EncoderConfig("resnet", "resnet34", (64, 64, 128, 256, 512)),
    # the last block of each stride (torchvision features[1], [3], [6], [12]) and the final 1x1 conv (960)
    "unet_mobilenet_v3_large": EncoderConfig("mobilenet_v3", "mobilenet_v3_large", (16, 24, 40, 112, 960)),
}
ENCODERS: dict[str, EncoderConfig] = {k: v for k, v in VARIANTS.items() if isinstance(v, EncoderConfig)}

# smp's Unet decoder widths (decoder_channels default), one block per encoder stride
DECODER_CHANNELS = (256, 128, 64, 32, 16)
# MobileNetV3-Large: the index in ``features`` after which each of the five feature maps is taken
_MOBILENET_TAPS = (1, 3, 6, 12, 16)


# --- small helpers ------------------------------------------------------------------------------------------------


def _norm(kind: Norm, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        # 32 groups (the paper's default) where the width allows, else groups of at least 4 channels
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0 and channels // g >= 4 or g == 1)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"norm must be 'batch' or 'group', got {kind!r}")


class ConvNormReLU(nn.Sequential):
    """3x3 conv (no bias: the norm's shift replaces it), norm, ReLU; indices 0/1/2 as smp's ``Conv2dReLU``."""

    def __init__(self, in_channels: int, out_channels: int, norm: Norm = "batch") -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            _norm(norm, out_channels),
            nn.ReLU(inplace=True),
        )


def _pad_to_stride(x: Tensor, stride: int) -> tuple[Tensor, int, int]:
    """Zero-pad the bottom/right of ``x`` to a multiple of ``stride``; returns it and the original H, W."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % stride, (-w) % stride
    # always padded, even by 0: a branch on the size would be frozen into an exported graph with dynamic H, W
    # (torch.export specializes it), which then fails on sizes that do need padding
    return F.pad(x, (0, pad_w, 0, pad_h)), h, w


def _load_sibling(module: str) -> ModuleType:
    """The zoo file ``<module>.py`` that sits next to this file (the project's copy of the encoder family)."""
    name = f"{__name__}_encoder_{module}"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).with_name(f"{module}.py")
    if not path.is_file():
        raise FileNotFoundError(f"the U-Net encoder needs {path.name} next to {Path(__file__).name} ({path})")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # registered before exec: dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


# --- the paper's U-Net ----------------------------------------------------------------------------------------------


class DoubleConv(nn.Sequential):
    """The paper's unit: two 3x3 conv + norm + ReLU (padded, so the size is kept)."""

    def __init__(self, in_channels: int, out_channels: int, norm: Norm) -> None:
        super().__init__(ConvNormReLU(in_channels, out_channels, norm), ConvNormReLU(out_channels, out_channels, norm))


class Up(nn.Module):
    """Expansive step: 2x2 up-convolution halving the channels, concatenation with the skip, DoubleConv.

    In: C channels at size S/2 and a C/2-channel skip at S. Up-conv: C/2 at S; concat: C; DoubleConv: C/2.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: Norm) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels, norm)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class UNet(nn.Module):
    """The paper's U-Net: contracting path of DoubleConv + 2x2 max pool, expansive path of ``Up``, 1x1 head.

    Output stride 2**(levels-1) (16 for five levels); any input size is padded to it and cropped back.
    ``dropout`` is applied to the bottom feature map ("drop-out layers at the end of the contracting path",
    paper section 3.1); 0 by default.
    """

    def __init__(
        self,
        cfg: UNetConfig,
        num_classes: int,
        *,
        in_channels: int = 3,
        norm: Norm = "batch",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        widths = cfg.widths
        self.stride = 2 ** (len(widths) - 1)
        self.down = nn.ModuleList()
        prev = in_channels
        for width in widths:
            self.down.append(DoubleConv(prev, width, norm))
            prev = width
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout2d(dropout)
        self.up = nn.ModuleList(Up(widths[i + 1], widths[i], norm) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                # He init: the paper (section 3) draws from N(0, sqrt(2/N)), N = inputs of one neuron
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, B x num_classes x H x W for any H, W."""
        x, h, w = _pad_to_stride(x, self.stride)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = self.dropout(skips.pop())
        for up in self.up:
            x = up(x, skips.pop())
        return self.head(x)[..., :h, :w]


# --- U-Net with a zoo encoder (smp's layout) ---------------------------------------------------------------------


class DecoderBlock(nn.Module):
    """smp's ``UnetDecoderBlock`` layout: nearest x2, concatenate the skip (if any), two ConvNormReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, norm: Norm) -> None:
        super().__init__()
        self.conv1 = ConvNormReLU(in_channels + skip_channels, out_channels, norm)
        self.conv2 = ConvNormReLU(out_channels, out_channels, norm)

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], dim=1)
        return self.conv2(self.conv1(x))


class UNetDecoder(nn.Module):
    """Five decoder blocks from stride 32 back to full resolution, fed by the four finer encoder maps.

    Block i takes the previous block's output (the stride-32 map for i = 0) and the encoder map one stride
    finer; the last block has no skip (smp drops the input image itself from the skips).
    """

    def __init__(self, encoder_channels: tuple[int, ...], decoder_channels: tuple[int, ...], norm: Norm) -> None:
        super().__init__()
        deepest_first = encoder_channels[::-1]
        in_channels = (deepest_first[0], *decoder_channels[:-1])
        skip_channels = (*deepest_first[1:], 0)
        self.blocks = nn.ModuleList(
            DecoderBlock(i, s, o, norm) for i, s, o in zip(in_channels, skip_channels, decoder_channels, strict=True)
        )

    def forward(self, features: list[Tensor]) -> Tensor:
        x, skips = features[-1], features[-2::-1]
        for i, block in enumerate(self.blocks):
            x = block(x, skips[i] if i < len(skips) else None)
        return x


class UNetWithEncoder(nn.Module):
    """A zoo classifier (its head removed) as encoder, ``UNetDecoder``, 3x3 ``segmentation_head``.

    Module names are smp's (``encoder``, ``decoder.blocks``, ``segmentation_head.0``). The initialization is
    also smp's: He-uniform decoder convs, Xavier-uniform head, the encoder's own (the zoo's, torchvision's).
    """

    stride = 32

    def __init__(
        self,
        cfg: EncoderConfig,
        num_classes: int,
        *,
        decoder_channels: tuple[int, ...] = DECODER_CHANNELS,
        norm: Norm = "batch",
        in_channels: int = 3,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        family = _load_sibling(cfg.module)
        self.family = cfg.module
        kw: dict[str, Any] = {"drop_path_rate": drop_path_rate}
        if cfg.module == "resnet":
            kw["in_channels"] = in_channels
        elif in_channels != 3:
            raise ValueError(f"the {cfg.arch} encoder takes 3-channel images, got in_channels={in_channels}")
        encoder = family.build_model(cfg.arch, 1000, **kw)
        # the classifier head is not part of the encoder (smp deletes it too): no fc / classifier keys
        for head in ("fc", "avgpool", "dropout", "classifier"):
            if hasattr(encoder, head):
                delattr(encoder, head)
        self.encoder = encoder
        self.decoder = UNetDecoder(cfg.channels, decoder_channels, norm)
        self.segmentation_head = nn.Sequential(nn.Conv2d(decoder_channels[-1], num_classes, 3, padding=1))
        for m in self.decoder.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
        nn.init.xavier_uniform_(self.segmentation_head[0].weight)
        nn.init.zeros_(self.segmentation_head[0].bias)

    def encode(self, x: Tensor) -> list[Tensor]:
        """The encoder's five feature maps at strides 2, 4, 8, 16, 32."""
        e = self.encoder
        if self.family == "resnet":
            x = e.relu(e.bn1(e.conv1(x)))
            feats = [x]
            x = e.layer1(e.maxpool(x))
            feats.append(x)
            for layer in (e.layer2, e.layer3, e.layer4):
                x = layer(x)
                feats.append(x)
            return feats
        feats, start = [], 0
        for stop in _MOBILENET_TAPS:
            for i in range(start, stop + 1):
                x = e.features[i](x)
            feats.append(x)
            start = stop + 1
        return feats

    def forward(self, x: Tensor) -> Tensor:
        """Logits, B x num_classes x H x W for any H, W."""
        x, h, w = _pad_to_stride(x, self.stride)
        return self.segmentation_head(self.decoder(self.encode(x)))[..., :h, :w]


# --- builders ------------------------------------------------------------------------------------------------------


def required_files(arch: str) -> list[str]:
    """The zoo files a project with ``arch`` needs next to model.py (e.g. ``["resnet.py"]``)."""
    cfg = VARIANTS[arch]
    return [f"{cfg.module}.py"] if isinstance(cfg, EncoderConfig) else []


def build_model(
    arch: str,
    num_classes: int,
    *,
    norm: Norm = "batch",
    in_channels: int = 3,
    dropout: float | None = None,
    drop_path_rate: float = 0.0,
    **kw: Any,
) -> nn.Module:
    """Build a U-Net variant by name.

    Args:
        arch: a key of ``VARIANTS`` (``unet``, ``unet_small``, ``unet_resnet18``, ``unet_resnet34``,
            ``unet_mobilenet_v3_large``).
        num_classes: output channels (one logit map per class, background included).
        norm: ``"batch"`` (smp-compatible) or ``"group"`` (batches of a few images).
        in_channels: image channels.
        dropout: the paper's dropout at the bottom of the plain U-Net (``None``: 0); not used with an encoder.
        drop_path_rate: stochastic depth in a zoo encoder (0: off; adds no keys).
        **kw: ``decoder_channels`` for an encoder U-Net.
    """
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown U-Net variant {arch!r}; valid: {', '.join(VARIANTS)}.{hint}")
    cfg = VARIANTS[arch]
    if isinstance(cfg, UNetConfig):
        if kw:
            raise TypeError(f"unexpected keyword argument(s) for {arch}: {', '.join(sorted(kw))}")
        if drop_path_rate:
            raise ValueError(f"{arch} has no residual blocks: drop_path_rate must be 0")
        return UNet(cfg, num_classes, in_channels=in_channels, norm=norm, dropout=dropout or 0.0)
    if dropout:
        raise ValueError(f"{arch}: dropout applies to the plain U-Net only; use drop_path_rate for the encoder")
    return UNetWithEncoder(cfg, num_classes, norm=norm, in_channels=in_channels, drop_path_rate=drop_path_rate, **kw)
