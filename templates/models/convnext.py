"""ConvNeXt (Liu et al. 2022, "A ConvNet for the 2020s", arXiv:2201.03545), atto..large as defined in timm.

State-dict compatible with ``timm.create_model("convnext_*")``: ``stem.0/stem.1``, ``stages.N.downsample.0/1``,
``stages.N.blocks.M.{conv_dw, norm, mlp.fc1, mlp.fc2, gamma}``, ``head.norm``, ``head.fc``. timm's published
weights (including the converted Facebook ones) therefore load with ``strict=True``.

tiny/small/base/large are the paper's models. atto/femto/pico/nano are Ross Wightman's smaller timm variants:
same design, narrower and shallower, and built with ``conv_mlp=True``: the MLP is two 1x1 convs on NCHW tensors
with a channels-first LayerNorm (faster for small widths), so their ``mlp.fc*`` weights are 4-D
(``out x in x 1 x 1``) where the paper's variants use ``nn.Linear`` on NHWC tensors. Both compute the same
function; the config records which one a variant uses so its weights load.

Self-contained: imports torch and torchvision only, so it can be copied into a project as ``model.py``.
"""

import difflib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import StochasticDepth

__all__ = [
    "VARIANTS",
    "ConvNeXt",
    "ConvNeXtBlock",
    "ConvNeXtConfig",
    "LayerNorm2d",
    "build_model",
    "convnext_atto",
    "convnext_base",
    "convnext_femto",
    "convnext_large",
    "convnext_nano",
    "convnext_pico",
    "convnext_small",
    "convnext_tiny",
]


@dataclass(frozen=True)
class ConvNeXtConfig:
    """Blocks and channels per stage; ``conv_mlp`` picks 1x1-conv MLPs (timm's small variants) over Linear."""

    depths: tuple[int, int, int, int]
    dims: tuple[int, int, int, int]
    conv_mlp: bool = False


VARIANTS: dict[str, ConvNeXtConfig] = {
    # timm's small variants (depth ratio 2:2:6:2 or 2:2:8:2)
    "convnext_atto": ConvNeXtConfig((2, 2, 6, 2), (40, 80, 160, 320), conv_mlp=True),
    "convnext_femto": ConvNeXtConfig((2, 2, 6, 2), (48, 96, 192, 384), conv_mlp=True),
    "convnext_pico": ConvNeXtConfig((2, 2, 6, 2), (64, 128, 256, 512), conv_mlp=True),
    "convnext_nano": ConvNeXtConfig((2, 2, 8, 2), (80, 160, 320, 640), conv_mlp=True),
    # the paper's models (§2: stage compute ratio 1:1:3:1 as in Swin, 3:3:9:3 for T and 3:3:27:3 above)
    "convnext_tiny": ConvNeXtConfig((3, 3, 9, 3), (96, 192, 384, 768)),
    "convnext_small": ConvNeXtConfig((3, 3, 27, 3), (96, 192, 384, 768)),
    "convnext_base": ConvNeXtConfig((3, 3, 27, 3), (128, 256, 512, 1024)),
    "convnext_large": ConvNeXtConfig((3, 3, 27, 3), (192, 384, 768, 1536)),
}

# LayerNorm epsilon used throughout ConvNeXt (the official code and timm)
LN_EPS = 1e-6


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW tensor (normalises each pixel's C values)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` (B x C x H x W) over C."""
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Mlp(nn.Module):
    """The inverted-bottleneck MLP (C -> 4C -> C, GELU), as two Linears on NHWC or two 1x1 convs on NCHW."""

    def __init__(self, dim: int, hidden: int, conv: bool) -> None:
        super().__init__()
        if conv:
            self.fc1: nn.Module = nn.Conv2d(dim, hidden, kernel_size=1)
            self.fc2: nn.Module = nn.Conv2d(hidden, dim, kernel_size=1)
        else:
            self.fc1 = nn.Linear(dim, hidden)
            self.fc2 = nn.Linear(hidden, dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """fc1 -> GELU -> fc2."""
        return self.fc2(self.act(self.fc1(x)))


class ConvNeXtBlock(nn.Module):
    """7x7 depthwise conv -> LayerNorm -> MLP (4x) -> layer scale, plus the identity (paper Fig. 4).

    Layer scale (``gamma``, init 1e-6, Touvron et al. 2021, arXiv:2103.17239) lets deep stacks start close
    to the identity; stochastic depth drops the whole residual branch per sample.
    """

    def __init__(
        self,
        dim: int,
        drop_path: float = 0.0,
        conv_mlp: bool = False,
        mlp_ratio: int = 4,
        ls_init_value: float = 1e-6,
    ) -> None:
        super().__init__()
        self.conv_mlp = conv_mlp
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm: nn.Module = LayerNorm2d(dim, eps=LN_EPS) if conv_mlp else nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = Mlp(dim, mlp_ratio * dim, conv=conv_mlp)
        self.gamma = nn.Parameter(torch.full((dim,), ls_init_value))
        self.drop_path = StochasticDepth(drop_path, "row")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + drop_path(gamma * mlp(norm(dwconv(x))))."""
        shortcut = x
        x = self.conv_dw(x)
        if self.conv_mlp:
            x = self.mlp(self.norm(x))
        else:
            # channels-last so LayerNorm and the Linears act on C
            x = self.mlp(self.norm(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        x = x * self.gamma.reshape(1, -1, 1, 1)
        return self.drop_path(x) + shortcut


class ConvNeXtStage(nn.Module):
    """An optional downsampling layer (LayerNorm + 2x2/2 conv) followed by ``depth`` blocks."""

    def __init__(
        self, in_dim: int, out_dim: int, depth: int, drop_path_rates: list[float], conv_mlp: bool, stride: int
    ) -> None:
        super().__init__()
        if stride > 1 or in_dim != out_dim:
            # separate downsampling layers with a LayerNorm before them: training diverges without it (§2.6)
            self.downsample: nn.Module = nn.Sequential(
                LayerNorm2d(in_dim, eps=LN_EPS),
                nn.Conv2d(in_dim, out_dim, kernel_size=2, stride=2),
            )
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*[ConvNeXtBlock(out_dim, drop_path_rates[i], conv_mlp) for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Downsample, then the blocks."""
        return self.blocks(self.downsample(x))


class ConvNeXt(nn.Module):
    """ConvNeXt: patchify stem, four stages, then global average pool -> LayerNorm -> Linear.

    ``small_input=False`` is the paper's 4x4/4 "patchify" stem (total stride 32). ``small_input=True`` replaces
    it with a 3x3/1 conv for 32-64 px images (the CIFAR-style stem of He et al. 2015 §4.2): stage strides are
    unchanged, so the total stride is 8 and a 32x32 image ends as a 4x4 map. Only ``stem.0.weight`` changes
    shape (dims[0] x 3 x 3 x 3); keys stay the same.
    """

    def __init__(
        self,
        cfg: ConvNeXtConfig,
        num_classes: int = 1000,
        *,
        drop_path_rate: float = 0.0,
        dropout: float = 0.0,
        small_input: bool = False,
        in_channels: int = 3,
        head_init_scale: float = 1.0,
    ) -> None:
        super().__init__()
        dims = cfg.dims
        if small_input:
            stem_conv = nn.Conv2d(in_channels, dims[0], kernel_size=3, stride=1, padding=1)
        else:
            stem_conv = nn.Conv2d(in_channels, dims[0], kernel_size=4, stride=4)
        self.stem = nn.Sequential(stem_conv, LayerNorm2d(dims[0], eps=LN_EPS))

        # stochastic depth rate grows linearly over all blocks, 0 .. drop_path_rate (timm's linspace)
        total = sum(cfg.depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        stages = []
        prev = dims[0]
        for i, (depth, dim) in enumerate(zip(cfg.depths, dims, strict=True)):
            stage_rates, rates = rates[:depth], rates[depth:]
            stages.append(ConvNeXtStage(prev, dim, depth, stage_rates, cfg.conv_mlp, stride=1 if i == 0 else 2))
            prev = dim
        self.stages = nn.Sequential(*stages)

        # ConvNeXt pools *before* the final norm (pool -> LN -> fc), unlike most nets; timm keeps this order
        self.head = nn.Sequential(
            OrderedDict(
                global_pool=nn.AdaptiveAvgPool2d(1),
                norm=LayerNorm2d(prev, eps=LN_EPS),
                flatten=nn.Flatten(1),
                drop=nn.Dropout(dropout),
                fc=nn.Linear(prev, num_classes),
            )
        )
        self._init_weights(head_init_scale)

    def _init_weights(self, head_init_scale: float) -> None:
        # paper/timm: truncated normal (std 0.02) for every conv and linear, zero biases
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        fc = self.head.fc
        fc.weight.data.mul_(head_init_scale)
        fc.bias.data.mul_(head_init_scale)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's feature map before pooling, B x C x H/stride x W/stride."""
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, B x num_classes."""
        return self.head(self.forward_features(x))


def _convnext(
    cfg: ConvNeXtConfig,
    num_classes: int,
    drop_path_rate: float,
    dropout: float | None,
    small_input: bool,
    **kw: Any,
) -> ConvNeXt:
    return ConvNeXt(
        cfg,
        num_classes,
        drop_path_rate=drop_path_rate,
        dropout=0.0 if dropout is None else dropout,
        small_input=small_input,
        **kw,
    )


def convnext_atto(num_classes: int = 1000, **kw: Any) -> ConvNeXt:
    """ConvNeXt-Atto (timm; 3.7M parameters at 1000 classes)."""
    return build_model("convnext_atto", num_classes, **kw)


def convnext_femto(num_classes: int = 1000, **kw: Any) -> ConvNeXt:
    """ConvNeXt-Femto (timm; 5.2M parameters at 1000 classes)."""
    return build_model("convnext_femto", num_classes, **kw)


def convnext_pico(num_classes: int = 1000, **kw: Any) -> ConvNeXt:
    """ConvNeXt-Pico (timm; 9.0M parameters at 1000 classes)."""
    return build_model("convnext_pico", num_classes, **kw)


def convnext_nano(num_classes: int = 1000, **kw: Any) -> ConvNeXt:
    """ConvNeXt-Nano (timm; 15.6M parameters at 1000 classes)."""
    return build_model("convnext_nano", num_classes, **kw)


def convnext_tiny(num_classes: int = 1000, **kw: Any) -> ConvNeXt:
    """ConvNeXt-T (28.6M parameters at 1000 classes)."""
    return build_model("convnext_tiny", num_classes, **kw)


def convnext_small(num_classes: int = 1000, **kw: Any) -> ConvNeXt:
    """ConvNeXt-S (50.2M parameters at 1000 classes)."""
    return build_model("convnext_small", num_classes, **kw)


def convnext_base(num_classes: int = 1000, **kw: Any) -> ConvNeXt:
    """ConvNeXt-B (88.6M parameters at 1000 classes)."""
    return build_model("convnext_base", num_classes, **kw)


def convnext_large(num_classes: int = 1000, **kw: Any) -> ConvNeXt:
    """ConvNeXt-L (197.8M parameters at 1000 classes)."""
    return build_model("convnext_large", num_classes, **kw)


def build_model(
    arch: str,
    num_classes: int = 1000,
    *,
    drop_path_rate: float = 0.0,
    dropout: float | None = None,
    small_input: bool = False,
    **kw: Any,
) -> ConvNeXt:
    """Build a ConvNeXt variant by name.

    Args:
        arch: a key of ``VARIANTS`` (``"convnext_atto"`` ... ``"convnext_large"``).
        num_classes: size of ``head.fc`` (the only tensors that change with it).
        drop_path_rate: stochastic depth rate of the last block, linear from 0 (paper: 0.1/0.4/0.5/0.5 for T/S/B/L
            on ImageNet-1k).
        dropout: dropout before ``head.fc``; ``None`` keeps timm's 0.0.
        small_input: 3x3/1 stem instead of 4x4/4 patchify (total stride 8) for 32-64 px images.
        **kw: passed to ``ConvNeXt`` (``in_channels``, ``head_init_scale``).
    """
    if arch not in VARIANTS:
        close = difflib.get_close_matches(arch, VARIANTS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown ConvNeXt variant {arch!r}; valid: {', '.join(VARIANTS)}.{hint}")
    return _convnext(VARIANTS[arch], num_classes, drop_path_rate, dropout, small_input, **kw)
