"""ResNet-18/34/50/101/152 (He et al. 2015, "Deep Residual Learning for Image Recognition", arXiv:1512.03385).

State-dict compatible with ``torchvision.models.resnet*`` (same module names: ``conv1, bn1, layer1..4.N.{conv,bn}*,
downsample.0/1, fc``), so torchvision's published ImageNet weights load with ``strict=True``. The Bottleneck puts
the stride on the 3x3 conv ("ResNet v1.5", as torchvision and timm do), which is what those weights expect.

Additions over torchvision, none of which adds a state_dict key:

* ``drop_path_rate``: stochastic depth on each residual branch (Huang et al. 2016, arXiv:1603.09382), rate growing
  linearly with the block index from 0 to ``drop_path_rate`` (timm's ResNet rule);
* ``dropout``: dropout before the classifier (0 by default, as in torchvision);
* ``small_input``: a CIFAR-style stem for 32-64 px images (see ``ResNet``).

Self-contained: imports torch and torchvision only, so it can be copied into a project as ``model.py``.
"""

import difflib
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torchvision.ops import StochasticDepth

__all__ = [
    "VARIANTS",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "ResNetConfig",
    "build_model",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
]


@dataclass(frozen=True)
class ResNetConfig:
    """A ResNet is its block type and the number of blocks in each of its four stages."""

    block: Literal["basic", "bottleneck"]
    layers: tuple[int, int, int, int]


# Table 1 of the paper: 18/34 use the two-conv BasicBlock, 50/101/152 the 1x1-3x3-1x1 Bottleneck
VARIANTS: dict[str, ResNetConfig] = {
    "resnet18": ResNetConfig("basic", (2, 2, 2, 2)),
    "resnet34": ResNetConfig("basic", (3, 4, 6, 3)),
    "resnet50": ResNetConfig("bottleneck", (3, 4, 6, 3)),
    "resnet101": ResNetConfig("bottleneck", (3, 4, 23, 3)),
    "resnet152": ResNetConfig("bottleneck", (3, 8, 36, 3)),
}


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding; no bias because a BatchNorm follows."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution; no bias because a BatchNorm follows."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection (ResNet-18/34)."""

    expansion: int = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual branch plus (projected) shortcut, then ReLU."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(self.drop_path(out) + identity)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (strided) -> 1x1 expand (x4), with a residual connection (ResNet-50/101/152)."""

    expansion: int = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        # stride on the 3x3 rather than the first 1x1 ("ResNet v1.5", as torchvision/timm): NVIDIA reports
        # ~+0.5% top-1 over the paper's placement (NGC "ResNet50 v1.5 for PyTorch" model card)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual branch plus (projected) shortcut, then ReLU."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(self.drop_path(out) + identity)


_BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """ResNet: stem, four stages of residual blocks (64-128-256-512 planes), global average pool, linear.

    ``small_input=False`` is the ImageNet stem: 7x7/2 conv and 3x3/2 max pool, total stride 32.
    ``small_input=True`` is the CIFAR-style stem for 32-64 px images (He et al. 2015 §4.2 use a 3x3 first conv
    and no early downsampling on CIFAR-10): 3x3/1 conv and no max pool, total stride 8, so a 32x32 image ends
    as a 4x4 map instead of 1x1. Only ``conv1.weight`` changes shape (64x3x3x3); the keys stay the same, so
    ImageNet weights load once that one tensor is dropped from the state dict (then ``strict=False``).
    """

    def __init__(
        self,
        cfg: ResNetConfig,
        num_classes: int = 1000,
        *,
        zero_init_residual: bool = False,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
        small_input: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        block = _BLOCKS[cfg.block]
        self.inplanes = 64
        if small_input:
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool: nn.Module = nn.Identity() if small_input else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        # stochastic depth grows linearly with depth: block i of n drops with rate drop_path_rate * i / (n - 1)
        total = sum(cfg.layers)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages: list[nn.Sequential] = []
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), cfg.layers, strict=True)):
            stage_rates, rates = rates[:depth], rates[depth:]
            stages.append(self._make_layer(block, planes, depth, stride=1 if i == 0 else 2, rates=stage_rates))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages

        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        self._init_weights(zero_init_residual)

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        depth: int,
        stride: int,
        rates: list[float],
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            # projection shortcut (option B of the paper) only where the shape changes
            downsample = nn.Sequential(
                conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, drop_path=rates[0])]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, drop_path=rates[i]) for i in range(1, depth)]
        return nn.Sequential(*layers)

    def _init_weights(self, zero_init_residual: bool) -> None:
        # torchvision's scheme: He-normal (fan_out) convs, BN at identity; nn.Linear keeps PyTorch's default
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            # zero the last BN of each residual branch so every block starts as the identity:
            # +0.2-0.3% top-1 (Goyal et al. 2017, arXiv:1706.02677)
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map before pooling, B x C x H/stride x W/stride."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, B x num_classes."""
        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)
        return self.fc(self.dropout(x))


def _resnet(
    cfg: ResNetConfig,
    num_classes: int,
    drop_path_rate: float,
    dropout: float | None,
    small_input: bool,
    **kw: Any,
) -> ResNet:
    return ResNet(
        cfg,
        num_classes,
        drop_path_rate=drop_path_rate,
        dropout=0.0 if dropout is None else dropout,
        small_input=small_input,
        **kw,
    )


def resnet18(num_classes: int = 1000, **kw: Any) -> ResNet:
    """ResNet-18 (11.7M parameters at 1000 classes)."""
    return build_model("resnet18", num_classes, **kw)


def resnet34(num_classes: int = 1000, **kw: Any) -> ResNet:
    """ResNet-34 (21.8M parameters at 1000 classes)."""
    return build_model("resnet34", num_classes, **kw)


def resnet50(num_classes: int = 1000, **kw: Any) -> ResNet:
    """ResNet-50 (25.6M parameters at 1000 classes)."""
    return build_model("resnet50", num_classes, **kw)


def resnet101(num_classes: int = 1000, **kw: Any) -> ResNet:
    """ResNet-101 (44.5M parameters at 1000 classes)."""
    return build_model("resnet101", num_classes, **kw)


def resnet152(num_classes: int = 1000, **kw: Any) -> ResNet:
    """ResNet-152 (60.2M parameters at 1000 classes)."""
    return build_model("resnet152", num_classes, **kw)


def build_model(
    arch: str,
    num_classes: int = 1000,
    *,
    drop_path_rate: float = 0.0,
    dropout: float | None = None,
    small_input: bool = False,
    **kw: Any,
) -> ResNet:
    """Build a ResNet variant by name.

    Args:
        arch: a key of ``VARIANTS`` (``"resnet18"`` ... ``"resnet152"``).
        num_classes: size of the final linear layer (only ``fc`` changes shape).
        drop_path_rate: stochastic depth rate of the last block (0 disables it).
        dropout: dropout before ``fc``; ``None`` keeps torchvision's 0.0.
        small_input: CIFAR-style 3x3/1 stem without max pool (total stride 8) for 32-64 px images.
        **kw: passed to ``ResNet`` (``zero_init_residual``, ``in_channels``).
    """
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown ResNet variant {arch!r}; valid: {', '.join(VARIANTS)}.{hint}")
    return _resnet(VARIANTS[arch], num_classes, drop_path_rate, dropout, small_input, **kw)
