"""A Transformer encoder for sequence classification, with a padding mask (Vaswani et al. 2017, "Attention Is All
You Need", arXiv:1706.03762; applied to multivariate series classification by Zerveas et al. 2021, "A
Transformer-based Framework for Multivariate Time Series Representation Learning", arXiv:2010.02803).

Configuration: the defaults of Zerveas et al.'s reference code (``gzerveas/mvts_transformer``): each time step
linearly projected to ``d_model = 64``, 3 encoder layers, 8 heads, feed-forward width 256, dropout 0.1, sinusoidal
positions. Two departures, both for training stability on small archives: pre-LayerNorm blocks (Xiong et al. 2020,
arXiv:2002.04745) instead of their post-BatchNorm, and a masked mean over the valid steps instead of flattening
all ``T x d_model`` outputs (which would tie the classifier to one length).

Input: ``B x C x T`` float with NaN in the padded tail steps. Padded steps are masked as keys in every attention
(``F.scaled_dot_product_attention``'s boolean ``attn_mask``) and left out of the pooling, so a series' logits do
not depend on its batch's padding; positions are computed for the input's length, so any length exports.

Self-contained: imports torch only, so it can be copied into a project as ``model.py``.
"""

import difflib
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DYNAMIC_LENGTH", "ONNX_DYNAMO", "VARIANTS", "TransformerClassifier", "TransformerConfig", "build_model"]

# export.py: the TorchScript-based exporter maps scaled_dot_product_attention with a boolean mask to ONNX
# (dynamic batch and length); it is also several times faster than the torch.export-based one here
ONNX_DYNAMO = False
# positions are computed from the input's length: any length
DYNAMIC_LENGTH = True


@dataclass(frozen=True)
class TransformerConfig:
    """Width, depth, heads and feed-forward width of the encoder."""

    d_model: int
    layers: int
    heads: int
    ff: int


VARIANTS: dict[str, TransformerConfig] = {
    "transformer": TransformerConfig(d_model=64, layers=3, heads=8, ff=256),
    "transformer_small": TransformerConfig(d_model=32, layers=2, heads=4, ff=64),
}


def sinusoidal_positions(steps: int, dim: int, device: torch.device) -> torch.Tensor:
    """The fixed sin/cos position encoding of Vaswani et al. §3.5, ``steps x dim``."""
    position = torch.arange(steps, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    angles = position * freq  # steps x dim/2
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)  # interleaved: sin, cos, sin, cos ...


class SelfAttention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention`` (fused kernels where available)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"d_model {dim} must be divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """``x`` of ``B x T x D``; ``key_mask`` ``B x 1 x 1 x T``, True where a step may be attended to."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class EncoderBlock(nn.Module):
    """Pre-norm Transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, cfg: TransformerConfig, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg.d_model, cfg.heads, dropout)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(cfg.ff, cfg.d_model)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """The block's output, ``B x T x D``."""
        x = x + self.drop(self.attn(self.norm1(x), key_mask))
        return x + self.drop(self.mlp(self.norm2(x)))


class TransformerClassifier(nn.Module):
    """Per-step linear embedding + positions, pre-norm encoder blocks, masked mean pooling, linear classifier."""

    def __init__(self, cfg: TransformerConfig, num_classes: int, *, in_channels: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        self.d_model = cfg.d_model
        self.embed = nn.Linear(in_channels, cfg.d_model)
        self.blocks = nn.ModuleList(EncoderBlock(cfg, dropout) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.fc = nn.Linear(cfg.d_model, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The masked mean of the encoder's outputs, ``B x d_model``."""
        missing = torch.isnan(x)
        valid = ~missing.any(dim=1)  # B x T
        # an all-padding row would make every attention weight -inf (NaN out): let it attend to its first step
        first = torch.arange(valid.shape[1], device=x.device) == 0
        valid = valid | first
        seq = torch.where(missing, torch.zeros_like(x), x).transpose(1, 2)  # B x T x C
        h = self.embed(seq) + sinusoidal_positions(seq.shape[1], self.d_model, x.device).to(seq.dtype)
        key_mask = valid[:, None, None, :]
        for block in self.blocks:
            h = block(h, key_mask)
        h = self.norm(h)
        weights = valid.unsqueeze(-1).to(h.dtype)
        return (h * weights).sum(dim=1) / weights.sum(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``B x num_classes`` for ``x`` of ``B x C x T`` (NaN in the padded tail steps)."""
        return self.fc(self.forward_features(x))


def build_model(
    arch: str, num_classes: int, in_channels: int = 1, *, dropout: float = 0.1, **kw: Any
) -> TransformerClassifier:
    """Build a Transformer classifier by name.

    Args:
        arch: ``"transformer"`` (Zerveas et al.'s size) or ``"transformer_small"`` (for a few hundred series).
        num_classes: size of the final linear layer.
        in_channels: channels (dimensions) of each series.
        dropout: in attention, the MLP and on each residual branch.
        **kw: options of other families are an error.
    """
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown Transformer classifier {arch!r}; valid: {', '.join(VARIANTS)}.{hint}")
    if kw:
        raise TypeError(f"unexpected options for {arch}: {', '.join(kw)}")
    return TransformerClassifier(VARIANTS[arch], num_classes, in_channels=in_channels, dropout=dropout)
