"""The training recipe: the hyperparameter tables of rules/recipes.yaml, then the derived values.

Tables set fields (first matching row per table, later tables override). This module then derives
what the tables cannot say as data, one small step per value: the per-device batch from GPU memory and
resolution with gradient accumulation, the LR for the batch actually used, the run's length and warmup,
the EMA horizon, the progressive-resizing schedule, the freezing phase and the augmentation pipeline.
Every value keeps its provenance (the rule that chose it, its file and reason), which config.yaml comments
and `explain` show.
"""

import math
from typing import Any, NamedTuple

from archadvisor import conditions
from archadvisor.recommendation import (
    Augmentation,
    AugOp,
    Freeze,
    Monitor,
    Normalize,
    Optimizer,
    ProgressiveResizing,
    Provenance,
    Training,
)
from archadvisor.ruleset import RuleSet

# Default ImageNet statistics: the pretrained weights expect them; harmless from scratch.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
DERIVED = "derived"  # the trace's table name for values computed here
HERE = "archadvisor/recipe.py"  # the trace's file for derived values


class Recipe:
    """The table fields with the rule behind each, and the trace of every row and derivation.

    A plain class (not a dataclass): defining a dataclass execs generated code at import, which
    `recommend`'s start-up pays for every one."""

    __slots__ = ("fields", "provenance", "trace")

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.provenance: dict[str, Provenance] = {}  # field -> rule
        self.trace: list[dict[str, Any]] = []

    def set(self, name: str, value: Any, rule: Provenance) -> None:
        self.fields[name] = value
        self.provenance[name] = rule

    def rule(self, name: str) -> Provenance | None:
        return self.provenance.get(name)

    def note(self, rule: str, because: str) -> Provenance:
        """Record a derivation in the trace; returns its provenance record."""
        self.trace.append({"rule": rule, "file": HERE, "because": because, "table": DERIVED})
        return Provenance(rule, HERE, because)


def _rule_id(provenance: Provenance | None) -> str:
    return provenance.rule if provenance is not None else "(default)"


def _pow2_floor(x: float) -> int:
    return 1 << max(0, int(math.floor(math.log2(max(1.0, x)))))


def apply_tables(rules: RuleSet, env: dict[str, Any]) -> Recipe:
    """Run every recipe table against ``env`` (spec + model variables)."""
    recipe = Recipe()
    for table in rules.tables:
        for row in table["rows"]:
            if "when" in row and not conditions.evaluate(row["when"], env):
                continue
            record = Provenance(row["id"], rules.files.get(row["id"]), row["because"])
            for name, value in row["set"].items():
                recipe.set(name, value, record)
            recipe.trace.append(
                {
                    "rule": row["id"],
                    "file": rules.files.get(row["id"]),
                    "because": row["because"]
                    + (f" [{conditions.describe(row['when'], env)}]" if "when" in row else ""),
                    "table": table["name"],
                }
            )
            break
    return recipe


class Batch(NamedTuple):
    per_device: int
    devices: int
    accum: int
    rule: Provenance | None  # what sized the per-device batch
    accum_rule: Provenance | None

    @property
    def effective(self) -> int:
        return self.per_device * self.devices * self.accum


def derive_batch(recipe: Recipe, env: dict[str, Any], train_size: int | None, small_input: bool) -> Batch:
    """Per-device batch from the table, scaled for resolution and GPU memory, then gradient accumulation to
    reach the effective batch (capped so a small dataset still gets ~20 optimizer steps per epoch)."""
    f = recipe.fields
    gpus = env["gpus"] if env["compute"] in ("single-gpu", "multi-gpu") else 0
    devices = max(1, gpus)
    effective = f.get("effective_batch", 256)
    # Fewer than ~20 optimizer steps per epoch starves warmup/EMA/early stopping of updates.
    cap = max(16, _pow2_floor(env["images"] / 20))
    cap_rule = None  # the note of whichever cap shrank the effective batch
    if effective > cap:
        recipe.provenance["effective_batch"] = cap_rule = recipe.note(
            "batch.dataset_cap",
            f"{env['images']} examples: effective batch {effective} -> {cap} (at least ~20 steps per epoch)",
        )
        effective = cap
    # small-sample recipes cap the batch at a fraction of the training set instead: the UCR baselines'
    # min(N_train / 10, batch) (Wang et al. 2017, arXiv:1611.06455), at least 2 examples for BatchNorm
    fraction = f.get("batch_max_fraction")
    if fraction and effective > max(2, int(env["images"] * fraction)):
        small = max(2, int(env["images"] * fraction))
        recipe.provenance["effective_batch"] = cap_rule = recipe.note(
            "batch.fraction_cap",
            f"{env['images']} examples: effective batch {effective} -> {small} (at most {fraction:g} of the set: the "
            "UCR baselines' min(N_train / 10, batch), Wang et al. 2017, arXiv:1611.06455)",
        )
        effective = small
    per_device = f.get("batch_per_device", 64)
    rule = recipe.rule("batch_per_device")
    # activation memory grows with pixels; the table is for 224 px (a small-input stem ~ 4x the side)
    side = None if train_size is None else train_size * (4 if small_input and env.get("family") != "SimpleCNN" else 1)
    ref_side = f.get("batch_image_size", 224)
    if side is not None and side > ref_side:
        scaled = max(1, _pow2_floor(per_device * (ref_side / side) ** 2))
        rule = recipe.note(
            "batch.resolution", f"{train_size} px: per-device batch {per_device} -> {scaled} (memory ~ pixels)"
        )
        per_device = scaled
    elif side is not None and side < ref_side and per_device < effective // devices:
        # the other way too: a 512 px table row's 8 crops are 256 crops' memory at 32 px, so the effective batch
        # fits on the device and needs no accumulation (each accumulated micro-batch costs an optimizer step)
        scaled = min(_pow2_floor(per_device * (ref_side / side) ** 2), _pow2_floor(effective // devices))
        if scaled > per_device:
            rule = recipe.note(
                "batch.resolution", f"{train_size} px: per-device batch {per_device} -> {scaled} (memory ~ pixels)"
            )
            per_device = scaled
    mem = env.get("gpu_memory_gb")
    need = f.get("batch_memory_gb", 16)
    if mem is not None and gpus > 0 and mem < need:
        scaled = max(1, _pow2_floor(per_device * mem / need))
        rule = recipe.note(
            "batch.gpu_memory",
            f"{mem:g} GB per GPU < {need:g} GB the table assumes: per-device batch {per_device} -> {scaled}",
        )
        per_device = scaled
    if env["compute"] in ("cpu", "edge"):
        per_device = min(per_device, 64)
    if cap_rule is not None and per_device > max(1, effective // devices):
        rule = cap_rule  # the per-device batch is the capped effective batch: say what capped it
    per_device = min(per_device, max(1, effective // devices))
    accum = max(1, math.ceil(effective / (per_device * devices)))
    max_accum = f.get("max_grad_accum", 8)
    accum_rule = rule
    if accum > max_accum:
        accum_rule = recipe.note(
            "batch.accum_cap",
            f"gradient accumulation {accum} capped at {max_accum}: effective batch shrinks to "
            f"{per_device * devices * max_accum} ({_rule_id(recipe.rule('max_grad_accum'))})",
        )
        accum = max_accum
    if accum > 1:
        accum_rule = recipe.note(
            "batch.accumulation",
            f"{per_device} x {devices} device(s) x {accum} steps = effective batch {per_device * devices * accum}",
        )
    return Batch(per_device, devices, accum, rule, accum_rule)


def derive_lr(recipe: Recipe, effective_batch: int) -> tuple[float, Provenance | None]:
    """The peak LR for the batch actually used: linear scaling LR = base_LR x batch/256 for SGD (Goyal et al.
    2017, arXiv:1706.02677), square-root scaling for adaptive optimizers (Malladi et al. 2022), or the table's
    LR as it is (fine-tuning, and recipes whose LR is given for their own batch)."""
    f = recipe.fields
    base_lr = f["base_lr"]
    scaling = f.get("lr_scaling", "linear")
    if scaling == "linear":
        lr = base_lr * effective_batch / 256
        return lr, recipe.note(
            "lr.scaling", f"LR = {base_lr:g} x {effective_batch}/256 = {lr:.3g} (linear scaling rule, SGD)"
        )
    if scaling == "sqrt":
        lr = base_lr * math.sqrt(effective_batch / 256)
        return lr, recipe.note(
            "lr.scaling_sqrt", f"LR = {base_lr:g} x sqrt({effective_batch}/256) = {lr:.3g} (square-root scaling, AdamW)"
        )
    return base_lr, recipe.rule("base_lr")


class Duration(NamedTuple):
    epochs: int
    epochs_rule: Provenance | None
    warmup_epochs: int
    warmup_rule: Provenance | None
    steps_per_epoch: int
    warmup_steps: int | None = None  # warmup in optimizer steps, where the recipe counts it so

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def derive_duration(recipe: Recipe, env: dict[str, Any], effective_batch: int, progressive: bool) -> Duration:
    """Epochs (the progressive-resizing column when it applies) and a warmup of at most 10 % of the run."""
    f = recipe.fields
    epochs = f.get("epochs", 100)
    epochs_rule = recipe.rule("epochs")
    if progressive and not env.get("fine_tune", False) and "progressive_epochs" in f:
        epochs = f["progressive_epochs"]
        epochs_rule = recipe.rule("progressive_epochs")
        recipe.note("epochs.progressive", f"progressive resizing: {epochs} epochs (the table's progressive column)")
    steps_per_epoch = max(1, math.ceil(env["images"] / effective_batch))
    warmup = f.get("warmup_epochs", 0)
    warmup_rule = recipe.rule("warmup_epochs")
    if warmup > max(1, epochs // 10):
        warmup_rule = recipe.note(
            "warmup.cap", f"warmup {warmup} -> {max(1, epochs // 10)} epochs (at most 10% of a {epochs}-epoch run)"
        )
        warmup = max(1, epochs // 10)
    total = epochs * steps_per_epoch
    warmup_steps = None
    if "warmup_ratio" in f:
        warmup_steps = max(1, math.ceil(f["warmup_ratio"] * total))
        warmup_rule = recipe.note(
            "warmup.ratio", f"warmup {f['warmup_ratio']:.0%} of {total} optimizer steps = {warmup_steps} steps"
        )
    elif "warmup_steps" in f:
        warmup_steps = min(f["warmup_steps"], max(1, total // 10))
        if warmup_steps < f["warmup_steps"]:
            warmup_rule = recipe.note(
                "warmup.cap", f"warmup {f['warmup_steps']} -> {warmup_steps} steps (at most 10% of {total} steps)"
            )
        if "warmup_max_epochs" in f and warmup_steps > f["warmup_max_epochs"] * steps_per_epoch:
            warmup_steps = max(1, f["warmup_max_epochs"] * steps_per_epoch)
            warmup_rule = recipe.note(
                "warmup.epoch_cap",
                f"warmup {f['warmup_steps']} -> {warmup_steps} steps (at most {f['warmup_max_epochs']} epoch(s) of "
                f"{steps_per_epoch} optimizer steps: {_rule_id(recipe.rule('warmup_max_epochs'))})",
            )
    return Duration(epochs, epochs_rule, warmup, warmup_rule, steps_per_epoch, warmup_steps)


def derive_ema(recipe: Recipe, total_steps: int) -> tuple[float | None, Provenance | None]:
    """The table's EMA decay, unless its horizon 1/(1-d) exceeds a tenth of the run: the average would then
    still be mostly the random initialization at the end (the horizon of an EMA is ~1/(1-d) updates)."""
    ema = recipe.fields.get("ema_decay")
    if ema is not None and 1 / (1 - ema) > total_steps / 10:
        new = round(max(0.9, 1 - 10 / total_steps), 4)
        return new, recipe.note(
            "ema.horizon",
            f"{total_steps} optimizer steps: EMA decay {ema} -> {new} so it averages the last ~10% of the run",
        )
    return ema, recipe.rule("ema_decay")


def derive_progressive(
    enabled: bool, epochs: int, train_size: int | None, start: float, task: str
) -> ProgressiveResizing | None:
    """4 equal stages from ``start`` x the size up to the full size (Tan & Le 2021, arXiv:2104.00298); None
    where it does not apply (tasks other than classification)."""
    if task != "classification":
        return None
    if not enabled or train_size is None:
        return ProgressiveResizing(enabled=False)
    stages = 4
    schedule = []
    for i in range(stages):
        frac = start + (1 - start) * i / (stages - 1)
        size = max(32, int(round(train_size * frac / 32)) * 32)
        schedule.append((i * epochs // stages, min(size, train_size) if i < stages - 1 else train_size))
    return ProgressiveResizing(enabled=True, schedule=tuple(schedule))


def derive_freeze(recipe: Recipe, fine_tune: bool, epochs: int, task: str) -> Freeze | None:
    if task != "classification":
        return None
    mode = recipe.fields.get("freeze_mode", "none") if fine_tune else "none"
    return Freeze(mode, round(recipe.fields.get("freeze_epochs_ratio", 0.0) * epochs) if mode != "none" else 0)


class Derived(NamedTuple):
    training: Training
    augmentation: Augmentation
    provenance: dict[str, Provenance]


def _fixed(rule: str, reason: str) -> Provenance:
    return Provenance(rule, HERE, reason)


def derive(
    recipe: Recipe,
    env: dict[str, Any],
    *,
    image_size: int | None,
    small_input: bool,
    small_images: bool,
    hflip: bool | None,
    monitor: Monitor,
) -> Derived:
    """Turn table fields into the Recommendation's training and augmentation sections.

    ``small_input``: the model uses its small-input stem; ``small_images``: the images are at most the rules'
    small-input size (crop and eval-crop policy), whether or not the model has such a stem.
    """
    f = recipe.fields
    train_size = f.get("train_image_size", image_size)
    fine_tune = bool(env.get("fine_tune", False))
    batch = derive_batch(recipe, env, train_size, small_input)
    lr, lr_rule = derive_lr(recipe, batch.effective)
    progressive = bool(f.get("progressive_resizing", False))
    duration = derive_duration(recipe, env, batch.effective, progressive)
    ema, ema_rule = derive_ema(recipe, duration.total_steps)
    optimizer = f.get("optimizer", "adamw")
    cnn = env.get("kind") == "cnn"
    training = Training(
        pretrained=fine_tune,
        freeze=derive_freeze(recipe, fine_tune, duration.epochs, env["task"]),
        image_size=train_size,
        small_input=small_input,
        num_classes=env["classes"],
        optimizer=Optimizer(
            name=optimizer,
            momentum=f.get("momentum") if optimizer == "sgd" else None,
            nesterov=f.get("nesterov") if optimizer == "sgd" else None,
            betas=(0.9, 0.999) if optimizer == "adamw" else None,
        ),
        base_lr=f["base_lr"],
        lr=float(f"{lr:.4g}"),
        min_lr=float(f"{lr * f.get('min_lr_ratio', 0.01):.3g}"),
        batch_size=batch.per_device,
        effective_batch_size=batch.effective,
        grad_accum_steps=batch.accum,
        weight_decay=f.get("weight_decay", 0.05),
        epochs=duration.epochs,
        warmup_epochs=duration.warmup_epochs,
        warmup_steps=duration.warmup_steps,
        schedule=f.get("schedule", "cosine"),
        poly_power=f.get("poly_power") if f.get("schedule") == "poly" else None,
        milestones=tuple(round(m * duration.epochs) for m in f["milestones"])
        if f.get("schedule") == "multistep" and "milestones" in f
        else None,
        label_smoothing=f.get("label_smoothing"),
        dropout=f.get("dropout"),
        drop_path=f.get("drop_path"),
        ema_decay=ema,
        early_stopping_patience=f.get("early_stopping_patience", 10),
        grad_clip_norm=f.get("grad_clip_norm"),
        amp=True,
        channels_last=cnn,
        progressive_resizing=derive_progressive(
            progressive, duration.epochs, train_size, f.get("progressive_start", 0.5), env["task"]
        ),
        steps_per_epoch=duration.steps_per_epoch,
        monitor=monitor,
    )
    rule = recipe.rule
    provenance: dict[str, Provenance | None] = {
        "training.lr": lr_rule,
        "training.base_lr": rule("base_lr"),
        "training.optimizer": rule("optimizer"),
        "training.batch_size": batch.rule,
        "training.effective_batch_size": rule("effective_batch"),
        "training.grad_accum_steps": batch.accum_rule,
        "training.weight_decay": rule("weight_decay"),
        "training.epochs": duration.epochs_rule,
        "training.warmup_epochs": duration.warmup_rule,
        "training.label_smoothing": rule("label_smoothing"),
        "training.dropout": rule("dropout"),
        "training.drop_path": rule("drop_path"),
        "training.ema_decay": ema_rule,
        "training.early_stopping_patience": rule("early_stopping_patience"),
        "training.grad_clip_norm": rule("grad_clip_norm"),
        "training.freeze": rule("freeze_mode"),
        "training.progressive_resizing": rule("progressive_resizing"),
        "training.image_size": rule("train_image_size") or _fixed("size.input", "the input resolution given"),
        "training.pretrained": _fixed("inputs.pretrained", "--pretrained, and the catalog has reference weights")
        if fine_tune
        else _fixed("inputs.pretrained", "--no-pretrained (or no published weights)"),
        "training.min_lr": rule("min_lr_ratio"),
        "training.schedule": rule("schedule"),
        "training.poly_power": rule("poly_power"),
        "training.milestones": rule("milestones"),
        "training.warmup_steps": duration.warmup_rule if duration.warmup_steps is not None else None,
        "training.amp": _fixed("amp.default", "mixed precision (bf16 autocast on CPU, fp16/bf16 on GPU; Micikevicius et al. 2018, arXiv:1710.03740)"),
        "training.channels_last": _fixed("memory_format.cnn", "channels_last for convolutions (faster cuDNN/oneDNN kernels; PyTorch memory-format tutorial)")
        if cnn
        else _fixed("memory_format.dense", "NCHW, as torchvision's references/segmentation and references/detection train (detectors batch variable-size images inside the model); channels_last measured no faster for a U-Net step on CPU (unet_small 51.7 vs 45.0 ms, unet_resnet18 136 vs 138 ms; bf16, 2 threads, 16 x 32 px)")
        if env["task"] in ("semantic-segmentation", "detection", "instance-segmentation")
        else _fixed("memory_format.default", "not a convolutional network"),
        "training.monitor": _fixed("monitor.task", f"{monitor.metric} ({monitor.mode}) picks the best checkpoint and drives early stopping"),
    }  # fmt: skip
    augmentation = derive_augmentation(
        f, image_size=train_size, hflip=hflip, task=env["task"], small_images=small_images
    )
    aug_rule = _NON_IMAGE_RULES.get(env["task"]) if env["task"] in _NON_IMAGE_OPS else rule("aug_level")
    for key in ("level", "mixup_alpha", "cutmix_alpha", "ops"):
        provenance[f"augmentation.{key}"] = aug_rule
    provenance["augmentation.mix_prob"] = (
        _fixed("mix.half", "half the batches mixed, MixUp or CutMix 50/50 (DeiT / timm switch_prob 0.5)")
        if augmentation.mix_prob
        else aug_rule
    )
    if augmentation.normalize is not None:
        provenance["augmentation.normalize"] = _fixed(
            "normalize.imagenet", "ImageNet mean/std, what pretrained weights expect (harmless from scratch)"
        )
    if augmentation.eval_crop_pct is not None:
        provenance["augmentation.eval_crop_pct"] = (
            _fixed("eval_crop.small_images", "small images are evaluated whole: a center crop would cut the object")
            if small_images
            else _fixed(
                "eval_crop.imagenet", "resize to size/0.875, center-crop (torchvision reference eval transform)"
            )
        )
    return Derived(training, augmentation, {k: v for k, v in provenance.items() if v is not None})


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


# what chose the non-image pipelines above (the image augmentation table does not apply to them)
_NON_IMAGE_RULES: dict[str, Provenance] = {
    "speech-recognition": Provenance("aug.speech", HERE, "SpecAugment masks and speed perturbation (Park et al. 2019, arXiv:1904.08779; Ko et al. 2015)"),
    "time-series": Provenance("aug.time_series", HERE, "jitter and scaling of the series (Um et al. 2017, arXiv:1706.00527)"),
}  # fmt: skip


def _ops(raw: list[dict[str, Any]]) -> tuple[AugOp, ...]:
    return tuple(AugOp(op["name"], dict(op.get("params", {}))) for op in raw)


def derive_augmentation(
    f: dict[str, Any], *, image_size: int | None, hflip: bool | None, task: str, small_images: bool
) -> Augmentation:
    """The final pipeline, each setting decided here once: the crop size is ``training.image_size`` (not an
    op parameter), no horizontal flip when a mirrored input changes the class, the eval crop."""
    level = f.get("aug_level", "light")
    if task in _NON_IMAGE_OPS or image_size is None:
        ops = _ops(_NON_IMAGE_OPS.get(task, []))
        return Augmentation(level="light" if ops else "none", ops=ops, mixup_alpha=0.0, cutmix_alpha=0.0,
                            mix_prob=0.0, normalize=None, eval_crop_pct=None)  # fmt: skip
    raw: list[dict[str, Any]] = []
    flip = [{"name": "horizontal_flip", "params": {"p": 0.5}}] if hflip else []
    if task in ("detection", "instance-segmentation") and f.get("mosaic"):
        # ultralytics' own pipeline (cfg/default.yaml: mosaic 1.0, close_mosaic 10, hsv_h/s/v, scale 0.5, fliplr)
        raw += [{"name": "mosaic", "params": {"p": 1.0, "close_last_epochs": 10}},
                {"name": "hsv", "params": {"h": 0.015, "s": 0.7, "v": 0.4}},
                {"name": "random_scale", "params": {"scale": 0.5}}, *flip]  # fmt: skip
        return Augmentation(level=level, ops=_ops(raw), mixup_alpha=0.0, cutmix_alpha=0.0, mix_prob=0.0,
                            normalize=Normalize((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), eval_crop_pct=None)  # fmt: skip
    if task in ("detection", "instance-segmentation"):
        # torchvision references/detection presets: flip, scale jitter, photometric distortion; boxes and masks
        # follow every geometric op and degenerate boxes are dropped (SanitizeBoundingBoxes)
        raw += [*flip, {"name": "scale_jitter", "params": {"scale": [0.5, 2.0]}},
                {"name": "photometric_distort", "params": {"p": 0.5}}]  # fmt: skip
        return Augmentation(
            level=level,
            ops=_ops(raw),
            mixup_alpha=0.0,
            cutmix_alpha=0.0,
            mix_prob=0.0,
            normalize=None,
            eval_crop_pct=None,
        )  # fmt: skip  (torchvision detectors normalize inside)
    if task == "semantic-segmentation":
        # torchvision references/segmentation presets: random resize 0.5-2.0 of the base size, flip, random
        # crop padded with the ignore index in the mask, photometric changes on the image only
        raw += [{"name": "scale_jitter", "params": {"scale": [0.5, 2.0]}}, *flip,
                {"name": "random_crop", "params": {"pad_image": 0, "pad_mask": 255}},
                {"name": "color_jitter", "params": {"brightness": 0.3, "contrast": 0.3, "saturation": 0.3, "hue": 0.0}}]  # fmt: skip
        return Augmentation(level=level, ops=_ops(raw), mixup_alpha=0.0, cutmix_alpha=0.0, mix_prob=0.0,
                            normalize=Normalize(MEAN, STD), eval_crop_pct=None)  # fmt: skip
    # Basic augmentation (always): RandomResizedCrop + flip + ColorJitter. Small images keep at least a
    # third of the image: scale 0.08 of a 64 px image is an 18 px crop, which destroys the object.
    min_scale = f.get("crop_scale_min", 0.35 if small_images else 0.08)
    raw.append({"name": "random_resized_crop", "params": {"scale": [min_scale, 1.0], "ratio": [0.75, 1.3333]}})
    if hflip:
        raw.append({"name": "horizontal_flip", "params": {"p": 0.5}})
    raw.append({"name": "color_jitter", "params": {"brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "hue": 0.1}})
    policy = f.get("policy", "none")
    if policy == "rand_augment":
        raw.append({"name": "rand_augment", "params": {"num_ops": 2, "magnitude": f.get("rand_augment_magnitude", 9)}})
    elif policy == "trivial_augment":
        raw.append({"name": "trivial_augment", "params": {}})
    if level == "very-heavy":
        raw.append({"name": "random_grayscale", "params": {"p": 0.1}})
    if f.get("random_erasing", 0.0) > 0:
        raw.append({"name": "random_erasing", "params": {"p": f["random_erasing"]}})
    mix = f.get("mixup_alpha", 0.0) > 0 or f.get("cutmix_alpha", 0.0) > 0
    return Augmentation(
        level=level,
        ops=_ops(raw),
        mixup_alpha=f.get("mixup_alpha", 0.0),
        cutmix_alpha=f.get("cutmix_alpha", 0.0),
        mix_prob=0.5 if mix else 0.0,
        normalize=Normalize(MEAN, STD),
        eval_crop_pct=1.0 if small_images else 0.875,
    )
