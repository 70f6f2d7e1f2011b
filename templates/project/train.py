"""Train the model of model.py on an ImageFolder (or the bundled digits demo) with the recipe in config.yaml.

    python train.py                              # the digits demo, as configured
    python train.py --data path/to/images        # your data: images/train/<class>/* and images/val/<class>/*
    python train.py --resume                     # continue runs/train where an interrupted run stopped
    torchrun --nproc_per_node 4 train.py         # DDP, one process per GPU (gloo on CPU)

Reads top to bottom: options and config, device and distributed setup, data, model, optimizer and schedule,
train_one_epoch, evaluate, checkpoints, then main() with the epoch loop (progressive resizing, freezing,
early stopping) and the outputs: <out>/metrics.csv, <out>/summary.json, <out>/curves.png, <out>/last.pt
(everything --resume needs) and <out>/best.pt (the best epoch by validation accuracy).
"""

import argparse
import csv
import difflib
import json
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torchvision.transforms import v2
from tqdm import tqdm

from data import DataError, error_line, load_data
from model import build_model
from weights import freeze_backbone, load_pretrained

HERE = Path(__file__).resolve().parent
# config keys that may change between a run and its --resume without changing the results
RESUMABLE_CHANGES = {"data.num_workers", "run.out"}


# --- options and config -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train on an ImageFolder with the recipe in config.yaml.")
    p.add_argument("--config", type=Path, default=HERE / "config.yaml", help="the recipe (default: config.yaml)")
    p.add_argument("--data", type=Path, help="ImageFolder root with train/ and val/ (overrides data.root)")
    p.add_argument("--epochs", type=int, help="overrides training.epochs")
    p.add_argument("--out", type=Path, help="output folder (overrides run.out)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--allow-config-change", action="store_true", help="resume even if the config changed")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ... (torchrun: one GPU per rank)")
    p.add_argument(
        "--pretrained", help="weights file, torchvision:<Weights>, timm:<model> (overrides model.pretrained)"
    )
    p.add_argument("--seed", type=int, help="overrides run.seed")
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms (slower)")
    p.add_argument("--workers", help="DataLoader workers per process, or auto (overrides data.num_workers)")
    p.add_argument("--stop-after", type=int, metavar="EPOCH", help="checkpoint and exit after this epoch")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any config value, e.g. data.batch_size=32"
    )
    return p.parse_args(argv)


def set_value(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``section.key`` in the nested config; an unknown key is an error with the closest match."""
    *parents, leaf = dotted.split(".")
    node = cfg
    for key in parents:
        if not isinstance(node.get(key), dict):
            raise SystemExit(f"error: unknown config key {dotted!r}")
        node = node[key]
    if leaf not in node:
        close = difflib.get_close_matches(leaf, list(node), n=1)
        raise SystemExit(f"error: unknown config key {dotted!r}" + (f"; did you mean {close[0]!r}?" if close else ""))
    node[leaf] = value


def load_config(args: argparse.Namespace) -> dict[str, Any]:
    """config.yaml with the command-line overrides applied."""
    with open(args.config, encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    for item in args.set:
        key, sep, text = item.partition("=")
        if not sep:
            raise SystemExit(f"error: --set expects KEY=VALUE, got {item!r}")
        set_value(cfg, key.strip(), yaml.safe_load(text))
    overrides = {
        "data.root": str(args.data) if args.data else None,
        "training.epochs": args.epochs,
        "run.out": str(args.out) if args.out else None,
        "model.pretrained": args.pretrained,
        "run.seed": args.seed,
        "data.num_workers": args.workers if args.workers in (None, "auto") else int(args.workers),
    }
    for key, value in overrides.items():
        if value is not None:
            set_value(cfg, key, value)
    if args.deterministic:
        cfg["run"]["deterministic"] = True
    return cfg


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
    if device_arg == "auto":
        device_arg = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_arg)
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


def rng_state() -> dict[str, Any]:
    """Every RNG state as tensors and lists, so a checkpoint loads with ``torch.load(weights_only=True)``."""
    version, state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(state), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    version, values, gauss = state["python"]
    random.setstate((version, tuple(values), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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


# --- model, optimizer, schedule ----------------------------------------------------------------------------


def default_weights(arch: str) -> str:
    """The ImageNet weights for ``model.pretrained: true``: torchvision's DEFAULT, else timm's default tag."""
    from torchvision.models import get_model_weights

    try:
        return f"torchvision:{get_model_weights(arch).DEFAULT}"
    except ValueError:
        return f"timm:{arch}"


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
    raise ValueError(f"training.optimizer.name {opt['name']!r}: supported are sgd, adamw")


def build_scheduler(optimizer: torch.optim.Optimizer, t: dict[str, Any], steps_per_epoch: int) -> LRScheduler:
    """Linear warmup, then cosine decay to ``min_lr``, stepped once per optimizer step."""
    total = max(1, t["epochs"] * steps_per_epoch)
    warmup = min(t["warmup_epochs"] * steps_per_epoch, total - 1)
    if t["schedule"] == "cosine":
        main_phase: LRScheduler = CosineAnnealingLR(optimizer, T_max=total - warmup, eta_min=t["min_lr"])
    elif t["schedule"] == "constant":
        main_phase = ConstantLR(optimizer, factor=1.0, total_iters=0)
    else:
        raise ValueError(f"training.schedule {t['schedule']!r}: supported are cosine, constant")
    if warmup == 0:
        return main_phase
    # start at lr/warmup rather than 0: a zero-lr first step is a wasted step (gradual warmup, Goyal et al. 2017)
    warm = LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup)
    return SequentialLR(optimizer, [warm, main_phase], milestones=[warmup])


def build_mix(aug: dict[str, Any], num_classes: int) -> v2.Transform | None:
    """MixUp (Zhang et al., arXiv:1710.09412) or CutMix (Yun et al., arXiv:1905.04899) on a batch, with mix_prob."""
    mixes: list[v2.Transform] = []
    if aug["mixup_alpha"] and aug["mixup_alpha"] > 0:
        mixes.append(v2.MixUp(alpha=aug["mixup_alpha"], num_classes=num_classes))
    if aug["cutmix_alpha"] and aug["cutmix_alpha"] > 0:
        mixes.append(v2.CutMix(alpha=aug["cutmix_alpha"], num_classes=num_classes))
    if not mixes or not aug["mix_prob"]:
        return None
    return v2.RandomApply([v2.RandomChoice(mixes)], p=aug["mix_prob"])


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


def wrap_ddp(model: nn.Module, device: torch.device, world: int) -> nn.Module:
    """DDP across the torchrun processes; re-wrapped after (un)freezing, since DDP fixes its parameter set."""
    if world == 1:
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


# --- one epoch -----------------------------------------------------------------------------------------


def train_one_epoch(
    model: nn.Module,
    loader: Any,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    *,
    device: torch.device,
    scheduler: LRScheduler | None = None,
    ema: AveragedModel | None = None,
    scaler: torch.amp.GradScaler | None = None,
    amp_dtype: torch.dtype | None = None,
    mix: v2.Transform | None = None,
    accum_steps: int = 1,
    clip_norm: float | None = None,
    channels_last: bool = False,
    progress: str | None = None,
) -> float:
    """One pass over ``loader``; returns the mean training loss (of the mixed targets when MixUp/CutMix is on)."""
    model.train()
    scaler = scaler or torch.amp.GradScaler(device.type, enabled=False)
    loss_sum, seen = torch.zeros((), device=device), 0
    steps = len(loader)
    optimizer.zero_grad(set_to_none=True)
    # no bar on other ranks; tqdm's disable=None hides it when stderr is not a terminal (logs, CI)
    bar = tqdm(loader, desc=progress, leave=False, dynamic_ncols=True, disable=True if progress is None else None)
    for i, batch in enumerate(bar):
        if batch is None:  # every image of this batch was unreadable and skipped
            continue
        images, targets = (t.to(device, non_blocking=True) for t in batch)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if mix is not None:
            images, targets = mix(images, targets)

        # gradient accumulation: average over the micro-batches of this window (the last one may be shorter),
        # and let DDP all-reduce the gradients only on the window's last micro-batch
        window_end = min(steps, (i // accum_steps + 1) * accum_steps)
        window = window_end - (i // accum_steps) * accum_steps
        last_micro = i + 1 == window_end
        sync = model.no_sync() if isinstance(model, DistributedDataParallel) and not last_micro else nullcontext()
        with sync:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = criterion(model(images), targets)
            scaler.scale(loss / window).backward()

        if last_micro:
            if clip_norm:
                scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
                nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if scheduler is not None:
                scheduler.step()
            if ema is not None:
                ema.update_parameters(unwrap(model))
        loss_sum += loss.detach() * images.size(0)
        seen += images.size(0)
        if progress is not None and i % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return (loss_sum / max(1, seen)).item()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Any,
    *,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy in %) over the loader, summed over all ranks under DDP."""
    model.eval()
    totals = torch.zeros(3, device=device, dtype=torch.float64)  # loss sum, correct, count
    for batch in loader:
        if batch is None:
            continue
        images, targets = (t.to(device, non_blocking=True) for t in batch)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(images)
        totals[0] += nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
        totals[1] += (logits.argmax(1) == targets).sum()
        totals[2] += targets.numel()
    if dist.is_initialized():
        dist.all_reduce(totals)
    loss_sum, correct, count = totals.tolist()
    if count == 0:
        raise DataError("the validation set yielded no images")
    return loss_sum / count, 100.0 * correct / count


# --- checkpoints and outputs -------------------------------------------------------------------------------


def save_atomic(obj: Any, path: Path) -> None:
    """Write to a temporary file, flush it to disk, then rename: a crash leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_metrics(history: list[dict[str, float]], out: Path) -> None:
    tmp = out / "metrics.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["epoch", "lr", "train_loss", "val_loss", "val_acc1", "seconds"])
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, out / "metrics.csv")


def plot_curves(history: list[dict[str, float]], path: Path) -> None:
    """Loss and accuracy per epoch as a PNG (matplotlib's file backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], label="val")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [h["val_acc1"] for h in history], color="tab:green")
    ax_acc.set(xlabel="epoch", ylabel="top-1 %", title="validation accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def image_size_at(epoch: int, cfg: dict[str, Any]) -> int:
    """Progressive resizing: the size of the last stage [start_epoch, size] that has begun, else data.image_size."""
    size = cfg["data"]["image_size"]
    for start, stage_size in cfg["training"]["progressive_resizing"]:
        if epoch >= start:
            size = stage_size
    return size


# --- main ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    args = parse_args(argv)
    cfg = load_config(args)
    m, t, aug, run = cfg["model"], cfg["training"], cfg["augmentation"], cfg["run"]
    out = Path(run["out"])
    if not out.is_absolute():
        out = Path.cwd() / out

    rank, world, device = setup_distributed(args.device)
    is_main = rank == 0
    log = print if is_main else (lambda *a, **k: None)
    seed_everything(run["seed"], rank, run["deterministic"])
    if is_main:
        out.mkdir(parents=True, exist_ok=True)

    # --- data
    epochs = t["epochs"]
    image_size = image_size_at(0, cfg)
    data = load_data(cfg, image_size, rank=rank, world_size=world, pin_memory=device.type == "cuda")
    size_cpu_threads(data.train_loader.num_workers, world)
    num_classes = len(data.classes)
    if num_classes != m["num_classes"]:
        log(f"note: {data.root} has {num_classes} classes; config.yaml says {m['num_classes']}: using {num_classes}")

    # --- model (fp32 master weights; autocast handles the low precision)
    model = build_model(
        m["arch"], num_classes, drop_path_rate=m["drop_path"], dropout=m["dropout"], small_input=m["small_input"]
    )
    if m["pretrained"]:
        source = default_weights(m["arch"]) if m["pretrained"] is True else m["pretrained"]
        # a small-input stem (3x3, stride 1) has no ImageNet counterpart: load everything else
        log(load_pretrained(model, source, strict_backbone=not m["small_input"]))
    model.to(device)
    if t["channels_last"]:
        model.to(memory_format=torch.channels_last)  # NHWC: faster convolutions on tensor cores and oneDNN

    # --- optimizer, schedule, loss, AMP, EMA
    steps_per_epoch = math.ceil(len(data.train_loader) / t["grad_accum_steps"])
    optimizer = build_optimizer(model, t)
    scheduler = build_scheduler(optimizer, t, steps_per_epoch)
    criterion = nn.CrossEntropyLoss(label_smoothing=t["label_smoothing"])  # Szegedy et al., arXiv:1512.00567
    mix = build_mix(aug, num_classes)
    amp_dtype = autocast_dtype(device, t["amp"])
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ema = None
    if t["ema_decay"]:
        # EMA of weights and BatchNorm buffers; validation and best.pt use it (Polyak averaging)
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(t["ema_decay"]), use_buffers=True)

    # --- resume
    start_epoch, history = 0, []
    best_acc1, best_val_loss, stale_epochs = -1.0, math.inf, 0
    last_path, best_path = out / "last.pt", out / "best.pt"
    if args.resume:
        if not last_path.is_file():
            raise SystemExit(f"error: --resume: no checkpoint at {last_path}")
        ckpt = torch.load(last_path, map_location="cpu", weights_only=True)
        changes = config_changes(ckpt["config"], cfg)
        if changes and not args.allow_config_change:
            raise SystemExit(
                f"error: config changed since {last_path} was written ({'; '.join(changes)}); "
                "pass --allow-config-change to resume anyway"
            )
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        if ema is not None and ckpt["model_ema"] is not None:
            ema.module.load_state_dict(ckpt["model_ema"])
            ema.n_averaged.copy_(ckpt["ema_n_averaged"])
        start_epoch, history = ckpt["epoch"], ckpt["history"]
        best_acc1, best_val_loss, stale_epochs = ckpt["best_acc1"], ckpt["best_val_loss"], ckpt["stale_epochs"]
        rng = ckpt["rng"]
        set_rng_state(rng[rank] if len(rng) == world else rng[0])
        log(f"resumed from {last_path} at epoch {start_epoch}")

    # --- freeze then unfreeze (fine-tuning): the head alone first, then everything
    freeze = t["freeze"]
    if freeze["mode"] != "none" and start_epoch < freeze["epochs"]:
        freeze_backbone(model, trainable=False)
    ddp_model = wrap_ddp(model, device, world)

    effective = cfg["data"]["batch_size"] * world * t["grad_accum_steps"]
    log(
        f"{m['arch']}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, {num_classes} classes, "
        f"{len(data.train)} train / {len(data.val)} val images from {data.root}; device {device} x {world}, "
        f"effective batch {effective}, {steps_per_epoch} steps/epoch, amp {amp_dtype}"
    )

    # --- the epoch loop
    epoch = start_epoch - 1
    stopped_early = False
    for epoch in range(start_epoch, epochs):
        epoch_start = time.perf_counter()
        size = image_size_at(epoch, cfg)
        if size != image_size:  # progressive resizing: a new stage rebuilds the loaders at the new size
            image_size = size
            data = load_data(cfg, image_size, rank=rank, world_size=world, pin_memory=device.type == "cuda")
            log(f"progressive resizing: {image_size} px from epoch {epoch}")
        if freeze["mode"] != "none" and epoch == freeze["epochs"] and epoch > 0:
            freeze_backbone(model, trainable=True)
            ddp_model = wrap_ddp(model, device, world)
            log(f"epoch {epoch}: backbone unfrozen")
        data.train_sampler.set_epoch(epoch)

        lr = optimizer.param_groups[0]["lr"]
        train_loss = train_one_epoch(
            ddp_model,
            data.train_loader,
            optimizer,
            criterion,
            device=device,
            scheduler=scheduler,
            ema=ema,
            scaler=scaler,
            amp_dtype=amp_dtype,
            mix=mix,
            accum_steps=t["grad_accum_steps"],
            clip_norm=t["grad_clip_norm"],
            channels_last=t["channels_last"],
            progress=f"epoch {epoch}" if is_main else None,
        )
        val_model = ema.module if ema is not None else model
        val_loss, val_acc1 = evaluate(
            val_model, data.val_loader, device=device, amp_dtype=amp_dtype, channels_last=t["channels_last"]
        )
        seconds = time.perf_counter() - epoch_start
        history.append(
            {
                "epoch": epoch + 1,
                "lr": lr,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_acc1": val_acc1,
                "seconds": seconds,
            }
        )
        improved = val_acc1 > best_acc1
        best_acc1 = max(best_acc1, val_acc1)
        # early stopping watches the validation loss, which keeps improving after accuracy saturates
        if val_loss < best_val_loss:
            best_val_loss, stale_epochs = val_loss, 0
        else:
            stale_epochs += 1
        log(
            f"epoch {epoch + 1}/{epochs}  lr {lr:.3g}  train_loss {train_loss:.4f}  val_loss {val_loss:.4f}  "
            f"val_acc1 {val_acc1:.2f}  ({seconds:.1f} s)",
            flush=True,
        )

        # --- checkpoint: every rank's RNG state, so --resume replays the next epoch exactly
        rng = [rng_state()]
        if world > 1:
            rng = [None] * world
            dist.all_gather_object(rng, rng_state())
        if is_main:
            weights = {
                "arch": m["arch"],
                "num_classes": num_classes,
                "classes": data.classes,
                "image_size": cfg["data"]["image_size"],
                "small_input": m["small_input"],
                "config": cfg,
                "epoch": epoch + 1,  # epochs completed
                "val_acc1": val_acc1,
                "model": model.state_dict(),
                "model_ema": ema.module.state_dict() if ema is not None else None,
            }
            state = {
                **weights,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "ema_n_averaged": ema.n_averaged if ema is not None else None,
                "history": history,
                "best_acc1": best_acc1,
                "best_val_loss": best_val_loss,
                "stale_epochs": stale_epochs,
                "rng": rng,
            }
            if improved:
                save_atomic(weights, best_path)
            save_atomic(state, last_path)
            write_metrics(history, out)

        patience = t["early_stopping_patience"]
        if patience and stale_epochs >= patience:
            log(f"early stopping: no better val_loss for {patience} epochs")
            stopped_early = True
            break
        if args.stop_after is not None and epoch + 1 >= args.stop_after:
            log(f"stopping after epoch {epoch + 1} (--stop-after); continue with --resume")
            break

    summary = {
        "best_val_acc1": best_acc1,
        "epochs_run": epoch + 1,
        "wall_seconds": time.perf_counter() - started,
        "checkpoint": str(best_path),
        "stopped_early": stopped_early,
    }
    if is_main and history:
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        plot_curves(history, out / "curves.png")
        log(f"best val_acc1 {best_acc1:.2f} %; outputs in {out}")
    if world > 1:
        dist.destroy_process_group()
    return summary


if __name__ == "__main__":
    try:
        main()
    except DataError as e:
        sys.exit(f"error: {error_line(e)}")
