"""The rules engine: ProblemSpec + RuleSet -> Recommendation (typed, frozen; archadvisor.recommendation).

Policy (also in rules/classification.yaml): hard constraints filter first (latency budget on the
target, the target's size limit, GPU memory, input resolution); then every fired rule votes with its
axis weight; the highest score wins, ties broken by ImageNet top-1 then fewer GMACs. The trace lists
every rule considered, whether it fired, and which one decided.
"""

from typing import Any, NamedTuple

from archadvisor import __version__, conditions
from archadvisor import ultralytics_project as yolo
from archadvisor.catalog import UNKNOWN_LICENSE, Catalog, External, Variant
from archadvisor.errors import InputError
from archadvisor.recipe import apply_tables, derive
from archadvisor.recommendation import (
    Alternative,
    Architecture,
    Deployment,
    Expected,
    Generated,
    LicenseInfo,
    Monitor,
    Provenance,
    Recommendation,
    Score,
    TaskSettings,
    TraceEntry,
)
from archadvisor.ruleset import RuleSet
from archadvisor.spec import ProblemSpec
from archadvisor.vocab import COMPUTE, DEFAULT_GPUS, EDGE_TARGETS, PERMISSIVE_KINDS, TARGETS

ENGINE = "archadvisor/engine.py"  # the trace's file for the engine's own steps


class LibraryModel(NamedTuple):
    """A catalog model scaffold generates on the library that implements it: a project of its own (the library's
    trainer, not the core loop) with no ONNX or TorchScript export, so only for targets that serve it from Python;
    on the others the best-ranked owned model is generated in its place."""

    module: str  # generated.module: the library project (archadvisor.resources.LIBRARY_PROJECTS)
    build: str  # the library's class
    library: str
    targets: tuple[str, ...]  # deployment targets that run the project's predict.py (a Python process)


LIBRARY_MODELS = {
    "temporal_fusion_transformer": LibraryModel(
        "pytorch_forecasting", "TemporalFusionTransformer", "pytorch-forecasting", ("cloud-gpu", "cloud-cpu")
    ),
}
NEAREST = 3  # when nothing meets a hard constraint, the closest this many stay: the choice and 2 alternatives


class Selection(NamedTuple):  # a NamedTuple, not a dataclass: cheaper to define at start-up (see recommendation.py)
    """The outcome of choosing an architecture: ranked candidates with their votes and the trace."""

    ranked: list[Any]  # Variant | External, best first
    scores: dict[str, float]
    votes: dict[str, dict[str, float]]  # candidate -> rule id -> vote
    trace: list[TraceEntry]
    warnings: list[str]
    latency: dict[str, Any]  # name -> LatencyEstimate
    excluded: list[tuple[Any, str]]  # (candidate, why), nearest misses last
    decided_by: str | None = None
    unmet: str | None = None  # a hard constraint no candidate met: the ranked ones are its nearest misses

    @property
    def winner(self) -> Any:
        return self.ranked[0]


def uses_small_input(variant: Variant | External, image_size: int | None, rules: RuleSet) -> bool:
    """The variant is built with its small-input stem: it has one and the images are at most the rules'
    small-input size (the bound of the constraint that requires one)."""
    return variant.small_input and image_size is not None and image_size <= rules.small_input_max_px


def weights_used(spec: ProblemSpec, c: Any) -> bool:
    """Pretrained weights are part of what the user runs: allowed, and the model has published weights."""
    if isinstance(c, Variant):
        return spec.pretrained and c.reference_library != "none"
    return (spec.pretrained or c.hosted) and c.license is not None and c.license.weights != "none"


def license_kind(spec: ProblemSpec, c: Any) -> str:
    lic = c.license if c.license is not None else UNKNOWN_LICENSE
    return lic.kind(weights_used=weights_used(spec, c))


def license_info(spec: ProblemSpec, c: Any) -> LicenseInfo:
    lic = c.license if c.license is not None else UNKNOWN_LICENSE
    return LicenseInfo(lic.code, lic.weights if weights_used(spec, c) else "not used", license_kind(spec, c))


PERMISSIVE_RULE = {"id": "license.permissive", "when": {"var": "permissive", "op": "eq", "value": True},
                   "because": "--permissive: only models whose code and used weights are permissively licensed "
                              "(MIT, BSD, Apache-2.0; no AGPL, non-commercial, gated or hosted terms)"}  # fmt: skip


def model_facts(model: Variant | External) -> dict[str, Any]:
    """What a deployment refine row may read of any candidate: task, kind, family, name (rules/deployment.yaml)."""
    if isinstance(model, Variant):
        return {"task": "classification", "kind": model.kind, "family": model.family, "arch": model.name}
    kind = model.arch_kind if model.task == "classification" and model.arch_kind else "external"
    return {"task": model.task, "kind": kind, "family": model.name, "arch": model.name}


def deployment_plan(row: dict[str, Any], model: Variant | External) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The target row's export, runtime, precision and quantize for ``model``, as changed by the row's first
    ``refine`` entry whose condition holds (e.g. static INT8 for CNNs on cloud-cpu), and that entry (or None)."""
    plan = {k: row[k] for k in ("export", "runtime", "precision", "quantize")}
    facts = model_facts(model)
    for refine in row.get("refine", ()):
        if conditions.evaluate(refine["when"], facts):
            return {**plan, **refine["set"]}, refine
    return plan, None


def _estimate(variant: Variant | External, target: str, image_size: int, rules: RuleSet) -> Any:
    """Latency on the target: the device-profile estimate (archadvisor/latency.py, rules/devices.yaml), in the
    precision and quantization of this model's plan; a library classifier (an external entry) is estimated from
    its published compute and kind."""
    from archadvisor.latency import estimate_latency_ms

    devices = {k: v for k, v in rules.devices.items() if k != "_file"} or None
    plan, _ = deployment_plan(rules.targets[target], variant)
    est = estimate_latency_ms(
        variant,
        target,
        image_size,
        devices=devices,
        small_input=uses_small_input(variant, image_size, rules),
        precision=plan["precision"],
        quantize=plan["quantize"],
        # the cloud-cpu power law was fitted on zoo models with the catalog's own measurements: a library model
        # takes the device profile's roofline (fitted on the catalog's 224 px CPU figures, kind factors included)
        zoo=not isinstance(variant, External),
    )
    if isinstance(variant, External):
        return est._replace(
            basis=est.basis + f"; {variant.gmacs:g} GMACs at {variant.input_size} px ({variant.source})"
        )
    return est


def _library_classifiers(spec: ProblemSpec, catalog: Catalog) -> list[External]:
    """The task's library models that can compete with the zoo: external entries of the task with published compute
    (rules/catalog.yaml external: MobileNetV4, ConvNeXt V2, DINOv2 ...)."""
    return [e for e in catalog.external if e.task == spec.task and e.gmacs is not None and e.input_size]


def _vote(rule: dict, weight: float, credit: float, pool: list[Any], votes: dict[str, dict[str, float]],
          family_of: dict[str, str]) -> None:  # fmt: skip
    """A fired rule votes for its preferred names (earlier = stronger) and, with ``credit``, for the
    other members of their families (so a family still counts when its named size is filtered out)."""
    in_pool = {c.name for c in pool}

    def add(name: str, strength: float) -> None:
        mine = votes.setdefault(name, {})
        mine[rule["id"]] = max(mine.get(rule["id"], 0.0), strength)

    for i, name in enumerate(rule["prefer"]):
        strength = weight * (1 - 0.1 * i)
        if name in in_pool:
            add(name, strength)
        family = family_of.get(name)
        if credit and family:
            for c in pool:
                if isinstance(c, Variant) and c.family == family and c.name != name:
                    add(c.name, strength * credit)


def select_catalog(
    spec: ProblemSpec, rules: RuleSet, catalog: Catalog, *, measured: dict[str, float] | None = None
) -> Selection:
    """Choose among zoo variants and the task's library models (classification): the same constraints and votes
    for both; the trace says which candidates are the zoo's (generated) and which come from a library."""
    family_of = {v.name: v.family for v in catalog.variants}
    sel_rules = rules.selections[spec.task]
    env = spec.env()
    trace: list[TraceEntry] = []
    warnings: list[str] = []
    library = _library_classifiers(spec, catalog)
    pool: list[Any] = [*catalog.variants, *library]
    if library:
        trace.append(TraceEntry(
            "catalog.pool", rules.files.get(library[0].name, "rules/catalog.yaml"), True,
            f"candidates: {len(catalog.variants)} zoo models (rules/catalog.yaml variants; archadvisor generates them) "
            f"and {len(library)} library models ({', '.join(e.name for e in library)}: rules/catalog.yaml external, "
            "advice only; scaffold generates the best-ranked zoo model in their place)", "table"))  # fmt: skip

    excluded: list[tuple[Any, str]] = []
    unmet: list[tuple[str, Any]] = []  # constraints nothing met: (rule id, closeness key)

    def keep(survivors: list[Any], before: list[Any], rule_id: str, because: str, fallback_key) -> list[Any]:
        removed = len(before) - len(survivors)
        excluded.extend(
            (v, f"excluded by {rule_id}: {because}")
            for v in sorted(before, key=fallback_key, reverse=True)
            if v not in survivors
        )
        if survivors:
            trace.append(TraceEntry(rule_id, rules.files.get(rule_id, ENGINE), True,
                                    f"{because} (excludes {removed} of {len(before)})", "constraint"))  # fmt: skip
            return survivors
        closest = sorted(before, key=fallback_key)[:NEAREST]
        unmet.append((rule_id, fallback_key))
        warnings.append(f"no architecture satisfies {rule_id} ({because}); keeping the closest, {closest[0].name}")
        trace.append(TraceEntry(rule_id, rules.files.get(rule_id, ENGINE), True,
                                f"{because}: nothing meets it, kept the {len(closest)} closest "
                                f"({', '.join(v.name for v in closest)})", "constraint"))  # fmt: skip
        return closest

    # 1. hard constraints, in the documented order: input resolution, size limits (target, compute,
    #    memory), then the latency budget
    for c in sel_rules.get("constraints", []):
        fired = conditions.evaluate(c["when"], env)
        if not fired:
            trace.append(
                TraceEntry(c["id"], rules.files[c["id"]], False, conditions.describe(c["when"], env), "constraint")
            )
            continue
        before = pool
        if c.get("require_small_input"):
            pool = [v for v in pool if v.small_input]
        if "max_params_m" in c:
            pool = [v for v in pool if v.params_m <= c["max_params_m"]]
        if c.get("exclude_kinds"):
            pool = [v for v in pool if v.kind not in c["exclude_kinds"]]
        if c.get("exclude_families"):
            pool = [v for v in pool if _family(v) not in c["exclude_families"]]
        pool = keep(pool, before, c["id"], c["because"], lambda v: v.params)
    if spec.permissive:
        before = pool
        pool = [v for v in pool if license_kind(spec, v) in PERMISSIVE_KINDS]
        pool = keep(pool, before, PERMISSIVE_RULE["id"], PERMISSIVE_RULE["because"], lambda v: v.params)
    target_row = rules.targets[spec.target]
    before = pool
    pool = [v for v in pool if v.params_m <= target_row["max_params_m"]]
    pool = keep(
        pool,
        before,
        f"{target_row['id']}.size",
        f"{spec.target}: models up to {target_row['max_params_m']}M parameters",
        lambda v: v.params,
    )

    if measured:
        # --measure: only what was measured here competes, so an estimate never outranks a measurement
        before = pool
        pool = [v for v in pool if v.name in measured] or pool
        trace.append(TraceEntry("measure.pool", ENGINE, True, f"--measure: ranking the {len(pool)} candidates measured on "
                                f"this machine (of {len(before)} that meet the other constraints)", "constraint"))  # fmt: skip
    latency: dict[str, Any] = {}
    for v in pool:
        if measured and v.name in measured:
            latency[v.name] = measured[v.name]
        else:
            latency[v.name] = _estimate(v, spec.target, spec.image_size, rules)
    if spec.latency_ms is not None:
        before = pool
        pool = [v for v in pool if latency[v.name].ms <= spec.latency_ms]
        how = "measured here" if measured else "estimated"
        pool = keep(pool, before, "constraint.latency", f"latency <= {spec.latency_ms:g} ms on {spec.target} ({how})",
                    lambda v: latency[v.name].ms)  # fmt: skip

    # 2. votes
    votes: dict[str, dict[str, float]] = {}
    axes = sel_rules["axes"]
    credit = float(sel_rules.get("family_credit", 0.0))
    fired_rules = []
    for r in sel_rules["rules"]:
        fired = conditions.evaluate(r["when"], env)
        trace.append(TraceEntry(r["id"], rules.files[r["id"]], fired, r["because"] + f" [{conditions.describe(r['when'], env)}]",
                                "vote", axis=r["axis"]))  # fmt: skip
        if fired:
            fired_rules.append(r)
            _vote(r, axes[r["axis"]], credit, pool, votes, family_of)
    if "target" in axes:
        trow = {"id": target_row["id"], "prefer": target_row["prefer"]}
        _vote(trow, axes["target"], credit, pool, votes, family_of)
        trace.append(TraceEntry(target_row["id"], rules.files[target_row["id"]], True,
                                f"deployment matrix: {target_row['because']}", "vote", axis="target"))  # fmt: skip

    scores = {v.name: sum(votes.get(v.name, {}).values()) for v in pool}
    ranked = sorted(pool, key=lambda v: (-round(scores[v.name], 6), -(v.imagenet_top1 or 0.0), v.gmacs))
    if unmet:  # nothing met a hard constraint: the closest to meeting it first, the votes only break ties
        rule_id, closeness = unmet[-1]
        ranked = sorted(ranked, key=closeness)
    selection = Selection(ranked=ranked, scores=scores, votes=votes, trace=trace, warnings=warnings, latency=latency,
                          excluded=[(v, why) for v, why in excluded if v not in ranked],
                          unmet=unmet[-1][0] if unmet else None)  # fmt: skip
    return selection._replace(decided_by=unmet[-1][0] if unmet else _decider(selection))


def _decider(sel: Selection) -> str | None:
    """The rule whose vote separated the winner from the runner-up the most."""
    if not sel.ranked:
        return None
    win = sel.votes.get(sel.ranked[0].name, {})
    if len(sel.ranked) == 1:
        return max(win, key=win.get) if win else "constraints (single survivor)"
    run = sel.votes.get(sel.ranked[1].name, {})
    margins = {rid: win.get(rid, 0) - run.get(rid, 0) for rid in set(win) | set(run)}
    if not margins or max(margins.values()) <= 0:
        return "tie-break: ImageNet top-1, then fewer GMACs"
    return max(margins, key=margins.get)


def _estimate_external(e: External, spec: ProblemSpec, rules: RuleSet) -> Any:
    """A latency estimate for a model outside the zoo whose compute is published (None otherwise)."""
    if e.gmacs is None or spec.image_size is None:
        return None
    from archadvisor.latency import estimate_latency_ms

    devices = {k: v for k, v in rules.devices.items() if k != "_file"} or None
    plan, _ = deployment_plan(rules.targets[spec.target], e)
    est = estimate_latency_ms(e, spec.target, spec.image_size, devices=devices, zoo=False,
                              precision=plan["precision"], quantize=plan["quantize"])  # fmt: skip
    return est._replace(basis=est.basis + f"; {e.gmacs:g} GMACs at {e.input_size} px from the publisher ({e.source})")


def _keep_external(c: dict[str, Any], e: External) -> bool:
    """Does external model ``e`` survive constraint ``c``? An unknown size (an architecture sized to the data)
    passes a size limit; a hosted API passes only where hosted APIs are allowed."""
    if c.get("exclude_hosted") and e.hosted:
        return False
    if e.name in c.get("exclude_names", ()):
        return False
    return e.params_m is None or e.params_m <= c.get("max_params_m", float("inf"))


def select_tree(spec: ProblemSpec, rules: RuleSet, catalog: Catalog) -> Selection:
    """Choose among a task's external models with its tree: hard constraints first (deployment target,
    latency budget, compute, data), then the fired rules vote with their axis weights; the selection table's
    best choices break ties."""
    sel_rules = rules.selections[spec.task]
    env = spec.env()
    pool = [e for e in catalog.external if e.task == spec.task]
    votes: dict[str, dict[str, float]] = {}
    trace: list[TraceEntry] = []
    warnings: list[str] = []
    excluded: list[tuple[Any, str]] = []
    # the deployment matrix's size limits are for image classifiers; each task's tree sets its own. What holds
    # for every task: a hosted API cannot be deployed on a device
    on_device = {"id": f"{rules.targets[spec.target]['id']}.hosted", "when": {},
                 "because": f"{spec.target}: the model runs on the device, not behind a hosted API",
                 "exclude_hosted": spec.target not in ("cloud-gpu", "cloud-cpu")}  # fmt: skip
    for c in [*sel_rules.get("constraints", []), on_device, PERMISSIVE_RULE]:
        if c["when"] and not conditions.evaluate(c["when"], env):
            trace.append(
                TraceEntry(
                    c["id"], rules.files.get(c["id"], ENGINE), False, conditions.describe(c["when"], env), "constraint"
                )
            )
            continue
        survivors = [e for e in pool if _keep_external(c, e)]
        if c is PERMISSIVE_RULE:
            survivors = [e for e in pool if license_kind(spec, e) in PERMISSIVE_KINDS]
        excluded.extend((e, f"excluded by {c['id']}: {c['because']}") for e in pool if e not in survivors)
        where = rules.files.get(c["id"], ENGINE)
        if survivors:
            trace.append(TraceEntry(c["id"], where, True, f"{c['because']} (excludes {len(pool) - len(survivors)} of {len(pool)})", "constraint"))  # fmt: skip
            pool = survivors
        else:
            warnings.append(f"no model satisfies {c['id']} ({c['because']}); keeping the candidates as they were")
            trace.append(TraceEntry(c["id"], where, True, f"{c['because']}: nothing meets it, constraint not applied", "constraint"))  # fmt: skip
    latency = {e.name: est for e in pool if (est := _estimate_external(e, spec, rules)) is not None}
    if spec.latency_ms is not None and latency:
        # only a model with an estimate can be shown to meet the budget; one without a published compute figure
        # is not kept in its place (that would prefer the unknown to the measured-slow)
        because = f"latency <= {spec.latency_ms:g} ms on {spec.target} (estimated from published compute)"
        survivors = [e for e in pool if e.name in latency and latency[e.name].ms <= spec.latency_ms]
        excluded.extend((e, f"excluded by constraint.latency: {because}") for e in pool if e not in survivors)
        if survivors:
            trace.append(TraceEntry("constraint.latency", ENGINE, True, f"{because} (excludes {len(pool) - len(survivors)} of {len(pool)})", "constraint"))  # fmt: skip
            pool = survivors
        else:
            pool = sorted((e for e in pool if e.name in latency), key=lambda e: latency[e.name].ms)[:NEAREST]
            warnings.append(f"no model satisfies constraint.latency ({because}); keeping the closest, {pool[0].name}")
            trace.append(TraceEntry("constraint.latency", ENGINE, True, f"{because}: nothing meets it, kept the {len(pool)} closest", "constraint"))  # fmt: skip
    for r in sel_rules["rules"]:
        fired = conditions.evaluate(r["when"], env)
        trace.append(TraceEntry(r["id"], rules.files[r["id"]], fired, r["because"] + f" [{conditions.describe(r['when'], env)}]",
                                "vote", axis=r["axis"]))  # fmt: skip
        if fired:
            _vote(r, sel_rules["axes"][r["axis"]], 0.0, pool, votes, {})
    task_row = rules.tasks[spec.task]
    in_pool = {e.name for e in pool}
    for i, name in enumerate(task_row["best"]):  # the selection table breaks ties
        if name in in_pool:
            votes.setdefault(name, {})[f"task.{spec.task}"] = 0.5 * (1 - 0.1 * i)
    scores = {e.name: sum(votes.get(e.name, {}).values()) for e in pool}
    ranked = sorted(pool, key=lambda e: (-round(scores[e.name], 6), e.params_m or 0))
    sel = Selection(ranked=ranked, scores=scores, votes=votes, trace=trace, warnings=warnings, latency=latency,
                    excluded=[(e, why) for e, why in excluded if e not in ranked])  # fmt: skip
    return sel._replace(decided_by=_decider(sel))


def select_table(spec: ProblemSpec, rules: RuleSet, catalog: Catalog) -> Selection:
    """The selection table alone: best choice, or the mobile choice on edge targets / tight budgets."""
    row = rules.tasks[spec.task]
    edge = spec.target in EDGE_TARGETS or (spec.latency_ms is not None and spec.latency_ms < 30)
    order = (
        (row["mobile"] + row["best"] + row["alternative"])
        if edge and row["mobile"]
        else (row["best"] + row["alternative"] + row["mobile"])
    )
    seen: list[External] = []
    for name in order:
        e = catalog.external_model(name)
        if e is not None and e not in seen:
            seen.append(e)
    column = "Mobile/Edge" if edge and row["mobile"] else "2024 Best Choice"
    because = f"selection table, {spec.task}: {column} ({row['rationale']})"
    trace = [TraceEntry(f"task.{spec.task}", rules.files[f"task.{spec.task}"], True, because, "table")]
    votes = {seen[0].name: {f"task.{spec.task}": 1.0}} if seen else {}
    return Selection(
        ranked=seen,
        scores={e.name: 0.0 for e in seen},
        votes=votes,
        trace=trace,
        warnings=[],
        latency={},
        excluded=[],
        decided_by=f"task.{spec.task}",
    )


def select(spec: ProblemSpec, rules: RuleSet, catalog: Catalog, *, measured: dict[str, Any] | None = None) -> Selection:
    selector = rules.tasks[spec.task]["selector"]
    if selector == "catalog" and spec.task in rules.selections:
        return select_catalog(spec, rules, catalog, measured=measured)
    if selector == "tree" and spec.task in rules.selections:
        return select_tree(spec, rules, catalog)
    return select_table(spec, rules, catalog)


# ---------------------------------------------------------------------------------------------------
def _why(sel: Selection, name: str, rules_by_id: dict[str, str], table: dict[str, Any] | None = None) -> str:
    votes = sel.votes.get(name, {})
    if not votes and table is not None:  # external models: say which column of the selection table lists it
        for column, label in (("best", "2024 Best Choice"), ("alternative", "Alternative"), ("mobile", "Mobile/Edge")):
            if name in table[column]:
                return f"selection table, {label} column: {table['rationale']}"
        return "listed for this task in the catalog"
    if not votes:
        return "meets every hard constraint; ranked by ImageNet top-1 and compute"
    best = sorted(votes.items(), key=lambda kv: -kv[1])
    return "; ".join(rules_by_id.get(rid, rid) for rid, _ in best[:3])


def _model_env(spec: ProblemSpec, chosen: Any, small_input: bool) -> dict[str, Any]:
    env = spec.env()
    if isinstance(chosen, Variant):
        env.update(arch=chosen.name, family=chosen.family, kind=chosen.kind, params_m=chosen.params_m,
                   gmacs=chosen.gmacs, depth=chosen.depth, small_input=small_input,
                   fine_tune=spec.pretrained and chosen.reference_library != "none")  # fmt: skip
    else:
        # unknown sizes stay unknown (hosted models): size-based table rows simply do not match; a model without
        # published weights (the licence says weights: none) trains from scratch whatever --pretrained allows
        has_weights = chosen.license is None or chosen.license.weights != "none"
        env.update(arch=chosen.name, family=chosen.name, kind="external", params_m=chosen.params_m,
                   gmacs=None, depth="deep", small_input=False, fine_tune=spec.pretrained and has_weights)  # fmt: skip
        if chosen.task == "classification" and chosen.arch_kind:
            # a library classifier (timm) trains like a zoo model of its kind: the classification tables apply
            env.update(kind=chosen.arch_kind, gmacs=chosen.gmacs, depth="medium")
    return env


def _monitor(task_row: dict[str, Any]) -> Monitor:
    return Monitor(task_row.get("monitor") or "val_loss", task_row.get("monitor_mode") or "min")


def recommend(spec: ProblemSpec, rules: RuleSet, catalog: Catalog, *, measured: dict[str, Any] | None = None,
              measure_note: str | None = None) -> Recommendation:  # fmt: skip
    """The full Recommendation for ``spec``: architecture, alternatives, recipe, deployment, trace."""
    sel = select(spec, rules, catalog, measured=measured)
    # the automatic choice's fallback warnings do not concern a model the user forced
    warnings = list(spec.notes) + (sel.warnings if spec.arch is None else [])
    reasons = _reasons(rules)
    if spec.arch is not None:
        chosen = _forced(spec, rules, catalog, sel, warnings)
    else:
        if not sel.ranked:
            raise InputError("--task", spec.task, "a task with at least one model in the rules")
        chosen = sel.winner
    is_variant = isinstance(chosen, Variant)
    small_input = is_variant and uses_small_input(chosen, spec.image_size, rules)
    small_images = spec.image_size is not None and spec.image_size <= rules.small_input_max_px
    env = _model_env(spec, chosen, small_input)
    task_row = rules.tasks[spec.task]
    recipe = apply_tables(rules, env)
    derived = derive(recipe, env, image_size=spec.image_size, small_input=small_input, small_images=small_images,
                     hflip=spec.hflip, monitor=_monitor(task_row))  # fmt: skip
    arch = _architecture(spec, chosen, sel, reasons, small_input, task_row)
    _license_warning(spec, chosen, sel, warnings)
    deployment = _deployment(spec, rules, chosen, sel)
    _check_warnings(spec, chosen, env, deployment, warnings, task_row)

    generated = _generated(spec, chosen, sel)
    trace = sel.trace + [TraceEntry(t["rule"], t["file"], True, t["because"], "recipe") for t in recipe.trace]
    if generated is not None and generated.substitute:
        trace.append(TraceEntry("scaffold.substitute", ENGINE, True, generated.why, "scaffold"))
    elif generated is not None and generated.module == yolo.MODULE:
        trace.append(TraceEntry("scaffold.ultralytics", ENGINE, True, generated.why, "scaffold"))
    target_row = rules.targets[spec.target]
    refine = deployment_plan(target_row, chosen)[1]  # the refine row behind the plan, if one fired
    if refine is not None:
        trace.append(TraceEntry(refine["id"], rules.files[refine["id"]], True, refine["because"], "deployment"))
    if measure_note:
        trace.append(TraceEntry("measure", ENGINE, True, measure_note, "measure"))
    decided = sel.decided_by if spec.arch is None else "--arch"
    trace = [t._replace(decided=t.rule == decided) for t in trace]

    provenance = dict(derived.provenance)
    if recipe.rule("max_length") is not None:
        provenance["task_settings.max_length"] = recipe.rule("max_length")
    if recipe.rule("loss") is not None:
        provenance["task_settings.loss"] = recipe.rule("loss")
    provenance["architecture"] = (
        Provenance("--arch", None, "forced on the command line")
        if spec.arch is not None
        else Provenance(decided or "constraints", rules.files.get(decided or ""), reasons.get(decided or ""))
    )
    if small_input:
        stem_rule = next(c for c in rules.selections["classification"]["constraints"] if c.get("require_small_input"))
        provenance["training.small_input"] = Provenance(
            stem_rule["id"], rules.files[stem_rule["id"]], stem_rule["because"]
        )
    for key in ("deployment", "deployment.runtime", "deployment.precision", "deployment.quantize", "deployment.export"):
        field = key.partition(".")[2]
        row = refine if refine is not None and field in refine["set"] else target_row
        provenance[key] = Provenance(row["id"], rules.files[row["id"]], row["because"])
    image_task = spec.image_size is not None
    return Recommendation(
        task=spec.task,
        inputs=spec,
        architecture=arch,
        alternatives=tuple(_alternatives(spec, sel, chosen, reasons, task_row)),
        training=derived.training,
        augmentation=derived.augmentation if image_task or derived.augmentation.ops else None,
        deployment=deployment,
        expected=_expected(spec, chosen, deployment, task_row),
        task_settings=TaskSettings(
            loss=recipe.fields.get("loss", task_row.get("loss")),
            metrics=tuple(task_row.get("metrics", ())),
            max_length=recipe.fields.get("max_length"),
        ),
        provenance=provenance,
        decided_by=decided,
        scores=tuple(scores_table(sel)),
        trace=tuple(trace),
        warnings=tuple(warnings),
        tool_version=__version__,
        rules_digest=rules.digest,
        generated=generated,
    )


def for_generated(rec: Recommendation, rules: RuleSet, catalog: Catalog) -> Recommendation:
    """The recommendation re-derived for the substitute scaffold generates (``rec.generated``), so the project's
    recipe is that model's (Faster R-CNN's SGD 0.02 and multistep schedule, not YOLO's mosaic pipeline); the
    substitution and its reason stay in ``generated``, the provenance and the warnings: never a silent swap."""
    if rec.generated is None or not rec.generated.substitute:
        return rec
    sub = recommend(rec.inputs._replace(arch=rec.generated.name), rules, catalog)
    provenance = {**sub.provenance, "architecture": Provenance("scaffold.substitute", None, rec.generated.why)}
    note = f"scaffold generates {rec.generated.name} in place of {rec.architecture.name}: {rec.generated.why}"
    return sub._replace(generated=rec.generated, provenance=provenance, warnings=(*sub.warnings, note))


def _generated(spec: ProblemSpec, chosen: Any, sel: Selection) -> Generated | None:
    """The model `scaffold` generates: the choice when archadvisor has its model file, else the best-ranked
    candidate that has one (never for a forced --arch: that one is generated or refused). A YOLO choice with an
    ultralytics model YAML is generated as an ultralytics project (AGPL-3.0, said in ``why``); under --permissive
    (a forced YOLO) the best-ranked permissive model archadvisor generates replaces it, said too."""
    if isinstance(chosen, External) and chosen.ultralytics and spec.task in yolo.TASKS:
        if not spec.permissive:
            why = (f"the recommended model, trained by the ultralytics package ({yolo.REQUIREMENT}, AGPL-3.0) from "
                   f"its model YAML {chosen.ultralytics}; --permissive generates a permissively licensed model")  # fmt: skip
            return Generated(chosen.name, yolo.MODULE, chosen.ultralytics, False, why)
        for rank, c in enumerate(sel.ranked, 1):
            if isinstance(c, External) and c.generatable:
                why = (f"{chosen.name} runs on ultralytics (AGPL-3.0) and --permissive asks for permissive licences; "
                       f"{c.name} is the best-ranked permissive model archadvisor generates (rank {rank})")  # fmt: skip
                return Generated(c.name, c.module, c.build, True, why)
        return None
    if isinstance(chosen, Variant):
        return (
            Generated(chosen.name, chosen.module, chosen.name, False, "the recommended model")
            if chosen.scaffold
            else None
        )
    # --permissive left the ultralytics models out of the ranking: say so where one would have been generated
    left_out = [c.name for c, because in sel.excluded if getattr(c, "ultralytics", None) and
                because.startswith(f"excluded by {PERMISSIVE_RULE['id']}")]  # fmt: skip
    permissive = (f"; --permissive left out the ultralytics YOLO models ({', '.join(left_out)}: AGPL-3.0)"
                  if left_out and spec.task in yolo.TASKS else "")  # fmt: skip
    if chosen.generatable:
        return Generated(chosen.name, chosen.module, chosen.build, False, "the recommended model" + permissive)
    library = LIBRARY_MODELS.get(chosen.name)
    if library is not None and spec.target in library.targets:
        return Generated(chosen.name, library.module, library.build, False,
                         f"the recommended model, generated on {library.library} (its own trainer; no ONNX or "
                         "TorchScript export: served from Python by predict.py)")  # fmt: skip
    if spec.arch is not None:
        return None
    reason = (f"{chosen.name} is not generated by archadvisor (get it from {chosen.provider})" if library is None
              else library_refusal(chosen.name, library, spec.target))  # fmt: skip
    for rank, c in enumerate(sel.ranked, 1):
        if c.scaffold if isinstance(c, Variant) else c.generatable:
            why = (f"{reason}; {c.name} is the best-ranked candidate it generates (rank {rank}, score "
                   f"{sel.scores.get(c.name, 0):.2f} vs {sel.scores.get(chosen.name, 0):.2f}){permissive}")  # fmt: skip
            if isinstance(c, Variant):  # a zoo model: its model file and variant name
                return Generated(c.name, c.module, c.name, True, why)
            return Generated(c.name, c.module, c.build, True, why)
    return None


def _generatable(chosen: External, spec: ProblemSpec) -> bool:
    """archadvisor generates a project for this external model: its model file, or an ultralytics project."""
    return chosen.generatable or (chosen.ultralytics is not None and spec.task in yolo.TASKS and not spec.permissive)


def library_refusal(name: str, library: LibraryModel, target: str) -> str:
    return (f"{name} is generated on {library.library} for the {' and '.join(library.targets)} targets only: it has "
            f"no ONNX or TorchScript export, which the {target} target's runtime needs")  # fmt: skip


def _license_warning(spec: ProblemSpec, chosen: Any, sel: Selection, warnings: list[str]) -> None:
    """Copyleft, non-commercial, gated or hosted terms on the choice: say so, and name the closest permissive
    alternative among the ranked candidates."""
    kind = license_kind(spec, chosen)
    if kind in PERMISSIVE_KINDS:
        return
    info = license_info(spec, chosen)
    terms = info.code if info.weights in ("not used", info.code) else f"code {info.code}, weights {info.weights}"
    permissive = next(
        (c.name for c in sel.ranked if c is not chosen and license_kind(spec, c) in PERMISSIVE_KINDS), None
    )
    alt = f"; the closest permissive alternative: {permissive} (or pass --permissive)" if permissive else ""
    warnings.append(f"{chosen.name} is {kind} ({terms}){alt}")


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _architecture(spec: ProblemSpec, chosen: Any, sel: Selection, reasons: dict[str, str], small_input: bool,
                  task_row: dict[str, Any]) -> Architecture:  # fmt: skip
    why = _why(sel, chosen.name, reasons, None if isinstance(chosen, Variant) else task_row)
    if spec.arch is not None:
        why = "forced with --arch"
    if not isinstance(chosen, Variant):
        return Architecture(name=chosen.name, family=chosen.name, kind="external", why=f"{why}; get it from {chosen.provider}",
                            params_m=chosen.params_m, metric=chosen.metric, top1_source=chosen.source,
                            imagenet_top1=chosen.imagenet_top1, gmacs=chosen.gmacs,
                            top1_image_size=chosen.input_size if chosen.imagenet_top1 else None,
                            reference=chosen.provider, paper=chosen.source, license=license_info(spec, chosen),
                            scaffold=_generatable(chosen, spec) and bool(task_row["scaffold"]))  # fmt: skip
    if small_input:
        why += f"; {spec.image_size} px images: small-input stem (3x3 stride 1, total stride 8)"
    return Architecture(
        name=chosen.name, family=chosen.family, kind=chosen.kind, why=why, module=chosen.module,
        params_m=round(chosen.params_m, 2), params_m_for_classes=None if spec.classes is None else round(chosen.params_m_for(spec.classes), 2),
        gmacs=chosen.gmacs, gmacs_at_input=round(chosen.gmacs_at(spec.image_size, small_input), 4),
        imagenet_top1=chosen.imagenet_top1, top1_image_size=chosen.input_size if chosen.imagenet_top1 else None,
        top1_source=chosen.top1_source, reference=chosen.reference, paper=chosen.paper, structure=chosen.structure,
        small_input=small_input, scaffold=chosen.scaffold and bool(task_row["scaffold"]),
        license=license_info(spec, chosen),
    )  # fmt: skip


def _reasons(rules: RuleSet) -> dict[str, str]:
    out = {}
    for sel in rules.selections.values():
        for r in sel["rules"]:
            out[r["id"]] = r["because"]
        for c in sel.get("constraints", []):
            out[c["id"]] = c["because"]
    for t in rules.targets.values():
        out[t["id"]] = "deployment matrix: " + t["because"]
    for task, t in rules.tasks.items():
        out[f"task.{task}"] = f"selection table: {t['rationale']}"
    return out


def _forced(spec: ProblemSpec, rules: RuleSet, catalog: Catalog, sel: Selection, warnings: list[str]) -> Any:
    assert spec.arch is not None
    if rules.tasks[spec.task]["selector"] == "catalog":
        library = catalog.external_model(spec.arch)
        if catalog.get(spec.arch) is None and library is not None and library.task == spec.task:
            if library not in sel.ranked:
                warnings.append(f"--arch {library.name} breaks a hard constraint: "
                                + "; ".join(why for c, why in sel.excluded if c is library)[:300])  # fmt: skip
            return library
        if catalog.get(spec.arch) is None:
            names = catalog.names() + sorted(catalog.aliases) + [e.name for e in _library_classifiers(spec, catalog)]
            raise InputError("--arch", spec.arch, names)
        chosen = catalog.resolve(spec.arch)
        if chosen not in sel.ranked:
            excluded = [t.because for t in sel.trace if t.kind == "constraint" and t.fired]
            problems = []
            if spec.image_size is not None and spec.image_size <= rules.small_input_max_px and not chosen.small_input:
                problems.append(f"{spec.image_size} px images need a small-input stem, which {chosen.family} lacks")
            limit = rules.targets[spec.target]["max_params_m"]
            if chosen.params_m > limit:
                problems.append(f"{chosen.params_m:.1f}M parameters exceed the {limit}M limit for {spec.target}")
            if spec.latency_ms is not None:
                est = _estimate(chosen, spec.target, spec.image_size, rules)
                sel.latency[chosen.name] = est
                if est.ms > spec.latency_ms:
                    problems.append(
                        f"estimated {est.ms:.0f} ms on {spec.target} exceeds --latency-ms {spec.latency_ms:g}"
                    )
            detail = "; ".join(problems) if problems else "; ".join(excluded[:2])
            warnings.append(f"--arch {chosen.name} breaks a hard constraint: {detail}")
        return chosen
    names = [e.name for e in catalog.external if e.task == spec.task]
    names += sorted(a for a, target in catalog.library_aliases.items() if target in names)
    ext = catalog.external_model(spec.arch)
    if ext is None or ext.task != spec.task:
        raise InputError("--arch", spec.arch, names)
    return ext


def _family(c: Any) -> str:
    return c.family if isinstance(c, Variant) else c.name


def _alternatives(
    spec: ProblemSpec, sel: Selection, chosen: Any, reasons: dict[str, str], table: dict[str, Any]
) -> list[Alternative]:
    """Up to 3, ranked; different families first so the user sees real alternatives. Each says what it
    has for it (its own strongest votes) and how far behind the choice it scored."""
    rest = [c for c in sel.ranked if c.name != chosen.name]
    other_fam = [c for c in rest if _family(c) != _family(chosen)]
    picked: list[Any] = []
    for c in other_fam + rest:
        if c not in picked:
            picked.append(c)
        if len(picked) == 3:
            break
    # a forced --arch outside the survivors: the survivors are its alternatives; nothing the constraints
    # excluded is offered as an alternative (it would break the same constraint)
    misses: dict[str, str] = {}
    chosen_votes = sel.votes.get(chosen.name, {})
    out = []
    for c in picked:
        if c not in sel.ranked:
            why = misses[c.name]
        elif sel.unmet is not None:
            est = sel.latency.get(c.name)
            why = f"also misses {sel.unmet}" + (f" ({est.ms:.1f} ms)" if est is not None else "") + "; the next closest"
        else:
            own = {rid: v for rid, v in sel.votes.get(c.name, {}).items() if v > chosen_votes.get(rid, 0.0)}
            if own:  # the rules that favour it over the choice
                why = "; ".join(reasons.get(rid, rid) for rid, _ in sorted(own.items(), key=lambda kv: -kv[1])[:2])
            else:
                why = _why(sel, c.name, reasons, None if isinstance(c, Variant) else table)
            if sel.scores.get(chosen.name) is not None and isinstance(c, Variant):
                why += f" (score {sel.scores.get(c.name, 0.0):.2f} vs {sel.scores[chosen.name]:.2f} for {chosen.name})"
        est = sel.latency.get(c.name)
        if isinstance(c, Variant):
            out.append(Alternative(name=c.name, family=c.family, why=why, meets_constraints=c in sel.ranked and sel.unmet is None,
                                   score=round(sel.scores.get(c.name, 0.0), 3), params_m=round(c.params_m, 2),
                                   gmacs=c.gmacs, imagenet_top1=c.imagenet_top1,
                                   expected_latency_ms=None if est is None else round(est.ms, 2),
                                   license=license_info(spec, c)))  # fmt: skip
        else:
            out.append(Alternative(name=c.name, family=c.name, why=why, meets_constraints=c in sel.ranked,
                                   score=round(sel.scores.get(c.name, 0.0), 3), params_m=c.params_m,
                                   expected_latency_ms=None if est is None else round(est.ms, 2),
                                   metric=c.metric, provider=c.provider, license=license_info(spec, c)))  # fmt: skip
    return out


def _deployment(spec: ProblemSpec, rules: RuleSet, chosen: Any, sel: Selection) -> Deployment:
    row = rules.targets[spec.target]
    plan, refine = deployment_plan(row, chosen)
    common = dict(target=spec.target, **plan, rule=row["id"] if refine is None else refine["id"])
    if isinstance(chosen, Variant):
        est = sel.latency.get(chosen.name) or _estimate(chosen, spec.target, spec.image_size, rules)
        return Deployment(**common, expected_latency_ms=round(est.ms, 2),
                          latency_range_ms=(round(est.low_ms, 2), round(est.high_ms, 2)), latency_basis=est.basis,
                          latency_source=est.source, latency_measured=bool(getattr(est, "measured", False)))  # fmt: skip
    est = sel.latency.get(chosen.name)
    if est is not None:
        return Deployment(**common, expected_latency_ms=round(est.ms, 2),
                          latency_range_ms=(round(est.low_ms, 2), round(est.high_ms, 2)), latency_basis=est.basis,
                          latency_source=est.source)  # fmt: skip
    return Deployment(**common, latency_basis="not estimated: no published compute figure; see the publisher's benchmark",
                      latency_source=chosen.source)  # fmt: skip


def _expected(spec: ProblemSpec, chosen: Any, dep: Deployment, task_row: dict) -> Expected:
    if isinstance(chosen, Variant):
        top1 = (
            f"{chosen.imagenet_top1:.1f}% ImageNet top-1 at {chosen.input_size} px ({chosen.top1_source})"
            if chosen.imagenet_top1
            else "no ImageNet figure (baseline model)"
        )
        return Expected(
            benchmark=top1,
            latency=f"{dep.expected_latency_ms} ms per image on {spec.target} ({dep.latency_basis})",
            note="accuracy on your data depends on the data; ImageNet top-1 ranks architectures, it does not predict your score",
        )
    scaffold = (
        "archadvisor can scaffold this task" if task_row["scaffold"] else "archadvisor does not scaffold this task yet"
    )
    return Expected(benchmark=f"{chosen.metric} ({chosen.source})", latency=dep.latency_basis,
                    note=f"{task_row['rationale']}; {scaffold}")  # fmt: skip


def _check_warnings(spec: ProblemSpec, chosen: Any, env: dict[str, Any], dep: Deployment, warnings: list[str],
                    task_row: dict[str, Any]) -> None:  # fmt: skip
    params_m = env["params_m"]
    examples = "images" if spec.image_size is not None else "examples"
    if (
        params_m is not None
        and params_m >= 100
        and spec.images < 10_000
        and not (spec.pretrained and not isinstance(chosen, Variant))
    ):
        warnings.append(
            f"{chosen.name} has {params_m:.0f}M parameters for {spec.images} {examples}: expect overfitting; prefer a smaller model"
        )
    if not spec.pretrained and spec.images < 1000 and spec.task == "classification":
        warnings.append(
            f"training from scratch on {spec.images} images: the guide says N/A, use transfer learning (--pretrained)"
        )
    if (
        isinstance(chosen, Variant)
        and chosen.kind == "transformer"
        and not env["fine_tune"]
        and spec.images < 1_000_000
    ):
        warnings.append(
            f"{chosen.name} from scratch on {spec.images} images: ViTs need very large data (or pretrained weights)"
        )
    if (
        spec.latency_ms is not None
        and dep.expected_latency_ms is not None
        and dep.expected_latency_ms > spec.latency_ms
    ):
        warnings.append(
            f"expected {dep.expected_latency_ms} ms on {spec.target} exceeds the {spec.latency_ms:g} ms budget"
        )
    elif (
        spec.latency_ms is not None
        and dep.latency_range_ms is not None
        and not dep.latency_measured
        and dep.latency_range_ms[1] > spec.latency_ms
    ):
        low, high = dep.latency_range_ms
        warnings.append(
            f"the {spec.latency_ms:g} ms budget lies inside the estimate's band ({low:g}-{high:g} ms on {spec.target}): "
            "measure on the target before relying on it (archadvisor profile, or recommend --measure on this machine)"
        )
    if spec.images < 1000 and spec.task not in ("time-series", "text-generation", "image-generation", "code"):
        warnings.append(
            f"{spec.images} {examples}: one validation split of ~{max(1, spec.images // 5)} is noisy (a few points of "
            "accuracy from split to split); use 5-fold cross-validation or repeated splits to compare runs"
        )
    if not task_row["scaffold"]:
        warnings.append(f"archadvisor cannot scaffold {_article(spec.task)} {spec.task} project yet")
    elif chosen.name in LIBRARY_MODELS:
        library = LIBRARY_MODELS[chosen.name]
        if spec.target not in library.targets:
            warnings.append(library_refusal(chosen.name, library, spec.target))
        else:
            warnings.append(f"{chosen.name} has no supported {dep.export} export: the project serves it from Python "
                            f"with predict.py ({library.library}), not with {dep.runtime}; for an exported model "
                            f"pass --arch with a model archadvisor owns (`archadvisor archs --task {spec.task}`)")  # fmt: skip
    elif not (chosen.scaffold if isinstance(chosen, Variant) else _generatable(chosen, spec)):
        warnings.append(f"archadvisor has no project template for {chosen.name}")


def scores_table(sel: Selection, top: int = 5) -> list[Score]:
    return [
        Score(c.name, round(sel.scores.get(c.name, 0.0), 3),
              {k: round(v, 3) for k, v in sorted(sel.votes.get(c.name, {}).items(), key=lambda kv: -kv[1])})
        for c in sel.ranked[:top]
    ]  # fmt: skip


def _perturbations(spec: ProblemSpec) -> list[tuple[str, dict[str, Any], float]]:
    """Single-flag changes to try, each with a size (0 = tiny change, larger = bigger change)."""
    import math

    out: list[tuple[str, dict[str, Any], float]] = []
    for t in (500, 1000, 10_000, 100_000, 500_000, 1_000_000):
        for value in (t - 1, t):
            if value != spec.images and value >= 1:
                out.append((f"--images {value}", {"images": value}, abs(math.log(value / spec.images))))
    for size in (32, 64, 128, 224, 384) if spec.image_size is not None else ():
        if size != spec.image_size:
            out.append((f"--image-size {size}", {"image_size": size}, abs(math.log(size / spec.image_size))))
    for ms in (5, 9.9, 29.9, 50, 99, 150, 500):
        cur = spec.latency_ms
        change = abs(math.log(ms / cur)) if cur else 1.0
        if ms != cur:
            out.append((f"--latency-ms {ms:g}", {"latency_ms": ms}, change))
    if spec.latency_ms is not None:
        out.append(("no --latency-ms", {"latency_ms": None}, 1.0))
    for c in COMPUTE:
        if c != spec.compute:
            out.append((f"--compute {c}", {"compute": c, "gpus": DEFAULT_GPUS[c]}, 1.0))
    for t in TARGETS:
        if t != spec.target:
            out.append((f"--target {t}", {"target": t}, 1.0))
    out.append((f"--{'no-' if spec.pretrained else ''}pretrained", {"pretrained": not spec.pretrained}, 1.0))
    for gb in (8, 16, 24, 40, 80):
        if gb != spec.gpu_memory_gb:
            cur = spec.gpu_memory_gb
            out.append((f"--gpu-memory-gb {gb}", {"gpu_memory_gb": float(gb)}, abs(math.log(gb / cur)) if cur else 1.0))
    return out


def flips(spec: ProblemSpec, rules: RuleSet, catalog: Catalog, limit: int = 3) -> list[dict[str, Any]]:
    """The smallest single-flag changes that change the recommended architecture."""

    base = select(spec, rules, catalog)
    if not base.ranked:
        return []
    current = catalog.canonical(spec.arch) if spec.arch else base.winner.name
    found: list[tuple[float, str, str]] = []
    for label, change, size in _perturbations(spec):
        try:
            other = select(spec._replace(arch=None, **change), rules, catalog)
        except Exception:  # noqa: BLE001 - a perturbation outside what the rules handle is not a flip
            continue
        if other.ranked and other.winner.name != current:
            found.append((size, label, other.winner.name))
    found.sort(key=lambda f: (f[0], f[1]))
    seen: set[str] = set()
    out = []
    for size, label, arch in found:
        flag = label.split()[0]
        if flag in seen:
            continue  # the nearest value of each flag is enough
        seen.add(flag)
        out.append({"change": label, "architecture": arch, "size": round(size, 3)})
        if len(out) == limit:
            break
    return out
