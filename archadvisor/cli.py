"""The command line. Commands stay thin: build a ProblemSpec, call the engine, hand the result to a
renderer. Every user error is one line on stderr and exit code 2.

recommend / explain / scaffold / archs / rules never import torch; profile / compare / --measure do.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from archadvisor import __version__
from archadvisor.errors import ArchAdvisorError, InputError


def _fail(message: str, code: int = 2) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(code)


# click's UsageError, whether typer vendors click (>= 0.26) or uses the click package
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class _OneLineErrors(TyperGroup):
    """Usage errors (unknown option, missing value) as one line, not a box; exit code 2."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except _UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
                typer.echo(exc.ctx.get_help())  # bare `archadvisor` / `archadvisor rules`: the help
                raise SystemExit(0) from None
            msg = exc.format_message().replace("\n", " ")
            cmd = exc.ctx.command_path if exc.ctx else "archadvisor"
            _fail(f"{cmd}: {msg} (see --help)")
        except ArchAdvisorError as exc:
            _fail(str(exc))
        except typer.Abort:
            _fail("aborted", 1)
        if standalone_mode:
            raise SystemExit(rv if isinstance(rv, int) else 0)
        return rv


app = typer.Typer(
    cls=_OneLineErrors,
    help="Recommend a PyTorch architecture, training recipe and deployment plan; scaffold a project that trains.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
rules_app = typer.Typer(cls=_OneLineErrors, help="Validate and show the rule files.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"archadvisor {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """archadvisor: architecture advisor and scaffolder."""


# --- the problem flags, shared by recommend / explain / scaffold ------------------------------------
def _rules_path(value: str) -> Path:
    """A rules directory as typed: an empty string is refused (Path("") would silently mean ".")."""
    if isinstance(value, Path):
        return value
    if not value.strip():
        raise typer.BadParameter("an empty path is not a rules directory; name one, e.g. ./my_rules")
    return Path(value)


RulesOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--rules",
        parser=_rules_path,
        help="Directory of rule files that add to or override the built-in rules (repeatable).",
    ),
]
_PROBLEM: list[inspect.Parameter] = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, opt])
    for name, kind, default, opt in [
        ("task", str | None, None, typer.Option("--task", help="classification, detection, semantic-segmentation, instance-segmentation, text, code, time-series, image-generation, text-generation, speech-recognition, video [default: classification]")),
        ("images", str | None, None, typer.Option("--images", "--samples", help="Labelled training examples (integer >= 1).")),
        ("classes", str | None, None, typer.Option("--classes", help="Number of classes (>= 2; default from the task).")),
        ("image_size", str | None, None, typer.Option("--image-size", help="Input resolution in pixels, 8..2048 [default: 224]. <= 64 selects small-input stems.")),
        ("compute", str | None, None, typer.Option("--compute", help="Training budget: cpu, edge, single-gpu, multi-gpu [default: single-gpu].")),
        ("gpus", str | None, None, typer.Option("--gpus", help="GPUs for training (sizes DDP and the batch).")),
        ("gpu_memory_gb", str | None, None, typer.Option("--gpu-memory-gb", help="Memory per GPU in GB (sizes the batch and gradient accumulation).")),
        ("latency_ms", str | None, None, typer.Option("--latency-ms", help="Inference budget per image on the target, in ms.")),
        ("target", str | None, None, typer.Option("--target", help="cloud-gpu, cloud-cpu, jetson, ios, android, browser [default: cloud-gpu].")),
        ("pretrained", bool, True, typer.Option("--pretrained/--no-pretrained", help="May ImageNet/COCO weights be used.")),
        ("hflip", bool, True, typer.Option("--hflip/--no-hflip", help="Is a mirrored image still the same class? (no for digits, text).")),
        ("object_size", str | None, None, typer.Option("--object-size", help="Detection only: small, large, variable.")),
        ("arch", str | None, None, typer.Option("--arch", help="Evaluate a forced architecture (catalog name or alias).")),
        ("rules", list[Path] | None, None, typer.Option("--rules", parser=_rules_path, help="Directory of extra/override rule files (repeatable).")),
    ]
]  # fmt: skip
_PROBLEM_NAMES = [p.name for p in _PROBLEM]


def problem_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the shared problem flags; it receives them as ``problem: dict``."""
    import typing

    hints = typing.get_type_hints(fn, include_extras=True)  # real objects, not `from __future__` strings
    own = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in inspect.signature(fn).parameters.values()
        if p.name != "problem"
    ]

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> Any:
        problem = {k: kwargs.pop(k) for k in _PROBLEM_NAMES}
        return fn(problem=problem, **kwargs)

    wrapper.__signature__ = inspect.Signature(own + _PROBLEM)  # type: ignore[attr-defined]
    del wrapper.__wrapped__
    return wrapper


def _load(rules_dirs: list[Path] | None) -> tuple[Any, Any]:
    from archadvisor.catalog import Catalog
    from archadvisor.ruleset import load_rules

    for d in rules_dirs or []:
        if not d.is_dir():
            raise InputError("--rules", str(d), "an existing directory of .yaml rule files")
    rules = load_rules(rules_dirs or [])
    return rules, Catalog(rules)


def _spec(problem: dict[str, Any], rules: Any) -> Any:
    from archadvisor.spec import build_spec

    args = {k: v for k, v in problem.items() if k != "rules"}
    defaults = {t: row["default_classes"] for t, row in rules.tasks.items()}
    return build_spec(**args, default_classes=defaults)


FORMAT_HELP = "Output: table (rich panels), json, yaml, markdown."


def _check_format(fmt: str, choices: tuple[str, ...]) -> str:
    if fmt not in choices:
        raise InputError("--format", fmt, choices)
    return fmt


def _measured(spec: Any, rules: Any, catalog: Any) -> tuple[dict[str, Any] | None, str | None]:
    """recommend --measure: measure the top candidates on this machine when it is the target."""
    from archadvisor import engine

    if spec.task != "classification":
        return None, "--measure: only zoo architectures (classification) can be measured"
    import importlib.util

    if spec.target not in ("cloud-cpu", "cloud-gpu"):
        return (
            None,
            f"--measure: {spec.target} is not this machine; latencies are device-profile estimates (rules/devices.yaml)",
        )
    if importlib.util.find_spec("torch") is None:
        raise InputError("--measure", "torch", "an installed torch (pip install 'archadvisor[torch]')")
    from archadvisor import measure

    if spec.target == "cloud-gpu" and not measure.cuda_available():
        return None, "--measure: target cloud-gpu but no CUDA device here; latencies are estimates"
    from dataclasses import replace

    device = "cuda" if spec.target == "cloud-gpu" else "cpu"
    # the top candidates before the latency budget is applied: the budget is then checked on measurements
    top = engine.select(replace(spec, latency_ms=None), rules, catalog).ranked[:5]
    from rich.console import Console

    with Console(stderr=True).status(f"measuring {len(top)} candidates on this machine ({device}) ..."):
        results = measure.measure_candidates(top, image_size=spec.image_size, device=device, max_seconds=1.5)
    note = (
        f"--measure: measured {', '.join(v.name for v in top)} on this machine; "
        + "; ".join(f"{r['name']} {r['median_ms']:.1f} ms" for r in results)
        + f" ({results[0]['basis'].split(': ', 1)[-1] if results else ''}); the latency budget is checked on these"
    )
    return measure.as_latency_estimates(results), note


@app.command()
@problem_options
def recommend(
    problem: dict[str, Any],
    format: Annotated[str, typer.Option("--format", "-f", help=FORMAT_HELP)] = "table",
    save: Annotated[Path | None, typer.Option("--save", help="Also write the recommendation to FILE (.json, .yaml or .md).")] = None,
    measure: Annotated[bool, typer.Option("--measure", help="Measure the top candidates here when the target is this machine (imports torch).")] = False,
) -> None:  # fmt: skip
    """Recommend an architecture, a training recipe and a deployment plan, with the rules that fired."""
    from archadvisor import engine, report

    fmt = _check_format(format, report.FORMATS)
    if save is not None and save.suffix.lower() not in (".json", ".yaml", ".yml", ".md"):
        raise InputError("--save", str(save), "a file ending in .json, .yaml, .yml or .md")
    if save is not None and not save.parent.is_dir():
        raise InputError("--save", str(save), "a path in an existing directory")
    rules, catalog = _load(problem["rules"])
    spec = _spec(problem, rules)
    measured, note = _measured(spec, rules, catalog) if measure else (None, None)
    rec = engine.recommend(spec, rules, catalog, measured=measured, measure_note=note)
    text = report.render(rec, fmt)
    if text is None:
        from rich.console import Console

        report.print_rich(rec, Console())
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if save is not None:
        suffix = save.suffix.lower()
        body = (
            report.to_json(rec) + "\n"
            if suffix == ".json"
            else report.to_markdown(rec)
            if suffix == ".md"
            else report.to_yaml(rec)
        )
        try:
            save.write_text(body, encoding="utf-8")
        except OSError as exc:
            raise InputError("--save", str(save), "a writable file", hint=exc.strerror) from None


@app.command()
@problem_options
def explain(
    problem: dict[str, Any],
    format: Annotated[str, typer.Option("--format", "-f", help="table (a tree) or json.")] = "table",
) -> None:
    """Show the decision path: every rule considered, which fired, which decided, what would flip it."""
    from archadvisor import engine

    fmt = _check_format(format, ("table", "json"))
    rules, catalog = _load(problem["rules"])
    spec = _spec(problem, rules)
    rec = engine.recommend(spec, rules, catalog)
    flips = engine.flips(spec, rules, catalog)
    if fmt == "json":
        out = {"architecture": rec["architecture"]["name"], "decided_by": rec["decided_by"], "scores": rec["scores"],
               "trace": rec["trace"], "flips": flips}  # fmt: skip
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    from rich.console import Console

    from archadvisor.report import print_explain

    print_explain(rec, flips, Console())


def _ask(problem: dict[str, Any]) -> dict[str, Any]:
    """No flags in a terminal: ask the questions, with the defaults a first project needs."""
    from archadvisor.conditions import COMPUTE, TARGETS

    typer.echo("archadvisor scaffold: a few questions (Enter keeps the default).")
    problem["task"] = "classification"
    problem["images"] = typer.prompt("Labelled training images", default="1437")
    problem["classes"] = typer.prompt("Classes", default="10")
    problem["image_size"] = typer.prompt("Image size in pixels (<= 64 uses small-input stems)", default="32")
    problem["compute"] = typer.prompt(f"Training compute ({', '.join(COMPUTE)})", default="cpu")
    problem["target"] = typer.prompt(f"Deployment target ({', '.join(TARGETS)})", default="cloud-cpu")
    latency = typer.prompt("Latency budget per image in ms (blank: none)", default="", show_default=False)
    problem["latency_ms"] = latency or None
    problem["pretrained"] = typer.confirm("May ImageNet-pretrained weights be used?", default=False)
    problem["hflip"] = typer.confirm("Is a mirrored image still the same class?", default=True)
    return problem


def _from_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError("--from", str(path), "a recommendation saved with `archadvisor recommend --save FILE.json`")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            rec = yaml.safe_load(text)
        else:
            rec = json.loads(text)
    except (OSError, ValueError) as exc:
        raise InputError("--from", str(path), "a JSON or YAML recommendation", hint=str(exc).splitlines()[0]) from None
    need = {"task", "inputs", "architecture", "training", "augmentation", "deployment"}
    if not isinstance(rec, dict) or not need <= set(rec):
        missing = sorted(need - set(rec)) if isinstance(rec, dict) else sorted(need)
        raise InputError("--from", str(path), "a saved recommendation", hint=f"it lacks {', '.join(missing)}")
    return rec


@app.command()
@problem_options
def scaffold(
    problem: dict[str, Any],
    out: Annotated[Path | None, typer.Option("--out", help="Project directory [default: ./NAME].")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Project name, a Python identifier [default: <arch>_project].")] = None,
    from_file: Annotated[Path | None, typer.Option("--from", help="Scaffold a saved recommendation (recommend --save FILE.json).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Write into a non-empty directory, replacing generated files.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List each file as create / identical / conflict; write nothing.")] = False,
) -> None:  # fmt: skip
    """Generate a ready-to-run PyTorch project (image classification) from a recommendation."""
    from archadvisor import engine
    from archadvisor import scaffold as scaffolder

    given = {k: v for k, v in problem.items() if v is not None and k not in ("pretrained", "hflip", "rules")}
    if from_file is not None:
        if set(given) - {"arch"}:
            raise InputError("--from", str(from_file), "either --from or the problem flags, not both",
                             hint=f"also given: {', '.join('--' + k.replace('_', '-') for k in sorted(set(given) - {'arch'}))}")  # fmt: skip
        rec = _from_file(from_file)
        if problem["arch"] is not None:  # re-run the saved inputs with the forced architecture
            rules, catalog = _load(problem["rules"])
            inputs = {**rec["inputs"], "arch": problem["arch"]}
            from archadvisor.spec import spec_from_inputs

            defaults = {t: row["default_classes"] for t, row in rules.tasks.items()}
            rec = engine.recommend(spec_from_inputs(inputs, defaults), rules, catalog)
    else:
        if not given and sys.stdin.isatty() and sys.stdout.isatty():
            problem = _ask(problem)
        rules, catalog = _load(problem["rules"])
        rec = engine.recommend(_spec(problem, rules), rules, catalog)
    name = name or (out.name if out is not None else f"{rec['architecture']['name']}_project")
    out = out if out is not None else Path(name)
    try:
        files = scaffolder.render_project(rec, name=name)
        actions = scaffolder.plan(files, out)
        if dry_run:
            for a in actions:
                typer.echo(f"{a.status:>9}  {out / a.path}")
            return
        scaffolder.write_project(files, out, force=force)
    except scaffolder.ScaffoldError as exc:
        raise _ScaffoldFailure(str(exc)) from None
    a = rec["architecture"]
    counts = {s: sum(1 for x in actions if x.status == s) for s in ("create", "identical", "conflict")}
    typer.echo(f"scaffolded {name} ({a['name']}, {a['family']}) in {out}: {counts['create']} created, "
               f"{counts['conflict']} replaced, {counts['identical']} unchanged")  # fmt: skip
    for w in rec["warnings"]:
        typer.echo(f"warning: {w}")
    typer.echo(f"next: cd {out} && pip install -e . && python train.py   (see README.md)")


class _ScaffoldFailure(ArchAdvisorError):
    """A scaffold error, reported as one line with exit code 2."""


@app.command()
def archs(
    family: Annotated[str | None, typer.Option("--family", help="Only this family (e.g. ResNet, ConvNeXt).")] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="Only models for this task (classification = the zoo).")
    ] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table or json.")] = "table",
    rules: RulesOpt = None,
) -> None:
    """List the catalog: every variant with its reference facts."""
    from archadvisor.conditions import TASKS

    fmt = _check_format(format, ("table", "json"))
    rules_set, catalog = _load(rules)
    if task is not None and task not in TASKS:
        raise InputError("--task", task, TASKS)
    rows: list[dict[str, Any]] = []
    if task in (None, "classification"):
        fams = sorted(catalog.families)
        if family is not None and family not in catalog.families:
            lower = {f.lower(): f for f in fams}
            if family.lower() not in lower:
                raise InputError("--family", family, fams)
            family = lower[family.lower()]
        for v in catalog.variants:
            if family is None or v.family == family:
                rows.append({"name": v.name, "family": v.family, "task": "classification", "params_m": round(v.params_m, 2),
                             "gmacs": v.gmacs, "input_size": v.input_size, "imagenet_top1": v.imagenet_top1,
                             "reference": v.reference, "small_input": v.small_input, "source": v.top1_source})  # fmt: skip
    if task not in (None, "classification") or (task is None and family is None):
        for e in catalog.external:
            if task is None or e.task == task:
                rows.append({"name": e.name, "family": "external", "task": e.task, "params_m": e.params_m, "gmacs": None,
                             "input_size": None, "imagenet_top1": None, "reference": e.provider, "small_input": False,
                             "source": f"{e.metric} ({e.source})"})  # fmt: skip
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"archadvisor catalog ({len(rows)} models)")
    for col in ("name", "family", "task", "params (M)", "GMACs", "size", "top-1", "reference"):
        table.add_column(col, justify="right" if col in ("params (M)", "GMACs", "size", "top-1") else "left")
    for r in rows:
        table.add_row(r["name"], r["family"], r["task"], "-" if r["params_m"] is None else f"{r['params_m']:.2f}",
                      "-" if r["gmacs"] is None else f"{r['gmacs']:.3f}", "-" if r["input_size"] is None else str(r["input_size"]),
                      "-" if r["imagenet_top1"] is None else f"{r['imagenet_top1']:.1f}", r["reference"])  # fmt: skip
    Console().print(table)


@rules_app.command("validate")
def rules_validate(
    directory: Annotated[Path | None, typer.Argument(parser=_rules_path, help="A directory of rule files to check on top of the built-in rules.")] = None,
) -> None:  # fmt: skip
    """Check rule files: YAML, keys, types, operators, variables, architecture names, reachability."""
    from archadvisor.ruleset import load_rules

    if directory is not None and not directory.is_dir():
        raise InputError("DIR", str(directory), "an existing directory of .yaml rule files")
    rs = load_rules([directory] if directory else [])
    n_rules = sum(len(s["rules"]) + len(s.get("constraints", [])) for s in rs.selections.values())
    n_rows = sum(len(t["rows"]) for t in rs.tables)
    typer.echo(
        f"ok: {len(rs.sources)} files; {len(rs.catalog['variants'])} variants, {len(rs.catalog['external'])} external models, "
        f"{len(rs.tasks)} tasks, {n_rules} selection rules, {len(rs.targets)} targets, {n_rows} recipe rows (digest {rs.digest})"
    )


@rules_app.command("show")
def rules_show(
    kind: Annotated[str | None, typer.Option("--kind", help="selection, deployment, recipes or tasks.")] = None,
    rules: RulesOpt = None,
) -> None:
    """Print every rule: id, condition and reason."""
    from archadvisor import conditions
    from archadvisor.ruleset import load_rules

    kinds = ("selection", "deployment", "recipes", "tasks")
    if kind is not None and kind not in kinds:
        raise InputError("--kind", kind, kinds)
    rs = load_rules(rules or [])
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
    sys.stdout.write("\n".join(out) + "\n")


def _register_optional() -> None:
    """Commands that live in their own modules (they import torch lazily, only when run)."""
    try:
        from archadvisor.measure_cli import compare, profile
    except ImportError:  # pragma: no cover - shipped with the package
        return
    app.command("profile")(profile)
    app.command("compare")(compare)


_register_optional()


def main() -> None:
    app()
