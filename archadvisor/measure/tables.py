"""The tables of ``profile`` and ``compare`` (rich), and the lines saying how the figures were measured."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def fmt_ms(t: dict[str, Any]) -> str:
    """A timing's median in ms, ``*`` when the time cap stopped it before the CI target."""
    flag = "" if t["converged"] else "*"
    return f"{t['median_ms']:.2f}{flag}"


def profile_table(r: dict[str, Any]) -> Table:
    """The figures of one ``profile_model`` result beside the catalog's."""
    cat = r["catalog"]
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
    t.add_row("latency b1, median", f"{fmt_ms(lat)} ms", f"95% CI +-{_pct(lat['rel_ci'])}, {lat['runs']} runs")
    t.add_row(
        "latency b1, p90",
        f"{lat['p90_ms']:.2f} ms",
        f"catalog median {cat['cpu_latency_ms']} ms at {cat['input_size']} px (2-core Xeon)"
        if cat["cpu_latency_ms"]
        else "",
    )
    thr = r["throughput"]
    t.add_row(f"throughput b{thr['batch']}", f"{thr['images_per_s']:.1f} img/s", f"median {fmt_ms(thr)} ms/batch")
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
            f"{fmt_ms(ol)} ms",
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


def method_lines(r: dict[str, Any]) -> list[str]:
    """How the figures of ``r`` were measured: mode, versions, timer, stop rule, memory method."""
    m = r["method"]
    lines = [
        f"how: {m['mode']}; torch {m['torch']}, {m['threads']} thread(s), {m['device_name']}",
        f"timing: {m['timer']}; warm-up {m['warmup']}; stop: {m['stop_rule']} (* = stopped by the time cap)",
        f"memory: {r['memory']['inference']['method']}",
    ]
    return lines


def compare_table(results: list[dict[str, Any]], front: set[str], batch: int, onnx: bool) -> Table:
    """One row per ``profile_model`` result, with its catalog top-1 and whether it is on the Pareto front."""
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
            fmt_ms(lat),
            f"{lat['p90_ms']:.2f}",
            f"{r['throughput']['images_per_s']:.1f}",
            f"{r['memory']['inference']['peak_mb']:.0f}",
            f"{r['memory']['train_step']['peak_mb']:.0f}",
        ]
        if onnx:
            cells.append(fmt_ms(r["onnx"]["latency"]["batch1"]))
        cells.append("yes" if r["arch"] in front else ("n/a (no top-1)" if top1 is None else ""))
        table.add_row(*cells)
    return table
