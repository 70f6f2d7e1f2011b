"""The rules engine: ProblemSpec + RuleSet -> Recommendation (a JSON-able dict).

Policy (also in rules/classification.yaml): hard constraints filter first (latency budget on the
target, the target's size limit, GPU memory, input resolution); then every fired rule votes with its
axis weight; the highest score wins, ties broken by ImageNet top-1 then fewer GMACs. The trace lists
every rule considered, whether it fired, and which one decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from archadvisor import __version__, conditions
from archadvisor.catalog import Catalog, External, Variant
from archadvisor.errors import InputError
from archadvisor.recipe import apply_tables, derive
from archadvisor.ruleset import RuleSet
from archadvisor.spec import ProblemSpec

EDGE_TARGETS = ("jetson", "ios", "android", "browser")


@dataclass
class Selection:
    """The outcome of choosing an architecture: ranked candidates with their votes and the trace."""

    ranked: list[Any]  # Variant | External, best first
    scores: dict[str, float]
    votes: dict[str, dict[str, float]]  # candidate -> rule id -> vote
    trace: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    decided_by: str | None = None
    latency: dict[str, Any] = field(default_factory=dict)  # name -> LatencyEstimate
    excluded: list[tuple[Any, str]] = field(default_factory=list)  # (candidate, why), nearest misses last

    @property
    def winner(self) -> Any:
        return self.ranked[0]


def _estimate(variant: Variant, target: str, image_size: int, rules: RuleSet) -> Any:
    """Latency on the target: the device-profile estimate (archadvisor/latency.py, rules/devices.yaml)."""
    from archadvisor.latency import estimate_latency_ms

    devices = {k: v for k, v in rules.devices.items() if k != "_file"} or None
    return estimate_latency_ms(variant, target, image_size, devices=devices)


def _uses_small_input(variant: Variant, image_size: int) -> bool:
    return variant.small_input and image_size <= 64


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
    """Choose among zoo variants (classification)."""
    family_of = {v.name: v.family for v in catalog.variants}
    sel_rules = rules.selections[spec.task]
    env = spec.env()
    trace: list[dict[str, Any]] = []
    warnings: list[str] = []
    pool: list[Variant] = list(catalog.variants)

    excluded: list[tuple[Variant, str]] = []

    def keep(
        survivors: list[Variant], before: list[Variant], rule_id: str, because: str, fallback_key
    ) -> list[Variant]:
        removed = len(before) - len(survivors)
        excluded.extend(
            (v, f"excluded by {rule_id}: {because}")
            for v in sorted(before, key=fallback_key, reverse=True)
            if v not in survivors
        )
        if survivors:
            trace.append({"rule": rule_id, "file": rules.files.get(rule_id, "archadvisor/engine.py"), "fired": True,
                          "because": f"{because} (excludes {removed} of {len(before)})", "kind": "constraint"})  # fmt: skip
            return survivors
        best = min(before, key=fallback_key)
        warnings.append(f"no architecture satisfies {rule_id} ({because}); keeping the closest, {best.name}")
        trace.append({"rule": rule_id, "file": rules.files.get(rule_id, "archadvisor/engine.py"), "fired": True,
                      "because": f"{because}: nothing meets it, kept the closest ({best.name})", "kind": "constraint"})  # fmt: skip
        return [best]

    # 1. hard constraints, in the documented order: input resolution, size limits (target, compute,
    #    memory), then the latency budget
    for c in sel_rules.get("constraints", []):
        fired = conditions.evaluate(c["when"], env)
        if not fired:
            trace.append({"rule": c["id"], "file": rules.files[c["id"]], "fired": False,
                          "because": conditions.describe(c["when"], env), "kind": "constraint"})  # fmt: skip
            continue
        before = pool
        if c.get("require_small_input"):
            pool = [v for v in pool if v.small_input]
        if "max_params_m" in c:
            pool = [v for v in pool if v.params_m <= c["max_params_m"]]
        if c.get("exclude_kinds"):
            pool = [v for v in pool if v.kind not in c["exclude_kinds"]]
        if c.get("exclude_families"):
            pool = [v for v in pool if v.family not in c["exclude_families"]]
        pool = keep(pool, before, c["id"], c["because"], lambda v: v.params)
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
        trace.append({"rule": "measure.pool", "file": "archadvisor/measure/candidates.py", "fired": True, "kind": "constraint",
                      "because": f"--measure: ranking the {len(pool)} candidates measured on this machine "
                                 f"(of {len(before)} that meet the other constraints)"})  # fmt: skip
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
        trace.append({"rule": r["id"], "file": rules.files[r["id"]], "fired": fired, "axis": r["axis"],
                      "because": r["because"] + f" [{conditions.describe(r['when'], env)}]", "kind": "vote"})  # fmt: skip
        if fired:
            fired_rules.append(r)
            _vote(r, axes[r["axis"]], credit, pool, votes, family_of)
    if "target" in axes:
        trow = {"id": target_row["id"], "prefer": target_row["prefer"]}
        _vote(trow, axes["target"], credit, pool, votes, family_of)
        trace.append({"rule": target_row["id"], "file": rules.files[target_row["id"]], "fired": True, "axis": "target",
                      "because": f"deployment matrix: {target_row['because']}", "kind": "vote"})  # fmt: skip

    scores = {v.name: sum(votes.get(v.name, {}).values()) for v in pool}
    ranked = sorted(pool, key=lambda v: (-round(scores[v.name], 6), -(v.imagenet_top1 or 0.0), v.gmacs))
    selection = Selection(ranked=ranked, scores=scores, votes=votes, trace=trace, warnings=warnings, latency=latency,
                          excluded=[(v, why) for v, why in excluded if v not in ranked])  # fmt: skip
    selection.decided_by = _decider(selection)
    return selection


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


def select_tree(spec: ProblemSpec, rules: RuleSet, catalog: Catalog) -> Selection:
    """Choose among external models with a task tree (detection)."""
    sel_rules = rules.selections[spec.task]
    env = spec.env()
    pool = [e for e in catalog.external if e.task == spec.task]
    votes: dict[str, dict[str, float]] = {}
    trace: list[dict[str, Any]] = []
    for r in sel_rules["rules"]:
        fired = conditions.evaluate(r["when"], env)
        trace.append({"rule": r["id"], "file": rules.files[r["id"]], "fired": fired, "axis": r["axis"],
                      "because": r["because"] + f" [{conditions.describe(r['when'], env)}]", "kind": "vote"})  # fmt: skip
        if fired:
            _vote(r, sel_rules["axes"][r["axis"]], 0.0, pool, votes, {})
    task_row = rules.tasks[spec.task]
    for i, name in enumerate(task_row["best"]):  # the selection table breaks ties
        votes.setdefault(name, {})[f"task.{spec.task}"] = 0.5 * (1 - 0.1 * i)
    scores = {e.name: sum(votes.get(e.name, {}).values()) for e in pool}
    ranked = sorted(pool, key=lambda e: (-round(scores[e.name], 6), e.params_m or 0))
    sel = Selection(ranked=ranked, scores=scores, votes=votes, trace=trace)
    sel.decided_by = _decider(sel)
    return sel


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
    trace = [{"rule": f"task.{spec.task}", "file": rules.files[f"task.{spec.task}"], "fired": True,
              "because": because, "kind": "table"}]  # fmt: skip
    votes = {seen[0].name: {f"task.{spec.task}": 1.0}} if seen else {}
    return Selection(
        ranked=seen, scores={e.name: 0.0 for e in seen}, votes=votes, trace=trace, decided_by=f"task.{spec.task}"
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
        # unknown sizes stay unknown (hosted models): size-based table rows simply do not match
        env.update(arch=chosen.name, family=chosen.name, kind="external", params_m=chosen.params_m,
                   gmacs=None, depth="deep", small_input=False, fine_tune=spec.pretrained)  # fmt: skip
    return env


def recommend(spec: ProblemSpec, rules: RuleSet, catalog: Catalog, *, measured: dict[str, Any] | None = None,
              measure_note: str | None = None) -> dict[str, Any]:  # fmt: skip
    """The full Recommendation (DESIGN.md section 4) for ``spec``."""
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
    small_input = is_variant and _uses_small_input(chosen, spec.image_size)
    env = _model_env(spec, chosen, small_input)
    recipe = apply_tables(rules, env)
    derived = derive(recipe, env, image_size=spec.image_size, small_input=small_input, hflip=spec.hflip)
    task_row = rules.tasks[spec.task]

    # architecture
    if is_variant:
        why = _why(sel, chosen.name, reasons) if spec.arch is None else "forced with --arch"
        if small_input:
            why += f"; {spec.image_size} px <= 64: small-input stem (3x3 stride 1, total stride 8)"
        arch = {
            "name": chosen.name, "family": chosen.family, "module": chosen.module, "kind": chosen.kind,
            "params_m": round(chosen.params_m, 2), "gmacs": chosen.gmacs, "gmacs_at_input": round(chosen.gmacs_at(spec.image_size, small_input), 4),
            "imagenet_top1": chosen.imagenet_top1, "top1_source": chosen.top1_source, "reference": chosen.reference,
            "paper": chosen.paper, "structure": chosen.structure, "small_input": small_input, "scaffold": chosen.scaffold and task_row["scaffold"],
            "why": why,
        }  # fmt: skip
    else:
        arch = {
            "name": chosen.name, "family": chosen.name, "module": None, "kind": "external",
            "params_m": chosen.params_m, "gmacs": None, "gmacs_at_input": None, "imagenet_top1": None,
            "metric": chosen.metric, "top1_source": chosen.source, "reference": chosen.provider, "paper": chosen.source, "structure": None,
            "small_input": False, "scaffold": False,
            "why": (_why(sel, chosen.name, reasons) if spec.arch is None else "forced with --arch")
            + f"; get it from {chosen.provider}",
        }  # fmt: skip

    alternatives = _alternatives(sel, chosen, reasons, task_row)
    deployment = _deployment(spec, rules, chosen, small_input, sel)
    _check_warnings(spec, chosen, env, deployment, warnings)
    trace = sel.trace + [
        {"rule": t["rule"], "file": t["file"], "fired": True, "because": t["because"], "kind": "recipe"}
        for t in recipe.trace
    ]
    if measure_note:
        trace.append(
            {
                "rule": "measure",
                "file": "archadvisor/measure/candidates.py",
                "fired": True,
                "because": measure_note,
                "kind": "measure",
            }
        )
    decided = sel.decided_by if spec.arch is None else "--arch"
    for t in trace:
        t["decided"] = t["rule"] == decided
    provenance = {"architecture": f"{decided} ({rules.files.get(decided or '', 'the command line')})"}
    for key, rid in derived["provenance"].items():
        if not rid:
            provenance[key] = "(default)"
        elif " " in rid:  # a derived value with its reason inline
            provenance[key] = (
                f"{rid.split(':', 1)[0]} (archadvisor/recipe.py):{rid.split(':', 1)[1]}" if ":" in rid else rid
            )
        else:
            provenance[key] = f"{rid} ({rules.files.get(rid, 'archadvisor/recipe.py')})"
    target_rule = rules.targets[spec.target]["id"]
    for key in ("deployment", "deployment.runtime", "deployment.precision", "deployment.quantize", "deployment.export"):
        provenance[key] = f"{target_rule} ({rules.files[target_rule]})"
    rec: dict[str, Any] = {
        "schema": 1,
        "tool_version": __version__,
        "rules_digest": rules.digest,
        "task": spec.task,
        "inputs": spec.to_json(),
        "architecture": arch,
        "alternatives": alternatives,
        "training": derived["training"],
        "augmentation": derived["augmentation"],
        "deployment": deployment,
        "expected": _expected(spec, chosen, deployment, task_row),
        "provenance": provenance,
        "decided_by": decided,
        "scores": scores_table(sel),
        "trace": trace,
        "warnings": warnings,
    }
    return rec


def _reasons(rules: RuleSet) -> dict[str, str]:
    out = {}
    for sel in rules.selections.values():
        for r in sel["rules"]:
            out[r["id"]] = r["because"]
    for t in rules.targets.values():
        out[t["id"]] = "deployment matrix: " + t["because"]
    for task, t in rules.tasks.items():
        out[f"task.{task}"] = f"selection table: {t['rationale']}"
    return out


def _forced(spec: ProblemSpec, rules: RuleSet, catalog: Catalog, sel: Selection, warnings: list[str]) -> Any:
    assert spec.arch is not None
    if rules.tasks[spec.task]["selector"] == "catalog":
        chosen = catalog.resolve(spec.arch)
        if chosen not in sel.ranked:
            excluded = [t["because"] for t in sel.trace if t.get("kind") == "constraint" and t["fired"]]
            problems = []
            if spec.image_size <= 64 and not chosen.small_input:
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
    ext = catalog.external_model(spec.arch)
    if ext is None or ext.task != spec.task:
        raise InputError("--arch", spec.arch, names)
    return ext


def _alternatives(sel: Selection, chosen: Any, reasons: dict[str, str], table: dict[str, Any]) -> list[dict[str, Any]]:
    """Up to 3, ranked; different families first so the user sees real alternatives."""
    rest = [c for c in sel.ranked if c.name != chosen.name]
    other_fam = [c for c in rest if getattr(c, "family", c.name) != getattr(chosen, "family", chosen.name)]
    picked: list[Any] = []
    for c in other_fam + rest:
        if c not in picked:
            picked.append(c)
        if len(picked) == 3:
            break
    # fewer than two survivors of the hard constraints: show the nearest misses, labelled as such
    misses = {c.name: why for c, why in reversed(sel.excluded) if c.name != chosen.name}
    for name in list(misses)[: max(0, 2 - len(picked))]:
        picked.append(next(c for c, _ in sel.excluded if c.name == name))
    out = []
    for c in picked:
        why = (
            misses.get(c.name)
            if c not in sel.ranked
            else _why(sel, c.name, reasons, None if isinstance(c, Variant) else table)
        )
        item = {"name": c.name, "family": getattr(c, "family", c.name), "why": why,
                "meets_constraints": c in sel.ranked, "score": round(sel.scores.get(c.name, 0.0), 3)}  # fmt: skip
        if isinstance(c, Variant):
            item.update(params_m=round(c.params_m, 2), gmacs=c.gmacs, imagenet_top1=c.imagenet_top1)
            est = sel.latency.get(c.name)
            if est is not None:
                item["expected_latency_ms"] = round(est.ms, 2)
        else:
            item.update(params_m=c.params_m, metric=c.metric, provider=c.provider)
        out.append(item)
    return out


def _deployment(spec: ProblemSpec, rules: RuleSet, chosen: Any, small_input: bool, sel: Selection) -> dict[str, Any]:
    row = rules.targets[spec.target]
    dep: dict[str, Any] = {
        "target": spec.target, "export": row["export"], "runtime": row["runtime"], "precision": row["precision"],
        "quantize": row["quantize"], "rule": row["id"], "guide_expected": {"top1": row.get("guide_top1"), "latency_ms": row.get("guide_latency_ms")},
    }  # fmt: skip
    if isinstance(chosen, Variant):
        est = sel.latency.get(chosen.name) or _estimate(chosen, spec.target, spec.image_size, rules)
        dep.update(expected_latency_ms=round(est.ms, 2), latency_range_ms=[round(est.low_ms, 2), round(est.high_ms, 2)],
                   latency_basis=est.basis, latency_source=est.source, latency_measured=bool(getattr(est, "measured", False)))  # fmt: skip
    else:
        dep.update(expected_latency_ms=None, latency_range_ms=None, latency_measured=False,
                   latency_basis="not estimated: external model; see the publisher's benchmark", latency_source=chosen.source)  # fmt: skip
    return dep


def _expected(spec: ProblemSpec, chosen: Any, dep: dict[str, Any], task_row: dict) -> dict[str, Any]:
    if isinstance(chosen, Variant):
        top1 = (
            f"{chosen.imagenet_top1:.1f}% ImageNet top-1 ({chosen.top1_source})"
            if chosen.imagenet_top1
            else "no ImageNet figure (baseline model)"
        )
        return {
            "benchmark": top1,
            "latency": f"{dep['expected_latency_ms']} ms per image on {spec.target} ({dep['latency_basis']})",
            "note": "accuracy on your data depends on the data; ImageNet top-1 ranks architectures, it does not predict your score",
        }  # fmt: skip
    return {"benchmark": f"{chosen.metric} ({chosen.source})", "latency": dep["latency_basis"],
            "note": f"{task_row['rationale']}; archadvisor can scaffold only classification projects"}  # fmt: skip


def _check_warnings(
    spec: ProblemSpec, chosen: Any, env: dict[str, Any], dep: dict[str, Any], warnings: list[str]
) -> None:
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
        and dep.get("expected_latency_ms") is not None
        and dep["expected_latency_ms"] > spec.latency_ms
    ):
        warnings.append(
            f"expected {dep['expected_latency_ms']} ms on {spec.target} exceeds the {spec.latency_ms:g} ms budget"
        )
    if not (isinstance(chosen, Variant) and chosen.scaffold):
        article = "an" if spec.task[0] in "aeiou" else "a"
        warnings.append(f"archadvisor cannot scaffold {article} {spec.task} project; it scaffolds image classification")


def scores_table(sel: Selection, top: int = 5) -> list[dict[str, Any]]:
    return [
        {"name": c.name, "score": round(sel.scores.get(c.name, 0.0), 3),
         "votes": {k: round(v, 3) for k, v in sorted(sel.votes.get(c.name, {}).items(), key=lambda kv: -kv[1])}}
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
    from archadvisor.conditions import COMPUTE, TARGETS

    for c in COMPUTE:
        if c != spec.compute:
            gpus = {"cpu": 0, "edge": 0, "single-gpu": 1, "multi-gpu": 4}[c]
            out.append((f"--compute {c}", {"compute": c, "gpus": gpus}, 1.0))
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
    from dataclasses import replace

    base = select(spec, rules, catalog)
    if not base.ranked:
        return []
    current = spec.arch or base.winner.name
    found: list[tuple[float, str, str]] = []
    for label, change, size in _perturbations(spec):
        try:
            other = select(replace(spec, arch=None, **change), rules, catalog)
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
