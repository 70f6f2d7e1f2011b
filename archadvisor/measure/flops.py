"""GMACs of one forward pass, with the CPU attention kernel counted.

``torch.utils.flop_counter.FlopCounterMode`` on one image, FLOPs / 2. On CPU, torch 2.14 dispatches
``F.scaled_dot_product_attention`` to ``aten._scaled_dot_product_flash_attention_for_cpu``, which has no flop
formula and would count as zero; we register torch's own SDPA formula (QK^T and AV matmuls) for it, so ViT and
MobileViT match the catalog (which counted attention).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from archadvisor.measure.device import torch_module

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn


def sdpa_flop_mapping() -> dict[Any, Callable[..., int]]:
    """Flop formulas for the CPU attention kernels FlopCounterMode does not know (torch's own SDPA formulas)."""
    torch = torch_module()
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    aten = torch.ops.aten
    mapping: dict[Any, Callable[..., int]] = {}

    def fwd(q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return sdpa_flop_count(q, k, v)

    def bwd(grad: Any, q: Any, k: Any, v: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return sdpa_backward_flop_count(grad, q, k, v)

    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = fwd
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = bwd
    return mapping


def count_gmacs(model: nn.Module, example: torch.Tensor) -> tuple[float, float]:
    """(total GMACs, attention GMACs) of one forward pass of ``model`` on ``example`` (divide by batch yourself).

    Counts what FlopCounterMode counts (convolutions, matmuls, attention), not elementwise ops, norms or pooling:
    the convention of the catalog, fvcore and the papers' "MAdds".
    """
    torch = torch_module()
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, custom_mapping=sdpa_flop_mapping())
    was_training = model.training
    model.eval()
    with torch.inference_mode(), counter:
        model(example)
    model.train(was_training)
    per_op = counter.get_flop_counts().get("Global", {})
    attention = sum(v for k, v in per_op.items() if "scaled_dot_product" in str(k) or "attention" in str(k))
    return counter.get_total_flops() / 2e9, attention / 2e9
