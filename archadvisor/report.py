"""Renderers: they only read values (a Recommendation, the catalog, the rules). json / yaml / markdown are
plain text; the rich panels follow the guide's Output Format (task analysis, architecture choice, model
structure, optimization, expected performance). rich is imported only by the rich renderers.

A section or key that does not apply to the task (``None``) is left out of every rendering.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from archadvisor.vocab import FORECAST_TASKS, FORMATS

if TYPE_CHECKING:
    from archadvisor.catalog import Catalog
    from archadvisor.recommendation import Recommendation
    from archadvisor.ruleset import RuleSet

__all__ = ["FORMATS", "render", "print_rich", "print_explain", "catalog_rows", "print_catalog", "rules_lines"]


def to_json(rec: Recommendation) -> str:
    return json.dumps(rec.to_json(), indent=2)


def to_yaml(rec: Recommendation) -> str:
    import yaml

    return yaml.safe_dump(rec.to_json(), sort_keys=False, width=120)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return "-"
    return str(v)


def _recipe_rows(rec: Recommendation) -> list[tuple[str, str, str]]:
    """(setting, value, rule id) for the training recipe; rows whose value does not apply are left out."""
    t = rec.training
    if t is None:
        return []

    def rule(key: str) -> str:
        p = rec.provenance.get(key)
        return p.rule if p is not None else ""

    opt = t.optimizer
    opt_text = opt.name + (
        f" (momentum {opt.momentum}{', nesterov' if opt.nesterov else ''})"
        if opt.name == "sgd"
        else f" (betas {', '.join(map(str, opt.betas))})"
        if opt.betas
        else ""
    )
    scaled = rec.provenance.get("training.lr")
    lr_text = _fmt(t.lr) + (
        f" (base {_fmt(t.base_lr)} x {t.effective_batch_size}/256)" if scaled and scaled.rule == "lr.scaling" else ""
    )
    prog = t.progressive_resizing
    rows: list[tuple[str, str | None, str]] = [
        ("pretrained", "yes" if t.pretrained else "no (from scratch)", rule("training.pretrained")),
        ("freeze", None if t.freeze is None else t.freeze.mode + (f" for {t.freeze.epochs} epochs" if t.freeze.epochs else ""), rule("training.freeze")),
        ("image size", None if t.image_size is None else f"{t.image_size} px" + (" (small-input stem)" if t.small_input else ""), rule("training.image_size")),
        ("optimizer", opt_text, rule("training.optimizer")),
        ("peak LR", lr_text, rule("training.lr")),
        ("batch", f"{t.batch_size} per device x {t.grad_accum_steps} accumulation = {t.effective_batch_size}", rule("training.batch_size")),
        ("weight decay", _fmt(t.weight_decay), rule("training.weight_decay")),
        ("epochs", f"{t.epochs} ({t.warmup_epochs} warmup, {t.schedule} to {_fmt(t.min_lr)})", rule("training.epochs")),
        ("label smoothing", None if t.label_smoothing is None else _fmt(t.label_smoothing), rule("training.label_smoothing")),
        ("dropout / drop path", f"{_fmt(t.dropout)} / {_fmt(t.drop_path)}", rule("training.drop_path")),
        ("EMA decay", None if t.ema_decay is None else _fmt(t.ema_decay), rule("training.ema_decay")),
        ("early stopping", f"patience {t.early_stopping_patience} on {t.monitor.metric} ({t.monitor.mode})", rule("training.early_stopping_patience")),
        ("grad clip", None if t.grad_clip_norm is None else _fmt(t.grad_clip_norm), rule("training.grad_clip_norm")),
        ("progressive resizing", None if prog is None else ", ".join(f"ep {e}: {s}px" for e, s in prog.schedule) if prog.enabled else "off", rule("training.progressive_resizing")),
    ]  # fmt: skip
    return [(k, v, r) for k, v, r in rows if v is not None]


def _aug_text(rec: Recommendation) -> str | None:
    aug = rec.augmentation
    if aug is None:
        return None
    ops = ", ".join(o.name for o in aug.ops) or "none"
    mix = f"; MixUp {aug.mixup_alpha}, CutMix {aug.cutmix_alpha}" if aug.mixup_alpha or aug.cutmix_alpha else ""
    return f"{aug.level}: {ops}{mix}"


def _latency_text(rec: Recommendation) -> str:
    d = rec.deployment
    if d.expected_latency_ms is None:
        return d.latency_basis
    return f"~{_fmt(d.expected_latency_ms)} ms ({d.latency_basis})"


def _size_text(rec: Recommendation) -> str:
    a = rec.architecture
    parts = []
    if a.params_m is not None:
        at = (
            f"{_fmt(a.params_m_for_classes)}M parameters at {rec.inputs.classes} classes"
            if a.params_m_for_classes is not None and rec.inputs.classes is not None
            else f"{_fmt(a.params_m)}M parameters"
        )
        parts.append(at)
    if a.gmacs_at_input is not None:
        size = rec.training.image_size if rec.training is not None else None
        parts.append(f"{_fmt(a.gmacs_at_input)} GMACs" + (f" at {size} px" if size else ""))
    return ", ".join(parts) + (f" (reference {a.reference})" if a.reference else "") if parts else "size not published"


def _problem_text(rec: Recommendation) -> str:
    """The problem as given, in words: only the inputs the task uses (a forecast has no classes)."""
    inp = rec.inputs
    if inp.task in FORECAST_TASKS:  # --samples counts time steps per series
        parts = [f"{inp.images} time steps" + (f" x {inp.series} series" if inp.series else " per series")]
    else:
        parts = [f"{inp.images} examples"]
    if inp.classes is not None:
        parts.append(f"{inp.classes} classes")
    if inp.image_size:
        parts.append(f"{inp.image_size} px")
    named = (("horizon", inp.horizon), ("lookback", inp.lookback), ("frequency", inp.frequency),
             ("channels", inp.channels), ("length", inp.length))  # fmt: skip
    parts += [f"{name} {value}" for name, value in named if value is not None]
    return ", ".join(parts)


def _license_text(rec: Recommendation) -> str | None:
    lic = rec.architecture.license
    if lic is None:
        return None
    return f"code {lic.code}, weights {lic.weights} ({lic.kind})"


def to_markdown(rec: Recommendation) -> str:
    a, d, inp = rec.architecture, rec.deployment, rec.inputs
    lines = [
        f"# Recommendation: {a.name} ({a.family}) for {rec.task}",
        "",
        "## Task analysis",
        f"- task: {rec.task}, {_problem_text(rec)}",
        f"- compute: {inp.compute} ({inp.gpus} GPU(s)), target: {inp.target}, latency budget: "
        + (f"{inp.latency_ms:g} ms" if inp.latency_ms else "none"),
        f"- pretrained weights: {'allowed' if inp.pretrained else 'not allowed'}",
        "",
        "## Architecture choice",
        f"- **{a.name}**: {a.why}",
        f"- size: {_size_text(rec)}",
        *([f"- licence: {_license_text(rec)}"] if _license_text(rec) else []),
        f"- decided by: `{rec.decided_by}`",
        "",
        "Alternatives:",
        "",
    ]
    for i, alt in enumerate(rec.alternatives, 1):
        lines.append(f"{i}. **{alt.name}** ({alt.family}): {alt.why}")
    if a.structure:
        lines += ["", "## Model structure", a.structure]
    rows = _recipe_rows(rec)
    if rows:
        lines += ["", "## Training recipe", "", "| setting | value | rule |", "|---|---|---|"]
        lines += [f"| {k} | {v} | {r} |" for k, v, r in rows]
    aug = _aug_text(rec)
    if aug is not None:
        lines += ["", f"Augmentation: {aug}"]
    lines += [
        "",
        "## Deployment",
        f"- export {d.export} -> {d.runtime}, precision {d.precision} (quantize: {d.quantize})",
        f"- expected latency: {_latency_text(rec)}",
        "",
        "## Expected performance",
        f"- {rec.expected.benchmark}",
        f"- {rec.expected.note}",
    ]
    if rec.warnings:
        lines += ["", "## Warnings"] + [f"- {w}" for w in rec.warnings]
    lines += ["", "## Rules that fired", ""]
    lines += [f"- `{t.rule}`{' **(decided)**' if t.decided else ''}: {t.because}" for t in rec.trace if t.fired]
    return "\n".join(lines) + "\n"


def render(rec: Recommendation, fmt: str) -> str | None:
    """Text for json/yaml/markdown; None for the rich panels (use print_rich)."""
    if fmt == "json":
        return to_json(rec)
    if fmt == "yaml":
        return to_yaml(rec)
    if fmt == "markdown":
        return to_markdown(rec)
    return None


def print_rich(rec: Recommendation, console: Any) -> None:
    """The guide's Output Format as rich panels (free text is escaped: rule text holds [brackets])."""
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table

    a, d, inp = rec.architecture, rec.deployment, rec.inputs
    console.print(f"[bold]NEURAL NETWORK ARCHITECTURE DESIGN[/bold]  (archadvisor {escape(rec.tool_version)})")
    task = (
        f"task [bold]{rec.task}[/bold]: {escape(_problem_text(rec))}\n"
        f"compute {inp.compute} ({inp.gpus} GPU), target [bold]{inp.target}[/bold], latency budget "
        + (f"{inp.latency_ms:g} ms" if inp.latency_ms else "none")
        + f", pretrained {'allowed' if inp.pretrained else 'not allowed'}"
    )
    console.print(Panel(task, title="TASK ANALYSIS", title_align="left"))
    arch = Table.grid(padding=(0, 2))
    arch.add_row("[bold green]" + escape(a.name) + "[/]", escape(f"{a.family}: {a.why}"))
    arch.add_row("size", escape(_size_text(rec)))
    if _license_text(rec):
        arch.add_row("licence", escape(_license_text(rec) or ""))
    arch.add_row("decided by", escape(str(rec.decided_by)))
    for i, alt in enumerate(rec.alternatives, 1):
        arch.add_row(escape(f"alt {i}: {alt.name}"), escape(alt.why))
    console.print(Panel(arch, title="ARCHITECTURE CHOICE", title_align="left"))
    if a.structure:
        console.print(Panel(escape(a.structure), title="MODEL STRUCTURE", title_align="left"))
    recipe = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    recipe.add_column("setting")
    recipe.add_column("value")
    recipe.add_column("rule", style="dim")
    for name, value, rule in _recipe_rows(rec):
        recipe.add_row(name, escape(value), escape(rule))
    aug = _aug_text(rec)
    if aug is not None:
        level = rec.provenance.get("augmentation.level")
        recipe.add_row("augmentation", escape(aug), escape(level.rule if level else ""))
    recipe.add_row(
        "deployment", escape(f"{d.export} -> {d.runtime}, {d.precision}, {_latency_text(rec)}"), escape(d.rule)
    )
    console.print(Panel(recipe, title="OPTIMIZATION", title_align="left"))
    exp = rec.expected
    perf = f"{escape(exp.benchmark)}\n{escape(exp.latency)}\n[dim]{escape(exp.note)}[/dim]"
    console.print(Panel(perf, title="EXPECTED PERFORMANCE", title_align="left"))
    if rec.warnings:
        body = "\n".join(f"! {escape(w)}" for w in rec.warnings)
        console.print(Panel(body, title="WARNINGS", border_style="yellow", title_align="left"))
    fired = [t for t in rec.trace if t.fired and t.kind != "recipe"]
    lead = (
        "forced with --arch; rules that fired for the automatic choice: "
        if rec.decided_by == "--arch"
        else "rules that chose the architecture: "
    )
    names = ", ".join(t.rule + (" (decided)" if t.decided else "") for t in fired)
    console.print("[dim]" + escape(lead + names) + "; `archadvisor explain` shows the full path[/dim]")


def explain_json(rec: Recommendation, flips: list[dict[str, Any]]) -> str:
    out = {
        "architecture": rec.architecture.name,
        "decided_by": rec.decided_by,
        "scores": [s._asdict() for s in rec.scores],
        "trace": rec.to_json()["trace"],
        "flips": flips,
    }
    return json.dumps(out, indent=2)


def print_explain(rec: Recommendation, flips: list[dict[str, Any]], console: Any) -> None:
    """The decision path as a tree: every rule considered, which fired, which decided, what would flip it."""
    from rich.markup import escape
    from rich.tree import Tree

    root = Tree(
        f"[bold]{escape(rec.task)}[/bold] -> [bold green]{escape(rec.architecture.name)}[/] "
        f"(decided by {escape(str(rec.decided_by))})"
    )
    groups = {"constraint": "hard constraints (filter first)", "vote": "votes (axis weight x preference)",
              "table": "selection table", "recipe": "recipe tables (first matching row)", "measure": "measurements"}  # fmt: skip
    for kind, title in groups.items():
        items = [t for t in rec.trace if t.kind == kind]
        if not items:
            continue
        branch = root.add(f"[bold]{title}[/bold]")
        for t in items:
            mark = "[green]fired[/]" if t.fired else "[dim]not fired[/]"
            if t.decided:
                mark = "[bold magenta]DECIDED[/]"
            axis = escape(f" [{t.axis}]") if t.axis else ""
            where = f" [dim]({escape(t.file)})[/dim]" if t.file else ""
            branch.add(f"{mark} {escape(t.rule)}{axis}: {escape(t.because)}{where}")
    if rec.scores:
        sb = root.add("[bold]scores (top 5)[/bold]")
        for s in rec.scores[:5]:
            sb.add(escape(f"{s.name}: {s.score:.2f}  " + ", ".join(f"{k} {v:.2f}" for k, v in s.votes.items())))
    fb = root.add("[bold]smallest input changes that flip the choice[/bold]")
    if flips:
        for f in flips:
            fb.add(escape(f"{f['change']} -> {f['architecture']}"))
    else:
        fb.add("no single-flag change within the tested range changes the choice")
    console.print(root)


# --- the catalog and the rules ---------------------------------------------------------------------------


def catalog_rows(catalog: Catalog, *, family: str | None, task: str | None) -> list[dict[str, Any]]:
    """`archadvisor archs`: one row per model (zoo variants for classification, external models otherwise)."""
    rows: list[dict[str, Any]] = []
    if task in (None, "classification"):
        for v in catalog.variants:
            if family is None or v.family == family:
                rows.append({"name": v.name, "family": v.family, "task": "classification", "params_m": round(v.params_m, 2),
                             "gmacs": v.gmacs, "input_size": v.input_size, "imagenet_top1": v.imagenet_top1,
                             "reference": v.reference, "small_input": v.small_input, "source": v.top1_source})  # fmt: skip
    if task not in (None, "classification") or family is None:  # classification: its library models too
        for e in catalog.external:
            if task is None or e.task == task:
                rows.append({"name": e.name, "family": "external", "task": e.task, "params_m": e.params_m, "gmacs": e.gmacs,
                             "input_size": e.input_size, "imagenet_top1": e.imagenet_top1, "reference": e.provider, "small_input": False,
                             "source": f"{e.metric} ({e.source})"})  # fmt: skip
    return rows


def print_catalog(rows: list[dict[str, Any]], console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"archadvisor catalog ({len(rows)} models)")
    for col in ("name", "family", "task", "params (M)", "GMACs", "size", "top-1", "reference"):
        table.add_column(col, justify="right" if col in ("params (M)", "GMACs", "size", "top-1") else "left")
    for r in rows:
        table.add_row(
            escape(r["name"]),
            escape(r["family"]),
            r["task"],
            "-" if r["params_m"] is None else f"{r['params_m']:.2f}",
            "-" if r["gmacs"] is None else f"{r['gmacs']:.3f}",
            "-" if r["input_size"] is None else str(r["input_size"]),
            "-" if r["imagenet_top1"] is None else f"{r['imagenet_top1']:.1f}",
            escape(r["reference"]),
        )
    console.print(table)


RULE_KINDS = ("selection", "deployment", "recipes", "tasks")


def rules_lines(rs: RuleSet, kind: str | None) -> list[str]:
    """`archadvisor rules show`: every rule as one line (id, condition, effect)."""
    from archadvisor import conditions

    out: list[str] = []
    if kind in (None, "tasks"):
        out.append("# tasks (selection table)")
        out += [
            f"task.{t}: best {', '.join(r['best'])}; alternative {', '.join(r['alternative'])}; mobile {', '.join(r['mobile']) or '-'}"
            for t, r in rs.tasks.items()
        ]
    if kind in (None, "selection"):
        for task, sel in rs.selections.items():
            out.append(f"# selection: {task} (axes {sel['axes']})")
            for c in sel.get("constraints", []):
                out.append(f"{c['id']} [constraint]: if {conditions.describe(c['when'])}: {c['because']}")
            for r in sel["rules"]:
                out.append(
                    f"{r['id']} [{r['axis']}]: if {conditions.describe(r['when'])}: prefer {', '.join(r['prefer'])}"
                )
    if kind in (None, "deployment"):
        out.append("# deployment matrix")
        out += [
            f"{t['id']}: {t['target']} -> {', '.join(t['prefer'])}; {t['export']} / {t['runtime']} / {t['precision']}"
            for t in rs.targets.values()
        ]
    if kind in (None, "recipes"):
        for table in rs.tables:
            out.append(f"# recipe table: {table['name']}")
            for row in table["rows"]:
                cond = conditions.describe(row["when"]) if "when" in row else "otherwise"
                out.append(f"{row['id']}: if {cond}: set {row['set']}")
    return out


def validate_summary(rs: RuleSet) -> str:
    """`archadvisor rules validate`: one line of counts."""
    n_rules = sum(len(s["rules"]) + len(s.get("constraints", [])) for s in rs.selections.values())
    n_rows = sum(len(t["rows"]) for t in rs.tables)
    return (
        f"ok: {len(rs.sources)} files; {len(rs.catalog['variants'])} variants, {len(rs.catalog['external'])} external "
        f"models, {len(rs.tasks)} tasks, {n_rules} selection rules, {len(rs.targets)} targets, {n_rows} recipe rows "
        f"(digest {rs.digest})"
    )
