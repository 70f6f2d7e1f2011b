"""The valid devices and ranges of a measurement's settings, checked before any torch work starts (torch-free).

Past these, torch does not fail cleanly: a batch of 10**20 overflows tensor sizes, 20,000 OpenMP threads make
libgomp abort and 100,000 segfault, a batch of 4096 at 2048 px asks for a 200 GB input. Each bad value is one
``InputError`` naming the flag, the value and the range.
"""

from __future__ import annotations

import math

from archadvisor.errors import InputError

DEVICES = ("cpu", "cuda")
IMAGE_SIZE = (8, 2048)  # px
BATCH = (1, 4096)
THREADS = (1, 256)  # well above any CPU's core count, well below where libgomp aborts
MAX_SECONDS = (0.1, 600.0)  # per timed figure
# One fp32 input batch (batch x 3 x size x size) at most 1 GiB: the activations are many times that.
MAX_INPUT_ELEMENTS = 2**28


def _int_in(flag: str, value: int, bounds: tuple[int, int]) -> None:
    lo, hi = bounds
    if not lo <= value <= hi:
        raise InputError(flag, value, f"an integer in {lo}..{hi}")


def check_image_size(image_size: int) -> None:
    """InputError unless ``image_size`` is in IMAGE_SIZE."""
    _int_in("--image-size", image_size, IMAGE_SIZE)


def check_run_options(*, image_size: int | None, batch: int, threads: int | None, max_seconds: float) -> None:
    """InputError for the first setting out of its range; ``image_size`` None means each model's own size."""
    if image_size is not None:
        check_image_size(image_size)
    _int_in("--batch", batch, BATCH)
    if threads is not None:
        _int_in("--threads", threads, THREADS)
    lo, hi = MAX_SECONDS
    if not (math.isfinite(max_seconds) and lo <= max_seconds <= hi):
        raise InputError("--max-seconds", max_seconds, f"a number of seconds in {lo:g}..{hi:g}")


def check_input_size(image_size: int, batch: int) -> None:
    """InputError (naming ``--batch``) when one input batch at ``image_size`` would exceed MAX_INPUT_ELEMENTS."""
    most = max(1, MAX_INPUT_ELEMENTS // (3 * image_size * image_size))
    if batch > most:
        raise InputError(
            "--batch", batch, f"at most {most} at {image_size} px", hint="one fp32 input batch is capped at 1 GiB"
        )
