"""Train the model of model.py with the recipe in config.yaml; the task's part (data, model, loss, metrics) is task.py.

    python train.py                              # the bundled demo, as configured
    python train.py --data DIR                   # your data, in the layout README.md describes
    python train.py --resume                     # continue runs/train where an interrupted run stopped
    python train.py --overwrite                  # start over in runs/train (a new run never replaces one unasked)
    python train.py --resume --epochs 60         # extend a finished run: the schedule is rebuilt for 60 epochs
    python train.py --epochs 15                  # a shorter run than planned: warmup shrinks in proportion
    torchrun --nproc_per_node 4 train.py         # DDP, one process per GPU (gloo on CPU)

Reads top to bottom: options and config, device / distributed / seeds, optimizer and schedule, one training
epoch, validation, the run's outputs, then the three phases of main(): setup() builds the run, resume() loads
last.pt into it, fit() runs the epoch loop (freezing, progressive stages, checkpoints, early stopping).
Outputs in <out>: metrics.csv, summary.json, curves.png, last.pt (everything --resume needs) and best.pt (the
best epoch by training.monitor, e.g. the highest val_acc1 or the lowest val_mase). One train.py at a time writes
into an <out> (a lock file, .train.lock, says which), and an <out> holding a run is continued with --resume or
replaced with --overwrite, never silently. config.yaml is checked (config_schema.py) before anything runs.
"""

import argparse
import csv
import io
import json
import math
import os
import random
import time
from collections.abc import Callable, Hashable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

import checkpoint
import task
from checkpoint import rng_state, save_atomic, set_rng_state, write_atomic
from config_schema import check_device, parse, parse_override
from config_schema import load_config as load_checked_config
from errors import ProjectError, run_main
from weights import freeze_backbone

HERE = Path(__file__).resolve().parent
# config keys that may change between a run and its --resume: loader processes, the output folder, and the
# length of the run (a longer one extends the schedule; see resume())
RESUMABLE_CHANGES = {"data.num_workers", "run.out", "training.epochs"}
# what a run writes into <out>: a new run refuses to replace them unless --overwrite
RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "summary.json", "curves.png")


# --- options and config -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train with the recipe in config.yaml.")
    p.add_argument("--config", type=Path, default=HERE / "config.yaml", help="the recipe (default: config.yaml)")
    p.add_argument("--data", type=Path, help="dataset root (overrides data.root)")
    p.add_argument("--epochs", type=int, help="overrides training.epochs; with --resume, extends a finished run")
    p.add_argument("--out", type=Path, help="output folder (overrides run.out)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    start.add_argument("--overwrite", action="store_true", help="start a new run in an <out> that holds one")
    p.add_argument("--allow-config-change", action="store_true", help="resume even if the config changed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (torchrun: one GPU per rank)")
    weights = p.add_mutually_exclusive_group()
    weights.add_argument("--pretrained", help="weights file or source name (overrides model.pretrained)")
    weights.add_argument("--no-pretrained", action="store_true", help="train from scratch (model.pretrained: false)")
    p.add_argument("--seed", type=int, help="overrides run.seed")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (slower)")
    p.add_argument("--workers", help="DataLoader workers per process, or auto (overrides data.num_workers)")
    p.add_argument("--stop-after", type=int, metavar="EPOCH", help="checkpoint and exit after this epoch")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any config value, e.g. data.batch_size=32"
    )
    # the task's own flags (forecasting: --target-col, --time-col, --id-col), mapped to config keys by
    # task.train_overrides
    add_task_arguments = getattr(task, "add_train_arguments", None)
    if add_task_arguments is not None:
        add_task_arguments(p)
    return p.parse_args(argv)


def load_config(args: argparse.Namespace) -> dict[str, Any]:
    """config.yaml with the command-line overrides applied (``--set`` first, then the named flags), checked
    against the schema: a typo'd key, a wrong type or an out-of-range value stops here, in one line."""
    overrides = dict(parse_override(item) for item in args.set)
    flags = {
        "data.root": str(args.data) if args.data else None,
        "training.epochs": args.epochs,
        "run.out": str(args.out) if args.out else None,
        "model.pretrained": False if args.no_pretrained else args.pretrained,
        "run.seed": args.seed,
        "data.num_workers": parse(args.workers, "--workers") if args.workers is not None else None,
        "run.deterministic": True if args.deterministic else None,
    }
    task_overrides = getattr(task, "train_overrides", None)
    if task_overrides is not None:
        flags.update(task_overrides(args))
    overrides.update({key: value for key, value in flags.items() if value is not None})
    return load_checked_config(args.config, overrides)


def planned_training(args: argparse.Namespace) -> dict[str, Any] | None:
    """config.yaml's own training section, before --epochs and --set: the length the warmup was planned for.

    None when a --set chooses the warmup itself (training.warmup_epochs or warmup_steps): the user's value stands.
    """
    overrides = dict(parse_override(item) for item in args.set)
    if "training.warmup_epochs" in overrides or "training.warmup_steps" in overrides:
        return None
    try:
        return load_checked_config(args.config)["training"]
    except ProjectError:  # config.yaml is valid only with the overrides applied: no plan to scale from
        return None


def config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two configs, as ``key: old -> new``."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changes += config_changes(a, b, f"{name}.")
        elif a != b and name not in RESUMABLE_CHANGES:
            changes.append(f"{name}: {a!r} -> {b!r}")
    return changes


# --- device, distributed, seeds ---------------------------------------------------------------------------


def setup_distributed(device_arg: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device). Under torchrun: one process per GPU with nccl, or CPU processes with gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if check_device(device_arg) == "auto":
        device_arg = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_arg)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ProjectError(f"--device {device_arg}: no CUDA GPU is visible to this process; use --device cpu or auto")
    if device.type == "cuda":
        if world > 1:
            device = torch.device("cuda", local_rank)
        elif device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world, device


def seed_everything(seed: int, rank: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; each rank gets its own stream (dropout must differ between ranks)."""
    random.seed(seed + rank)
    np.random.seed(seed + rank)
    torch.manual_seed(seed + rank)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: a few CUDA kernels (e.g. adaptive pooling backward) have no deterministic version
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


def size_cpu_threads(loader_workers: int, world: int) -> None:
    """Math threads: this process's share of the CPUs minus its loader workers (unless OMP_NUM_THREADS is set).

    Oversubscribed OpenMP threads spin-wait for each other: on 2 cores, 2 math threads beside 1 busy loader
    worker made epochs 2-10x slower than 1 thread.
    """
    if "OMP_NUM_THREADS" not in os.environ:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, cpus // world - loader_workers))


def autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    """bf16 on CPU and on GPUs that have it (no loss scaling needed), else fp16 with a GradScaler."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def wrap_ddp(model: nn.Module, device: torch.device, world: int) -> nn.Module:
    """DDP across the torchrun processes; re-wrapped after (un)freezing, since DDP fixes its parameter set."""
    if world == 1:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


# --- optimizer and schedule ----------------------------------------------------------------------------------


def build_optimizer(model: nn.Module, t: dict[str, Any]) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum) or AdamW (decoupled weight decay, Loshchilov & Hutter, arXiv:1711.05101)."""
    # no weight decay on biases and normalization weights: it only shrinks scales that BN/LN re-learn
    # (the torchvision references' norm_weight_decay=0.0, Goyal et al. arXiv:1706.02677 section 5.1)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": t["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    opt = t["optimizer"]
    if opt["name"] == "sgd":
        return torch.optim.SGD(groups, lr=t["lr"], momentum=opt["momentum"] or 0.0, nesterov=bool(opt["nesterov"]))
    if opt["name"] == "adamw":
        return torch.optim.AdamW(groups, lr=t["lr"], betas=tuple(opt["betas"] or (0.9, 0.999)))
    raise ProjectError(f"training.optimizer.name {opt['name']!r}: supported are sgd, adamw")


SCHEDULES = ("cosine", "poly", "multistep", "linear", "constant")


def build_scheduler(optimizer: torch.optim.Optimizer, t: dict[str, Any], steps_per_epoch: int) -> LambdaLR:
    """Linear warmup from lr/warmup to lr, then ``training.schedule`` per optimizer step:

    * ``cosine``: to ``min_lr`` along half a cosine (SGDR, Loshchilov & Hutter, arXiv:1608.03983, no restarts);
    * ``poly``: ``(1 - progress) ** poly_power`` down to ``min_lr`` (DeepLab, Chen et al. arXiv:1606.00915;
      torchvision's segmentation reference, power 0.9);
    * ``multistep``: x0.1 at each of ``milestones`` (in epochs; the detection references' 3x schedule);
    * ``linear``: straight down to ``min_lr`` (BERT's fine-tuning schedule, Devlin et al. arXiv:1810.04805);
    * ``constant``.

    Warmup is ``warmup_steps`` optimizer steps when set (detection's 1000 iterations), else ``warmup_epochs``
    epochs. The learning rate is a pure function of the step, so a schedule rebuilt for a longer run continues
    from the current step.
    """
    name = t["schedule"]
    if name not in SCHEDULES:
        raise ProjectError(f"training.schedule {name!r}: supported are {', '.join(SCHEDULES)}")
    total = max(1, t["epochs"] * steps_per_epoch)
    warmup_steps = t.get("warmup_steps")
    warmup = warmup_steps if warmup_steps is not None else t["warmup_epochs"] * steps_per_epoch
    warmup = max(0, min(int(warmup), total - 1))
    floor = t["min_lr"] / t["lr"] if t["lr"] else 0.0
    power = t.get("poly_power") or 0.9
    milestones = [int(m) * steps_per_epoch for m in (t.get("milestones") or [])]
    if name == "multistep" and not milestones:
        raise ProjectError("training.schedule multistep needs training.milestones (epochs, e.g. [16, 22])")

    def factor(step: int) -> float:
        if step < warmup:  # start at lr/warmup rather than 0: a zero-lr first step is a wasted step
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if name == "cosine":
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        if name == "poly":
            return floor + (1 - floor) * (1 - progress) ** power
        if name == "linear":
            return floor + (1 - floor) * (1 - progress)
        if name == "multistep":
            return 0.1 ** sum(step >= m for m in milestones)
        return 1.0

    # a plain function, not a callable object: LambdaLR's state_dict then keeps only the step, and loading an
    # old state into a rebuilt schedule keeps the new length
    return LambdaLR(optimizer, factor)


def shorten_warmup(t: dict[str, Any], planned: dict[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    """The training section with its warmup scaled to a run shorter than planned, and a note saying so.

    Warmup is planned as a fraction of the run (5 of 50 epochs); a run shortened to 15 epochs with --epochs
    would otherwise spend a third of itself warming up. The warmup keeps its fraction, rounded, and at least one
    epoch (or optimizer step) when the plan had any. A run as long as planned, or longer (--resume --epochs 60
    extends one), keeps the planned warmup.
    """
    if planned is None or t["epochs"] >= planned["epochs"]:
        return t, None
    key, unit = (
        ("warmup_steps", "optimizer steps") if t.get("warmup_steps") is not None else ("warmup_epochs", "epochs")
    )
    old = int(t[key])
    if old == 0:
        return t, None
    new = max(1, int(old * t["epochs"] / planned["epochs"] + 0.5))
    if new >= old:
        return t, None
    note = (
        f"note: training.epochs {planned['epochs']} -> {t['epochs']}: warmup {old} -> {new} {unit}, the same share "
        f"of the run as planned (--set training.{key}=N chooses it)"
    )
    return {**t, key: new}, note


def apply_schedule(scheduler: LambdaLR) -> None:
    """Set each group's lr to the schedule's value at its current step (after loading a rebuilt schedule)."""
    for group, base, fn in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
        group["lr"] = base * fn(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


def advance_schedule(scheduler: LambdaLR) -> None:
    """One optimizer step along the schedule: what ``LambdaLR.step()`` computes (step + 1, lr = base x factor),
    without its bookkeeping, which costs ~15 us a step: 2 % of a DLinear step on one core. build_scheduler gives
    every group the same factor function, so it is evaluated once."""
    scheduler.last_epoch += 1
    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
    groups = scheduler.optimizer.param_groups
    for group, base in zip(groups, scheduler.base_lrs, strict=True):
        group["lr"] = base * factor
    scheduler._last_lr = [group["lr"] for group in groups]


# --- one epoch -----------------------------------------------------------------------------------------

# the running loss is folded (and checked for NaN / inf) every this many batches: each fold costs ~50 us of tensor
# ops and a device sync, 6 % of a DLinear step if done at every step; a bad loss still stops the run within
# FOLD_EVERY batches, naming the first bad one
FOLD_EVERY = 32


def train_one_epoch(
    model: nn.Module,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[Any, torch.Tensor], torch.Tensor],
    *,
    device: torch.device,
    scheduler: LambdaLR | None = None,
    ema: AveragedModel | None = None,
    scaler: torch.amp.GradScaler | None = None,
    amp_dtype: torch.dtype | None = None,
    batch_transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    accum_steps: int = 1,
    clip_norm: float | None = None,
    channels_last: bool = False,
    progress: str | None = None,
    epoch: int = 0,
) -> float:
    """One pass over ``loader``; returns the mean training loss (of the transformed targets, e.g. MixUp's).

    Raises ProjectError when a loss is not finite (naming the epoch and batch: nothing after it is worth
    keeping) and when no batch had a usable sample (every image skipped as unreadable): a run must not finish
    "successfully" on nothing.
    """
    model.train()
    # per-step work that a microsecond-scale model notices is decided once here: without fp16 loss scaling the
    # GradScaler calls are skipped, without DDP there is no no_sync() to choose, without accumulation no window
    scaling = scaler is not None and scaler.is_enabled()
    ddp = isinstance(model, DistributedDataParallel)
    loss_sum, seen = torch.zeros((), device=device), 0
    # the batches' losses (and sizes) stay on the device and are folded into the running sum and checked for
    # NaN / inf every FOLD_EVERY batches and at the end: checking each loss would make the CPU wait for the GPU at every
    # step, and a few tensor ops per step are most of a small model's step time (DLinear: microseconds)
    pending: list[torch.Tensor] = []
    sizes: list[int] = []
    batches: list[int] = []  # their batch numbers, for the error message
    steps = len(loader)
    optimizer.zero_grad(set_to_none=True)
    # no bar on other ranks; tqdm's disable=None hides it when stderr is not a terminal (logs, CI)
    bar = tqdm(loader, desc=progress, leave=False, dynamic_ncols=True, disable=True if progress is None else None)
    show = not bar.disable  # a hidden bar: no loss read for its label (a device sync) and no wrapper per batch
    no_sync = nullcontext()  # reused: one object per step is measurable beside a microsecond-scale model step
    for i, batch in enumerate(bar if show else loader):
        if batch is None:  # every sample of this batch was unreadable and skipped
            continue
        inputs, targets = task.to_device(batch, device)
        if channels_last and inputs.ndim == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        if batch_transform is not None:
            inputs, targets = batch_transform(inputs, targets)

        # gradient accumulation: average over the micro-batches of this window (the last one may be shorter),
        # and let DDP all-reduce the gradients only on the window's last micro-batch
        window, last_micro = 1, True
        if accum_steps > 1:
            window_end = min(steps, (i // accum_steps + 1) * accum_steps)
            window = window_end - (i // accum_steps) * accum_steps
            last_micro = i + 1 == window_end
        sync = model.no_sync() if ddp and not last_micro else no_sync
        with sync:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = loss_fn(model(inputs), targets)
            scaled = loss / window if window > 1 else loss
            (scaler.scale(scaled) if scaling else scaled).backward()

        if last_micro:
            if clip_norm:
                if scaling:
                    scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
                nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            if scaling:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if scheduler is not None:
                advance_schedule(scheduler)
            if ema is not None:
                ema.update_parameters(unwrap(model))
        pending.append(loss.detach())
        sizes.append(inputs.shape[0] if isinstance(inputs, torch.Tensor) else len(inputs))
        batches.append(i)
        if i % FOLD_EVERY == 0 or i + 1 == steps:
            loss_sum += fold_losses(pending, sizes, batches, epoch, steps)
            seen += sum(sizes)
            pending, sizes, batches = [], [], []
            if show:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    if pending:  # batches after the last fold (the loader was longer than its len(), or batches were skipped)
        loss_sum += fold_losses(pending, sizes, batches, epoch, steps)
        seen += sum(sizes)
    if seen == 0:
        raise ProjectError(
            f"epoch {epoch + 1}: no training batch had a usable sample (with data.skip_unreadable: true every one "
            "was skipped as unreadable); fix or replace the training data"
        )
    return (loss_sum / seen).item()


def fold_losses(
    losses: list[torch.Tensor], sizes: list[int], batches: list[int], epoch: int, steps: int
) -> torch.Tensor:
    """The size-weighted sum of some batches' losses; stops the run at a NaN or infinite one: the weights are
    ruined from that step on (this epoch is not saved)."""
    chunk = torch.stack(losses).float()
    finite = torch.isfinite(chunk)
    if not bool(finite.all()):
        stop_on_non_finite(batches[int((~finite).nonzero()[0, 0])], epoch, steps)
    return chunk @ torch.tensor(sizes, dtype=chunk.dtype, device=chunk.device)


def stop_on_non_finite(batch: int, epoch: int, steps: int) -> None:
    """A NaN or infinite loss: the weights are ruined from that step on, so stop (this epoch is not saved)."""
    if batch >= 0:
        raise ProjectError(
            f"the training loss is not finite at epoch {epoch + 1}, batch {batch + 1} of {steps}: the run stops "
            "without saving this epoch (lower training.lr, set training.grad_clip_norm, or check the data)"
        )


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Any,
    metrics: "task.Metrics",
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> dict[str, float]:
    """The task's validation metrics over the loader (``metrics`` sums them over all ranks under DDP)."""
    model.eval()
    for batch in loader:
        if batch is None:
            continue
        inputs, targets = task.to_device(batch, device)
        if channels_last and inputs.ndim == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            outputs = model(inputs)
        metrics.update(outputs, targets)
    return metrics.compute()


# --- the run's outputs ---------------------------------------------------------------------------------------


def write_metrics(history: list[dict[str, float]], out: Path) -> None:
    def write(fh: Any) -> None:
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
        fh.write(text.getvalue().encode("utf-8"))

    write_atomic(out / "metrics.csv", write)


def plot_curves(history: list[dict[str, float]], monitor: str, path: Path) -> None:
    """Losses and the monitored metric per epoch as a PNG (matplotlib's file backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train")
    val = [h["val_loss"] for h in history]
    if not all(math.isnan(v) for v in val):  # detectors report no val loss (NaN): detections, not losses, in eval
        ax_loss.plot(epochs, val, label="val")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_metric.plot(epochs, [h[monitor] for h in history], color="tab:green")
    ax_metric.set(xlabel="epoch", ylabel=monitor, title=f"validation {monitor}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@dataclass(frozen=True)
class Monitor:
    """The metric that picks best.pt and drives early stopping: ``training.monitor`` (name, min or max)."""

    metric: str
    mode: str

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ProjectError(f"training.monitor.mode {self.mode!r}: supported are min, max")

    def worst(self) -> float:
        return -math.inf if self.mode == "max" else math.inf

    def improved(self, value: float, best: float) -> bool:
        return value > best if self.mode == "max" else value < best


# --- the run folder: one writer, no silent replacement ------------------------------------------------------


def claim_out(out: Path, args: argparse.Namespace) -> Any:
    """Lock ``out`` for this process, then check what it holds: an earlier run is continued (--resume) or
    replaced (--overwrite, which removes its files first, so no best.pt of the old run survives beside the new
    run's last.pt), never silently overwritten. Returns the open lock file; the lock lasts while it stays open
    (the system drops it when the process ends, even killed)."""
    import fcntl  # POSIX; the lock is advisory: it keeps two train.py apart, not other programs

    out.mkdir(parents=True, exist_ok=True)
    lock = open(out / ".train.lock", "a+", encoding="utf-8")  # noqa: SIM115 - held open for the whole run
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise ProjectError(
            f"{out} is in use by another train.py ({holder}); wait for it to finish or pass another --out"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}\n")
    lock.flush()
    existing = [name for name in RUN_FILES if (out / name).exists()]
    if existing and not (args.resume or args.overwrite):
        lock.close()
        raise ProjectError(
            f"{out} already holds a run ({', '.join(existing)}): continue it with --resume, start over with "
            "--overwrite (its files are replaced), or pass another --out"
        )
    if args.overwrite:
        for name in existing:
            (out / name).unlink()
    return lock


# --- main: setup, resume, the epoch loop ---------------------------------------------------------------------


@dataclass
class Run:
    """Everything one training run holds; setup() builds it, resume() fills it from last.pt, fit() runs it."""

    args: argparse.Namespace
    cfg: dict[str, Any]
    out: Path
    rank: int
    world: int
    device: torch.device
    data: Any  # what task.build_data returns: train_loader, val_loader, train_sampler
    stage: Hashable  # task.data_stage: e.g. the progressive-resizing image size the loaders were built for
    meta: dict[str, Any]  # what the task needs to rebuild the model (saved in every checkpoint)
    model: nn.Module
    ema: AveragedModel | None
    optimizer: torch.optim.Optimizer
    scheduler: LambdaLR
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    steps_per_epoch: int
    monitor: Monitor
    start_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: float = math.nan
    stale_epochs: int = 0
    lock: Any = None  # rank 0: the open lock file of <out> (claim_out)

    def log(self, *args: Any, **kwargs: Any) -> None:
        if self.rank == 0:
            print(*args, **kwargs)


def setup(args: argparse.Namespace) -> Run:
    """Config, device and DDP, seeds, then the task's data and model, the optimizer, schedule, AMP and EMA."""
    cfg = load_config(args)
    t, run_cfg = cfg["training"], cfg["run"]
    out = Path(run_cfg["out"])
    out = out if out.is_absolute() else Path.cwd() / out
    rank, world, device = setup_distributed(args.device)
    seed_everything(run_cfg["seed"], rank, run_cfg["deterministic"])
    lock = claim_out(out, args) if rank == 0 else None
    log = print if rank == 0 else (lambda *a, **k: None)

    # --- data and model: the task's part (fp32 master weights; autocast handles the low precision)
    stage = task.data_stage(cfg, 0)
    data = task.build_data(cfg, stage, rank=rank, world_size=world, pin_memory=device.type == "cuda")
    size_cpu_threads(data.train_loader.num_workers, world)
    meta = task.data_meta(cfg, data, log=log)
    model = task.build_model(cfg, meta, log=log).to(device)
    if t["channels_last"]:
        model.to(memory_format=torch.channels_last)  # NHWC: faster convolutions on tensor cores and oneDNN

    # --- optimizer, schedule, AMP, EMA
    steps_per_epoch = math.ceil(len(data.train_loader) / t["grad_accum_steps"])
    optimizer = build_optimizer(model, t)
    schedule, note = shorten_warmup(t, planned_training(args))
    if note:
        log(note)
    amp_dtype = autocast_dtype(device, t["amp"])
    ema = None
    if t.get("ema_decay"):  # left out of config.yaml where the recipe has no EMA
        # EMA of weights and BatchNorm buffers; validation and best.pt use it (Polyak averaging)
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(t["ema_decay"]), use_buffers=True)
    monitor = Monitor(**(t.get("monitor") or task.MONITOR))
    return Run(
        args=args,
        cfg=cfg,
        out=out,
        rank=rank,
        world=world,
        device=device,
        data=data,
        stage=stage,
        meta=meta,
        model=model,
        ema=ema,
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, schedule, steps_per_epoch),
        scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        amp_dtype=amp_dtype,
        steps_per_epoch=steps_per_epoch,
        monitor=monitor,
        best=monitor.worst(),
        lock=lock,
    )


def resume(run: Run) -> None:
    """Load <out>/last.pt into the run: weights, EMA, optimizer, schedule, scaler, history, monitor, RNG.

    A config that differs from the checkpoint's is refused (unless --allow-config-change), except for
    ``training.epochs``: a new length extends (or shortens) the run, and the schedule is rebuilt for it.
    A file that is not a last.pt of this project (truncated, empty, another program's, another model's) is one
    line saying so; a last.pt without RNG state (an older project) resumes, but not bit-identically.
    """
    path = run.out / "last.pt"
    if not path.is_file():
        raise ProjectError(f"--resume: no checkpoint at {path}")
    ckpt = checkpoint.load(path, checkpoint.RESUME_KEYS)
    changes = config_changes(ckpt["config"], run.cfg)
    if changes and not run.args.allow_config_change:
        raise ProjectError(
            f"config changed since {path} was written ({'; '.join(changes)}); "
            "pass --allow-config-change to resume anyway"
        )
    done, epochs = ckpt["epoch"], run.cfg["training"]["epochs"]
    old_epochs = ckpt["config"].get("training", {}).get("epochs", epochs)
    if epochs < done:
        raise ProjectError(f"--epochs {epochs}: {path} has already completed {done} epochs")
    # --allow-config-change: the new config's hyperparameters (lr, weight decay, momentum ...) win over the
    # saved ones; a different optimizer starts with fresh moments
    fresh_groups = [{k: v for k, v in g.items() if k != "params"} for g in run.optimizer.param_groups]
    fresh_base_lrs = list(run.scheduler.base_lrs)
    same_optimizer = ckpt["config"].get("training", {}).get("optimizer") == run.cfg["training"]["optimizer"]
    try:
        run.model.load_state_dict(ckpt["model"])
        if same_optimizer:
            run.optimizer.load_state_dict(ckpt["optimizer"])
        else:
            run.log("note: training.optimizer changed: its state (momentum, moments) starts afresh")
        run.scheduler.load_state_dict(ckpt["scheduler"])
        run.scaler.load_state_dict(ckpt["scaler"])
        if run.ema is not None and ckpt["model_ema"] is not None:
            run.ema.module.load_state_dict(ckpt["model_ema"])
            run.ema.n_averaged.copy_(ckpt["ema_n_averaged"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ProjectError(
            f"--resume: {path} does not fit this run ({checkpoint.first_line(e)}): it is not a last.pt of this "
            "project and config; start a new run with --overwrite"
        ) from None
    if changes:
        for group, values in zip(run.optimizer.param_groups, fresh_groups, strict=True):
            group.update(values)
        run.scheduler.base_lrs = fresh_base_lrs
    if epochs != old_epochs or changes:
        before = run.optimizer.param_groups[0]["lr"]
        apply_schedule(run.scheduler)  # the rebuilt schedule (setup() built it for `epochs`) at the saved step
        run.log(
            f"note: the {run.cfg['training']['schedule']} schedule is rebuilt for {epochs} epochs "
            f"(training.epochs {old_epochs} -> {epochs}) and continues from step {run.scheduler.last_epoch} "
            f"(lr {before:.3g} -> {run.optimizer.param_groups[0]['lr']:.3g})"
        )
    run.start_epoch, run.history = done, ckpt["history"]
    run.best, run.stale_epochs = ckpt["best"], ckpt["stale_epochs"]
    rng = ckpt.get("rng")
    if rng:
        set_rng_state(rng[run.rank] if len(rng) == run.world else rng[0])
    else:
        run.log(f"note: {path} has no RNG state: the run continues, but not exactly as an uninterrupted one")
    run.log(f"resumed from {path} at epoch {done}")


def save_checkpoints(run: Run, metrics: dict[str, float], improved: bool) -> None:
    """best.pt (weights and what rebuilds the model) when the monitor improved, last.pt always; every rank's
    RNG state goes into last.pt, so --resume replays the next epoch exactly."""
    rng = [rng_state()]
    if run.world > 1:
        rng = [None] * run.world
        dist.all_gather_object(rng, rng_state())
    if run.rank != 0:
        return
    weights = {
        "meta": run.meta,
        "config": run.cfg,
        "epoch": run.history[-1]["epoch"],  # epochs completed
        "metrics": metrics,
        "model": run.model.state_dict(),
        "model_ema": run.ema.module.state_dict() if run.ema is not None else None,
    }
    state = {
        **weights,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict(),
        "ema_n_averaged": run.ema.n_averaged if run.ema is not None else None,
        "history": run.history,
        "best": run.best,
        "stale_epochs": run.stale_epochs,
        "rng": rng,
    }
    if improved:
        save_atomic(weights, run.out / "best.pt")
    save_atomic(state, run.out / "last.pt")
    write_metrics(run.history, run.out)


def best_epoch_metrics(run: Run) -> dict[str, float]:
    """The other validation metrics of the epoch best.pt holds (e.g. val_dice, val_pixel_acc beside the
    monitored val_miou), and that epoch's number; empty before any epoch has run."""
    rows = [h for h in run.history if h.get(run.monitor.metric) == run.best]
    if not rows:
        return {}
    best = rows[0]  # the first epoch that reached the best value: the one best.pt was written at
    skip = {"epoch", "lr", "train_loss", "seconds", run.monitor.metric}
    return {"best_epoch": int(best["epoch"]), **{k: v for k, v in best.items() if k not in skip}}


def fit(run: Run) -> dict[str, Any]:
    """The epoch loop: train, validate, checkpoint, stop early; returns summary.json's content."""
    t, cfg = run.cfg["training"], run.cfg
    # fine-tuning: the head alone for freeze.epochs, then everything (a task without freezing leaves it out)
    freeze = t.get("freeze") or {"mode": "none", "epochs": 0}
    if freeze["mode"] != "none" and run.start_epoch < freeze["epochs"]:
        freeze_backbone(run.model, trainable=False)
    model = wrap_ddp(run.model, run.device, run.world)
    loss_fn = task.build_loss(cfg, run.meta)
    batch_transform = task.train_batch_transform(cfg, run.meta)
    effective = cfg["data"]["batch_size"] * run.world * t["grad_accum_steps"]
    params = sum(p.numel() for p in run.model.parameters()) / 1e6
    run.log(
        f"{cfg['model']['arch']}: {params:.2f}M params; {run.data.describe()}; device {run.device} x {run.world}, "
        f"effective batch {effective}, {run.steps_per_epoch} steps/epoch, amp {run.amp_dtype}"
    )

    epoch, stopped_early, epochs = run.start_epoch - 1, False, t["epochs"]
    for epoch in range(run.start_epoch, epochs):
        epoch_start = time.perf_counter()
        stage = task.data_stage(cfg, epoch)
        if stage != run.stage:  # e.g. progressive resizing: a new stage rebuilds the loaders
            run.data = task.build_data(
                cfg, stage, rank=run.rank, world_size=run.world, pin_memory=run.device.type == "cuda"
            )
            run.stage = stage
            run.log(f"epoch {epoch}: data stage {stage}")
        if freeze["mode"] != "none" and epoch == freeze["epochs"] and epoch > 0:
            freeze_backbone(run.model, trainable=True)
            model = wrap_ddp(run.model, run.device, run.world)
            run.log(f"epoch {epoch}: backbone unfrozen")
        run.data.train_sampler.set_epoch(epoch)

        # --- train, then validate (the EMA weights when EMA is on)
        lr = run.optimizer.param_groups[0]["lr"]
        train_loss = train_one_epoch(
            model,
            run.data.train_loader,
            run.optimizer,
            loss_fn,
            device=run.device,
            scheduler=run.scheduler,
            ema=run.ema,
            scaler=run.scaler,
            amp_dtype=run.amp_dtype,
            batch_transform=batch_transform,
            accum_steps=t["grad_accum_steps"],
            clip_norm=t["grad_clip_norm"],
            channels_last=t["channels_last"],
            progress=f"epoch {epoch}" if run.rank == 0 else None,
            epoch=epoch,
        )
        val_model = run.ema.module if run.ema is not None else run.model
        metrics = evaluate(
            val_model,
            run.data.val_loader,
            task.Metrics(run.meta, run.device),
            device=run.device,
            amp_dtype=run.amp_dtype,
            channels_last=t["channels_last"],
        )
        if run.monitor.metric not in metrics:
            raise ProjectError(f"training.monitor.metric {run.monitor.metric!r}: the task reports {', '.join(metrics)}")
        seconds = time.perf_counter() - epoch_start
        run.history.append({"epoch": epoch + 1, "lr": lr, "train_loss": train_loss, **metrics, "seconds": seconds})
        value = metrics[run.monitor.metric]
        improved = run.monitor.improved(value, run.best)
        if improved:
            run.best, run.stale_epochs = value, 0
        else:
            run.stale_epochs += 1
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        run.log(
            f"epoch {epoch + 1}/{epochs}  lr {lr:.3g}  train_loss {train_loss:.4f}  {shown}  ({seconds:.1f} s)",
            flush=True,
        )

        # --- checkpoint, then stop early or on request
        save_checkpoints(run, metrics, improved)
        patience = t["early_stopping_patience"]
        if patience and run.stale_epochs >= patience:
            run.log(f"early stopping: no better {run.monitor.metric} for {patience} epochs")
            stopped_early = True
            break
        if run.args.stop_after is not None and epoch + 1 >= run.args.stop_after:
            run.log(f"stopping after epoch {epoch + 1} (--stop-after); continue with --resume")
            break

    return {
        f"best_{run.monitor.metric}": run.best,
        **best_epoch_metrics(run),
        "monitor": {"metric": run.monitor.metric, "mode": run.monitor.mode},
        "epochs_run": epoch + 1,
        "checkpoint": str(run.out / "best.pt"),
        "stopped_early": stopped_early,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    args = parse_args(argv)
    run = setup(args)
    try:
        if args.resume:
            resume(run)
        summary = fit(run)
        # figures a task reports once, when the run is over, from the selected checkpoint (e.g. a held-out test
        # split): the optional hook task.final_metrics(cfg, meta, data, best.pt, device) -> {name: value}
        finished = summary["stopped_early"] or summary["epochs_run"] >= run.cfg["training"]["epochs"]
        final_metrics = getattr(task, "final_metrics", None)
        if final_metrics is not None and finished and run.rank == 0 and (run.out / "best.pt").is_file():
            summary.update(final_metrics(run.cfg, run.meta, run.data, run.out / "best.pt", run.device))
        summary["wall_seconds"] = time.perf_counter() - started
        if run.rank == 0 and run.history:
            summary_json = (json.dumps(summary, indent=2) + "\n").encode("utf-8")
            write_atomic(run.out / "summary.json", lambda fh: fh.write(summary_json))
            plot_curves(run.history, run.monitor.metric, run.out / "curves.png")
            run.log(f"best {run.monitor.metric} {run.best:.4f}; outputs in {run.out}")
    finally:
        if run.lock is not None:
            run.lock.close()  # releases <out> for the next train.py
    if run.world > 1:
        dist.destroy_process_group()
    return summary


if __name__ == "__main__":
    run_main(main)
