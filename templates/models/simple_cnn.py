"""SimpleCNN: the classic three-block CNN baseline (conv-BN-ReLU-pool x3, then an MLP classifier).

This is the architect guide's ``SimpleCNN`` with its two defects fixed:

* the convolutions have no bias: BatchNorm subtracts the batch mean, so a bias in front of it is cancelled
  and only adds parameters (torchvision's ResNet/VGG-BN do the same);
* an ``nn.AdaptiveAvgPool2d(4)`` sits between the features and the classifier, so the ``256*4*4`` classifier
  accepts any input size instead of only 32x32.

There is no reference implementation: the parameter count (2,981,928 at 1000 classes) and the cost
(0.0421 GMACs for one 32x32 image with ``small_input=True``) are measured from this file.
``drop_path_rate`` is accepted for a uniform ``build_model`` interface and ignored: there are no residual
blocks, so there is no branch for stochastic depth to drop.

Self-contained: imports torch only, so it can be copied into a project as ``model.py``.
"""

import difflib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["VARIANTS", "SimpleCNN", "SimpleCNNConfig", "build_model", "simple_cnn"]


@dataclass(frozen=True)
class SimpleCNNConfig:
    """Widths of the three conv blocks, the pooled grid fed to the classifier, and its hidden width."""

    widths: tuple[int, ...] = (64, 128, 256)
    pooled_size: int = 4
    hidden: int = 512
    dropout: float = 0.5


VARIANTS: dict[str, SimpleCNNConfig] = {
    "simple_cnn": SimpleCNNConfig(),
}


class ConvBlock(nn.Sequential):
    """3x3 conv (no bias) -> BatchNorm -> ReLU [-> 3x3/2 max pool] -> 2x2/2 max pool.

    The optional 3x3/2 ``stem_pool`` is the ImageNet-style early downsampling of the first block; it holds no
    parameters, so both layouts share the same state_dict keys.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, stem_pool: bool = False) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["conv"] = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        layers["bn"] = nn.BatchNorm2d(out_channels)
        layers["relu"] = nn.ReLU(inplace=True)
        if stem_pool:
            layers["stem_pool"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        layers["pool"] = nn.MaxPool2d(kernel_size=2, stride=2)
        super().__init__(layers)


class SimpleCNN(nn.Module):
    """Three conv blocks (64-128-256 channels), adaptive 4x4 pooling, and a two-layer MLP classifier.

    ``small_input=True`` is the guide's layout: stride-1 first conv, total stride 8, made for 32-64 px images
    (a 32x32 image ends as a 4x4 map, exactly what the classifier expects). ``small_input=False`` adds
    ImageNet-style early downsampling (stride-2 first conv and a 3x3/2 max pool, as in the ResNet stem,
    He et al. 2015, arXiv:1512.03385) for a total stride of 32; the parameter count is the same.
    """

    def __init__(
        self,
        cfg: SimpleCNNConfig,
        num_classes: int = 1000,
        dropout: float | None = None,
        small_input: bool = False,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        p = cfg.dropout if dropout is None else dropout
        blocks: list[nn.Module] = []
        prev = in_channels
        for i, width in enumerate(cfg.widths):
            early = i == 0 and not small_input
            blocks.append(ConvBlock(prev, width, stride=2 if early else 1, stem_pool=early))
            prev = width
        self.features = nn.Sequential(*blocks)
        # adaptive pooling makes the fixed-size classifier work for any input size (the guide hard-wires 32x32)
        self.pool = nn.AdaptiveAvgPool2d(cfg.pooled_size)
        self.classifier = nn.Sequential(
            nn.Dropout(p),
            nn.Linear(prev * cfg.pooled_size**2, cfg.hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p),
            nn.Linear(cfg.hidden, num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # the torchvision VGG scheme (the classic conv-pool-MLP design): He-normal convs, N(0, 0.01) linears
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before pooling, B x 256 x H/stride x W/stride."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, B x num_classes."""
        x = self.pool(self.forward_features(x))
        return self.classifier(torch.flatten(x, 1))


def _simple_cnn(
    cfg: SimpleCNNConfig, num_classes: int, dropout: float | None, small_input: bool, **kw: Any
) -> SimpleCNN:
    return SimpleCNN(cfg, num_classes=num_classes, dropout=dropout, small_input=small_input, **kw)


def simple_cnn(num_classes: int = 1000, *, dropout: float | None = None, small_input: bool = False) -> SimpleCNN:
    """The SimpleCNN baseline (2,981,928 parameters at 1000 classes)."""
    return _simple_cnn(VARIANTS["simple_cnn"], num_classes, dropout, small_input)


def build_model(
    arch: str,
    num_classes: int = 1000,
    *,
    drop_path_rate: float = 0.0,
    dropout: float | None = None,
    small_input: bool = False,
    **kw: Any,
) -> nn.Module:
    """Build a SimpleCNN variant by name.

    Args:
        arch: a key of ``VARIANTS`` (``"simple_cnn"``).
        num_classes: size of the last linear layer.
        drop_path_rate: accepted for a uniform interface and ignored: this family has no residual blocks,
            so there is no branch that stochastic depth could drop.
        dropout: dropout before both classifier linears; ``None`` keeps the guide's 0.5.
        small_input: the guide's stride-8 layout for 32-64 px images instead of the stride-32 ImageNet layout.
        **kw: passed to ``SimpleCNN`` (e.g. ``in_channels``).
    """
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown SimpleCNN variant {arch!r}; valid: {', '.join(VARIANTS)}.{hint}")
    del drop_path_rate  # no residual branches to drop
    return _simple_cnn(VARIANTS[arch], num_classes, dropout, small_input, **kw)
