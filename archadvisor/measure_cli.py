"""``archadvisor profile`` and ``archadvisor compare``: measure models on this machine.

Typer command functions, registered by ``archadvisor.cli`` (``app.command("profile")(profile)``). torch is
imported only when a command runs (through ``archadvisor.measure``), so registering them costs nothing.
Tables and the progress display go through rich; progress goes to stderr so ``--format json`` stays clean.
Errors: one line on stderr, exit code 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.table import Table

from archadvisor.errors import ArchAdvisorError, InputError

FORMATS = ("table", "json")
DEVICES = ("cpu", "cuda")

ImageSizeOpt = Annotated[
    int | None,
    typer.Option("--image-size", help="Input side in pixels, 8..2048 [default: each model's catalog input size]."),
]
BatchOpt = Annotated[int, typer.Option("--batch", help="Batch size of the throughput and memory figures.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda.")]
ThreadsOpt = Annotated[
    int | None, typer.Option("--threads", help="CPU threads for torch and ONNX Runtime [default: torch's].")
]
OnnxOpt = Annotated[bool, typer.Option("--onnx", help="Also export to ONNX and time it with ONNX Runtime.")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table or json.")]
MaxSecondsOpt = Annotated[
    float,
    typer.Option(
        "--max-seconds",
        help="Time cap per timed figure: runs stop earlier once the median's 95% CI is within +-2%.",
    ),
]


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(2)


def _check_options(
    fmt: str, device: str, image_size: int | None, batch: int, threads: int | None, max_seconds: float
) -> None:
    if fmt not in FORMATS:
        raise InputError("--format", fmt, FORMATS)
    if device not in DEVICES:
        raise InputError("--device", device, DEVICES)
    if image_size is not None and not 8 <= image_size <= 2048:
        raise InputError("--image-size", image_size, "an integer in 8..2048")
    if batch < 1:
        raise InputError("--batch", batch, "an integer >= 1")
    if threads is not None and threads < 1:
        raise InputError("--threads", threads, "an integer >= 1")
    if not max_seconds > 0:
        raise InputError("--max-seconds", max_seconds, "a number of seconds > 0")


def _torch_or_fail() -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise InputError("profile", "torch", "an installed torch (pip install 'archadvisor[torch]')")


@contextmanager
def _progress(enabled: bool, models: int) -> Iterator[Callable[[str, str, int, int], None]]:
    """A rich progress display on stderr: one bar for the models, one for the stages of the current model."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not enabled or not console.is_terminal:

        def quiet(model: str, stage: str, done: int, total: int) -> None:
            return None

        yield quiet
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
    )
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as bar:
        overall = bar.add_task("models", total=models) if models > 1 else None
        current = bar.add_task("starting", total=1)
        seen: list[str] = []

        def update(model: str, stage: str, done: int, total: int) -> None:
            if model not in seen:
                seen.append(model)
                if overall is not None:
                    bar.update(overall, completed=len(seen) - 1, description=f"models ({model})")
            bar.update(current, description=f"{model}: {stage}", completed=done, total=total)
            if overall is not None and done == total:
                bar.update(overall, completed=len(seen))

        yield update


def _profile_one(
    variant: Any,
    image_size: int | None,
    batch: int,
    device: str,
    threads: int | None,
    onnx: bool,
    max_seconds: float,
    update: Callable[[str, str, int, int], None],
) -> dict[str, Any]:
    from archadvisor.measure import profile_model

    return profile_model(
        variant,
        image_size=image_size,
        batch=batch,
        device=device,
        threads=threads,
        onnx=onnx,
        max_seconds=max_seconds,
        progress=lambda stage, done, total: update(variant.name, stage, done, total),
    )


def _fmt_ms(t: dict[str, Any]) -> str:
    flag = "" if t["converged"] else "*"
    return f"{t['median_ms']:.2f}{flag}"


def _profile_table(r: dict[str, Any]) -> Table:
    cat = r["catalog"]
    from rich.table import Table

    t = Table(title=f"{r['arch']} at {r['image_size']} px on {r['method']['device_name']}", show_header=True)
    t.add_column("figure")
    t.add_column("measured here", justify="right")
    t.add_column("catalog / note")
    params_note = "equal" if r["params_match_catalog"] else f"catalog {cat['params']:,} (small-input stem or head)"
    t.add_row("parameters", f"{r['params']:,}", params_note)
    delta = r["gmacs_delta_pct"]
    gm_note = (
        f"catalog {cat['gmacs']} ({delta:+.2f}%)"
        if delta is not None
        else f"catalog {cat['gmacs']} at {cat['input_size']} px (~{cat['gmacs_at_image_size']} scaled)"
    )
    t.add_row(
        "GMACs / image",
        f"{r['gmacs']:.4f}",
        gm_note + (f"; attention {r['attention_gmacs']:.4f}" if r["attention_gmacs"] else ""),
    )
    lat = r["latency"]["batch1"]
    t.add_row("latency b1, median", f"{_fmt_ms(lat)} ms", f"95% CI +-{_pct(lat['rel_ci'])}, {lat['runs']} runs")
    t.add_row(
        "latency b1, p90",
        f"{lat['p90_ms']:.2f} ms",
        f"catalog median {cat['cpu_latency_ms']} ms at {cat['input_size']} px (2-core Xeon)"
        if cat["cpu_latency_ms"]
        else "",
    )
    thr = r["throughput"]
    t.add_row(f"throughput b{thr['batch']}", f"{thr['images_per_s']:.1f} img/s", f"median {_fmt_ms(thr)} ms/batch")
    mi, mt = r["memory"]["inference"], r["memory"]["train_step"]
    t.add_row(
        f"peak memory, inference b{mi['batch']}",
        f"{mi['peak_mb']:.1f} MiB",
        f"{mi['persistent_mb']:.1f} persistent + {mi['transient_mb']:.1f} transient",
    )
    t.add_row(
        f"peak memory, train step b{mt['batch']}",
        f"{mt['peak_mb']:.1f} MiB",
        f"{mt['persistent_mb']:.1f} persistent (incl. AdamW state) + {mt['transient_mb']:.1f}",
    )
    if r["onnx"]:
        o = r["onnx"]
        ol, ot = o["latency"]["batch1"], o["throughput"]
        t.add_row(
            "ONNX Runtime latency b1",
            f"{_fmt_ms(ol)} ms",
            f"p90 {ol['p90_ms']:.2f} ms; max |diff| vs torch {o['max_abs_diff_vs_torch']:.1e}",
        )
        t.add_row(
            f"ONNX Runtime throughput b{ot['batch']}",
            f"{ot['images_per_s']:.1f} img/s",
            f"onnxruntime {o['onnxruntime']}",
        )
    return t


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _method_lines(r: dict[str, Any]) -> list[str]:
    m = r["method"]
    lines = [
        f"how: {m['mode']}; torch {m['torch']}, {m['threads']} thread(s), {m['device_name']}",
        f"timing: {m['timer']}; warm-up {m['warmup']}; stop: {m['stop_rule']} (* = stopped by the time cap)",
        f"memory: {r['memory']['inference']['method']}",
    ]
    return lines


def profile(
    arch: Annotated[str, typer.Argument(help="Architecture (catalog name or alias), e.g. resnet18, vit_b_16.")],
    image_size: ImageSizeOpt = None,
    batch: BatchOpt = 8,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
    onnx: OnnxOpt = False,
    format: FormatOpt = "table",
    max_seconds: MaxSecondsOpt = 6.0,
) -> None:
    """Measure one architecture here: parameters, GMACs, peak memory, latency (median, p90) and throughput."""
    try:
        _check_options(format, device, image_size, batch, threads, max_seconds)
        _torch_or_fail()
        from archadvisor.catalog import load_catalog

        variant = load_catalog().resolve(arch, flag="ARCH")
        with _progress(format == "table", 1) as update:
            result = _profile_one(variant, image_size, batch, device, threads, onnx, max_seconds, update)
    except (ArchAdvisorError, ValueError) as exc:
        _fail(str(exc))
        return
    _warn(result["warnings"])
    if format == "json":
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    from rich.console import Console

    console = Console()
    console.print(_profile_table(result))
    for line in _method_lines(result):
        console.print(line, style="dim", highlight=False)


def _warn(warnings: list[str]) -> None:
    for w in dict.fromkeys(warnings):
        sys.stderr.write(f"warning: {w}\n")


def compare(
    archs: Annotated[list[str], typer.Argument(help="Two or more architectures (catalog names or aliases).")],
    image_size: ImageSizeOpt = None,
    batch: BatchOpt = 8,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
    onnx: OnnxOpt = False,
    format: FormatOpt = "table",
    max_seconds: MaxSecondsOpt = 6.0,
    chart: Annotated[
        Path, typer.Option("--chart", help="PNG of ImageNet top-1 against measured latency, Pareto front marked.")
    ] = Path("compare.png"),
) -> None:
    """Measure several architectures side by side, with their ImageNet top-1, and chart accuracy against latency."""
    from archadvisor.measure import pareto_front, write_pareto_chart

    try:
        _check_options(format, device, image_size, batch, threads, max_seconds)
        if len(archs) < 2:
            raise InputError("ARCHS", " ".join(archs), "two or more architectures to compare")
        if chart.suffix.lower() != ".png":
            raise InputError("--chart", str(chart), "a file name ending in .png")
        if not chart.resolve().parent.is_dir():
            raise InputError("--chart", str(chart), "a path in an existing directory")
        _torch_or_fail()
        from archadvisor.catalog import load_catalog

        catalog = load_catalog()
        variants = [catalog.resolve(a, flag="ARCHS") for a in archs]
        dupes = sorted({v.name for v in variants if [w.name for w in variants].count(v.name) > 1})
        if dupes:
            raise InputError("ARCHS", ", ".join(dupes), "each architecture once (aliases name the same model)")
        results = []
        with _progress(format == "table", len(variants)) as update:
            for v in variants:
                results.append(_profile_one(v, image_size, batch, device, threads, onnx, max_seconds, update))
    except (ArchAdvisorError, ValueError) as exc:
        _fail(str(exc))
        return

    _warn([f"{r['arch']}: {w}" for r in results for w in r["warnings"]])
    rows = [
        {"name": r["arch"], "latency_ms": r["latency"]["batch1"]["median_ms"], "top1": r["catalog"]["imagenet_top1"]}
        for r in results
    ]
    plotted = [(row["latency_ms"], row["top1"]) for row in rows if row["top1"] is not None]
    names_plotted = [row["name"] for row in rows if row["top1"] is not None]
    front = {names_plotted[i] for i in pareto_front(plotted)}
    chart_written = None
    if plotted:
        write_pareto_chart(
            rows, chart, title=f"ImageNet top-1 vs latency (batch 1, {results[0]['method']['device_name']})"
        )
        chart_written = str(chart)
    if format == "json":
        out = {
            "models": results,
            "pareto_front": [n for n in names_plotted if n in front],
            "chart": chart_written,
            "note": "top-1 from the catalog (published weights); latency measured here with random weights",
        }
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(
        title=f"measured on {results[0]['method']['device_name']}, {results[0]['method']['threads']} thread(s)"
    )
    for col, just in [
        ("arch", "left"),
        ("top-1 %", "right"),
        ("params M", "right"),
        ("GMACs", "right"),
        ("median ms", "right"),
        ("p90 ms", "right"),
        (f"img/s b{batch}", "right"),
        ("infer MiB", "right"),
        ("train MiB", "right"),
    ]:
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    if onnx:
        table.add_column("ORT ms", justify="right")
    table.add_column("Pareto")
    for r in results:
        lat = r["latency"]["batch1"]
        top1 = r["catalog"]["imagenet_top1"]
        cells = [
            r["arch"] + ("" if r["image_size"] == r["catalog"]["input_size"] else f" @{r['image_size']}"),
            f"{top1:.1f}" if top1 is not None else "-",
            f"{r['params_m']:.2f}",
            f"{r['gmacs']:.3f}",
            _fmt_ms(lat),
            f"{lat['p90_ms']:.2f}",
            f"{r['throughput']['images_per_s']:.1f}",
            f"{r['memory']['inference']['peak_mb']:.0f}",
            f"{r['memory']['train_step']['peak_mb']:.0f}",
        ]
        if onnx:
            cells.append(_fmt_ms(r["onnx"]["latency"]["batch1"]))
        cells.append("yes" if r["arch"] in front else ("n/a (no top-1)" if top1 is None else ""))
        table.add_row(*cells)
    console.print(table)
    if chart_written:
        console.print(
            f"chart: {chart_written} (Pareto front: {', '.join(n for n in names_plotted if n in front)})",
            highlight=False,
        )
    else:
        console.print("chart: not written (no model with an ImageNet top-1)", highlight=False)
    for line in _method_lines(results[0]):
        console.print(line, style="dim", highlight=False)
