"""MobileNetV3-Small/Large (Howard et al. 2019, "Searching for MobileNetV3", arXiv:1905.02244).

Self-contained (torch + torchvision only) and state_dict-compatible with ``torchvision.models.mobilenet_v3_*``:
the same module names (``features.N.block...``, ``classifier.0`` / ``classifier.3``), so torchvision's ImageNet
weights load with ``strict=True``.

One addition over torchvision: optional stochastic depth (Huang et al. 2016, arXiv:1603.09382) on the residual
branch of each inverted-residual block. torchvision's MobileNetV3 has none; ours is off by default
(``drop_path_rate=0``), holds no parameters or buffers (the state_dict is unchanged) and is the identity in eval
mode, so published weights and logits are unaffected.
"""

import difflib
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torchvision.ops import Conv2dNormActivation, SqueezeExcitation, StochasticDepth

__all__ = ["VARIANTS", "MobileNetV3", "build_model", "mobilenet_v3_large", "mobilenet_v3_small"]


# --- small helpers -------------------------------------------------------------------------------------------------


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to the nearest multiple of ``divisor``, never dropping by more than 10% (TF rule)."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


# BN eps/momentum of the TF reference (torchvision uses them too); momentum 0.01 = TF decay 0.99.
_norm_layer = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)


@dataclass(frozen=True)
class BlockConfig:
    """One row of Tables 1/2 of the paper: a bottleneck (inverted residual) block."""

    in_channels: int
    kernel: int
    expanded_channels: int
    out_channels: int
    use_se: bool
    activation: Literal["RE", "HS"]  # ReLU or hard-swish (paper §5.2: h-swish only in the deeper layers)
    stride: int


@dataclass(frozen=True)
class MobileNetV3Config:
    """A whole network: its blocks and the width of the hidden classifier layer."""

    blocks: tuple[BlockConfig, ...]
    last_channels: int
    dropout: float = 0.2


# --- blocks --------------------------------------------------------------------------------------------------------


class InvertedResidual(nn.Module):
    """MobileNetV3 bottleneck (paper §5): 1x1 expand, kxk depthwise, optional SE, 1x1 linear projection.

    The SE squeezes to ``make_divisible(expanded / 4)`` with ReLU and gates with hard-sigmoid (paper §5.3).
    ``stochastic_depth`` is applied to the residual branch only, and only when the block has a residual.
    """

    def __init__(self, cnf: BlockConfig, drop_path: float = 0.0) -> None:
        super().__init__()
        if cnf.stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2, got {cnf.stride}")
        self.use_res_connect = cnf.stride == 1 and cnf.in_channels == cnf.out_channels
        act = nn.Hardswish if cnf.activation == "HS" else nn.ReLU
        exp = cnf.expanded_channels
        layers: list[nn.Module] = []
        if exp != cnf.in_channels:
            layers.append(Conv2dNormActivation(cnf.in_channels, exp, 1, norm_layer=_norm_layer, activation_layer=act))
        layers.append(
            Conv2dNormActivation(
                exp, exp, cnf.kernel, stride=cnf.stride, groups=exp, norm_layer=_norm_layer, activation_layer=act
            )
        )
        if cnf.use_se:
            layers.append(SqueezeExcitation(exp, _make_divisible(exp // 4), scale_activation=nn.Hardsigmoid))
        layers.append(Conv2dNormActivation(exp, cnf.out_channels, 1, norm_layer=_norm_layer, activation_layer=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(drop_path, "row")

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out


# --- the model -----------------------------------------------------------------------------------------------------


class MobileNetV3(nn.Module):
    """MobileNetV3: 3x3 s2 hard-swish stem, bottleneck blocks, 1x1 conv to 6x the last width, then the
    "efficient last stage" head (paper §5.1): pool, linear + hard-swish, dropout, linear.

    Stochastic depth on block ``i`` of ``n`` is ``drop_path_rate * i / (n - 1)``: 0 at the first block, the full
    rate at the last (torchvision has no rule to follow here; this is the contract's default linear rule).
    """

    def __init__(
        self, config: MobileNetV3Config, num_classes: int = 1000, drop_path_rate: float = 0.0, dropout: float = 0.2
    ) -> None:
        super().__init__()
        blocks = config.blocks
        last_conv = 6 * blocks[-1].out_channels
        n = len(blocks)
        self.features = nn.Sequential(
            Conv2dNormActivation(
                3, blocks[0].in_channels, 3, stride=2, norm_layer=_norm_layer, activation_layer=nn.Hardswish
            ),
            *(InvertedResidual(cnf, drop_path_rate * i / max(1, n - 1)) for i, cnf in enumerate(blocks)),
            Conv2dNormActivation(
                blocks[-1].out_channels, last_conv, 1, norm_layer=_norm_layer, activation_layer=nn.Hardswish
            ),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, config.last_channels),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(config.last_channels, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's scheme: He-normal (fan_out) convs, unit BN, N(0, 0.01) linear layers.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """The feature map before pooling, B x C x H/32 x W/32."""
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)
        return self.classifier(x)


# --- variants (paper Tables 1 and 2) --------------------------------------------------------------------------------


def _blocks(*rows: tuple[int, int, int, int, bool, str, int]) -> tuple[BlockConfig, ...]:
    return tuple(BlockConfig(*row) for row in rows)  # type: ignore[arg-type]


VARIANTS: dict[str, MobileNetV3Config] = {
    # (in, kernel, expanded, out, SE, activation, stride)
    "mobilenet_v3_small": MobileNetV3Config(
        blocks=_blocks(
            (16, 3, 16, 16, True, "RE", 2),
            (16, 3, 72, 24, False, "RE", 2),
            (24, 3, 88, 24, False, "RE", 1),
            (24, 5, 96, 40, True, "HS", 2),
            (40, 5, 240, 40, True, "HS", 1),
            (40, 5, 240, 40, True, "HS", 1),
            (40, 5, 120, 48, True, "HS", 1),
            (48, 5, 144, 48, True, "HS", 1),
            (48, 5, 288, 96, True, "HS", 2),
            (96, 5, 576, 96, True, "HS", 1),
            (96, 5, 576, 96, True, "HS", 1),
        ),
        last_channels=1024,
    ),
    "mobilenet_v3_large": MobileNetV3Config(
        blocks=_blocks(
            (16, 3, 16, 16, False, "RE", 1),
            (16, 3, 64, 24, False, "RE", 2),
            (24, 3, 72, 24, False, "RE", 1),
            (24, 5, 72, 40, True, "RE", 2),
            (40, 5, 120, 40, True, "RE", 1),
            (40, 5, 120, 40, True, "RE", 1),
            (40, 3, 240, 80, False, "HS", 2),
            (80, 3, 200, 80, False, "HS", 1),
            (80, 3, 184, 80, False, "HS", 1),
            (80, 3, 184, 80, False, "HS", 1),
            (80, 3, 480, 112, True, "HS", 1),
            (112, 3, 672, 112, True, "HS", 1),
            (112, 5, 672, 160, True, "HS", 2),
            (160, 5, 960, 160, True, "HS", 1),
            (160, 5, 960, 160, True, "HS", 1),
        ),
        last_channels=1280,
    ),
}


# --- builders ------------------------------------------------------------------------------------------------------


def _mobilenet_v3(
    arch: str, num_classes: int, drop_path_rate: float, dropout: float | None, small_input: bool, **kw: Any
) -> MobileNetV3:
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown MobileNetV3 variant {arch!r}{hint}; valid: {', '.join(VARIANTS)}")
    if small_input:
        raise ValueError(
            "MobileNetV3 has no small_input variant; use image size >= 32 (it downsamples 32x), "
            "or a family with small_input (ResNet, ConvNeXt, RegNetY)"
        )
    if kw:
        raise TypeError(f"unexpected keyword argument(s) for {arch}: {', '.join(sorted(kw))}")
    if not 0.0 <= drop_path_rate < 1.0:
        raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}")
    config = VARIANTS[arch]
    return MobileNetV3(
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
    """Build a MobileNetV3 variant by name (``mobilenet_v3_small``, ``mobilenet_v3_large``).

    Args:
        arch: the variant name, as in torchvision.
        num_classes: size of the classifier; only ``classifier.3`` depends on it.
        drop_path_rate: stochastic-depth rate of the last block (0 = off, torchvision's behaviour); an addition
            over torchvision that adds no state_dict keys.
        dropout: head dropout; ``None`` means the reference default 0.2.
        small_input: not supported (raises ``ValueError``): MobileNetV3 keeps its ImageNet stem.

    Returns:
        The model, with torchvision's module names, so ``load_state_dict`` of torchvision weights works strictly.
    """
    return _mobilenet_v3(arch, num_classes, drop_path_rate, dropout, small_input, **kw)


def mobilenet_v3_small(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """MobileNetV3-Small (2.5M params)."""
    return build_model("mobilenet_v3_small", num_classes, **kw)


def mobilenet_v3_large(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """MobileNetV3-Large (5.5M params)."""
    return build_model("mobilenet_v3_large", num_classes, **kw)
