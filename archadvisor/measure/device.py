"""Where a measurement runs: the torch import, the device check and name, intra-op threads, Kineto's stderr noise.

torch is imported inside the functions, so importing this module stays torch-free.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from archadvisor.errors import InputError
from archadvisor.measure.limits import DEVICES


def torch_module() -> Any:
    """``import torch``, with Kineto (the profiler backend) told to keep its status lines to itself."""
    # this only helps when torch is imported here first; quiet_fd2 below covers the rest
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    import torch

    return torch


def cuda_available() -> bool:
    """Whether torch sees a working CUDA device here (imports torch)."""
    return bool(torch_module().cuda.is_available())


def check_device(device: str) -> None:
    """InputError unless ``device`` is cpu, or cuda on a machine where CUDA works."""
    if device not in DEVICES:
        raise InputError("--device", device, DEVICES)
    if device == "cuda":
        torch = torch_module()
        if not torch.cuda.is_available():
            raise InputError(
                "--device", device, "cpu (CUDA is not available on this machine)", hint=f"torch {torch.__version__}"
            )


def device_name(device: str) -> str:
    """A readable name of the device measured on (GPU model, or CPU model and core count)."""
    if device == "cuda":
        return str(torch_module().cuda.get_device_name())
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name} ({os.cpu_count()} logical CPUs)"


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[int]:
    """Run a block with ``n`` torch intra-op threads (None: keep torch's setting); yields the count in effect."""
    torch = torch_module()
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


# Kineto's status lines around every profiling session, and its complaint that a CPU-only machine has no GPU.
_KINETO_NOISE = re.compile(
    rb"^(USDT:\S+ \S+ \d+:\d+ \S+\.cpp:\d+\] profiler_(start|stop)"
    rb"|ERROR:\S+ \S+ \d+:\d+ DeviceProperties\.cpp:\d+\] gpuGetDeviceCount failed)"
)


@contextlib.contextmanager
def quiet_fd2() -> Iterator[None]:
    """Hide the status lines Kineto writes straight to fd 2; replay everything else byte for byte afterwards
    (including a progress display's redraws that happened meanwhile)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [seg for seg in tmp.read().splitlines(keepends=True) if not _KINETO_NOISE.match(seg)]
            if kept:
                os.write(2, b"".join(kept))
