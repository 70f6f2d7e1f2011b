"""The training recipe: the hyperparameter tables of rules/recipes.yaml, then the derived values.

Tables set fields (first matching row per table, later tables override). This module then derives
what the tables cannot say as data: the LR scaling rule for the batch actually used, the per-device
batch from GPU memory and resolution with gradient accumulation, the warmup and EMA horizon for the
run's real length, the progressive-resizing schedule and the augmentation pipeline. Every value keeps
its provenance ("which rule chose it"), which config.yaml comments and `explain` show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from archadvisor import conditions
from archadvisor.ruleset import RuleSet

# Default ImageNet statistics: the pretrained weights expect them; harmless from scratch.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass
class Recipe:
    fields: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, str] = field(default_factory=dict)  # field -> rule id
    trace: list[dict[str, Any]] = field(default_factory=list)

    def set(self, name: str, value: Any, rule: str) -> None:
        self.fields[name] = value
        self.provenance[name] = rule


def _pow2_floor(x: float) -> int:
    return 1 << max(0, int(math.floor(math.log2(max(1.0, x)))))


def apply_tables(rules: RuleSet, env: dict[str, Any]) -> Recipe:
    """Run every recipe table against ``env`` (spec + model variables)."""
    recipe = Recipe()
    for table in rules.tables:
        for row in table["rows"]:
            if "when" in row and not conditions.evaluate(row["when"], env):
                continue
            for name, value in row["set"].items():
                recipe.set(name, value, row["id"])
            recipe.trace.append(
                {
                    "rule": row["id"],
                    "file": rules.files.get(row["id"], ""),
                    "because": row["because"]
                    + (f" [{conditions.describe(row['when'], env)}]" if "when" in row else ""),
                    "table": table["name"],
                }
            )
            break
    return recipe


def derive(
    recipe: Recipe, env: dict[str, Any], *, image_size: int | None, small_input: bool, hflip: bool
) -> dict[str, Any]:
    """Turn table fields into the Recommendation's training and augmentation sections."""
    f = recipe.fields
    task = env["task"]
    images = env["images"]
    gpus = env["gpus"] if env["compute"] in ("single-gpu", "multi-gpu") else 0
    devices = max(1, gpus)

    def note(rule: str, because: str) -> None:
        recipe.trace.append({"rule": rule, "file": "archadvisor/recipe.py", "because": because, "table": "derived"})

    # --- batch size: table per-device batch, scaled for resolution and memory, then accumulation
    effective = f.get("effective_batch", 256)
    # Fewer than ~20 optimizer steps per epoch starves warmup/EMA/early stopping of updates.
    cap = max(16, _pow2_floor(images / 20))
    if effective > cap:
        note(
            "batch.dataset_cap", f"{images} images: effective batch {effective} -> {cap} (at least ~20 steps per epoch)"
        )
        effective = cap
        recipe.provenance["effective_batch"] = "batch.dataset_cap"
    per_device = f.get("batch_per_device", 64)
    train_size = f.get("train_image_size", image_size)
    # activation memory grows with pixels; the table is for 224 px (a small-input stem ~ 4x the side)
    side = None if train_size is None else train_size * (4 if small_input and env.get("family") != "SimpleCNN" else 1)
    ref_side = 640 if task == "detection" else 224
    if side is not None and side > ref_side:
        scaled = max(1, _pow2_floor(per_device * (ref_side / side) ** 2))
        note("batch.resolution", f"{train_size} px: per-device batch {per_device} -> {scaled} (memory ~ pixels)")
        per_device = scaled
    mem = env.get("gpu_memory_gb")
    need = f.get("batch_memory_gb", 16)
    if mem is not None and gpus > 0 and mem < need:
        scaled = max(1, _pow2_floor(per_device * mem / need))
        note(
            "batch.gpu_memory",
            f"{mem:g} GB per GPU < {need:g} GB the table assumes: per-device batch {per_device} -> {scaled}",
        )
        per_device = scaled
    if env["compute"] in ("cpu", "edge"):
        per_device = min(per_device, 64)
    per_device = min(per_device, max(1, effective // devices))
    accum = max(1, math.ceil(effective / (per_device * devices)))
    max_accum = f.get("max_grad_accum", 8)
    if accum > max_accum:
        note("batch.accum_cap", f"gradient accumulation {accum} capped at {max_accum}: effective batch shrinks")
        accum = max_accum
    effective_actual = per_device * devices * accum
    if accum > 1:
        note(
            "batch.accumulation",
            f"{per_device} x {devices} device(s) x {accum} steps = effective batch {effective_actual}",
        )

    # --- learning rate: the scaling rule LR = base_LR x (batch / 256) for the batch actually used
    base_lr = f["base_lr"]
    if f.get("lr_scaling", "linear") == "linear":
        lr = base_lr * effective_actual / 256
        note("lr.scaling", f"LR = {base_lr:g} x {effective_actual}/256 = {lr:.3g} (guide: LR = base_LR x batch/256)")
        lr_rule = "lr.scaling"
    else:
        lr = base_lr
        lr_rule = recipe.provenance.get("base_lr", "")

    # --- duration
    fine_tune = env.get("fine_tune", False)
    progressive = bool(f.get("progressive_resizing", False))
    epochs = f.get("epochs", 100)
    epochs_rule = recipe.provenance.get("epochs", "")
    if progressive and not fine_tune and "progressive_epochs" in f:
        epochs = f["progressive_epochs"]
        epochs_rule = recipe.provenance["progressive_epochs"]
        note("epochs.progressive", f"progressive resizing: {epochs} epochs (the table's Progressive Resizing column)")
    steps_per_epoch = max(1, math.ceil(images / effective_actual))
    total_steps = epochs * steps_per_epoch
    warmup = f.get("warmup_epochs", 0)
    if warmup > max(1, epochs // 10):
        note("warmup.cap", f"warmup {warmup} -> {max(1, epochs // 10)} epochs (at most 10% of a {epochs}-epoch run)")
        warmup = max(1, epochs // 10)
        recipe.provenance["warmup_epochs"] = "warmup.cap"

    # --- EMA: the table's decay, unless its horizon 1/(1-d) exceeds a tenth of the run (then the EMA
    # would still be mostly the random init at the end: guide_deviations.md, EMA)
    ema = f.get("ema_decay")
    if ema is not None and 1 / (1 - ema) > total_steps / 10:
        new = round(max(0.9, 1 - 10 / total_steps), 4)
        note(
            "ema.horizon",
            f"{total_steps} optimizer steps: EMA decay {ema} -> {new} so it averages the last ~10% of the run",
        )
        ema = new
        recipe.provenance["ema_decay"] = "ema.horizon"

    # --- progressive resizing schedule: 4 equal stages up to the full size (the guide's schedule shape)
    schedule: list[list[int]] = []
    if progressive:
        start = f.get("progressive_start", 0.5)
        stages = 4
        for i in range(stages):
            frac = start + (1 - start) * i / (stages - 1)
            size = max(32, int(round(train_size * frac / 32)) * 32)
            schedule.append([i * epochs // stages, min(size, train_size)])
        schedule[-1][1] = train_size

    freeze_mode = f.get("freeze_mode", "none") if fine_tune else "none"
    freeze_epochs = round(f.get("freeze_epochs_ratio", 0.0) * epochs) if freeze_mode != "none" else 0

    training = {
        "pretrained": bool(fine_tune),
        "freeze": {"mode": freeze_mode, "epochs": freeze_epochs},
        "image_size": train_size,
        "small_input": small_input,
        "num_classes": env["classes"],
        "optimizer": {
            "name": f.get("optimizer", "adamw"),
            "momentum": f.get("momentum") if f.get("optimizer") == "sgd" else None,
            "nesterov": f.get("nesterov") if f.get("optimizer") == "sgd" else None,
            "betas": [0.9, 0.999] if f.get("optimizer", "adamw") == "adamw" else None,
        },
        "base_lr": base_lr,
        "lr": float(f"{lr:.4g}"),
        "min_lr": float(f"{lr * 0.01:.3g}"),
        "batch_size": per_device,
        "effective_batch_size": effective_actual,
        "grad_accum_steps": accum,
        "weight_decay": f.get("weight_decay", 0.05),
        "epochs": epochs,
        "warmup_epochs": warmup,
        "schedule": "cosine",
        "label_smoothing": f.get("label_smoothing", 0.0),
        "dropout": f.get("dropout", 0.0),
        "drop_path": f.get("drop_path", 0.0),
        "ema_decay": ema,
        "early_stopping_patience": f.get("early_stopping_patience", 10),
        "grad_clip_norm": f.get("grad_clip_norm"),
        "amp": True,
        "channels_last": env.get("kind") == "cnn",
        "progressive_resizing": {"enabled": progressive, "schedule": schedule},
        "steps_per_epoch": steps_per_epoch,
    }
    prov = recipe.provenance
    provenance = {
        "training.lr": lr_rule,
        "training.base_lr": prov.get("base_lr", ""),
        "training.optimizer": prov.get("optimizer", "opt.adamw"),
        "training.batch_size": prov.get("batch_per_device", ""),
        "training.effective_batch_size": prov.get("effective_batch", ""),
        "training.grad_accum_steps": "batch.accumulation" if accum > 1 else prov.get("batch_per_device", ""),
        "training.weight_decay": prov.get("weight_decay", ""),
        "training.epochs": epochs_rule,
        "training.warmup_epochs": prov.get("warmup_epochs", ""),
        "training.label_smoothing": prov.get("label_smoothing", ""),
        "training.dropout": prov.get("dropout", ""),
        "training.drop_path": prov.get("drop_path", ""),
        "training.ema_decay": prov.get("ema_decay", ""),
        "training.early_stopping_patience": prov.get("early_stopping_patience", ""),
        "training.grad_clip_norm": prov.get("grad_clip_norm", ""),
        "training.freeze": prov.get("freeze_mode", ""),
        "training.progressive_resizing": prov.get("progressive_resizing", ""),
        "training.image_size": prov.get("train_image_size", "size.input"),
        "training.pretrained": "inputs: --pretrained, and the catalog has reference weights"
        if fine_tune
        else "inputs: --no-pretrained (or no published weights)",
        "training.small_input": "cls.small_images.stem" if small_input else "",
        "training.min_lr": "lr.cosine_floor: the cosine ends at 1% of the peak, not 0 (the guide's snippet wastes its last steps at LR 0)",
        "training.schedule": "lr.warmup_cosine: linear warmup then cosine (guide: Cosine Annealing with Warmup, RECOMMENDED)",
        "training.amp": "amp.default: mixed precision (bf16 autocast on CPU, fp16/bf16 on GPU): ~2x throughput, same accuracy",
        "training.channels_last": "memory_format.cnn: channels_last for convolutions (faster cuDNN/oneDNN kernels)"
        if env.get("kind") == "cnn"
        else "memory_format.default: not a convolutional network",
    }
    augmentation = _augmentation(f, image_size=train_size, hflip=hflip, task=task)
    for key in ("level", "mixup_alpha", "cutmix_alpha", "ops"):
        provenance[f"augmentation.{key}"] = prov.get("aug_level", "")
    provenance["augmentation.mix_prob"] = (
        "mix.half: half the batches mixed, MixUp or CutMix 50/50 (DeiT/timm switch_prob 0.5)"
        if augmentation["mix_prob"]
        else prov.get("aug_level", "")
    )
    provenance["augmentation.normalize"] = (
        "normalize.imagenet: ImageNet mean/std, what pretrained weights expect (harmless from scratch)"
    )
    return {"training": training, "augmentation": augmentation, "provenance": provenance}


# Augmentation for inputs that are not images: no crops, flips or colour ops there.
_NON_IMAGE_OPS: dict[str, list[dict[str, Any]]] = {
    # SpecAugment (Park et al. 2019, arXiv:1904.08779) and speed perturbation (Ko et al. 2015)
    "speech-recognition": [{"name": "spec_augment", "params": {"freq_masks": 2, "freq_width": 27, "time_masks": 2, "time_width_ratio": 0.05}},
                           {"name": "speed_perturb", "params": {"factors": [0.9, 1.0, 1.1]}}],
    # jitter and scaling (Um et al. 2017, arXiv:1706.00527)
    "time-series": [{"name": "jitter", "params": {"sigma": 0.03}}, {"name": "scaling", "params": {"sigma": 0.1}}],
    "text": [],
    "code": [],
    "text-generation": [],
}  # fmt: skip


def _augmentation(f: dict[str, Any], *, image_size: int | None, hflip: bool, task: str) -> dict[str, Any]:
    level = f.get("aug_level", "light")
    ops: list[dict[str, Any]] = []
    if task in _NON_IMAGE_OPS or image_size is None:
        ops = _NON_IMAGE_OPS.get(task, [])
        return {"level": "light" if ops else "none", "ops": ops, "mixup_alpha": 0.0, "cutmix_alpha": 0.0, "mix_prob": 0.0,
                "normalize": None}  # fmt: skip
    if task == "detection":
        if f.get("mosaic"):
            ops.append({"name": "mosaic", "params": {"p": 1.0, "close_last_epochs": 10}})
        ops.append({"name": "hsv", "params": {"h": 0.015, "s": 0.7, "v": 0.4}})
        ops.append({"name": "random_scale", "params": {"scale": 0.5}})
        if hflip:
            ops.append({"name": "horizontal_flip", "params": {"p": 0.5}})
        return {"level": level, "ops": ops, "mixup_alpha": 0.0, "cutmix_alpha": 0.0, "mix_prob": 0.0,
                "normalize": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}}  # fmt: skip
    # Basic augmentation (always): RandomResizedCrop + flip + ColorJitter. Small images keep at least a
    # third of the image: scale 0.08 of a 64 px image is an 18 px crop, which destroys the object.
    min_scale = f.get("crop_scale_min", 0.35 if image_size <= 64 else 0.08)
    ops.append(
        {
            "name": "random_resized_crop",
            "params": {"size": image_size, "scale": [min_scale, 1.0], "ratio": [0.75, 1.3333]},
        }
    )
    if hflip:
        ops.append({"name": "horizontal_flip", "params": {"p": 0.5}})
    ops.append({"name": "color_jitter", "params": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}})
    policy = f.get("policy", "none")
    if policy == "rand_augment":
        ops.append({"name": "rand_augment", "params": {"num_ops": 2, "magnitude": f.get("rand_augment_magnitude", 9)}})
    elif policy == "trivial_augment":
        ops.append({"name": "trivial_augment", "params": {}})
    if level == "very-heavy":
        ops.append({"name": "random_grayscale", "params": {"p": 0.1}})
    if f.get("random_erasing", 0.0) > 0:
        ops.append({"name": "random_erasing", "params": {"p": f["random_erasing"]}})
    mix = f.get("mixup_alpha", 0.0) > 0 or f.get("cutmix_alpha", 0.0) > 0
    return {
        "level": level,
        "ops": ops,
        "mixup_alpha": f.get("mixup_alpha", 0.0),
        "cutmix_alpha": f.get("cutmix_alpha", 0.0),
        "mix_prob": 0.5 if mix else 0.0,
        "normalize": {"mean": list(MEAN), "std": list(STD)},
    }
