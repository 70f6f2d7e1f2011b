"""Vision Transformer (ViT): an image is cut into 16x16 patches, each patch is a token, tokens go through a
plain pre-norm Transformer encoder and the class token is classified.

Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
arXiv:2010.11929. Tiny/Small sizes: Touvron et al. 2021 (DeiT), arXiv:2012.12877.

State-dict compatible with timm's ``vit_{tiny,small,base,large}_patch16_224`` (same module names, so
``load_state_dict(timm_model.state_dict(), strict=True)`` works and gives the same logits), and with timm's
initialisation. Differences from timm's defaults that never change the result at 224 px:

* the position embeddings are resampled on the fly for any other input size (timm's ``dynamic_img_size=True``),
  bicubic with antialiasing like timm's ``resample_abs_pos_embed``: a 32x32 image gives a 2x2 patch grid;
* an image side that is not a multiple of 16 is zero-padded on the right/bottom (timm's ``dynamic_img_pad``)
  instead of being rejected.

Self-contained: imports torch and torchvision only, so it can be copied into a project as ``model.py``.
"""

import difflib
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

__all__ = [
    "VARIANTS",
    "ViTConfig",
    "VisionTransformer",
    "build_model",
    "resample_pos_embed",
    "vit_base_patch16_224",
    "vit_large_patch16_224",
    "vit_small_patch16_224",
    "vit_tiny_patch16_224",
]


@dataclass(frozen=True)
class ViTConfig:
    """The size of one ViT variant. ``img_size`` is only the grid the position embeddings are stored for."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    patch_size: int = 16
    img_size: int = 224


VARIANTS: dict[str, ViTConfig] = {
    "vit_tiny_patch16_224": ViTConfig(embed_dim=192, depth=12, num_heads=3),
    "vit_small_patch16_224": ViTConfig(embed_dim=384, depth=12, num_heads=6),
    "vit_base_patch16_224": ViTConfig(embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch16_224": ViTConfig(embed_dim=1024, depth=24, num_heads=16),
}


def resample_pos_embed(
    pos_embed: torch.Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int], num_prefix_tokens: int = 1
) -> torch.Tensor:
    """Resize the patch part of a ``1 x (prefix + H*W) x C`` position embedding to another patch grid.

    Bicubic with antialiasing (timm's ``resample_abs_pos_embed``); the class token's embedding is kept as is.
    Also used to load 224 px weights into a model meant for another resolution.
    """
    if new_grid == old_grid:
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    dim = grid.shape[-1]
    # interpolate in fp32: bicubic kernels are not implemented for every half type, and fp16 loses the fine detail
    grid = grid.float().reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False, antialias=True)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=1)


def _drop_path(p: float) -> nn.Module:
    # "row" mode drops the whole residual branch per sample (Huang et al. 2016, arXiv:1603.09382)
    return StochasticDepth(p, "row") if p > 0 else nn.Identity()


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch x patch`` stride-``patch`` convolution: B x 3 x H x W -> B x (H/p * W/p) x C."""

    def __init__(self, patch_size: int, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Tokens B x N x C and the patch grid (rows, cols) they came from."""
        p = self.patch_size
        pad_h, pad_w = -x.shape[-2] % p, -x.shape[-1] % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.proj(x)
        grid = (x.shape[-2], x.shape[-1])
        return x.flatten(2).transpose(1, 2), grid


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection (the naming of timm and of most checkpoints)."""

    def __init__(self, dim: int, num_heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x N x C -> B x N x C."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        # fused kernel (flash / memory-efficient where available); default scale is head_dim ** -0.5
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))


class Mlp(nn.Module):
    """Linear -> GELU -> Linear, the Transformer feed-forward layer."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x N x C -> B x N x C."""
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm Transformer encoder block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        drop_path: float = 0.0,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        # eps 1e-6 as in the original JAX ViT and timm (PyTorch's default is 1e-5)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, attn_drop=attn_drop, proj_drop=proj_drop)
        self.drop_path1 = _drop_path(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)
        self.drop_path2 = _drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x N x C -> B x N x C."""
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """ViT with a class token, learned absolute position embeddings and a linear head on the class token.

    Works for any input of at least one patch: the position embeddings are stored for ``cfg.img_size``
    (a 14x14 grid at 224 px) and resampled per forward pass when the grid differs.
    """

    def __init__(
        self,
        cfg: ViTConfig,
        num_classes: int = 1000,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
        attn_drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.grid_size = (cfg.img_size // cfg.patch_size, cfg.img_size // cfg.patch_size)
        self.patch_embed = PatchEmbed(cfg.patch_size, in_channels, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid_size[0] * self.grid_size[1], dim))
        # stochastic depth grows linearly from 0 (first block) to drop_path_rate (last), as timm's linspace
        rates = torch.linspace(0, drop_path_rate, cfg.depth, device="cpu").tolist()
        self.blocks = nn.Sequential(
            *[Block(dim, cfg.num_heads, cfg.mlp_ratio, r, attn_drop_rate, proj_drop_rate) for r in rates]
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # timm's ViT init: truncated-normal(0.02) position embeddings and linears with zero bias, a near-zero
        # class token; the patch conv and LayerNorms keep PyTorch's defaults
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The normalised tokens, B x (1 + number of patches) x embed_dim; token 0 is the class token."""
        x, grid = self.patch_embed(x)
        pos_embed = resample_pos_embed(self.pos_embed, grid, self.grid_size)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + pos_embed
        return self.norm(self.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, B x num_classes, from the class token."""
        x = self.forward_features(x)[:, 0]
        return self.head(self.head_drop(x))


def _vision_transformer(
    arch: str, num_classes: int, drop_path_rate: float, dropout: float | None, small_input: bool, **kw: Any
) -> VisionTransformer:
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown ViT variant {arch!r}; valid: {', '.join(VARIANTS)}.{hint}")
    if small_input:
        raise ValueError(
            "ViT has no small_input variant; use image size >= 32 (a 32 px image is a 2x2 patch grid) "
            "or pick a family with a CIFAR-style stem (ResNet, ConvNeXt, RegNetY)"
        )
    # timm's default head dropout (its drop_rate) is 0
    return VisionTransformer(
        VARIANTS[arch],
        num_classes=num_classes,
        drop_path_rate=drop_path_rate,
        dropout=0.0 if dropout is None else dropout,
        **kw,
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
    """Build a ViT variant by name (``vit_tiny_patch16_224``, ``vit_small_patch16_224``, ...).

    Args:
        arch: a key of ``VARIANTS`` (timm's model names).
        num_classes: size of the linear head; only ``head.weight``/``head.bias`` depend on it.
        drop_path_rate: stochastic-depth rate of the last block, growing linearly from 0 over the blocks
            (DeiT trains ViT-S/B with 0.1).
        dropout: dropout on the class token before the head (timm's ``drop_rate``); ``None`` means timm's 0.
        small_input: not supported (raises ``ValueError``): patches already give any size >= 32 a grid.
        **kw: ``attn_drop_rate`` and ``proj_drop_rate`` (timm's attention / projection+MLP dropout, default 0)
            and ``in_channels``.

    Returns:
        The model, with timm's module names, so timm weights load with ``strict=True``.
    """
    return _vision_transformer(arch, num_classes, drop_path_rate, dropout, small_input, **kw)


def vit_tiny_patch16_224(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """ViT-Ti/16 (5.7M params)."""
    return build_model("vit_tiny_patch16_224", num_classes, **kw)


def vit_small_patch16_224(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """ViT-S/16 (22.1M params)."""
    return build_model("vit_small_patch16_224", num_classes, **kw)


def vit_base_patch16_224(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """ViT-B/16 (86.6M params)."""
    return build_model("vit_base_patch16_224", num_classes, **kw)


def vit_large_patch16_224(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """ViT-L/16 (304.3M params)."""
    return build_model("vit_large_patch16_224", num_classes, **kw)
