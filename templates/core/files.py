"""What every task's data loading shares: the input files a user names, and how many loader processes to run."""

import glob
import os
from pathlib import Path

from errors import ProjectError


def expand_inputs(
    inputs: list[str], suffixes: tuple[str, ...], error: type[ProjectError] = ProjectError, what: str = "files"
) -> list[Path]:
    """The files named by ``inputs`` (predict.py's INPUT...): files, folders (searched recursively for
    ``suffixes``) and glob patterns, in order, each file once; ``error`` (one line) for a name that matches nothing."""
    files: list[Path] = []
    for item in inputs:
        matches = sorted(glob.glob(item, recursive=True)) if glob.has_magic(item) else [item]
        if not matches:
            raise error(f"{item}: no file matches")
        for match in map(Path, matches):
            if match.is_dir():
                files += sorted(p for p in match.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
            elif match.is_file():
                files.append(match)
            else:
                raise error(f"{match}: no such file or folder")
    if not files:
        raise error(f"no {what} ({', '.join(suffixes)}) in {' '.join(inputs)}")
    return list(dict.fromkeys(files))  # each file once, first occurrence first


def default_num_workers(world_size: int) -> int:
    """Loader processes per training process: the CPUs this process may use, minus one for training itself."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cpus // max(1, world_size) - 1))
