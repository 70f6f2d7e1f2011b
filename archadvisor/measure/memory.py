"""Peak memory of one inference or one training step.

CUDA: ``torch.cuda.max_memory_allocated``. CPU: the torch profiler's allocator events (every allocation and free
through c10's CPU allocator, so temporaries inside kernels count): the running sum's maximum during the step, plus
the tensors alive before it (parameters, buffers, optimizer state, input). Memory that libraries allocate outside
torch's allocator (oneDNN scratchpads, the Python heap) is not included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from archadvisor.measure.device import quiet_fd2, torch_module

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


def _tensor_bytes(tensors: Any) -> int:
    seen: set[int] = set()
    total = 0
    for t in tensors:
        if t is None:
            continue
        key = t.untyped_storage().data_ptr()
        if key in seen:
            continue
        seen.add(key)
        total += t.untyped_storage().nbytes()
    return total


def _optimizer_state_tensors(opt: Any) -> Iterator[Any]:
    torch = torch_module()
    for state in opt.state.values():
        for v in state.values():
            if isinstance(v, torch.Tensor):
                yield v


def _peak_transient_cpu(fn: Callable[[], Any]) -> int:
    """Peak of (allocated - freed) bytes through torch's CPU allocator while ``fn`` runs."""
    torch = torch_module()
    from torch.profiler import ProfilerActivity, profile

    with quiet_fd2(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    cpu = torch.autograd.DeviceType.CPU
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type() == cpu]
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        running += e.nbytes()
        peak = max(peak, running)
    return peak


def _step(
    model: nn.Module, x: Any, *, train: bool, num_classes: int, dense: bool = False
) -> tuple[Callable[[], Any], list[Any]]:
    """The step to measure (already run once) and the tensors alive before it.

    Training: forward, backward and an AdamW step; the first, unmeasured step creates AdamW's state (exp_avg,
    exp_avg_sq), which is persistent from then on. Inference: eval mode under ``torch.inference_mode``.
    """
    torch = torch_module()
    if not train:
        model.eval()

        def infer() -> None:
            with torch.inference_mode():
                model(x)

        infer()
        return infer, [*model.parameters(), *model.buffers(), x]
    model.train()
    # a class per image, or per pixel for a segmentation model (``dense``: B x classes x H x W logits)
    shape = (x.shape[0], *x.shape[2:]) if dense else (x.shape[0],)
    y = torch.randint(0, num_classes, shape, device=x.device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    # a model that is not a classifier (a detector: measure/detection.py) brings its own training loss
    own_loss = getattr(model, "training_loss", None)

    def step() -> None:
        loss = own_loss(x) if own_loss is not None else torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    return step, [*model.parameters(), *model.buffers(), *_optimizer_state_tensors(opt), x, y]


def peak_memory(
    model: nn.Module,
    batch: int,
    image_size: int,
    device: str,
    *,
    train: bool,
    num_classes: int = 1000,
    dense: bool = False,
) -> dict[str, Any]:
    """Peak memory of one inference (eval, inference_mode) or one training step (forward, backward, AdamW step).

    Returns ``{"peak_mb", "persistent_mb", "transient_mb", "method"}``: persistent is what lives before the step
    (parameters, buffers, input, and for training the optimizer state created by a first, unmeasured step);
    transient is the measured peak on top of it.
    """
    torch = torch_module()
    x = torch.randn(batch, 3, image_size, image_size, device=torch.device(device))
    mib = 2**20
    fn, persistent = _step(model, x, train=train, num_classes=num_classes, dense=dense)
    persistent_bytes = _tensor_bytes(persistent)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        total = torch.cuda.max_memory_allocated()
        transient = max(0, total - base)
        method = "torch.cuda.max_memory_allocated during the step (CUDA caching allocator, all tensors)"
    else:
        transient = _peak_transient_cpu(fn)
        total = persistent_bytes + transient
        method = (
            "torch.profiler CPU allocator events: peak of allocations minus frees during the step, plus the "
            "tensors alive before it (parameters, buffers, input" + (", AdamW state)" if train else ")")
        )
    model.eval()
    return {
        "peak_mb": round(total / mib, 2),
        "persistent_mb": round(persistent_bytes / mib, 2),
        "transient_mb": round(transient / mib, 2),
        "batch": batch,
        "method": method,
    }
