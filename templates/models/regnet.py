"""RegNetY (Radosavovic et al. 2020, "Designing Network Design Spaces", arXiv:2003.13678), 200MF..32GF.

State-dict compatible with ``timm.create_model("regnety_*")`` (timm's pycls-derived RegNet: ``stem.conv/bn``,
``s1..s4.bN.{conv1,conv2,conv3}.{conv,bn}``, ``se.fc1/fc2``, ``downsample.conv/bn``, ``head.fc``), so timm's
published weights load with ``strict=True``. Note that torchvision's ``regnet_y_800mf`` is a different network
(it rounds group widths differently; timm calls that one ``regnety_008_tv``).

A RegNet is not a list of layer widths but four numbers and a depth (§3.3 of the paper), from which every
block's width follows; see ``RegNetYConfig.stages``. RegNetY is RegNetX plus Squeeze-and-Excitation
(Hu et al. 2018, arXiv:1709.01507) in every block, with the squeeze width a quarter of the block *input* width.

Self-contained: imports torch and torchvision only, so it can be copied into a project as ``model.py``.
"""

import difflib
import itertools
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torchvision.ops import SqueezeExcitation, StochasticDepth

__all__ = [
    "VARIANTS",
    "RegNet",
    "RegNetBottleneck",
    "RegNetYConfig",
    "build_model",
    "regnety_002",
    "regnety_004",
    "regnety_008",
    "regnety_016",
    "regnety_032",
    "regnety_080",
    "regnety_160",
    "regnety_320",
]


@dataclass(frozen=True)
class StageSpec:
    """One stage as generated from a RegNet config: output width, number of blocks, channels per group (``group_w``)."""

    width: int
    depth: int
    group_w: int


@dataclass(frozen=True)
class RegNetYConfig:
    """The RegNet generator parameters (paper §3.3, values from pycls ``configs/dds_baselines``).

    Attributes:
        w0: initial width (> 0, divisible by 8).
        wa: slope of the linear width ramp, channels per block.
        wm: width multiplier between consecutive stages (> 1).
        depth: total number of blocks.
        group_w: channels per group of the 3x3 group conv.
        se_ratio: SE squeeze width as a fraction of the block input width.
        bottle_ratio: bottleneck width / block width (1.0 in RegNet: no bottleneck).
        stem_width: channels of the 3x3/2 stem conv.
    """

    w0: int
    wa: float
    wm: float
    depth: int
    group_w: int
    se_ratio: float = 0.25
    bottle_ratio: float = 1.0
    stem_width: int = 32

    def stages(self, quant: int = 8) -> list[StageSpec]:
        """Per-stage widths, depths and group widths, computed as pycls/timm do.

        1. Linear ramp: u_j = w0 + wa * j for block j = 0..depth-1.
        2. Snap to a geometric grid: s_j = round(log(u_j / w0) / log(wm)), w_j = w0 * wm ** s_j,
           rounded to a multiple of ``quant`` (8). Blocks with equal w_j form a stage, so widths are
           piecewise constant, not linear.
        3. Make each stage's width compatible with its group width: group_w = min(group_w, width), then
           width = the multiple of group_w closest to width.
        """
        if not (self.wa >= 0 and self.w0 > 0 and self.wm > 1 and self.w0 % quant == 0):
            raise ValueError(f"invalid RegNet parameters: need wa >= 0, w0 > 0, wm > 1, w0 % {quant} == 0: {self}")
        widths = []
        for j in range(self.depth):
            exponent = round(math.log((self.w0 + self.wa * j) / self.w0) / math.log(self.wm))
            widths.append(round(self.w0 * self.wm**exponent / quant) * quant)
        specs = []
        for width, blocks in itertools.groupby(widths):
            bottleneck = int(width * self.bottle_ratio)
            group_w = min(self.group_w, bottleneck)
            bottleneck = round(bottleneck / group_w) * group_w
            specs.append(StageSpec(int(bottleneck / self.bottle_ratio), len(list(blocks)), group_w))
        return specs


VARIANTS: dict[str, RegNetYConfig] = {
    # name = GF (billions of multiply-adds) x 10: regnety_008 is RegNetY-800MF; from pycls / timm model_cfgs
    "regnety_002": RegNetYConfig(w0=24, wa=36.44, wm=2.49, depth=13, group_w=8),
    "regnety_004": RegNetYConfig(w0=48, wa=27.89, wm=2.09, depth=16, group_w=8),
    "regnety_008": RegNetYConfig(w0=56, wa=38.84, wm=2.4, depth=14, group_w=16),
    "regnety_016": RegNetYConfig(w0=48, wa=20.71, wm=2.65, depth=27, group_w=24),
    "regnety_032": RegNetYConfig(w0=80, wa=42.63, wm=2.66, depth=21, group_w=24),
    "regnety_080": RegNetYConfig(w0=192, wa=76.82, wm=2.19, depth=17, group_w=56),
    "regnety_160": RegNetYConfig(w0=200, wa=106.23, wm=2.48, depth=18, group_w=112),
    "regnety_320": RegNetYConfig(w0=232, wa=115.89, wm=2.53, depth=20, group_w=232),
}


class ConvBNAct(nn.Sequential):
    """Conv (no bias: BN follows) -> BatchNorm [-> ReLU]; ``conv``/``bn`` names match timm's ConvNormAct."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, groups: int = 1, act: bool = True
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = nn.Conv2d(
            in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, groups=groups, bias=False
        )
        layers["bn"] = nn.BatchNorm2d(out_ch)
        if act:
            layers["act"] = nn.ReLU(inplace=True)
        super().__init__(layers)


class RegNetBottleneck(nn.Module):
    """The RegNetY block ("Y" = X + SE): 1x1 -> 3x3 group conv (strided) -> SE -> 1x1, plus the shortcut.

    With ``bottle_ratio=1`` the 1x1 convs keep the width; the shortcut is a 1x1 conv + BN when the width
    or resolution changes, the identity otherwise.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int,
        group_w: int,
        bottle_ratio: float = 1.0,
        se_ratio: float = 0.25,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        mid = round(out_ch * bottle_ratio)
        self.conv1 = ConvBNAct(in_ch, mid, 1)
        self.conv2 = ConvBNAct(mid, mid, 3, stride=stride, groups=mid // group_w)
        # squeeze width from the block *input* width (pycls), not from the (wider) bottleneck
        squeeze = round(in_ch * se_ratio)
        self.se: nn.Module = SqueezeExcitation(mid, squeeze) if se_ratio else nn.Identity()
        self.conv3 = ConvBNAct(mid, out_ch, 1, act=False)
        self.downsample: nn.Module = (
            ConvBNAct(in_ch, out_ch, 1, stride=stride, act=False) if in_ch != out_ch or stride != 1 else nn.Identity()
        )
        self.drop_path = StochasticDepth(drop_path, "row")
        self.act3 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ReLU(drop_path(branch(x)) + shortcut(x))."""
        out = self.conv3(self.se(self.conv2(self.conv1(x))))
        return self.act3(self.drop_path(out) + self.downsample(x))


class RegNet(nn.Module):
    """RegNetY: 3x3/2 stem, four stages of ``RegNetBottleneck`` (first block of each strided), pool, linear.

    ``small_input=False`` is the paper's network (total stride 32). ``small_input=True`` makes the stem conv and
    the first stage stride 1 for 32-64 px images (the CIFAR-style "no early downsampling" of He et al. 2015
    §4.2): total stride 8, so a 32x32 image ends as a 4x4 map. No tensor changes shape (the stem is already
    3x3 and the shortcut of ``s1.b1`` stays a 1x1 conv), so ImageNet weights still load with ``strict=True``.
    """

    def __init__(
        self,
        cfg: RegNetYConfig,
        num_classes: int = 1000,
        *,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
        small_input: bool = False,
        zero_init_last: bool = True,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.stem = ConvBNAct(in_channels, cfg.stem_width, 3, stride=1 if small_input else 2)

        specs = cfg.stages()
        if len(specs) != 4:
            raise ValueError(f"RegNet expects 4 stages, the config generates {len(specs)}: {cfg}")
        # stochastic depth rate grows linearly over all blocks, 0 .. drop_path_rate (timm's linspace)
        total = sum(s.depth for s in specs)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        prev = cfg.stem_width
        for i, spec in enumerate(specs):
            first_stride = 1 if (i == 0 and small_input) else 2
            blocks: OrderedDict[str, nn.Module] = OrderedDict()
            for b in range(spec.depth):
                blocks[f"b{b + 1}"] = RegNetBottleneck(
                    prev,
                    spec.width,
                    stride=first_stride if b == 0 else 1,
                    group_w=spec.group_w,
                    bottle_ratio=cfg.bottle_ratio,
                    se_ratio=cfg.se_ratio,
                    drop_path=rates.pop(0),
                )
                prev = spec.width
            self.add_module(f"s{i + 1}", nn.Sequential(blocks))
        self.num_features = prev

        self.head = nn.Sequential(
            OrderedDict(
                global_pool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(1),
                drop=nn.Dropout(dropout),
                fc=nn.Linear(prev, num_classes),
            )
        )
        self._init_weights(zero_init_last)

    def _init_weights(self, zero_init_last: bool) -> None:
        # pycls/timm: He-normal by fan_out (per group), N(0, 0.01) classifier, BN at identity
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
        if zero_init_last:
            # each block starts as its shortcut (Goyal et al. 2017, arXiv:1706.02677); pycls and timm default
            for m in self.modules():
                if isinstance(m, RegNetBottleneck):
                    nn.init.zeros_(m.conv3.bn.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map before pooling, B x C x H/stride x W/stride."""
        x = self.stem(x)
        x = self.s1(x)
        x = self.s2(x)
        x = self.s3(x)
        return self.s4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, B x num_classes."""
        return self.head(self.forward_features(x))


def _regnet(
    cfg: RegNetYConfig,
    num_classes: int,
    drop_path_rate: float,
    dropout: float | None,
    small_input: bool,
    **kw: Any,
) -> RegNet:
    return RegNet(
        cfg,
        num_classes,
        drop_path_rate=drop_path_rate,
        dropout=0.0 if dropout is None else dropout,
        small_input=small_input,
        **kw,
    )


def regnety_002(num_classes: int = 1000, **kw: Any) -> RegNet:
    """RegNetY-200MF (3.2M parameters at 1000 classes)."""
    return build_model("regnety_002", num_classes, **kw)


def regnety_004(num_classes: int = 1000, **kw: Any) -> RegNet:
    """RegNetY-400MF (4.3M parameters at 1000 classes)."""
    return build_model("regnety_004", num_classes, **kw)


def regnety_008(num_classes: int = 1000, **kw: Any) -> RegNet:
    """RegNetY-800MF (6.3M parameters at 1000 classes)."""
    return build_model("regnety_008", num_classes, **kw)


def regnety_016(num_classes: int = 1000, **kw: Any) -> RegNet:
    """RegNetY-1.6GF (11.2M parameters at 1000 classes)."""
    return build_model("regnety_016", num_classes, **kw)


def regnety_032(num_classes: int = 1000, **kw: Any) -> RegNet:
    """RegNetY-3.2GF (19.4M parameters at 1000 classes)."""
    return build_model("regnety_032", num_classes, **kw)


def regnety_080(num_classes: int = 1000, **kw: Any) -> RegNet:
    """RegNetY-8.0GF (39.2M parameters at 1000 classes)."""
    return build_model("regnety_080", num_classes, **kw)


def regnety_160(num_classes: int = 1000, **kw: Any) -> RegNet:
    """RegNetY-16GF (83.6M parameters at 1000 classes)."""
    return build_model("regnety_160", num_classes, **kw)


def regnety_320(num_classes: int = 1000, **kw: Any) -> RegNet:
    """RegNetY-32GF (145.0M parameters at 1000 classes)."""
    return build_model("regnety_320", num_classes, **kw)


def build_model(
    arch: str,
    num_classes: int = 1000,
    *,
    drop_path_rate: float = 0.0,
    dropout: float | None = None,
    small_input: bool = False,
    **kw: Any,
) -> RegNet:
    """Build a RegNetY variant by name.

    Args:
        arch: a key of ``VARIANTS`` (``"regnety_002"`` ... ``"regnety_320"``).
        num_classes: size of ``head.fc`` (the only tensors that change with it).
        drop_path_rate: stochastic depth rate of the last block, linear from 0 (0 disables it).
        dropout: dropout before ``head.fc``; ``None`` keeps timm's 0.0.
        small_input: stride-1 stem and first stage (total stride 8) for 32-64 px images.
        **kw: passed to ``RegNet`` (``zero_init_last``, ``in_channels``).
    """
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown RegNetY variant {arch!r}; valid: {', '.join(VARIANTS)}.{hint}")
    return _regnet(VARIANTS[arch], num_classes, drop_path_rate, dropout, small_input, **kw)
