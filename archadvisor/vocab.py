"""The vocabulary every module shares, defined once: tasks, compute levels, targets, model kinds, devices.

Thresholds and facts the rules set (the small-input image size, size limits, recipes) are *not* here: they
live in rules/ and are read from the loaded RuleSet wherever code needs them.
"""

from __future__ import annotations

# what is learned: every row of the selection table (rules/tasks.yaml has one row per task)
TASKS: tuple[str, ...] = (
    "classification",
    "detection",
    "semantic-segmentation",
    "instance-segmentation",
    "text",
    "code",
    "time-series",
    "image-generation",
    "text-generation",
    "speech-recognition",
    "video",
    "time-series-classification",  # labelled sequences (UCR/UEA); "time-series" is forecasting
)
# tasks whose inputs are images (or frames): --image-size applies; the others have no resolution
IMAGE_TASKS: tuple[str, ...] = (
    "classification",
    "detection",
    "semantic-segmentation",
    "instance-segmentation",
    "image-generation",
    "video",
)
DEFAULT_TASK = "classification"
# the input resolution assumed when --image-size is not given: the reference recipes' training sizes
# (ImageNet 224; ultralytics imgsz 640; SegFormer / ADE20K crops 512; torchvision Mask R-CNN min_size 800)
DEFAULT_IMAGE_SIZES: dict[str, int] = {"detection": 640, "semantic-segmentation": 512, "instance-segmentation": 800}
DEFAULT_IMAGE_SIZE = 224
# sequence tasks and the task inputs they take (the other tasks ignore them with a note)
FORECAST_TASKS: tuple[str, ...] = ("time-series",)
SEQUENCE_TASKS: tuple[str, ...] = ("time-series", "time-series-classification", "text", "code", "speech-recognition")
# tasks whose class count may be 1 (one object class plus background)
ONE_CLASS_TASKS: tuple[str, ...] = ("detection", "instance-segmentation")
# how a deployment plan quantizes (templates/core/export.py runs each of them)
QUANTIZE_MODES: tuple[str, ...] = ("none", "int8-dynamic", "int8-static", "int8-weights")
# tasks without a class count (forecasting, generation, transcription): --classes does not apply and is null
CLASSLESS_TASKS: tuple[str, ...] = ("time-series", "code", "text-generation", "image-generation", "speech-recognition")

# sampling frequencies: canonical spelling (pandas >= 2.2 offset aliases) <- accepted spellings, old and new
FREQUENCIES: dict[str, tuple[str, ...]] = {
    "s": ("s", "S", "sec", "second", "secondly"),
    "min": ("min", "T", "minute", "minutely"),
    "h": ("h", "H", "hour", "hourly"),
    "D": ("D", "d", "day", "daily"),
    "B": ("B", "business-daily", "businessdaily"),
    "W": ("W", "w", "week", "weekly"),
    "MS": ("MS", "month-start"),
    "ME": ("ME", "M", "month", "monthly"),
    "QS": ("QS", "quarter-start"),
    "QE": ("QE", "Q", "quarter", "quarterly"),
    "YS": ("YS", "AS", "year-start"),
    "YE": ("YE", "Y", "A", "year", "yearly", "annual", "annually"),
}

# training budget, and the GPUs each level means when --gpus is not given
COMPUTE: tuple[str, ...] = ("cpu", "edge", "single-gpu", "multi-gpu")
GPU_COMPUTE: tuple[str, ...] = ("single-gpu", "multi-gpu")
DEFAULT_GPUS: dict[str, int] = {"cpu": 0, "edge": 0, "single-gpu": 1, "multi-gpu": 4}
DEFAULT_COMPUTE = "single-gpu"

# where the model runs; the edge targets are devices other than the training machine
# (jetson is the AGX Xavier; jetson-orin the AGX Orin 64GB; jetson-orin-nano the Orin Nano 8GB: rules/devices.yaml)
TARGETS: tuple[str, ...] = (
    "cloud-gpu", "cloud-cpu", "jetson", "jetson-orin", "jetson-orin-nano", "ios", "android", "browser",
)  # fmt: skip
EDGE_TARGETS: tuple[str, ...] = ("jetson", "jetson-orin", "jetson-orin-nano", "ios", "android", "browser")
DEFAULT_TARGET = "cloud-gpu"

OBJECT_SIZES: tuple[str, ...] = ("small", "large", "variable")

# what a model is built of: drives optimizer, dropout and drop-path tables, and latency factors.
# "external" is a model outside the zoo (another library or a hosted service).
MODEL_KINDS: tuple[str, ...] = ("cnn", "transformer", "hybrid", "external")
ZOO_KINDS: tuple[str, ...] = ("cnn", "transformer", "hybrid")
DEPTHS: tuple[str, ...] = ("shallow", "medium", "deep")

# what a licence allows (rules/catalog.yaml maps each licence id to one); only "permissive" and "none" (no
# weights at all) pass --permissive
LICENSE_KINDS: tuple[str, ...] = (
    "permissive", "copyleft", "use-restricted", "non-commercial", "gated", "proprietary", "other", "none",
)  # fmt: skip
PERMISSIVE_KINDS: tuple[str, ...] = ("permissive", "none")

# where `profile` / `--measure` run a model on this machine
DEVICES: tuple[str, ...] = ("cpu", "cuda")

# the kinds of rule file under rules/ (the `kind:` key of each file)
RULE_FILE_KINDS: tuple[str, ...] = ("catalog", "tasks", "selection", "deployment", "recipes", "devices")

# output formats of `recommend`
FORMATS: tuple[str, ...] = ("table", "json", "yaml", "markdown")
