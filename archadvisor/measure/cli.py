"""``archadvisor profile`` and ``archadvisor compare``: measure models on this machine.

Typer command functions, registered by ``archadvisor.cli`` (``app.command("profile")(profile)``). torch is
imported only when a command runs, so registering them costs nothing. Every setting is checked against its range
(``archadvisor.measure.limits``) and the chart path is checked before anything is measured. Errors are
``ArchAdvisorError``s: the CLI's one handler prints each as one line on stderr, exit code 2. Tables and the
progress display go through rich; progress goes to stderr so ``--format json`` stays clean.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from archadvisor.errors import InputError
from archadvisor.measure import limits

if TYPE_CHECKING:  # pragma: no cover
    from archadvisor.catalog import Catalog, External, Variant

FORMATS = ("table", "json")
# the tasks whose generated models `profile` measures besides the zoo (compare: the zoo and segmentation)
PROFILE_TASKS = ("semantic-segmentation", "detection", "instance-segmentation")
_SIZE, _BATCH, _THREADS, _SECONDS = limits.IMAGE_SIZE, limits.BATCH, limits.THREADS, limits.MAX_SECONDS

ImageSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--image-size",
        help=f"Input side in pixels, {_SIZE[0]}..{_SIZE[1]} [default: each model's catalog input size]. At or below "
        "the rules' small-input size (64 px in the built-in rules) the small-input stem is built.",
    ),
]
BatchOpt = Annotated[
    int,
    typer.Option(
        "--batch",
        help=f"Batch size of the throughput and memory figures, {_BATCH[0]}..{_BATCH[1]} (and at most 1 GiB of "
        "fp32 input per batch).",
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu or cuda.")]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads", help=f"CPU threads for torch and ONNX Runtime, {_THREADS[0]}..{_THREADS[1]} [default: torch's]."
    ),
]
OnnxOpt = Annotated[bool, typer.Option("--onnx", help="Also export to ONNX and time it with ONNX Runtime.")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table or json.")]
MaxSecondsOpt = Annotated[
    float,
    typer.Option(
        "--max-seconds",
        help=f"Time cap per timed figure, {_SECONDS[0]:g}..{_SECONDS[1]:g} s: runs stop earlier once the median's "
        "95% CI is within +-2%.",
    ),
]
ChartOpt = Annotated[
    Path | None,
    typer.Option(
        "--chart",
        help="Write a PNG of ImageNet top-1 against measured latency, Pareto front marked, to this .png path (in an "
        "existing, writable directory; checked before measuring) [default: no chart].",
    ),
]


def _check_options(
    fmt: str, device: str, image_size: int | None, batch: int, threads: int | None, max_seconds: float
) -> None:
    """InputError for the first bad flag: each is checked before torch is imported."""
    if fmt not in FORMATS:
        raise InputError("--format", fmt, FORMATS)
    if device not in limits.DEVICES:
        raise InputError("--device", device, limits.DEVICES)
    limits.check_run_options(image_size=image_size, batch=batch, threads=threads, max_seconds=max_seconds)
    if image_size is not None:
        limits.check_input_size(image_size, max(batch, 2))


def _require_torch(command: str) -> None:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise InputError(command, "torch", "an installed torch (pip install 'archadvisor[torch]')")


RulesOpt = Annotated[
    list[Path] | None,
    typer.Option("--rules", help="Directory of rule files that add to or override the built-in rules (repeatable)."),
]


def _resolve(
    archs: Sequence[str],
    flag: str,
    image_size: int | None,
    batch: int,
    rules_dirs: Sequence[Path] | None = None,
    tasks: tuple[str, ...] = ("semantic-segmentation",),
) -> tuple[list[Variant | External], int]:
    """The catalog variants named, and the rules' small-input threshold; the batch checked at each input size.
    ``rules_dirs`` (--rules) may move the threshold; their model files are whitelisted by the loader."""
    from archadvisor.catalog import Catalog
    from archadvisor.ruleset import load_rules

    for d in rules_dirs or []:
        if not str(d).strip() or not d.is_dir():
            raise InputError("--rules", str(d), "an existing directory of .yaml rule files")
    rules = load_rules(rules_dirs or [])
    catalog = Catalog(rules)
    variants = [_resolve_one(catalog, a, flag, tasks) for a in archs]
    for v in variants:
        limits.check_input_size(image_size or v.input_size, max(batch, 2))
    return variants, rules.small_input_max_px


def _detector(arch: str, rules_dirs: Sequence[Path] | None) -> External | None:
    """The catalog's torchvision detector called ``arch`` (projects are generated on it), else None."""
    from archadvisor.catalog import Catalog
    from archadvisor.measure.detection import is_detector
    from archadvisor.ruleset import load_rules

    for d in rules_dirs or []:
        if not str(d).strip() or not d.is_dir():
            raise InputError("--rules", str(d), "an existing directory of .yaml rule files")
    found = Catalog(load_rules(rules_dirs or [])).external_model(arch)
    return found if is_detector(found) else None


def _resolve_one(catalog: Catalog, arch: str, flag: str, tasks: tuple[str, ...]) -> Variant | External:
    """A zoo variant, or a semantic-segmentation model archadvisor generates (built from its shipped file)."""
    found = catalog.get(arch)
    if found is not None:
        return found
    external = catalog.external_model(arch)
    if external is not None and external.task == "semantic-segmentation" and external.generatable:
        return external
    # the valid choices name what else the command measures (``tasks``; profile: detectors too, found before this)
    generated = [e.name for e in catalog.external if e.generatable and e.task in tasks]
    raise InputError(flag, arch, catalog.names() + generated + sorted(catalog.aliases))


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
    variant: Variant | External,
    threshold: int,
    image_size: int | None,
    batch: int,
    device: str,
    threads: int | None,
    onnx: bool,
    max_seconds: float,
    update: Callable[[str, str, int, int], None],
) -> dict[str, Any]:
    from archadvisor.measure.profile import profile_model

    return profile_model(
        variant,
        small_input_max_px=threshold,
        image_size=image_size,
        batch=batch,
        device=device,
        threads=threads,
        onnx=onnx,
        max_seconds=max_seconds,
        progress=lambda stage, done, total: update(variant.name, stage, done, total),
    )


def _warn(warnings: list[str]) -> None:
    for w in dict.fromkeys(warnings):
        sys.stderr.write(f"warning: {w}\n")


def profile(
    arch: Annotated[str, typer.Argument(help="Architecture (catalog name or alias), e.g. resnet18, vit_b_16.")],
    image_size: ImageSizeOpt = None,
    batch: BatchOpt = 8,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
    onnx: OnnxOpt = False,
    format: FormatOpt = "table",
    max_seconds: MaxSecondsOpt = 6.0,
    rules: RulesOpt = None,
) -> None:
    """Measure one architecture here: parameters, GMACs, peak memory, latency (median, p90) and throughput."""
    _check_options(format, device, image_size, batch, threads, max_seconds)
    _require_torch("profile")
    detector = _detector(arch, rules)
    if detector is not None:
        if onnx:
            raise InputError("--onnx", "on", "off for detectors (their export is the project's export.py)")
        from archadvisor.measure.detection import profile_detector

        limits.check_input_size(image_size or detector.input_size or 320, max(batch, 2))
        with _progress(format == "table", 1) as update:
            result = profile_detector(detector, image_size=image_size, batch=batch, device=device, threads=threads,
                                      max_seconds=max_seconds,
                                      progress=lambda s, d, t: update(detector.name, s, d, t))  # fmt: skip
    else:
        (variant,), threshold = _resolve([arch], "ARCH", image_size, batch, rules, tasks=PROFILE_TASKS)
        with _progress(format == "table", 1) as update:
            result = _profile_one(variant, threshold, image_size, batch, device, threads, onnx, max_seconds, update)
    _warn(result["warnings"])
    if format == "json":
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        return
    from rich.console import Console

    from archadvisor.measure.tables import method_lines, profile_table

    console = Console()
    console.print(profile_table(result))
    for line in method_lines(result):
        console.print(line, style="dim", highlight=False)


def compare(
    archs: Annotated[list[str], typer.Argument(help="Two or more architectures (catalog names or aliases).")],
    image_size: ImageSizeOpt = None,
    batch: BatchOpt = 8,
    device: DeviceOpt = "cpu",
    threads: ThreadsOpt = None,
    onnx: OnnxOpt = False,
    format: FormatOpt = "table",
    max_seconds: MaxSecondsOpt = 6.0,
    chart: ChartOpt = None,
    rules: RulesOpt = None,
) -> None:
    """Measure several architectures side by side, with their ImageNet top-1; optionally chart accuracy against latency."""
    from archadvisor.measure.chart import check_chart_path

    _check_options(format, device, image_size, batch, threads, max_seconds)
    if len(archs) < 2:
        raise InputError("ARCHS", " ".join(archs), "two or more architectures to compare")
    if chart is not None:
        check_chart_path(chart)
    _require_torch("compare")
    variants, threshold = _resolve(archs, "ARCHS", image_size, batch, rules)
    dupes = sorted({v.name for v in variants if [w.name for w in variants].count(v.name) > 1})
    if dupes:
        raise InputError("ARCHS", ", ".join(dupes), "each architecture once (aliases name the same model)")
    with _progress(format == "table", len(variants)) as update:
        results = [
            _profile_one(v, threshold, image_size, batch, device, threads, onnx, max_seconds, update) for v in variants
        ]
    _warn([f"{r['arch']}: {w}" for r in results for w in r["warnings"]])
    _report_comparison(results, chart, format, batch, onnx)


def _report_comparison(results: list[dict[str, Any]], chart: Path | None, fmt: str, batch: int, onnx: bool) -> None:
    """The Pareto front, the chart when ``chart`` is given, and the JSON document or the table."""
    from archadvisor.measure.chart import pareto_front, write_pareto_chart

    rows = [
        {"name": r["arch"], "latency_ms": r["latency"]["batch1"]["median_ms"], "top1": r["catalog"]["imagenet_top1"]}
        for r in results
    ]
    plotted = [row for row in rows if row["top1"] is not None]
    front = [plotted[i]["name"] for i in pareto_front([(p["latency_ms"], p["top1"]) for p in plotted])]
    front = [p["name"] for p in plotted if p["name"] in front]  # in the order given
    chart_written = None
    if chart is not None and plotted:
        title = f"ImageNet top-1 vs latency (batch 1, {results[0]['method']['device_name']})"
        write_pareto_chart(rows, chart, title=title)
        chart_written = str(chart)
    if fmt == "json":
        out = {
            "models": results,
            "pareto_front": front,
            "chart": chart_written,
            "note": "top-1 from the catalog (published weights); latency measured here with random weights",
        }
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    from rich.console import Console

    from archadvisor.measure.tables import compare_table, method_lines

    console = Console()
    console.print(compare_table(results, set(front), batch, onnx))
    if chart_written:
        console.print(f"chart: {chart_written} (Pareto front: {', '.join(front)})", highlight=False)
    elif chart is not None:
        console.print("chart: not written (no model with an ImageNet top-1)", highlight=False)
    for line in method_lines(results[0]):
        console.print(line, style="dim", highlight=False)
