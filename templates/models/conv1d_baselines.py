"""FCN and ResNet-1D, the UCR time-series classification baselines of Wang, Yan & Oates 2017, "Time Series
Classification from Scratch with Deep Neural Networks: A Strong Baseline", arXiv:1611.06455.

Configurations of the paper (§3, Fig. 1), as in the reference code of Ismail Fawaz et al. 2019, "Deep learning for
time series classification: a review", arXiv:1809.04356 (``dl-4-tsc``, which reproduces them):

* FCN: three blocks of Conv1d (128 / 256 / 128 filters, kernels 8 / 5 / 3, stride 1, "same" padding), BatchNorm
  and ReLU; global average pooling; a linear classifier. No pooling, no dropout.
* ResNet-1D: three residual blocks of 64 / 128 / 128 filters, each three FCN-style convs (kernels 8 / 5 / 3), the
  last without ReLU before the addition; the shortcut is a 1x1 conv + BN where the width changes and a BN
  otherwise (dl-4-tsc); global average pooling; linear classifier.

Input: ``B x C x T`` float with NaN in the padded tail steps of shorter series. The padded steps are set to zero
after every conv, which is exactly what "same" zero padding shows the series' last steps when it is run alone,
and the global pooling averages over each series' own steps: in eval mode the logits of a series do not depend on
how much padding its batch has. (In training, BatchNorm's batch statistics include the zeroed steps.)

Self-contained: imports torch only, so it can be copied into a project as ``model.py``.
"""

import difflib
import itertools
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["DYNAMIC_LENGTH", "FCN", "ONNX_DYNAMO", "VARIANTS", "ConvConfig", "ResNet1D", "build_model"]

# export.py: both exporters handle these graphs; the TorchScript-based one is the faster of the two
ONNX_DYNAMO = False
# fully convolutional with global pooling: any series length
DYNAMIC_LENGTH = True


@dataclass(frozen=True)
class ConvConfig:
    """Which network, and the widths of its blocks (kernels are the paper's 8 / 5 / 3)."""

    kind: Literal["fcn", "resnet"]
    widths: tuple[int, ...]
    kernels: tuple[int, int, int] = (8, 5, 3)


VARIANTS: dict[str, ConvConfig] = {
    "fcn": ConvConfig("fcn", (128, 256, 128)),
    "resnet1d": ConvConfig("resnet", (64, 128, 128)),
}


def padding_mask(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x with NaN steps set to 0, valid-step mask ``B x 1 x T``) for ``x`` of ``B x C x T``."""
    missing = torch.isnan(x)
    return torch.where(missing, torch.zeros_like(x), x), ~missing.any(dim=1, keepdim=True)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over each series' valid steps, ``B x C``."""
    x = torch.where(mask, x, torch.zeros_like(x))
    return x.sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)


class ConvBNReLU(nn.Sequential):
    """Conv1d ("same" padding, no bias: a BN follows), BatchNorm1d and, unless ``relu=False``, ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, relu: bool = True) -> None:
        layers: list[nn.Module] = [nn.Conv1d(cin, cout, kernel, padding="same", bias=False), nn.BatchNorm1d(cout)]
        if relu:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Three convs (kernels 8 / 5 / 3) and a shortcut (1x1 conv + BN where the width changes, else BN)."""

    def __init__(self, cin: int, cout: int, kernels: tuple[int, int, int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [
                ConvBNReLU(cin, cout, kernels[0]),
                ConvBNReLU(cout, cout, kernels[1]),
                ConvBNReLU(cout, cout, kernels[2], relu=False),
            ]
        )
        self.shortcut: nn.Module = (
            nn.BatchNorm1d(cout)
            if cin == cout
            else nn.Sequential(nn.Conv1d(cin, cout, 1, bias=False), nn.BatchNorm1d(cout))
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The block's output with the padded steps zeroed."""
        out = x
        for conv in self.convs:
            out = torch.where(mask, conv(out), torch.zeros_like(out[:, :1]))
        return torch.where(mask, self.relu(out + self.shortcut(x)), torch.zeros_like(out[:, :1]))


class FCN(nn.Module):
    """Fully convolutional network: three Conv-BN-ReLU blocks, global average pooling, linear classifier."""

    def __init__(self, cfg: ConvConfig, num_classes: int, *, in_channels: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        widths = (in_channels, *cfg.widths)
        self.blocks = nn.ModuleList(
            ConvBNReLU(cin, cout, k) for cin, cout, k in zip(widths[:-1], widths[1:], cfg.kernels, strict=True)
        )
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1], num_classes)
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features, ``B x 128``."""
        x, mask = padding_mask(x)
        for block in self.blocks:
            x = torch.where(mask, block(x), torch.zeros_like(x[:, :1]))
        return masked_mean(x, mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``B x num_classes`` for ``x`` of ``B x C x T`` (NaN in the padded tail steps)."""
        return self.fc(self.dropout(self.forward_features(x)))


class ResNet1D(nn.Module):
    """ResNet for time series: three residual blocks, global average pooling, linear classifier."""

    def __init__(self, cfg: ConvConfig, num_classes: int, *, in_channels: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        widths = (in_channels, *cfg.widths)
        self.blocks = nn.ModuleList(ResidualBlock(cin, cout, cfg.kernels) for cin, cout in itertools.pairwise(widths))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1], num_classes)
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features, ``B x 128``."""
        x, mask = padding_mask(x)
        for block in self.blocks:
            x = block(x, mask)
        return masked_mean(x, mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``B x num_classes`` for ``x`` of ``B x C x T`` (NaN in the padded tail steps)."""
        return self.fc(self.dropout(self.forward_features(x)))


def _init_weights(model: nn.Module) -> None:
    # He-normal convs and BN at identity (the reference Keras code uses Glorot-uniform; He init is PyTorch's
    # usual choice before ReLU and trains these shallow nets equally well)
    for m in model.modules():
        if isinstance(m, nn.Conv1d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm1d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def build_model(
    arch: str, num_classes: int, in_channels: int = 1, *, dropout: float = 0.0, **kw: Any
) -> FCN | ResNet1D:
    """Build FCN or ResNet-1D by name.

    Args:
        arch: ``"fcn"`` or ``"resnet1d"``.
        num_classes: size of the final linear layer.
        in_channels: channels (dimensions) of each series.
        dropout: before the classifier (0 in the paper).
        **kw: options of other families are an error.
    """
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown UCR conv baseline {arch!r}; valid: {', '.join(VARIANTS)}.{hint}")
    if kw:
        raise TypeError(f"unexpected options for {arch}: {', '.join(kw)}")
    cfg = VARIANTS[arch]
    cls = FCN if cfg.kind == "fcn" else ResNet1D
    return cls(cfg, num_classes, in_channels=in_channels, dropout=dropout)
