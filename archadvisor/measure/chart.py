"""The accuracy-against-latency chart of ``compare``: the Pareto front, the chart's path check and the PNG.

``pareto_front`` and ``check_chart_path`` are torch- and matplotlib-free; ``write_pareto_chart`` imports
matplotlib when called.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from archadvisor.errors import InputError


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: lower latency (x) and higher accuracy (y).

    A point is dominated when another has latency <= and accuracy >= with at least one strict. Identical points
    do not dominate each other, so both stay. Indices come back sorted by latency.
    """
    front = []
    for i, (xi, yi) in enumerate(points):
        dominated = any((xj <= xi and yj >= yi) and (xj < xi or yj > yi) for j, (xj, yj) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def check_chart_path(path: Path) -> None:
    """InputError (naming ``--chart``) unless a PNG can be written at ``path``: checked before anything is measured.

    The name ends in ``.png``, the parent is an existing, writable directory, and ``path`` is not a directory
    (an existing file is replaced, so it must be writable too). Nothing is left behind.
    """
    parent = path.parent if str(path.parent) else Path(".")
    if path.suffix.lower() != ".png":
        raise InputError("--chart", str(path), "a file name ending in .png")
    if not parent.is_dir():
        raise InputError("--chart", str(path), "a path in an existing directory")
    if path.is_dir():
        raise InputError("--chart", str(path), "a file path, not a directory")
    if not _can_create_in(parent) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError("--chart", str(path), "a path this user can write")


def _can_create_in(directory: Path) -> bool:
    """Whether a file can be created in ``directory``: tried, since permission bits say nothing about root, a
    read-only mount or a virtual file system."""
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".archadvisor-chart-", suffix=".tmp")
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def write_pareto_chart(rows: Sequence[dict[str, Any]], path: Path | str, *, title: str | None = None) -> list[str]:
    """PNG of ImageNet top-1 against measured batch-1 latency, the Pareto front drawn and labelled.

    ``rows``: dicts with ``name``, ``latency_ms`` and ``top1`` (rows whose top1 is None are left out).
    Returns the names on the front, fastest first. Uses matplotlib's Agg canvas directly (no GUI, no global
    backend switch).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pts = [r for r in rows if r.get("top1") is not None and r.get("latency_ms")]
    if not pts:
        raise ValueError("no model with both an ImageNet top-1 and a latency to plot")
    xy = [(float(r["latency_ms"]), float(r["top1"])) for r in pts]
    front = pareto_front(xy)
    fig = Figure(figsize=(7.5, 5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    on_front = set(front)
    ax.scatter(
        [x for i, (x, _) in enumerate(xy) if i not in on_front],
        [y for i, (_, y) in enumerate(xy) if i not in on_front],
        color="0.55",
        label="dominated",
        zorder=2,
    )
    fx = [xy[i][0] for i in front]
    fy = [xy[i][1] for i in front]
    ax.plot(fx, fy, "-o", color="tab:red", label="Pareto front", zorder=3, drawstyle="steps-post")
    for r, (x, y) in zip(pts, xy, strict=True):
        ax.annotate(r["name"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    xs = [x for x, _ in xy]
    if max(xs) / max(min(xs), 1e-9) > 20:
        ax.set_xscale("log")
    ax.set_xlabel("latency, batch 1 (ms, measured here; lower is better)")
    ax.set_ylabel("ImageNet top-1 (%, catalog)")
    ax.set_title(title or "accuracy vs latency")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(str(path))
    return [pts[i]["name"] for i in front]
