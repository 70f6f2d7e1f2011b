"""EfficientNet-Lite0..4: EfficientNet (Tan & Le 2019, arXiv:1905.11946) made friendly to mobile accelerators and
integer quantization (TensorFlow TPU repo, ``models/official/efficientnet/lite``).

Lite differs from EfficientNet-B*: no squeeze-and-excitation (poorly supported on edge accelerators), ReLU6
instead of swish (bounded, so it quantizes well), and the stem (32) and head (1280) widths are *not* scaled with the
width multiplier (to keep the scaled-up models small and fast). Depth scaling leaves the first and last stages
alone.

Self-contained (torch + torchvision only) and state_dict-compatible with timm's ``efficientnet_lite0..4`` (the
PyTorch-padding variants, not ``tf_efficientnet_lite*``, which pad like TensorFlow 'SAME'): the same module names
(``conv_stem``, ``bn1``, ``blocks.i.j.{conv_dw,bn1,conv_pw,bn2,...}``, ``conv_head``, ``bn2``, ``classifier``), so
timm's weights load with ``strict=True``.
"""

import difflib
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchvision.ops import StochasticDepth

__all__ = [
    "VARIANTS",
    "EfficientNetLite",
    "build_model",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "efficientnet_lite3",
    "efficientnet_lite4",
]


# --- small helpers -------------------------------------------------------------------------------------------------


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never dropping by more than 10% (TF rule)."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def _conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    # symmetric "same-ish" padding k//2 (PyTorch style); the tf_ variants would need TF's asymmetric SAME padding
    return nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, groups=groups, bias=False)


@dataclass(frozen=True)
class StageConfig:
    """One stage of the EfficientNet-B0 baseline (paper Table 1), before width/depth scaling."""

    block: Literal["ds", "ir"]  # depthwise-separable (expand 1) or inverted residual (MBConv)
    num_layers: int
    kernel: int
    stride: int  # stride of the first block of the stage; the others use 1
    expand_ratio: int
    out_channels: int


@dataclass(frozen=True)
class EfficientNetLiteConfig:
    """A variant: width and depth multipliers and the head dropout of the TF reference."""

    width_mult: float
    depth_mult: float
    dropout: float


# EfficientNet-B0 (paper Table 1); stem 3x3 s2 to 32 channels precedes it, the 1x1 head to 1280 follows it.
BASE_STAGES: tuple[StageConfig, ...] = tuple(
    StageConfig(*row)  # type: ignore[arg-type]
    for row in (
        # (block, layers, kernel, stride, expand, out)
        ("ds", 1, 3, 1, 1, 16),
        ("ir", 2, 3, 2, 6, 24),
        ("ir", 2, 5, 2, 6, 40),
        ("ir", 3, 3, 2, 6, 80),
        ("ir", 3, 5, 1, 6, 112),
        ("ir", 4, 5, 2, 6, 192),
        ("ir", 1, 3, 1, 6, 320),
    )
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


# --- blocks --------------------------------------------------------------------------------------------------------


class DepthwiseSeparableConv(nn.Module):
    """kxk depthwise conv + BN + ReLU6, then 1x1 linear projection + BN (MobileNetV1 style, used for expand 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, drop_path: float) -> None:
        super().__init__()
        self.has_skip = stride == 1 and in_channels == out_channels
        self.conv_dw = _conv(in_channels, in_channels, kernel, stride, groups=in_channels)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv_pw = _conv(in_channels, out_channels, 1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU6(inplace=True)  # stateless: keeps timm's parameter names (bn1, bn2) unchanged
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv_dw(x)))
        out = self.bn2(self.conv_pw(out))  # linear bottleneck: no activation
        if self.has_skip:
            out = self.drop_path(out) + x
        return out


class InvertedResidual(nn.Module):
    """MBConv without SE (MobileNetV2, arXiv:1801.04381): 1x1 expand, kxk depthwise, 1x1 linear projection."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel: int, stride: int, expand_ratio: int, drop_path: float
    ) -> None:
        super().__init__()
        self.has_skip = stride == 1 and in_channels == out_channels
        mid = _make_divisible(in_channels * expand_ratio)
        self.conv_pw = _conv(in_channels, mid, 1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv_dw = _conv(mid, mid, kernel, stride, groups=mid)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv_pwl = _conv(mid, out_channels, 1)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU6(inplace=True)
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv_pw(x)))
        out = self.act(self.bn2(self.conv_dw(out)))
        out = self.bn3(self.conv_pwl(out))  # linear bottleneck: no activation
        if self.has_skip:
            out = self.drop_path(out) + x
        return out


# --- the model -----------------------------------------------------------------------------------------------------


def _scaled_stages(width_mult: float, depth_mult: float) -> list[tuple[StageConfig, int, int]]:
    """Each base stage with its scaled (output channels, number of blocks).

    Widths: ``make_divisible(c * width_mult, 8)``. Depths: ``ceil(n * depth_mult)`` (EfficientNet's compound
    scaling, paper §3.3), except the first and last stage, which Lite keeps at their base depth.
    """
    last = len(BASE_STAGES) - 1
    out = []
    for i, stage in enumerate(BASE_STAGES):
        layers = stage.num_layers if i in (0, last) else math.ceil(stage.num_layers * depth_mult)
        out.append((stage, _make_divisible(stage.out_channels * width_mult), layers))
    return out


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite: fixed 32-channel stem, 7 scaled stages of DS/MBConv blocks (no SE, ReLU6), fixed
    1280-channel 1x1 head, pooling, dropout, linear classifier.

    Stochastic depth (Huang et al. 2016, arXiv:1603.09382) on block ``i`` of ``n`` is ``drop_path_rate * i / n``,
    timm's EfficientNet rule (so the last block gets slightly less than ``drop_path_rate``).
    """

    def __init__(
        self,
        config: EfficientNetLiteConfig,
        num_classes: int = 1000,
        drop_path_rate: float = 0.0,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        stages = _scaled_stages(config.width_mult, config.depth_mult)
        total_blocks = sum(layers for _, _, layers in stages)
        self.conv_stem = _conv(3, STEM_CHANNELS, 3, stride=2)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS)
        # ReLU6 everywhere (bounded activations quantize well); stateless, so one module serves stem and head
        self.act = nn.ReLU6(inplace=True)
        in_channels, block_idx = STEM_CHANNELS, 0
        stage_modules: list[nn.Module] = []
        for stage, out_channels, layers in stages:
            blocks: list[nn.Module] = []
            for i in range(layers):
                stride = stage.stride if i == 0 else 1
                drop_path = drop_path_rate * block_idx / total_blocks
                if stage.block == "ds":
                    blocks.append(DepthwiseSeparableConv(in_channels, out_channels, stage.kernel, stride, drop_path))
                else:
                    blocks.append(
                        InvertedResidual(in_channels, out_channels, stage.kernel, stride, stage.expand_ratio, drop_path)
                    )
                in_channels, block_idx = out_channels, block_idx + 1
            stage_modules.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stage_modules)
        self.conv_head = _conv(in_channels, HEAD_CHANNELS, 1)
        self.bn2 = nn.BatchNorm2d(HEAD_CHANNELS)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(p=dropout)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # The TF reference init that timm reproduces: convs N(0, sqrt(2 / fan_out)) with fan_out counted per group,
        # unit BN, classifier uniform(+-1/sqrt(out_features)).
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
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """The feature map before pooling, B x 1280 x H/32 x W/32."""
        x = self.act(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        return self.act(self.bn2(self.conv_head(x)))

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.global_pool(self.forward_features(x)), 1)
        return self.classifier(self.head_drop(x))


# --- variants: (width, depth, dropout) from the TF repo's efficientnet_lite_builder.py ------------------------------

VARIANTS: dict[str, EfficientNetLiteConfig] = {
    "efficientnet_lite0": EfficientNetLiteConfig(width_mult=1.0, depth_mult=1.0, dropout=0.2),
    "efficientnet_lite1": EfficientNetLiteConfig(width_mult=1.0, depth_mult=1.1, dropout=0.2),
    "efficientnet_lite2": EfficientNetLiteConfig(width_mult=1.1, depth_mult=1.2, dropout=0.3),
    "efficientnet_lite3": EfficientNetLiteConfig(width_mult=1.2, depth_mult=1.4, dropout=0.3),
    "efficientnet_lite4": EfficientNetLiteConfig(width_mult=1.4, depth_mult=1.8, dropout=0.3),
}


# --- builders ------------------------------------------------------------------------------------------------------


def _efficientnet_lite(
    arch: str, num_classes: int, drop_path_rate: float, dropout: float | None, small_input: bool, **kw: Any
) -> EfficientNetLite:
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown EfficientNet-Lite variant {arch!r}{hint}; valid: {', '.join(VARIANTS)}")
    if small_input:
        raise ValueError(
            "EfficientNet-Lite has no small_input variant; use image size >= 32 (it downsamples 32x), "
            "or a family with small_input (ResNet, ConvNeXt, RegNetY)"
        )
    if kw:
        raise TypeError(f"unexpected keyword argument(s) for {arch}: {', '.join(sorted(kw))}")
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
    config = VARIANTS[arch]
    return EfficientNetLite(
        config,
        num_classes=num_classes,
        drop_path_rate=drop_path_rate,
        dropout=config.dropout if dropout is None else dropout,
    )


def build_model(
    arch: str,
    num_classes: int = 1000,
    *,
    drop_path_rate: float = 0.0,
    dropout: float | None = None,
    small_input: bool = False,
    **kw: Any,
) -> nn.Module:
    """Build an EfficientNet-Lite variant by name (``efficientnet_lite0`` .. ``efficientnet_lite4``).

    Args:
        arch: the variant name, as in timm.
        num_classes: size of the classifier; only ``classifier`` depends on it.
        drop_path_rate: stochastic-depth rate (timm suggests 0.2 for training).
        dropout: head dropout; ``None`` means the dropout the TF reference trained with (0.2 for lite0/1, 0.3 for
            lite2/3/4). timm's own default is 0, and its notes suggest 0.4 for lite4.
        small_input: not supported (raises ``ValueError``): EfficientNet-Lite keeps its ImageNet stem.

    Returns:
        The model, with timm's module names, so ``load_state_dict`` of timm ``efficientnet_lite*`` weights works
        strictly.
    """
    return _efficientnet_lite(arch, num_classes, drop_path_rate, dropout, small_input, **kw)


def efficientnet_lite0(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """EfficientNet-Lite0 (4.7M params, trained at 224px)."""
    return build_model("efficientnet_lite0", num_classes, **kw)


def efficientnet_lite1(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """EfficientNet-Lite1 (5.4M params, trained at 240px)."""
    return build_model("efficientnet_lite1", num_classes, **kw)


def efficientnet_lite2(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """EfficientNet-Lite2 (6.1M params, trained at 260px)."""
    return build_model("efficientnet_lite2", num_classes, **kw)


def efficientnet_lite3(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """EfficientNet-Lite3 (8.2M params, trained at 280px)."""
    return build_model("efficientnet_lite3", num_classes, **kw)


def efficientnet_lite4(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """EfficientNet-Lite4 (13.0M params, trained at 300px)."""
    return build_model("efficientnet_lite4", num_classes, **kw)
