"""MobileViT: MobileNetV2 inverted residuals for local features, and MobileViT blocks that run a small
Transformer over 2x2-patch-unfolded feature maps for global context.

Mehta & Rastegari 2022, "MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision Transformer",
arXiv:2110.02178 (ICLR 2022). Inverted residual: Sandler et al. 2018, MobileNetV2, arXiv:1801.04381.

State-dict compatible with timm's ``mobilevit_{xxs,xs,s}`` (which builds them with its generic ByobNet): same
module names (``stem.conv``, ``stages.N.M.conv1_1x1.conv``, ``stages.N.1.transformer.K.attn.qkv``,
``final_conv.bn``, ``head.fc``, ...), so ``load_state_dict(timm_model.state_dict(), strict=True)`` works and
gives the same logits; same initialisation. The one deliberate difference is stochastic depth, see
``MobileViT``.

Self-contained: imports torch and torchvision only, so it can be copied into a project as ``model.py``.
"""

import difflib
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

__all__ = [
    "VARIANTS",
    "MobileViT",
    "MobileViTConfig",
    "StageConfig",
    "build_model",
    "mobilevit_s",
    "mobilevit_xs",
    "mobilevit_xxs",
]


@dataclass(frozen=True)
class StageConfig:
    """One stage: ``num_blocks`` inverted residuals (the first one strided), then an optional MobileViT block.

    ``transformer_dim`` 0 means a pure convolutional stage (the first two stages of every variant).
    """

    out_channels: int
    num_blocks: int
    stride: int
    transformer_dim: int = 0
    transformer_depth: int = 0


@dataclass(frozen=True)
class MobileViTConfig:
    """A MobileViT variant: its stages, the inverted-residual expansion and the width of the final 1x1 conv."""

    stages: tuple[StageConfig, ...]
    expand_ratio: float
    num_features: int
    stem_channels: int = 16
    patch_size: int = 2
    num_heads: int = 4
    mlp_ratio: float = 2.0


VARIANTS: dict[str, MobileViTConfig] = {
    "mobilevit_xxs": MobileViTConfig(
        stages=(
            StageConfig(16, 1, 1),
            StageConfig(24, 3, 2),
            StageConfig(48, 1, 2, transformer_dim=64, transformer_depth=2),
            StageConfig(64, 1, 2, transformer_dim=80, transformer_depth=4),
            StageConfig(80, 1, 2, transformer_dim=96, transformer_depth=3),
        ),
        expand_ratio=2.0,
        num_features=320,
    ),
    "mobilevit_xs": MobileViTConfig(
        stages=(
            StageConfig(32, 1, 1),
            StageConfig(48, 3, 2),
            StageConfig(64, 1, 2, transformer_dim=96, transformer_depth=2),
            StageConfig(80, 1, 2, transformer_dim=120, transformer_depth=4),
            StageConfig(96, 1, 2, transformer_dim=144, transformer_depth=3),
        ),
        expand_ratio=4.0,
        num_features=384,
    ),
    "mobilevit_s": MobileViTConfig(
        stages=(
            StageConfig(32, 1, 1),
            StageConfig(64, 3, 2),
            StageConfig(96, 1, 2, transformer_dim=144, transformer_depth=2),
            StageConfig(128, 1, 2, transformer_dim=192, transformer_depth=4),
            StageConfig(160, 1, 2, transformer_dim=240, transformer_depth=3),
        ),
        expand_ratio=4.0,
        num_features=640,
    ),
}


def _drop_path(p: float) -> nn.Module:
    # "row" mode drops the whole residual branch per sample (Huang et al. 2016, arXiv:1603.09382)
    return StochasticDepth(p, "row") if p > 0 else nn.Identity()


class ConvNormAct(nn.Module):
    """Conv (no bias: BatchNorm follows) -> BatchNorm -> optional SiLU. Keys ``conv.*`` and ``bn.*``."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1, act: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x C_in x H x W -> B x C_out x H/stride x W/stride."""
        return self.act(self.bn(self.conv(x)))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> 3x3 depthwise (strided) -> 1x1 linear projection, + input if shapes match.

    The projection has no activation (a "linear bottleneck", MobileNetV2 §3.2): ReLU-like activations in the
    narrow space would destroy information.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, expand_ratio: float, drop_path: float = 0.0
    ) -> None:
        super().__init__()
        mid = int(in_channels * expand_ratio)
        self.has_shortcut = stride == 1 and in_channels == out_channels
        self.conv1_1x1 = ConvNormAct(in_channels, mid, 1)
        self.conv2_kxk = ConvNormAct(mid, mid, 3, stride=stride, groups=mid)
        self.conv3_1x1 = ConvNormAct(mid, out_channels, 1, act=False)
        # only a residual branch may be dropped; timm also wraps the shortcut-free blocks in DropPath, which
        # zeroes a sample's whole feature map, so those get none here (no state_dict difference)
        self.drop_path = _drop_path(drop_path) if self.has_shortcut else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x C_in x H x W -> B x C_out x H/stride x W/stride."""
        out = self.conv3_1x1(self.conv2_kxk(self.conv1_1x1(x)))
        return x + self.drop_path(out) if self.has_shortcut else out


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"transformer_dim {dim} must be divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x N x C -> B x N x C."""
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """Linear -> SiLU -> Linear (MobileViT uses Swish in its Transformer too)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.SiLU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x N x C -> B x N x C."""
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm Transformer encoder block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.drop_path1 = _drop_path(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path2 = _drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x N x C -> B x N x C."""
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


def _unfold(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """B x C x H x W -> (B*ph*pw) x (H/ph * W/pw) x C.

    One sequence per pixel position inside a patch, running over all patches: attention mixes pixels that sit
    at the same place in different patches, which is MobileViT's cheap global receptive field (paper §3.1).
    """
    b, c, h, w = x.shape
    nh, nw = h // ph, w // pw
    x = x.reshape(b, c, nh, ph, nw, pw).permute(0, 3, 5, 2, 4, 1)  # B, ph, pw, nh, nw, C
    return x.reshape(b * ph * pw, nh * nw, c)


def _fold(x: torch.Tensor, batch: int, nh: int, nw: int, ph: int, pw: int) -> torch.Tensor:
    """The inverse of ``_unfold``: (B*ph*pw) x (nh*nw) x C -> B x C x (nh*ph) x (nw*pw)."""
    c = x.shape[-1]
    x = x.reshape(batch, ph, pw, nh, nw, c).permute(0, 5, 3, 1, 4, 2)  # B, C, nh, ph, nw, pw
    return x.reshape(batch, c, nh * ph, nw * pw)


class MobileViTBlock(nn.Module):
    """Local 3x3 conv -> 1x1 to ``transformer_dim`` -> unfold into patches -> Transformer -> fold ->
    1x1 back to C -> concat with the block input -> 3x3 fusion conv (paper Fig. 1b).
    """

    def __init__(
        self,
        channels: int,
        transformer_dim: int,
        transformer_depth: int,
        patch_size: int,
        num_heads: int,
        mlp_ratio: float,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.conv_kxk = ConvNormAct(channels, channels, 3)
        self.conv_1x1 = nn.Conv2d(channels, transformer_dim, 1, bias=False)
        self.transformer = nn.Sequential(
            *[
                TransformerBlock(transformer_dim, num_heads, mlp_ratio, drop_path=drop_path)
                for _ in range(transformer_depth)
            ]
        )
        self.norm = nn.LayerNorm(transformer_dim)
        self.conv_proj = ConvNormAct(transformer_dim, channels, 1)
        self.conv_fusion = ConvNormAct(2 * channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x C x H x W -> B x C x H x W."""
        shortcut = x
        x = self.conv_1x1(self.conv_kxk(x))
        b, _, h, w = x.shape
        p = self.patch_size
        # a side that is not a multiple of the patch is resized up to one and back afterwards (as timm and
        # ml-cvnets do); padding would need an attention mask
        nh, nw = math.ceil(h / p), math.ceil(w / p)
        resized = (nh * p, nw * p) != (h, w)
        if resized:
            x = F.interpolate(x, size=(nh * p, nw * p), mode="bilinear", align_corners=False)
        x = self.norm(self.transformer(_unfold(x, p, p)))
        x = _fold(x, b, nh, nw, p, p)
        if resized:
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        x = self.conv_proj(x)
        return self.conv_fusion(torch.cat((shortcut, x), dim=1))


class ClassifierHead(nn.Module):
    """Global average pool -> dropout -> linear. Only ``fc`` depends on the class count."""

    def __init__(self, in_features: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """B x C x H x W -> B x num_classes."""
        return self.fc(self.drop(torch.flatten(self.global_pool(x), 1)))


class MobileViT(nn.Module):
    """3x3/2 stem, five stages (total stride 32), 1x1 ``final_conv`` to ``num_features``, pooled linear head.

    Stochastic depth: the rate grows linearly (timm's linspace) over the stage blocks, counting each MobileViT
    block as one block whose Transformer layers all share its rate. Unlike timm, the inverted residuals without
    a shortcut (the first block of each stage) get no drop path: dropping them would zero the whole feature
    map of a sample rather than skip a residual branch.
    """

    def __init__(
        self,
        cfg: MobileViTConfig,
        num_classes: int = 1000,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.stem = ConvNormAct(in_channels, cfg.stem_channels, 3, stride=2)
        num_blocks = sum(s.num_blocks + (1 if s.transformer_dim else 0) for s in cfg.stages)
        rates = iter(torch.linspace(0, drop_path_rate, num_blocks, device="cpu").tolist())
        stages: list[nn.Module] = []
        prev = cfg.stem_channels
        for s in cfg.stages:
            blocks: list[nn.Module] = []
            for i in range(s.num_blocks):
                stride = s.stride if i == 0 else 1
                blocks.append(InvertedResidual(prev, s.out_channels, stride, cfg.expand_ratio, next(rates)))
                prev = s.out_channels
            if s.transformer_dim:
                blocks.append(
                    MobileViTBlock(
                        prev,
                        s.transformer_dim,
                        s.transformer_depth,
                        cfg.patch_size,
                        cfg.num_heads,
                        cfg.mlp_ratio,
                        drop_path=next(rates),
                    )
                )
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.final_conv = ConvNormAct(prev, cfg.num_features, 1)
        self.head = ClassifierHead(cfg.num_features, num_classes, dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        # timm's ByobNet init: He-normal (fan-out) convs, N(0, 0.01) linears with zero bias, unit BatchNorm
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        # zero-init the last BN of each residual block so it starts as identity (Goyal et al. 2017,
        # arXiv:1706.02677), as timm does
        for m in self.modules():
            if isinstance(m, InvertedResidual) and m.has_shortcut:
                nn.init.zeros_(m.conv3_1x1.bn.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before pooling, B x num_features x H/32 x W/32."""
        return self.final_conv(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, B x num_classes."""
        return self.head(self.forward_features(x))


def _mobilevit(
    arch: str, num_classes: int, drop_path_rate: float, dropout: float | None, small_input: bool, **kw: Any
) -> MobileViT:
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown MobileViT variant {arch!r}; valid: {', '.join(VARIANTS)}.{hint}")
    if small_input:
        raise ValueError(
            "MobileViT has no small_input variant; use image size >= 32 (feature maps smaller than the 2x2 "
            "patch are resized up inside the MobileViT blocks) or pick a family with a CIFAR-style stem "
            "(ResNet, ConvNeXt, RegNetY)"
        )
    # timm's default head dropout (its drop_rate) is 0
    return MobileViT(
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
    """Build a MobileViT variant by name (``mobilevit_xxs``, ``mobilevit_xs``, ``mobilevit_s``).

    Args:
        arch: a key of ``VARIANTS`` (timm's model names).
        num_classes: size of the classifier; only ``head.fc`` depends on it.
        drop_path_rate: stochastic-depth rate of the last block, growing linearly from 0 (see ``MobileViT``).
        dropout: dropout before ``head.fc``; ``None`` means timm's default, 0.
        small_input: not supported (raises ``ValueError``).
        **kw: passed to ``MobileViT`` (``in_channels``).

    Returns:
        The model, with timm's module names, so timm weights load with ``strict=True``.
    """
    return _mobilevit(arch, num_classes, drop_path_rate, dropout, small_input, **kw)


def mobilevit_xxs(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """MobileViT-XXS (1.3M params)."""
    return build_model("mobilevit_xxs", num_classes, **kw)


def mobilevit_xs(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """MobileViT-XS (2.3M params)."""
    return build_model("mobilevit_xs", num_classes, **kw)


def mobilevit_s(num_classes: int = 1000, **kw: Any) -> nn.Module:
    """MobileViT-S (5.6M params)."""
    return build_model("mobilevit_s", num_classes, **kw)
