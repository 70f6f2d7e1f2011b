"""InceptionTime (Ismail Fawaz et al. 2020, "InceptionTime: Finding AlexNet for Time Series Classification",
arXiv:1909.04939): one network of the paper's ensemble.

The paper's configuration (§3, Fig. 1-2, and its reference code ``hfawaz/InceptionTime``):

* depth 6 Inception modules, a residual connection every 3 modules (1x1 conv + BN shortcut, added, then ReLU);
* each module: a bottleneck 1x1 conv to 32 channels (skipped when its input has one channel, as in the
  reference code), three convs of 32 filters with kernels 40 / 20 / 10 on the bottleneck's output, and a 3-wide
  max pool (stride 1) followed by a 1x1 conv of 32 filters on the module's input; the four are concatenated
  (128 channels), batch-normalized and passed through a ReLU;
* global average pooling and a linear classifier.

The paper averages 5 such networks trained from different seeds ("InceptionTime" is the ensemble); training the
5 and averaging their softmax outputs is left to the user (``predict.py`` per checkpoint).

Input: ``B x C x T`` float with NaN in the padded tail steps. Padded steps are zeroed after every conv (what "same"
zero padding shows a series run alone) and set to -inf before the max pool (what its implicit padding is), and the
pooling averages over each series' own steps: in eval mode a series' logits do not depend on its batch's padding.

Self-contained: imports torch only, so it can be copied into a project as ``model.py``.
"""

import difflib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["DYNAMIC_LENGTH", "ONNX_DYNAMO", "VARIANTS", "InceptionConfig", "InceptionTime", "build_model"]

# export.py: both exporters handle this graph; the TorchScript-based one is the faster of the two
ONNX_DYNAMO = False
# fully convolutional with global pooling: any series length
DYNAMIC_LENGTH = True


@dataclass(frozen=True)
class InceptionConfig:
    """Depth in modules, filters per branch, the three kernel sizes, bottleneck width, residual period."""

    depth: int = 6
    filters: int = 32
    kernels: tuple[int, int, int] = (40, 20, 10)
    bottleneck: int = 32
    residual_every: int = 3


VARIANTS: dict[str, InceptionConfig] = {
    "inceptiontime": InceptionConfig(),
}


def padding_mask(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x with NaN steps set to 0, valid-step mask ``B x 1 x T``) for ``x`` of ``B x C x T``."""
    missing = torch.isnan(x)
    return torch.where(missing, torch.zeros_like(x), x), ~missing.any(dim=1, keepdim=True)


class InceptionModule(nn.Module):
    """Bottleneck, three parallel convs and a max-pool branch, concatenated, BN, ReLU."""

    def __init__(self, cin: int, cfg: InceptionConfig) -> None:
        super().__init__()
        # a bottleneck on a univariate input would widen it: the reference code skips it there
        use_bottleneck = cin > 1 and cfg.bottleneck > 0
        width = cfg.bottleneck if use_bottleneck else cin
        self.bottleneck: nn.Module = nn.Conv1d(cin, width, 1, bias=False) if use_bottleneck else nn.Identity()
        self.convs = nn.ModuleList(nn.Conv1d(width, cfg.filters, k, padding="same", bias=False) for k in cfg.kernels)
        self.pool = nn.MaxPool1d(3, stride=1, padding=1)
        self.pool_conv = nn.Conv1d(cin, cfg.filters, 1, bias=False)
        self.bn = nn.BatchNorm1d(cfg.filters * (len(cfg.kernels) + 1))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The module's 128-channel output with the padded steps zeroed (``x`` arrives zeroed there)."""
        b = self.bottleneck(x)
        branches = [conv(b) for conv in self.convs]
        pooled = self.pool(torch.where(mask, x, torch.full_like(x[:, :1], float("-inf"))))
        branches.append(self.pool_conv(torch.where(mask, pooled, torch.zeros_like(pooled[:, :1]))))
        out = self.relu(self.bn(torch.cat(branches, dim=1)))
        return torch.where(mask, out, torch.zeros_like(out[:, :1]))


class InceptionTime(nn.Module):
    """``depth`` Inception modules with a residual shortcut every ``residual_every``, GAP, linear classifier."""

    def __init__(self, cfg: InceptionConfig, num_classes: int, *, in_channels: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        width = cfg.filters * (len(cfg.kernels) + 1)
        self.blocks = nn.ModuleList(InceptionModule(in_channels if i == 0 else width, cfg) for i in range(cfg.depth))
        n_res = cfg.depth // cfg.residual_every
        self.shortcuts = nn.ModuleList(
            nn.Sequential(nn.Conv1d(in_channels if i == 0 else width, width, 1, bias=False), nn.BatchNorm1d(width))
            for i in range(n_res)
        )
        self.residual_every = cfg.residual_every
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features, ``B x 128``."""
        x, mask = padding_mask(x)
        residual = x
        for i, module in enumerate(self.blocks):
            x = module(x, mask)
            if (i + 1) % self.residual_every == 0:
                shortcut = self.shortcuts[(i + 1) // self.residual_every - 1](residual)
                x = torch.where(mask, self.relu(x + shortcut), torch.zeros_like(x[:, :1]))
                residual = x
        return x.sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``B x num_classes`` for ``x`` of ``B x C x T`` (NaN in the padded tail steps)."""
        return self.fc(self.dropout(self.forward_features(x)))


def build_model(arch: str, num_classes: int, in_channels: int = 1, *, dropout: float = 0.0, **kw: Any) -> InceptionTime:
    """Build InceptionTime by name.

    Args:
        arch: ``"inceptiontime"``.
        num_classes: size of the final linear layer.
        in_channels: channels (dimensions) of each series.
        dropout: before the classifier (0 in the paper).
        **kw: ``InceptionConfig`` fields to override (``depth``, ``filters``, ``kernels``, ...).
    """
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown InceptionTime variant {arch!r}; valid: {', '.join(VARIANTS)}.{hint}")
    cfg = InceptionConfig(**{**VARIANTS[arch].__dict__, **kw})
    return InceptionTime(cfg, num_classes, in_channels=in_channels, dropout=dropout)
