"""PatchTST (Nie, Nguyen, Sinthong & Kalagnanam 2023, "A Time Series is Worth 64 Words: Long-term Forecasting
with Transformers", ICLR 2023, arXiv:2211.14730), supervised, channel-independent.

The paper's design (§3.1, and its reference code ``yuqinie98/PatchTST``):

* channel independence: every channel of ``B x L x C`` is a separate univariate series through one shared
  Transformer (``B*C`` sequences);
* RevIN (Kim et al. 2022, "Reversible Instance Normalization"): each window is normalized by its own mean and
  standard deviation, with a learnable affine, and the forecast de-normalized the same way;
* patching: the window, padded at the end by repeating its last value ``stride`` times, is cut into patches of
  ``patch_len`` with step ``stride``; each patch is linearly embedded to ``d_model`` and given a learned position;
* a vanilla encoder with BatchNorm (the paper found it better than LayerNorm for series) and GELU;
* a flatten head: all patch embeddings -> one linear layer -> the horizon.

Variants are the paper's two scripts' sizes: ``patchtst`` (d_model 128, 16 heads, 3 layers, feed-forward 256,
dropout 0.2: the large datasets) and ``patchtst_small`` (d_model 16, 4 heads, 3 layers, feed-forward 128,
dropout 0.3: ETTh1/ETTh2/ILI, a few thousand steps). The reference code's "residual attention" (scores passed
from layer to layer, off in the paper's equations) is left out. Input ``B x lookback x C``, output
``B x horizon x C``; the lookback is fixed by the head, the batch is dynamic.

Self-contained: imports torch only, so it can be copied into a project as ``model.py``.
"""

import difflib
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DYNAMIC_LENGTH", "ONNX_DYNAMO", "VARIANTS", "PatchTST", "PatchTSTConfig", "build_model"]

# export.py: the torch.export-based exporter; the TorchScript-based one cannot export Tensor.unfold (the patching)
ONNX_DYNAMO = True
# the flatten head is (patches x d_model) -> horizon: the lookback is fixed
DYNAMIC_LENGTH = False


@dataclass(frozen=True)
class PatchTSTConfig:
    """Patching, encoder size and dropout."""

    patch_len: int = 16
    stride: int = 8
    d_model: int = 128
    heads: int = 16
    layers: int = 3
    ff: int = 256
    dropout: float = 0.2
    head_dropout: float = 0.0


VARIANTS: dict[str, PatchTSTConfig] = {
    "patchtst": PatchTSTConfig(),
    "patchtst_small": PatchTSTConfig(d_model=16, heads=4, ff=128, dropout=0.3),
}


class BatchNormSeq(nn.Module):
    """BatchNorm1d over the features of ``N x T x D`` (statistics over sequences and steps)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized ``x``, same shape."""
        return self.bn(x.transpose(1, 2)).transpose(1, 2)


class EncoderLayer(nn.Module):
    """Post-norm Transformer layer with BatchNorm: x = BN(x + Attn(x)); x = BN(x + MLP(x))."""

    def __init__(self, cfg: PatchTSTConfig) -> None:
        super().__init__()
        if cfg.d_model % cfg.heads:
            raise ValueError(f"d_model {cfg.d_model} must be divisible by heads {cfg.heads}")
        self.heads, self.dropout = cfg.heads, cfg.dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.norm1 = BatchNormSeq(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.ff), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.ff, cfg.d_model)
        )
        self.norm2 = BatchNormSeq(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's output, ``N x patches x d_model``."""
        n, t, d = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        x = self.norm1(x + self.drop(self.proj(attn.transpose(1, 2).reshape(n, t, d))))
        return self.norm2(x + self.drop(self.mlp(x)))


class PatchTST(nn.Module):
    """RevIN, patching, a BatchNorm Transformer encoder over patches, a flatten head; channels independent."""

    def __init__(self, cfg: PatchTSTConfig, lookback: int, horizon: int, channels: int = 1) -> None:
        super().__init__()
        if lookback < cfg.patch_len:
            raise ValueError(f"lookback {lookback} is shorter than one patch ({cfg.patch_len} steps)")
        self.cfg, self.horizon = cfg, horizon
        # the end padding by `stride` repeats adds one patch (the reference code's padding_patch="end")
        self.patches = (lookback - cfg.patch_len) // cfg.stride + 2
        # RevIN's learnable affine, per channel
        self.revin_weight = nn.Parameter(torch.ones(channels))
        self.revin_bias = nn.Parameter(torch.zeros(channels))
        self.embed = nn.Linear(cfg.patch_len, cfg.d_model)
        # learned positions, initialized as the reference code does (uniform +-0.02)
        self.position = nn.Parameter(torch.empty(self.patches, cfg.d_model).uniform_(-0.02, 0.02))
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.layers))
        self.head_drop = nn.Dropout(cfg.head_dropout)
        self.head = nn.Linear(self.patches * cfg.d_model, horizon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x horizon x C`` forecasts from ``x`` of ``B x lookback x C``."""
        b, _, c = x.shape
        # RevIN: per-window, per-channel statistics (eps as in the reference code)
        mean = x.mean(dim=1, keepdim=True).detach()
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + 1e-5).detach()
        z = (x - mean) / std * self.revin_weight + self.revin_bias
        z = z.transpose(1, 2).reshape(b * c, -1)  # one univariate series per (window, channel)
        z = torch.cat([z, z[:, -1:].expand(-1, self.cfg.stride)], dim=1)
        patches = z.unfold(1, self.cfg.patch_len, self.cfg.stride)  # B*C x patches x patch_len
        h = self.drop(self.embed(patches) + self.position)
        for layer in self.layers:
            h = layer(h)
        y = self.head(self.head_drop(h.flatten(1))).view(b, c, self.horizon).transpose(1, 2)
        return (y - self.revin_bias) / (self.revin_weight + 1e-10) * std + mean


def build_model(arch: str, *, lookback: int, horizon: int, channels: int = 1, **kw: Any) -> PatchTST:
    """Build a PatchTST variant by name.

    Args:
        arch: ``"patchtst"`` or ``"patchtst_small"``.
        lookback: steps in each input window (fixed by the head).
        horizon: steps forecast at once.
        channels: target series per window (each through the same weights).
        **kw: ``PatchTSTConfig`` fields to override (``patch_len``, ``stride``, ``dropout``, ...).
    """
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown PatchTST variant {arch!r}; valid: {', '.join(VARIANTS)}.{hint}")
    return PatchTST(replace(VARIANTS[arch], **kw), lookback, horizon, channels)
