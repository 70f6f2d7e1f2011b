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


_APP_SETTINGS: dict[str, Any] = {
    "cls": _OneLineErrors,
    "help": "Recommend a PyTorch architecture, training recipe and deployment plan; scaffold a project that trains.",
    "no_args_is_help": True,
    "pretty_exceptions_enable": False,
    "rich_markup_mode": None,
}
app = typer.Typer(**_APP_SETTINGS)
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
        ("task", str | None, None, typer.Option("--task", help="classification, detection, semantic-segmentation, instance-segmentation, text, code, time-series (forecasting), time-series-classification, image-generation, text-generation, speech-recognition, video [default: classification]")),
        ("images", str | None, None, typer.Option("--images", "--samples", help="Labelled training examples (integer >= 1).")),
        ("classes", str | None, None, typer.Option("--classes", help="Number of classes (>= 2, >= 1 for detection and instance segmentation; default from the task).")),
        ("image_size", str | None, None, typer.Option("--image-size", help="Input resolution in pixels, 8..2048 [default: 224]. <= 64 selects small-input stems.")),
        ("compute", str | None, None, typer.Option("--compute", help="Training budget: cpu, edge, single-gpu, multi-gpu [default: single-gpu].")),
        ("gpus", str | None, None, typer.Option("--gpus", help="GPUs for training (sizes DDP and the batch).")),
        ("gpu_memory_gb", str | None, None, typer.Option("--gpu-memory-gb", help="Memory per GPU in GB (sizes the batch and gradient accumulation).")),
        ("latency_ms", str | None, None, typer.Option("--latency-ms", help="Inference budget per image on the target, in ms.")),
        ("target", str | None, None, typer.Option("--target", help="cloud-gpu, cloud-cpu, jetson (AGX Xavier), jetson-orin, jetson-orin-nano, ios, android, browser [default: cloud-gpu].")),
        ("pretrained", bool | None, None, typer.Option("--pretrained/--no-pretrained", help="May ImageNet/COCO weights be used. [default: pretrained]")),
        ("hflip", bool | None, None, typer.Option("--hflip/--no-hflip", help="Is a mirrored image still the same class? (no for digits, text). [default: hflip]")),
        ("object_size", str | None, None, typer.Option("--object-size", help="Detection only: small, large, variable.")),
        ("permissive", bool | None, None, typer.Option("--permissive/--no-permissive", help="Only models whose code and weights licences allow commercial use (no AGPL, non-commercial, gated or hosted).")),
        ("arch", str | None, None, typer.Option("--arch", help="Evaluate a forced architecture (catalog name or alias).")),
        ("horizon", str | None, None, typer.Option("--horizon", help="Forecasting: steps to predict.")),
        ("lookback", str | None, None, typer.Option("--lookback", help="Forecasting: steps of history the model sees.")),
        ("frequency", str | None, None, typer.Option("--frequency", help="Forecasting: sampling frequency (h/H, D, W, ME/M, MS, QE/Q, YE/Y, 15min, or hourly ... yearly).")),
        ("series", str | None, None, typer.Option("--series", help="Forecasting: number of series (--samples = time steps per series).")),
        ("channels", str | None, None, typer.Option("--channels", help="Sequences: variables per time step.")),
        ("length", str | None, None, typer.Option("--length", help="Sequences: steps per example (tokens for text).")),
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
        if not str(d).strip():
            raise InputError("--rules", str(d), "a directory of .yaml rule files (an empty path is not one)")
        if not d.is_dir():
            raise InputError("--rules", str(d), "an existing directory of .yaml rule files")
    rules = load_rules(rules_dirs or [])
    return rules, Catalog(rules)


def _spec(problem: dict[str, Any], rules: Any) -> Any:
    from archadvisor.spec import build_spec

    args = {k: v for k, v in problem.items() if k != "rules"}
    args["pretrained"] = True if args["pretrained"] is None else args["pretrained"]
    args["permissive"] = bool(args["permissive"])
    defaults = {t: row["default_classes"] for t, row in rules.tasks.items()}
    return build_spec(**args, default_classes=defaults)


FORMAT_HELP = "Output: table (rich panels), json, yaml, markdown."


def _check_format(fmt: str, choices: tuple[str, ...]) -> str:
    if fmt not in choices:
        lower = fmt.lower()
        if lower in choices:
            return lower
        raise InputError("--format", fmt, choices)
    return fmt


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
    from archadvisor.vocab import FORMATS

    fmt = _check_format(format, FORMATS)
    if save is not None and save.suffix.lower() not in (".json", ".yaml", ".yml", ".md"):
        raise InputError("--save", str(save), "a file ending in .json, .yaml, .yml or .md")
    if save is not None and not save.parent.is_dir():
        raise InputError("--save", str(save), "a path in an existing directory")
    rules, catalog = _load(problem["rules"])
    spec = _spec(problem, rules)
    if measure:
        from rich.console import Console

        from archadvisor.measured import recommend_measured

        with Console(stderr=True).status("measuring ...") as status:
            rec = recommend_measured(spec, rules, catalog, status=status.update)
    else:
        rec = engine.recommend(spec, rules, catalog)
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
    from archadvisor import engine, report

    fmt = _check_format(format, ("table", "json"))
    rules, catalog = _load(problem["rules"])
    spec = _spec(problem, rules)
    rec = engine.recommend(spec, rules, catalog)
    flips = engine.flips(spec, rules, catalog)
    if fmt == "json":
        sys.stdout.write(report.explain_json(rec, flips) + "\n")
        return
    from rich.console import Console

    report.print_explain(rec, flips, Console())


def _interactive() -> bool:
    """Ask the questions only when a person is at a terminal."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def _ask(problem: dict[str, Any]) -> dict[str, Any]:
    """No flags in a terminal: ask the questions, task first, with the flags' own defaults. Each answer is
    checked by the same validator as its flag as it is typed, and asked again until it is valid."""
    from archadvisor import spec as specs
    from archadvisor.vocab import CLASSLESS_TASKS, COMPUTE, FORECAST_TASKS, IMAGE_TASKS, TARGETS, TASKS

    def ask(flag: str, question: str, default: Any, check: Callable[[str], Any]) -> Any:
        def proc(text: str) -> Any:
            if text.strip() == "" and default is None:
                return None
            try:
                return check(text)
            except InputError as exc:
                raise typer.BadParameter(str(exc)) from None

        shown = "" if default is None else str(default)
        return typer.prompt(question, default=shown, show_default=default is not None, value_proc=proc)

    typer.echo("archadvisor scaffold: a few questions (Enter keeps the default, as the flags do).")
    task = ask("--task", f"Task ({', '.join(TASKS)})", "classification", lambda v: specs._choice("--task", v, TASKS))
    problem["task"] = task
    problem["images"] = ask("--images", "Labelled training examples", None,
                            lambda v: specs._int("--images", v, 1, specs.MAX_EXAMPLES))  # fmt: skip
    if problem["images"] is None:  # required: ask until given
        while problem["images"] is None:
            problem["images"] = ask("--images", "Labelled training examples (required)", None,
                                    lambda v: specs._int("--images", v, 1, specs.MAX_EXAMPLES))  # fmt: skip
    if task not in CLASSLESS_TASKS:
        problem["classes"] = ask("--classes", "Classes (blank: the task's default)", None,
                                 lambda v: specs._int("--classes", v, 1, specs.MAX_CLASSES))  # fmt: skip
    if task in IMAGE_TASKS:
        problem["image_size"] = ask("--image-size", "Image size in pixels (blank: the task's default)", None,
                                    lambda v: specs._int("--image-size", v, 8, 2048))  # fmt: skip
    if task in FORECAST_TASKS:
        problem["horizon"] = ask(
            "--horizon", "Steps to forecast", None, lambda v: specs._int("--horizon", v, 1, specs.MAX_STEPS)
        )
        problem["frequency"] = ask("--frequency", "Sampling frequency (h, D, W, ME, ... or daily, monthly)", None,
                                   specs.canonical_frequency)  # fmt: skip
    problem["compute"] = ask("--compute", f"Training compute ({', '.join(COMPUTE)})", "single-gpu",
                             lambda v: specs._choice("--compute", v, COMPUTE))  # fmt: skip
    problem["target"] = ask("--target", f"Deployment target ({', '.join(TARGETS)})", "cloud-gpu",
                            lambda v: specs._choice("--target", v, TARGETS))  # fmt: skip
    problem["latency_ms"] = ask("--latency-ms", "Latency budget per example in ms (blank: none)", None,
                                lambda v: specs._float("--latency-ms", v, 0, 3_600_000))  # fmt: skip
    problem["pretrained"] = typer.confirm("May pretrained weights be used?", default=True)
    if task in IMAGE_TASKS:
        problem["hflip"] = typer.confirm("Is a mirrored image still the same class?", default=True)
    return problem


def _summary(rec: Any) -> None:
    """After the questions: what was chosen and why, in a few lines."""
    a, t = rec.architecture, rec.training
    typer.echo(f"chose {a.name} ({a.family}): {a.why}")
    if rec.generated is not None and rec.generated.substitute:
        typer.echo(f"generates {rec.generated.name}: {rec.generated.why}")
    if t is not None:
        typer.echo(f"recipe: {t.optimizer.name} lr {t.lr:g}, batch {t.effective_batch_size}, {t.epochs} epochs, "
                   f"{t.schedule} schedule ({rec.why('training.lr')})")  # fmt: skip
    typer.echo(f"deploy: {rec.deployment.export} -> {rec.deployment.runtime}, {rec.deployment.precision}")


def _from_file(path: Path) -> Any:
    """A saved recommendation, every field type-checked (a file is untrusted input)."""
    from archadvisor.recommendation import Recommendation

    if not path.is_file():
        raise InputError("--from", str(path), "a recommendation saved with `archadvisor recommend --save FILE.json`")
    try:
        if path.stat().st_size > MAX_FROM_BYTES:
            raise InputError("--from", str(path), f"a saved recommendation of at most {MAX_FROM_BYTES // 1024} KiB")
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            data = _yaml_without_aliases(text)
        else:
            data = json.loads(text)
    except (OSError, ValueError, RecursionError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError("--from", str(path), "a JSON or YAML recommendation", hint=detail) from None
    except Exception as exc:  # yaml.YAMLError (e.g. a !!python tag): the module is imported lazily above
        if type(exc).__module__.startswith("yaml"):
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError("--from", str(path), "a plain JSON or YAML recommendation", hint=first) from None
        raise
    return Recommendation.from_json(data)


MAX_FROM_BYTES = 1024 * 1024


def _yaml_without_aliases(text: str) -> Any:
    """safe_load, refusing aliases: `recommend --save` writes none, and an alias bomb expands exponentially."""
    import yaml

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"YAML aliases are not allowed (line {mark.line + 1})")
            return super().compose_node(parent, index)

    return yaml.load(text, Loader=NoAliases)  # noqa: S506 - a SafeLoader subclass


def _check_name(name: str | None) -> None:
    import keyword

    if name is None:
        return
    if keyword.iskeyword(name):
        raise InputError(
            "--name", name, "a Python identifier that is not a keyword", hint=f"{name!r} is a Python keyword"
        )
    if not name.isidentifier():
        raise InputError("--name", name, "a Python identifier (letters, digits and _, not starting with a digit)")


@app.command()
@problem_options
def scaffold(
    problem: dict[str, Any],
    out: Annotated[Path | None, typer.Option("--out", help="Project directory [default: ./NAME].")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Project package name, a Python identifier [default: from --out, or <arch>_project].")] = None,
    from_file: Annotated[Path | None, typer.Option("--from", help="Scaffold a saved recommendation (recommend --save FILE.json); problem flags given beside it override its inputs.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Write into a non-empty directory: the generated files are replaced all at once (staged first); your other files stay.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List each file as create / identical / conflict; write nothing.")] = False,
) -> None:  # fmt: skip
    """Generate a ready-to-run PyTorch project from a recommendation."""
    from archadvisor import engine
    from archadvisor import scaffold as scaffolder

    _check_name(name)
    given = {k: v for k, v in problem.items() if v is not None and k != "rules"}
    if from_file is not None:
        rec = _from_file(from_file)
        if given or problem["rules"]:  # flags beside --from override the saved inputs: run the engine again
            rules, catalog = _load(problem["rules"])
            saved = {k: v for k, v in rec.inputs._asdict().items() if k != "notes"}
            rec = engine.recommend(_spec({**saved, "rules": None, **given}, rules), rules, catalog)
    else:
        asked = not given and _interactive()
        if asked:
            problem = _ask(problem)
        rules, catalog = _load(problem["rules"])
        rec = engine.recommend(_spec(problem, rules), rules, catalog)
        if asked:
            _summary(rec)
    if rec.generated is None and rec.inputs.arch is not None:
        from archadvisor.catalog import Catalog
        from archadvisor.ruleset import load_rules

        catalog = Catalog(load_rules(problem["rules"] or []))
        names = [e.name for e in catalog.external if e.task == rec.task and e.generatable]
        if rec.task == "classification":
            names = [v.name for v in catalog.variants if v.scaffold]
        library = engine.LIBRARY_MODELS.get(rec.architecture.name)
        hint = (f"archadvisor does not generate it for {rec.task}" if library is None
                else engine.library_refusal(rec.architecture.name, library, rec.inputs.target))  # fmt: skip
        raise InputError("--arch", rec.inputs.arch, names, hint=hint)
    if rec.generated is not None and (rec.generated.substitute or "--permissive left out" in rec.generated.why):
        typer.echo(f"note: {rec.generated.why}", err=True)
        rules, catalog = _load(problem["rules"])
        rec = engine.for_generated(rec, rules, catalog)
    if name is None:
        name = scaffolder.project_name(out.name if out is not None else f"{rec.architecture.name}_project")
    out = out if out is not None else Path(name)
    scaffolder.check_out(out)  # before rendering: a folder that cannot hold a project fails first
    files = scaffolder.render_project(rec, name=name)
    if dry_run:
        for a in scaffolder.plan(files, out):
            typer.echo(f"{a.status:>9}  {out / a.path}")
        return
    actions = scaffolder.write_project(files, out, force=force)
    a = rec.architecture
    counts = {s: sum(1 for x in actions if x.status == s) for s in ("create", "identical", "conflict")}
    typer.echo(f"scaffolded {name} ({a.name}, {a.family}) in {out}: {counts['create']} created, "
               f"{counts['conflict']} replaced, {counts['identical']} unchanged")  # fmt: skip
    for w in rec.warnings:
        typer.echo(f"warning: {w}")
    from archadvisor import ultralytics_project as yolo

    if rec.generated is not None and rec.generated.module == yolo.MODULE:  # a project on ultralytics' trainer
        typer.echo(f"licence: {yolo.LICENSE_NOTICE}")
        typer.echo("ultralytics' trainer does not give what archadvisor's core does: " + "; ".join(yolo.NOT_GUARANTEED))
        here = "is installed here" if yolo.installed() else "is not installed here"
        typer.echo(f"{yolo.REQUIREMENT} {here}: the project declares it (pip install -e . installs it)")
        typer.echo(f"next: cd {out} && pip install -e . && python train.py   (see README.md)")
        return
    typer.echo(f"next: cd {out} && pip install -e . && python train.py   (see README.md)")


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
    from archadvisor import report
    from archadvisor.vocab import TASKS

    fmt = _check_format(format, ("table", "json"))
    _, catalog = _load(rules)
    if task is not None and task not in TASKS:
        raise InputError("--task", task, TASKS)
    if family is not None:
        lower = {f.lower(): f for f in catalog.families}
        if family.lower() not in lower:
            raise InputError("--family", family, sorted(catalog.families))
        family = lower[family.lower()]
    rows = report.catalog_rows(catalog, family=family, task=task)
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.console import Console

    report.print_catalog(rows, Console())


@rules_app.command("validate")
def rules_validate(
    directory: Annotated[Path | None, typer.Argument(parser=_rules_path, help="A directory of rule files to check on top of the built-in rules.")] = None,
) -> None:  # fmt: skip
    """Check rule files: YAML, keys, types, operators, variables, architecture names, reachability."""
    from archadvisor import report
    from archadvisor.ruleset import load_rules

    if directory is not None and (not str(directory).strip() or not directory.is_dir()):
        raise InputError("DIR", str(directory), "an existing directory of .yaml rule files")
    typer.echo(report.validate_summary(load_rules([directory] if directory else [])))


@rules_app.command("show")
def rules_show(
    kind: Annotated[str | None, typer.Option("--kind", help="selection, deployment, recipes or tasks.")] = None,
    rules: RulesOpt = None,
) -> None:
    """Print every rule: id, condition and reason."""
    from archadvisor import report

    if kind is not None and kind not in report.RULE_KINDS:
        raise InputError("--kind", kind, report.RULE_KINDS)
    rs, _ = _load(rules)
    sys.stdout.write("\n".join(report.rules_lines(rs, kind)) + "\n")


def _register_optional() -> None:
    """Commands that live in their own modules (they import torch lazily, only when run)."""
    try:
        from archadvisor.measure.cli import compare, profile
    except ImportError:  # pragma: no cover - shipped with the package
        return
    app.command("profile")(profile)
    app.command("compare")(compare)


_register_optional()


def _command_name(info: Any) -> str:
    """The name typer gives a registered command (its function's name, dashed, unless named)."""
    return info.name or info.callback.__name__.lower().replace("_", "-")


def app_for(args: list[str]) -> typer.Typer:
    """The app to run for ``args``: only the command named first, else every command.

    typer turns each registered command's signature into click parameters at every start, ~5 ms for
    all of them (the problem flags alone are 22 options on three commands), before running one.
    `archadvisor recommend ...` builds recommend only; its flags, help, errors and exit codes are
    the same as the whole app's. Anything else (no command, --help, --version, a typo) gets the whole
    app, so the help lists every command and a mistyped one is named with its close match.
    """
    name = args[0] if args else None
    commands = [c for c in app.registered_commands if _command_name(c) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    one = typer.Typer(**_APP_SETTINGS)
    one.registered_callback = app.registered_callback
    one.registered_commands = commands
    one.registered_groups = groups
    return one


def main() -> None:
    app_for(sys.argv[1:])()
