"""EfficientNetV2-S/M/L (Tan & Le 2021, "EfficientNetV2: Smaller Models and Faster Training", arXiv:2104.00298).

Self-contained (torch + torchvision only) and state_dict-compatible with ``torchvision.models.efficientnet_v2_*``:
the same module names (``features.N...``, ``classifier.1``), so torchvision's ImageNet weights load with
``strict=True``. Early stages use Fused-MBConv (one full 3x3 conv instead of 1x1 expand + 3x3 depthwise, fast on
accelerators, paper §3.2) without squeeze-and-excitation; later stages use MBConv with SE.
"""

import difflib
import math
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation, StochasticDepth

__all__ = ["VARIANTS", "EfficientNetV2", "build_model", "efficientnet_v2_l", "efficientnet_v2_m", "efficientnet_v2_s"]


# --- small helpers -------------------------------------------------------------------------------------------------


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never dropping by more than 10% (TF rule)."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


# BN eps 1e-3 as in the TF reference (and torchvision's port of it); the weights were trained with it.
_norm_layer = partial(nn.BatchNorm2d, eps=1e-3)


@dataclass(frozen=True)
class StageConfig:
    """One row of Table 4 in the EfficientNetV2 paper: ``num_layers`` blocks of one kind."""

    block: Literal["fused", "mbconv"]
    expand_ratio: int
    kernel: int
    stride: int  # stride of the first block of the stage; the others use 1
    in_channels: int
    out_channels: int
    num_layers: int


@dataclass(frozen=True)
class EfficientNetV2Config:
    """A whole network: its stages, the width of the last 1x1 conv and the reference head dropout."""

    stages: tuple[StageConfig, ...]
    dropout: float
    last_channels: int = 1280


# --- blocks --------------------------------------------------------------------------------------------------------


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand, kxk depthwise, squeeze-and-excitation, 1x1 linear projection.

    The SE squeezes to ``in_channels / 4`` (of the block *input*, not the expanded width) with SiLU, as in
    EfficientNet (arXiv:1905.11946 §4) and torchvision.
    """

    def __init__(
        self, in_channels: int, out_channels: int, expand_ratio: int, kernel: int, stride: int, drop_path: float
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"MBConv stride must be 1 or 2, got {stride}")
        self.use_res_connect = stride == 1 and in_channels == out_channels
        hidden = _make_divisible(in_channels * expand_ratio)
        layers: list[nn.Module] = []
        if hidden != in_channels:
            layers.append(
                Conv2dNormActivation(in_channels, hidden, 1, norm_layer=_norm_layer, activation_layer=nn.SiLU)
            )
        layers += [
            Conv2dNormActivation(
                hidden, hidden, kernel, stride=stride, groups=hidden, norm_layer=_norm_layer, activation_layer=nn.SiLU
            ),
            SqueezeExcitation(hidden, max(1, in_channels // 4), activation=partial(nn.SiLU, inplace=True)),
            Conv2dNormActivation(hidden, out_channels, 1, norm_layer=_norm_layer, activation_layer=None),
        ]
        self.block = nn.Sequential(*layers)
        # Present in every block like torchvision (no parameters), applied only on residual blocks.
        self.stochastic_depth = StochasticDepth(drop_path, "row")

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out


class FusedMBConv(nn.Module):
    """Fused-MBConv (paper Fig. 2): the 1x1 expand and kxk depthwise of MBConv fused into one kxk conv; no SE.

    With ``expand_ratio == 1`` the block is a single kxk conv + BN + SiLU (no projection), as published.
    """

    def __init__(
        self, in_channels: int, out_channels: int, expand_ratio: int, kernel: int, stride: int, drop_path: float
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"FusedMBConv stride must be 1 or 2, got {stride}")
        self.use_res_connect = stride == 1 and in_channels == out_channels
        hidden = _make_divisible(in_channels * expand_ratio)
        layers: list[nn.Module]
        if hidden != in_channels:
            layers = [
                Conv2dNormActivation(
                    in_channels, hidden, kernel, stride=stride, norm_layer=_norm_layer, activation_layer=nn.SiLU
                ),
                Conv2dNormActivation(hidden, out_channels, 1, norm_layer=_norm_layer, activation_layer=None),
            ]
        else:
            layers = [
                Conv2dNormActivation(
                    in_channels, out_channels, kernel, stride=stride, norm_layer=_norm_layer, activation_layer=nn.SiLU
                )
            ]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop_path, "row")

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out


_BLOCKS: dict[str, type[MBConv] | type[FusedMBConv]] = {"fused": FusedMBConv, "mbconv": MBConv}


# --- the model -----------------------------------------------------------------------------------------------------


class EfficientNetV2(nn.Module):
    """EfficientNetV2: a 3x3 s2 stem, Fused-MBConv then MBConv stages, a 1x1 conv head, pooling and a linear head.

    Stochastic depth (Huang et al. 2016, arXiv:1603.09382) grows linearly with the block index,
    ``p = drop_path_rate * idx / num_blocks``, torchvision's rule (so the last block gets slightly less than
    ``drop_path_rate``).
    """

    def __init__(
        self, config: EfficientNetV2Config, num_classes: int = 1000, drop_path_rate: float = 0.0, dropout: float = 0.2
    ) -> None:
        super().__init__()
        stages = config.stages
        layers: list[nn.Module] = [
            Conv2dNormActivation(
                3, stages[0].in_channels, 3, stride=2, norm_layer=_norm_layer, activation_layer=nn.SiLU
            )
        ]
        total_blocks = sum(s.num_layers for s in stages)
        block_idx = 0
        for stage in stages:
            blocks: list[nn.Module] = []
            for i in range(stage.num_layers):
                blocks.append(
                    _BLOCKS[stage.block](
                        stage.in_channels if i == 0 else stage.out_channels,
                        stage.out_channels,
                        stage.expand_ratio,
                        stage.kernel,
                        stage.stride if i == 0 else 1,
                        drop_path_rate * block_idx / total_blocks,
                    )
                )
                block_idx += 1
            layers.append(nn.Sequential(*blocks))
        layers.append(
            Conv2dNormActivation(
                stages[-1].out_channels, config.last_channels, 1, norm_layer=_norm_layer, activation_layer=nn.SiLU
            )
        )
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout, inplace=True), nn.Linear(config.last_channels, num_classes)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's scheme: He-normal (fan_out) convs, unit BN, uniform(+-1/sqrt(out)) classifier.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
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
        """The feature map before pooling, B x C x H/32 x W/32."""
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)
        return self.classifier(x)


# --- variants (paper Table 4 for S; M and L as released in the TF repo and torchvision) -----------------------------


def _stages(*rows: tuple[str, int, int, int, int, int, int]) -> tuple[StageConfig, ...]:
    return tuple(StageConfig(*row) for row in rows)  # type: ignore[arg-type]


VARIANTS: dict[str, EfficientNetV2Config] = {
    # (block, expand, kernel, stride, in, out, layers)
    "efficientnet_v2_s": EfficientNetV2Config(
        stages=_stages(
            ("fused", 1, 3, 1, 24, 24, 2),
            ("fused", 4, 3, 2, 24, 48, 4),
            ("fused", 4, 3, 2, 48, 64, 4),
            ("mbconv", 4, 3, 2, 64, 128, 6),
            ("mbconv", 6, 3, 1, 128, 160, 9),
            ("mbconv", 6, 3, 2, 160, 256, 15),
        ),
        dropout=0.2,
    ),
    "efficientnet_v2_m": EfficientNetV2Config(
        stages=_stages(
            ("fused", 1, 3, 1, 24, 24, 3),
            ("fused", 4, 3, 2, 24, 48, 5),
            ("fused", 4, 3, 2, 48, 80, 5),
            ("mbconv", 4, 3, 2, 80, 160, 7),
            ("mbconv", 6, 3, 1, 160, 176, 14),
            ("mbconv", 6, 3, 2, 176, 304, 18),
            ("mbconv", 6, 3, 1, 304, 512, 5),
        ),
        dropout=0.3,
    ),
    "efficientnet_v2_l": EfficientNetV2Config(
        stages=_stages(
            ("fused", 1, 3, 1, 32, 32, 4),
            ("fused", 4, 3, 2, 32, 64, 7),
            ("fused", 4, 3, 2, 64, 96, 7),
            ("mbconv", 4, 3, 2, 96, 192, 10),
            ("mbconv", 6, 3, 1, 192, 224, 19),
            ("mbconv", 6, 3, 2, 224, 384, 25),
            ("mbconv", 6, 3, 1, 384, 640, 7),
        ),
        dropout=0.4,
    ),
}


# --- builders ------------------------------------------------------------------------------------------------------


def _efficientnet_v2(
    arch: str, num_classes: int, drop_path_rate: float, dropout: float | None, small_input: bool, **kw: Any
) -> EfficientNetV2:
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown EfficientNetV2 variant {arch!r}{hint}; valid: {', '.join(VARIANTS)}")
    if small_input:
        raise ValueError(
            "EfficientNetV2 has no small_input variant; use image size >= 32 (it downsamples 32x), "
            "or a family with small_input (ResNet, ConvNeXt, RegNetY)"
        )
    if kw:
        raise TypeError(f"unexpected keyword argument(s) for {arch}: {', '.join(sorted(kw))}")
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
    config = VARIANTS[arch]
    return EfficientNetV2(
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
    """Build an EfficientNetV2 variant by name (``efficientnet_v2_s``, ``efficientnet_v2_m``, ``efficientnet_v2_l``).

    Args:
        arch: the variant name, as in torchvision.
        num_classes: size of the classifier; only ``classifier.1`` depends on it.
        drop_path_rate: stochastic-depth rate of the deepest block (torchvision trains with 0.2).
        dropout: head dropout; ``None`` means the reference default (0.2 / 0.3 / 0.4 for S / M / L).
        small_input: not supported (raises ``ValueError``): EfficientNetV2 keeps its ImageNet stem.

    Returns:
        The model, with torchvision's module names, so ``load_state_dict`` of torchvision weights works strictly.
    """
    return _efficientnet_v2(arch, num_classes, drop_path_rate, dropout, small_input, **kw)


def efficientnet_v2_s(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """EfficientNetV2-S (21.5M params)."""
    return build_model("efficientnet_v2_s", num_classes, **kw)


def efficientnet_v2_m(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """EfficientNetV2-M (54.1M params)."""
    return build_model("efficientnet_v2_m", num_classes, **kw)


def efficientnet_v2_l(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """EfficientNetV2-L (118.5M params)."""
    return build_model("efficientnet_v2_l", num_classes, **kw)
