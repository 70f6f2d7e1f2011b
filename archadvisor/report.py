"""Renderers: they only read a Recommendation. json / yaml / markdown are plain text; the rich
panels follow the guide's Output Format (task analysis, architecture choice, model structure,
optimization, expected performance). rich is imported only by the rich renderers."""

from __future__ import annotations

import json
from typing import Any

FORMATS = ("table", "json", "yaml", "markdown")


def to_json(rec: dict[str, Any]) -> str:
    return json.dumps(rec, indent=2)


def to_yaml(rec: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(rec, sort_keys=False, width=120)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return "-"
    return str(v)


def _recipe_rows(rec: dict[str, Any]) -> list[tuple[str, str, str]]:
    t = rec["training"]
    prov = rec.get("provenance", {})
    opt = t["optimizer"]
    opt_text = opt["name"] + (
        f" (momentum {opt['momentum']}, nesterov)" if opt["name"] == "sgd" else " (betas 0.9, 0.999)"
    )
    prog = t["progressive_resizing"]
    rows = [
        ("pretrained", "yes" if t["pretrained"] else "no (from scratch)", ""),
        ("freeze", f"{t['freeze']['mode']}" + (f" for {t['freeze']['epochs']} epochs" if t["freeze"]["epochs"] else ""), prov.get("training.freeze", "")),
        ("image size", "-" if t["image_size"] is None else f"{t['image_size']} px" + (" (small-input stem)" if t.get("small_input") else ""), prov.get("training.image_size", "")),
        ("optimizer", opt_text, prov.get("training.optimizer", "")),
        ("peak LR", f"{_fmt(t['lr'])} (base {_fmt(t['base_lr'])} x {t['effective_batch_size']}/256)", prov.get("training.lr", "")),
        ("batch", f"{t['batch_size']} per device x {t['grad_accum_steps']} accumulation = {t['effective_batch_size']}", prov.get("training.batch_size", "")),
        ("weight decay", _fmt(t["weight_decay"]), prov.get("training.weight_decay", "")),
        ("epochs", f"{t['epochs']} ({t['warmup_epochs']} warmup, cosine to {_fmt(t['min_lr'])})", prov.get("training.epochs", "")),
        ("label smoothing", _fmt(t["label_smoothing"]), prov.get("training.label_smoothing", "")),
        ("dropout / drop path", f"{_fmt(t['dropout'])} / {_fmt(t['drop_path'])}", prov.get("training.drop_path", "")),
        ("EMA decay", _fmt(t["ema_decay"]), prov.get("training.ema_decay", "")),
        ("early stopping", f"patience {t['early_stopping_patience']} on val loss", prov.get("training.early_stopping_patience", "")),
        ("grad clip", _fmt(t["grad_clip_norm"]), prov.get("training.grad_clip_norm", "")),
        ("progressive resizing", ", ".join(f"ep {e}: {s}px" for e, s in prog["schedule"]) if prog["enabled"] else "off", prov.get("training.progressive_resizing", "")),
    ]  # fmt: skip
    return rows


def _aug_text(rec: dict[str, Any]) -> str:
    aug = rec["augmentation"]
    ops = ", ".join(o["name"] for o in aug["ops"]) or "none"
    mix = (
        f"; MixUp {aug['mixup_alpha']}, CutMix {aug['cutmix_alpha']}"
        if aug["mixup_alpha"] or aug["cutmix_alpha"]
        else ""
    )
    return f"{aug['level']}: {ops}{mix}"


def to_markdown(rec: dict[str, Any]) -> str:
    a = rec["architecture"]
    d = rec["deployment"]
    inp = rec["inputs"]
    lines = [
        f"# Recommendation: {a['name']} ({a['family']}) for {rec['task']}",
        "",
        "## Task analysis",
        f"- task: {rec['task']}, {inp['images']} examples, {inp['classes']} classes"
        + (f", {inp['image_size']} px" if inp["image_size"] else ""),
        f"- compute: {inp['compute']} ({inp['gpus']} GPU(s)), target: {inp['target']}, latency budget: "
        + (f"{inp['latency_ms']:g} ms" if inp["latency_ms"] else "none"),
        f"- pretrained weights: {'allowed' if inp['pretrained'] else 'not allowed'}",
        "",
        "## Architecture choice",
        f"- **{a['name']}**: {a['why']}",
        f"- parameters: {_fmt(a['params_m'])}M, GMACs: {_fmt(a['gmacs'])} (reference: {a['reference']})",
        f"- decided by: `{rec['decided_by']}`",
        "",
        "Alternatives:",
        "",
    ]
    for i, alt in enumerate(rec["alternatives"], 1):
        lines.append(f"{i}. **{alt['name']}** ({alt['family']}): {alt['why']}")
    if a.get("structure"):
        lines += ["", "## Model structure", f"{a['structure']}"]
    lines += ["", "## Training recipe", "", "| setting | value | rule |", "|---|---|---|"]
    lines += [f"| {k} | {v} | {r} |" for k, v, r in _recipe_rows(rec)]
    lines += ["", f"Augmentation: {_aug_text(rec)}", "", "## Deployment"]
    lines += [
        f"- export {d['export']} -> {d['runtime']}, precision {d['precision']} (quantize: {d['quantize']})",
        f"- expected latency: {_fmt(d['expected_latency_ms'])} ms ({d['latency_basis']})",
        "",
        "## Expected performance",
        f"- {rec['expected']['benchmark']}",
        f"- {rec['expected']['note']}",
    ]
    if rec["warnings"]:
        lines += ["", "## Warnings"] + [f"- {w}" for w in rec["warnings"]]
    lines += ["", "## Rules that fired", ""]
    lines += [
        f"- `{t['rule']}`{' **(decided)**' if t.get('decided') else ''}: {t['because']}"
        for t in rec["trace"]
        if t.get("fired")
    ]
    return "\n".join(lines) + "\n"


def render(rec: dict[str, Any], fmt: str) -> str | None:
    """Text for json/yaml/markdown; None for the rich panels (use print_rich)."""
    if fmt == "json":
        return to_json(rec)
    if fmt == "yaml":
        return to_yaml(rec)
    if fmt == "markdown":
        return to_markdown(rec)
    return None


def print_rich(rec: dict[str, Any], console: Any) -> None:
    """The guide's Output Format as rich panels (free text is escaped: rule text holds [brackets])."""
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    a, d, inp = rec["architecture"], rec["deployment"], rec["inputs"]
    console.print(f"[bold]NEURAL NETWORK ARCHITECTURE DESIGN[/bold]  (archadvisor {rec['tool_version']})")
    task = (
        f"task [bold]{rec['task']}[/bold]: {inp['images']} examples, {inp['classes']} classes"
        + (f", {inp['image_size']} px" if inp["image_size"] else "")
        + "\n"
        f"compute {inp['compute']} ({inp['gpus']} GPU), target [bold]{inp['target']}[/bold], latency budget "
        + (f"{inp['latency_ms']:g} ms" if inp["latency_ms"] else "none")
        + f", pretrained {'allowed' if inp['pretrained'] else 'not allowed'}"
    )
    console.print(Panel(task, title="TASK ANALYSIS", title_align="left"))
    arch = Table.grid(padding=(0, 2))
    arch.add_row("[bold green]" + escape(a["name"]) + "[/]", escape(f"{a['family']}: {a['why']}"))
    arch.add_row("size", f"{_fmt(a['params_m'])}M parameters, {_fmt(a['gmacs'])} GMACs (reference {a['reference']})")
    arch.add_row("decided by", str(rec["decided_by"]))
    for i, alt in enumerate(rec["alternatives"], 1):
        arch.add_row(escape(f"alt {i}: {alt['name']}"), escape(alt["why"]))
    console.print(Panel(arch, title="ARCHITECTURE CHOICE", title_align="left"))
    if a.get("structure"):
        console.print(Panel(escape(a["structure"]), title="MODEL STRUCTURE", title_align="left"))
    recipe = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    recipe.add_column("setting")
    recipe.add_column("value")
    recipe.add_column("rule", style="dim")
    for name, value, rule in _recipe_rows(rec):
        recipe.add_row(name, escape(value), escape(rule.split(" (")[0]))
    recipe.add_row("augmentation", _aug_text(rec), rec["provenance"].get("augmentation.level", "").split(" (")[0])
    recipe.add_row(
        "deployment",
        f"{d['export']} -> {d['runtime']}, {d['precision']}, ~{_fmt(d['expected_latency_ms'])} ms ({d['latency_basis']})",
        d.get("rule", ""),
    )
    console.print(Panel(recipe, title="OPTIMIZATION", title_align="left"))
    exp = rec["expected"]
    perf = f"{escape(exp['benchmark'])}\n{escape(exp['latency'])}\n[dim]{escape(exp['note'])}[/dim]"
    console.print(Panel(perf, title="EXPECTED PERFORMANCE", title_align="left"))
    if rec["warnings"]:
        console.print(
            Panel(
                "\n".join(f"! {w}" for w in rec["warnings"]),
                title="WARNINGS",
                border_style="yellow",
                title_align="left",
            )
        )
    fired = [t for t in rec["trace"] if t.get("fired") and t.get("kind") != "recipe"]
    lead = (
        "forced with --arch; rules that fired for the automatic choice: "
        if rec["decided_by"] == "--arch"
        else "rules that chose the architecture: "
    )
    console.print("[dim]" + lead + ", ".join(
        t["rule"] + (" (decided)" if t.get("decided") else "") for t in fired) + "; `archadvisor explain` shows the full path[/dim]")  # fmt: skip


def print_explain(rec: dict[str, Any], flips: list[dict[str, Any]], console: Any) -> None:
    """The decision path as a tree: every rule considered, which fired, which decided, what would flip it."""
    from rich.markup import escape
    from rich.tree import Tree

    root = Tree(
        f"[bold]{rec['task']}[/bold] -> [bold green]{rec['architecture']['name']}[/] (decided by {rec['decided_by']})"
    )
    groups = {"constraint": "hard constraints (filter first)", "vote": "votes (axis weight x preference)",
              "table": "selection table", "recipe": "recipe tables (first matching row)", "measure": "measurements"}  # fmt: skip
    for kind, title in groups.items():
        items = [t for t in rec["trace"] if t.get("kind") == kind]
        if not items:
            continue
        branch = root.add(f"[bold]{title}[/bold]")
        for t in items:
            mark = "[green]fired[/]" if t.get("fired") else "[dim]not fired[/]"
            if t.get("decided"):
                mark = "[bold magenta]DECIDED[/]"
            axis = escape(f" [{t['axis']}]") if t.get("axis") else ""
            branch.add(f"{mark} {escape(t['rule'])}{axis}: {escape(t['because'])} [dim]({escape(t['file'])})[/dim]")
    scores = rec.get("scores") or []
    if scores:
        sb = root.add("[bold]scores (top 5)[/bold]")
        for s in scores[:5]:
            sb.add(
                escape(f"{s['name']}: {s['score']:.2f}  " + ", ".join(f"{k} {v:.2f}" for k, v in s["votes"].items()))
            )
    fb = root.add("[bold]smallest input changes that flip the choice[/bold]")
    if flips:
        for f in flips:
            fb.add(escape(f"{f['change']} -> {f['architecture']}"))
    else:
        fb.add("no single-flag change within the tested range changes the choice")
    console.print(root)
