"""Loading and validating rule files (untrusted YAML) into one merged, checked RuleSet.

Every file declares ``kind:`` (catalog, tasks, selection, deployment, recipes, devices). Built-in rules
come from ``rules/``; ``--rules DIR`` adds files whose entries replace built-in entries with the same
id (or name/task/target) and add new ones. Errors name the file, line, rule id and the problem.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from archadvisor import conditions
from archadvisor.errors import RuleError, closest
from archadvisor.resources import model_modules, rules_dir
from archadvisor.vocab import CLASSLESS_TASKS, LICENSE_KINDS, QUANTIZE_MODES, RULE_FILE_KINDS, TARGETS, TASKS

# bump when validation or the RuleSet layout changes: it keys the validated-rules cache
_SCHEMA_VERSION = "rules-3"


class _LineDict(dict):
    """A mapping that remembers the line it started on (for error messages)."""

    line: int | None = None


# Limits on one rule file (untrusted input): each is refused with one line naming the file and the limit.
MAX_FILE_BYTES = 1 << 20  # 1 MiB; the largest built-in file is ~30 KB
MAX_NODES = 100_000  # YAML nodes (scalars, lists, mappings) in one file
MAX_KEYS = 10_000  # keys in one mapping
MAX_NESTING = 100  # YAML nesting levels (a condition nested conditions.MAX_DEPTH deep needs ~70)


@cache
def _loader() -> type:
    """safe_load semantics (no object construction) plus line numbers on mappings, duplicate-key
    errors (a set per mapping: linear time), no aliases and bounded nodes, keys and nesting. Built
    on first use: importing yaml costs more than a cached `recommend` does."""
    import yaml

    base = yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader
    error = yaml.constructor.ConstructorError

    class Loader(base):  # type: ignore[misc, valid-type]
        """A private subclass, so the constructors below do not leak into yaml's own loaders."""

        _nodes = 0
        _depth = 0

        def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
            # an alias is the very node of its anchor, met a second time: refused, since expanding
            # shared nodes is how a few hundred bytes become gigabytes (the "billion laughs")
            if node in self.constructed_objects or node in self.recursive_objects:
                raise error(
                    None,
                    None,
                    "the node anchored here is used again through an alias (*name): aliases are not allowed in rule files",
                    node.start_mark,
                )
            self._nodes += 1
            if self._nodes > MAX_NODES:
                raise error(None, None, f"more than {MAX_NODES:,} YAML nodes (the limit)", node.start_mark)
            self._depth += 1
            try:
                if self._depth > MAX_NESTING:
                    raise error(None, None, f"nested deeper than {MAX_NESTING} levels (the limit)", node.start_mark)
                return super().construct_object(node, deep=deep)
            finally:
                self._depth -= 1

    def construct_mapping(loader: Loader, node: yaml.MappingNode) -> _LineDict:
        if len(node.value) > MAX_KEYS:
            raise error(None, None, f"a mapping with more than {MAX_KEYS:,} keys (the limit)", node.start_mark)
        d = _LineDict()
        d.line = node.start_mark.line + 1
        dupes: list[str] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise error(None, None, "YAML merge keys (<<) are not allowed in rule files", key_node.start_mark)
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise error(
                    None, None, f"a mapping key must be a scalar, got {type(key).__name__}", key_node.start_mark
                )
            value = loader.construct_object(value_node, deep=True)
            if key in d:
                dupes.append(str(key))
            d[key] = value
        if dupes:
            raise error(None, None, f"duplicate key(s) {sorted(set(dupes))}", node.start_mark)
        return d

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return Loader


def line_of(node: Any) -> int | None:
    return getattr(node, "line", None)


# ---------------------------------------------------------------------------------------------------
# A tiny declarative schema: key -> (type, required). Types: str, int, number, bool, list[str],
# list[number], cond, map, list[map], any, and "T|null".
_T = tuple[str, bool]

RULE_SCHEMA: dict[str, _T] = {
    "id": ("str", True),
    "axis": ("str", True),
    "when": ("cond", True),
    "prefer": ("list[str]", True),
    "because": ("str", True),
    "guide": ("str", False),
}
CONSTRAINT_SCHEMA: dict[str, _T] = {
    "id": ("str", True),
    "when": ("cond", True),
    "because": ("str", True),
    "guide": ("str", False),
    "max_params_m": ("number", False),
    "require_small_input": ("bool", False),
    "exclude_kinds": ("list[str]", False),
    "exclude_families": ("list[str]", False),
    "exclude_hosted": ("bool", False),
    "exclude_names": ("list[str]", False),
}
SELECTION_SCHEMA: dict[str, _T] = {
    "kind": ("str", True),
    "schema": ("int", True),
    "task": ("str", True),
    "family_credit": ("number", False),
    "axes": ("map", True),
    "constraints": ("list[map]", False),
    "rules": ("list[map]", True),
}
TARGET_SCHEMA: dict[str, _T] = {
    "id": ("str", True),
    "target": ("str", True),
    "prefer": ("list[str]", True),
    "export": ("str", True),
    "runtime": ("str", True),
    "precision": ("str", True),
    "quantize": ("str", True),
    "max_params_m": ("number", True),
    "guide_top1": ("str", False),
    "guide_latency_ms": ("number", False),
    "because": ("str", True),
    # rows that change the plan for some models on this target (first match wins), e.g. static INT8 for CNNs
    "refine": ("list[map]", False),
}
REFINE_SCHEMA: dict[str, _T] = {
    "id": ("str", True),
    "when": ("cond", True),
    "set": ("map", True),
    "because": ("str", True),
}
# what a refine row may change, and the model facts its condition may read (known for every candidate)
REFINE_FIELDS = ("export", "runtime", "precision", "quantize")
REFINE_VARS = ("task", "kind", "family", "arch")
ROW_SCHEMA: dict[str, _T] = {
    "id": ("str", True),
    "when": ("cond", False),
    "set": ("map", True),
    "because": ("str", True),
    "guide": ("str", False),
}
TABLE_SCHEMA: dict[str, _T] = {"name": ("str", True), "doc": ("str", False), "rows": ("list[map]", True)}
TASK_SCHEMA: dict[str, _T] = {
    "task": ("str", True),
    "selector": ("str", True),
    "scaffold": ("bool", True),
    "default_classes": ("int|null", False),  # required, except for CLASSLESS_TASKS (where it must be null)
    "best": ("list[str]", True),
    "alternative": ("list[str]", True),
    "mobile": ("list[str]", True),
    "rationale": ("str", True),
    # what a project of this task minimizes and reports: its loss, the metric that picks the best
    # checkpoint and drives early stopping (with min/max), the metrics it reports
    "loss": ("str|null", False),
    "monitor": ("str|null", False),
    "monitor_mode": ("enum:min,max", False),
    "metrics": ("list[str]", False),
}
FAMILY_SCHEMA: dict[str, _T] = {
    "name": ("str", True),
    "module": ("str", True),
    "kind": ("str", True),
    "small_input": ("bool", True),
    "scaffold": ("bool", True),
    "paper": ("str", True),
    "structure": ("str", True),
    "license": ("map", False),
}
VARIANT_SCHEMA: dict[str, _T] = {
    "name": ("str", True),
    "family": ("str", True),
    "reference": ("map", True),
    "params": ("int", True),
    "head_features": ("int", True),
    "gmacs": ("number", True),
    "input_size": ("int", True),
    "imagenet_top1": ("number|null", True),
    "top1_source": ("str", True),
    "cpu_latency_ms": ("number|null", True),
    "depth": ("str", True),
}
EXTERNAL_SCHEMA: dict[str, _T] = {
    "name": ("str", True),
    "task": ("str", True),
    "provider": ("str", True),
    "params_m": ("number|null", True),
    "metric": ("str", True),
    "source": ("str", True),
    "hosted": ("bool", False),
    "module": ("str", False),
    "build": ("str", False),
    "license": ("map", False),
    "gmacs": ("number", False),
    "input_size": ("int", False),
    "arch_kind": ("enum:cnn,transformer,hybrid", False),
    "ultralytics": ("str", False),  # the model YAML an ultralytics project builds (archadvisor/ultralytics_project.py)
    "imagenet_top1": ("number", False),  # a classification model's published top-1: the selector's tie-break
}

# Fields a recipe table may set, with their types (archadvisor/recipe.py reads them).
RECIPE_FIELDS: dict[str, str] = {
    "optimizer": "enum:adamw,sgd",
    "momentum": "number",
    "nesterov": "bool",
    "base_lr": "number",
    "lr_scaling": "enum:linear,sqrt,none",
    "effective_batch": "int",
    "batch_max_fraction": "number",
    "weight_decay": "number",
    "batch_per_device": "int",
    "batch_memory_gb": "number",
    "max_grad_accum": "int",
    "dropout": "number|null",
    "drop_path": "number|null",
    "label_smoothing": "number|null",
    "aug_level": "enum:none,light,moderate,heavy,very-heavy",
    "mixup_alpha": "number",
    "cutmix_alpha": "number",
    "policy": "enum:none,rand_augment,trivial_augment",
    "rand_augment_magnitude": "int",
    "random_erasing": "number",
    "crop_scale_min": "number",
    "mosaic": "bool",
    "epochs": "int",
    "progressive_epochs": "int",
    "progressive_resizing": "bool",
    "progressive_start": "number",
    "warmup_epochs": "int",
    "early_stopping_patience": "int",
    "ema_decay": "number|null",
    "freeze_mode": "enum:none,head-only,progressive",
    "freeze_epochs_ratio": "number",
    "grad_clip_norm": "number|null",
    "train_image_size": "int",
    "batch_image_size": "int",  # the resolution the table's per-device batch is for (default 224)
    "schedule": "enum:cosine,poly,multistep,linear",
    "poly_power": "number",
    "milestones": "list[number]",  # multistep: fractions of the run where the LR drops 10x
    "min_lr_ratio": "number",  # the LR at the end of the decay, as a fraction of the peak
    "warmup_ratio": "number",  # warmup as a fraction of all optimizer steps (instead of warmup_epochs)
    "warmup_steps": "int",  # warmup in optimizer steps (instead of warmup_epochs)
    "warmup_max_epochs": "int",  # warmup_steps capped at this many epochs of optimizer steps
    "aux_loss_weight": "number",
    "max_length": "int",
    "loss": "enum:cross_entropy,dice,cross_entropy+dice",  # semantic segmentation's choices (templates' loss.name)
}


def _type_ok(value: Any, typ: str) -> bool:
    if typ.endswith("|null"):
        return value is None or _type_ok(value, typ[: -len("|null")])
    if typ.startswith("enum:"):
        return isinstance(value, str) and value in typ[5:].split(",")
    return {
        "str": lambda v: isinstance(v, str) and v.strip() != "",
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "list[str]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "list[number]": lambda v: (
            isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
        ),
        "map": lambda v: isinstance(v, dict),
        "list[map]": lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
        "cond": lambda v: isinstance(v, dict),
        "any": lambda v: True,
    }[typ](value)


def _has_control(text: str) -> bool:
    """Control characters (C0, DEL, C1) and the Unicode line/paragraph separators: a newline in an id
    or a text ends a YAML comment or a line of output, so none is accepted in a rule file's strings."""
    return any(ord(ch) < 32 or 127 <= ord(ch) < 160 or ch in "\u2028\u2029" for ch in text)


class _Ctx:
    """Where validation is: the file, and the ids this rules directory has defined so far."""

    __slots__ = ("file", "ids")

    def __init__(self, file: str, ids: dict[tuple[str, str], tuple[str, int]] | None = None) -> None:
        self.file = file
        # ids already defined by this rules directory: (namespace, id) -> "file:line". One directory may
        # not define an id twice (in one file or across its files); a --rules directory overriding a
        # built-in id is the documented override and is not a duplicate (it has its own table).
        self.ids = {} if ids is None else ids

    def fail(self, node: Any, rule: str | None, problem: str, line: int | None = None) -> RuleError:
        return RuleError(self.file, line or line_of(node), rule, problem)

    def claim(self, node: Any, namespace: str, name: str, what: str = "id") -> None:
        where = f"{self.file}:{line_of(node)}" if line_of(node) else self.file
        first, node_id = self.ids.setdefault((namespace, name), (where, id(node)))
        if node_id != id(node):
            raise self.fail(node, name, f"duplicate {what} {name!r}: already defined at {first}")

    def section(self, data: dict, key: str, what: str) -> list:
        """``data[key]`` as a list of mappings (empty when absent); one located line otherwise."""
        items = data.get(key, [])
        if not isinstance(items, list):
            raise self.fail(data, None, f"{key!r} must be a list of {what}, got {type(items).__name__}")
        for item in items:
            if not isinstance(item, dict):
                raise self.fail(data, None, f"every entry of {key!r} must be a mapping ({what}), got {item!r}")
        return items


def _check(ctx: _Ctx, node: Any, schema: dict[str, _T], what: str, rule_id: str | None = None) -> None:
    if not isinstance(node, dict):
        raise ctx.fail(node, rule_id, f"{what} must be a mapping, got {type(node).__name__}")
    rid = rule_id or (node.get("id") if isinstance(node.get("id"), str) else None)
    for key in node:
        if key not in schema:
            hint = closest(str(key), schema)
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise ctx.fail(node, rid, f"unknown key {key!r} in {what}{extra}; allowed: {', '.join(schema)}")
    for key, (typ, required) in schema.items():
        if key not in node:
            if required:
                raise ctx.fail(node, rid, f"{what} is missing required key {key!r}")
            continue
        value = node[key]
        if typ.startswith("str") and isinstance(value, str):
            if not value.strip():
                raise ctx.fail(node, rid, f"{key!r} must be a non-empty string, got {value!r}")
            if _has_control(value):
                raise ctx.fail(
                    node, rid, f"{key!r} must not contain control characters (newlines, tabs ...): {value!r}"
                )
        if not _type_ok(value, typ):
            raise ctx.fail(node, rid, f"{key!r} must be {typ}, got {value!r}")


def _check_cond(ctx: _Ctx, node: dict, rule_id: str, phase: str) -> None:
    try:
        conditions.validate(node["when"], phase=phase, line=line_of(node))
    except conditions.ConditionError as exc:
        raise ctx.fail(node, rule_id, str(exc), exc.line) from None
    if not satisfiable(node["when"]):
        raise ctx.fail(node, rule_id, "condition can never hold (unreachable rule): contradictory bounds")


def satisfiable(cond: dict) -> bool:
    """False when an ``all`` of numeric leaves on the same variable leaves an empty interval,
    or equality leaves on one variable disagree (the cheap, exact part of unreachability)."""
    if "all" not in cond:
        return True
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    eq: dict[str, set] = {}
    for leaf in cond["all"]:
        if "var" not in leaf:
            continue
        var, op, value = leaf["var"], leaf["op"], leaf["value"]
        if op in ("gt", "ge"):
            lo[var] = max(lo.get(var, float("-inf")), value + (1e-9 if op == "gt" else 0))
        elif op in ("lt", "le"):
            hi[var] = min(hi.get(var, float("inf")), value - (1e-9 if op == "lt" else 0))
        elif op == "between":
            lo[var] = max(lo.get(var, float("-inf")), value[0])
            hi[var] = min(hi.get(var, float("inf")), value[1] - 1e-9)
        elif op == "eq":
            eq.setdefault(var, set()).add(value if not isinstance(value, list) else tuple(value))
    if any(lo.get(v, float("-inf")) > hi.get(v, float("inf")) for v in set(lo) | set(hi)):
        return False
    return all(len(vals) <= 1 for vals in eq.values())


# ---------------------------------------------------------------------------------------------------
class RuleSet:
    """All rules, merged and validated. Plain data: the engine only reads it.

    A plain class with slots, not a dataclass: a dataclass execs generated code when it is defined,
    at every start of `recommend`. FIELDS is what the validated-rules cache stores."""

    FIELDS = ("catalog", "tasks", "selections", "targets", "tables", "devices", "files", "sources", "digest")
    __slots__ = FIELDS

    def __init__(
        self,
        catalog: dict[str, Any] | None = None,
        tasks: dict[str, dict] | None = None,
        selections: dict[str, dict] | None = None,
        targets: dict[str, dict] | None = None,
        tables: list[dict] | None = None,
        devices: dict[str, Any] | None = None,
        files: dict[str, str] | None = None,
        sources: list[Path] | None = None,
        digest: str = "",
    ) -> None:
        self.catalog = catalog or {}
        self.tasks = tasks or {}
        self.selections = selections or {}  # task -> selection file (merged)
        self.targets = targets or {}  # target -> deployment row
        self.tables = tables or []  # recipe tables in order
        self.devices = devices or {}
        self.files = files or {}  # rule id -> file it came from
        self.sources = sources or []
        self.digest = digest

    @property
    def small_input_max_px(self) -> int:
        """The largest image side that gets a small-input stem: the bound of the classification constraint
        that requires one (``{var: image_size, op: le, value: N}``); 0 when no rule asks for small stems."""
        for c in self.selections.get("classification", {}).get("constraints", []):
            when = c.get("when", {})
            if c.get("require_small_input") and when.get("var") == "image_size":
                value = when.get("value")
                if when.get("op") == "le" and isinstance(value, int):
                    return value
                if when.get("op") == "lt" and isinstance(value, int):
                    return value - 1
        return 0


def _read_bytes(path: Path) -> bytes:
    """A rule file's bytes, refusing one over MAX_FILE_BYTES before reading more than that."""
    try:
        with path.open("rb") as f:
            blob = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise RuleError(str(path), None, None, f"cannot read the file: {exc.strerror or exc}") from None
    if len(blob) > MAX_FILE_BYTES:
        raise RuleError(str(path), None, None, f"larger than {MAX_FILE_BYTES:,} bytes (the limit for a rule file)")
    return blob


def _decode(path: Path, blob: bytes) -> str:
    """UTF-8 text, or one line naming the file and the byte offset of the first bad byte."""
    if blob.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in blob:
        at = 0 if blob[:2] in (b"\xff\xfe", b"\xfe\xff") else blob.index(b"\x00")
        raise RuleError(
            str(path), None, None, f"not UTF-8 (a UTF-16/UTF-32 or binary file: byte offset {at}); save it as UTF-8"
        )
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuleError(
            str(path),
            None,
            None,
            f"not valid UTF-8 at byte offset {exc.start} ({blob[exc.start : exc.start + 1]!r}); save it as UTF-8",
        ) from None


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _read(path: Path, blob: bytes) -> Any:
    import yaml

    text = _decode(path, blob)
    try:
        data = yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass: safe_load semantics
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = "YAML error" if isinstance(exc, yaml.constructor.ConstructorError) else "YAML syntax error"
        raise RuleError(str(path), line, None, f"{what}: {_one_line(exc.problem or exc)}") from None
    except yaml.YAMLError as exc:
        raise RuleError(str(path), None, None, f"YAML error: {_one_line(exc)}") from None
    if data is None:
        raise RuleError(str(path), None, None, "empty rule file")
    if not isinstance(data, dict):
        raise RuleError(str(path), 1, None, f"a rule file must be a mapping, got {type(data).__name__}")
    kind = data.get("kind")
    if kind is None and "variants" in data and "families" in data:
        kind = "catalog"  # the catalog predates the kind key; accept it without
        data["kind"] = kind
    if kind not in RULE_FILE_KINDS:
        hint = closest(str(kind), RULE_FILE_KINDS)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise RuleError(
            str(path),
            line_of(data),
            None,
            f"unknown kind {kind!r}{extra}; expected one of {', '.join(RULE_FILE_KINDS)}",
        )
    if data.get("schema", 1) != 1:
        raise RuleError(
            str(path), line_of(data), None, f"unsupported schema {data.get('schema')!r}; this version reads 1"
        )
    return data


def _merge_by(base: list[dict], new: list[dict], key: str) -> list[dict]:
    out = list(base)
    index = {item[key]: i for i, item in enumerate(out)}
    for item in new:
        if item[key] in index:
            out[index[item[key]]] = item
        else:
            index[item[key]] = len(out)
            out.append(item)
    return out


def display_name(path: Path) -> str:
    """``rules/recipes.yaml`` for built-in files, the path as given for user files."""
    try:
        return f"rules/{path.relative_to(rules_dir())}"
    except ValueError:
        return str(path)


def _rule_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise RuleError(str(directory), None, None, "rules directory does not exist")
    # by name: one directory's files, and str keys are cheaper than Path comparisons (case-folded parts)
    files = sorted((p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()), key=str)
    if not files:
        raise RuleError(str(directory), None, None, "no .yaml rule files in this directory")
    return files


def load_rules(extra_dirs: Iterable[Path] = ()) -> RuleSet:
    """Built-in rules plus overrides from ``extra_dirs`` (later wins), validated as one set."""
    return _load(tuple(Path(d).resolve() for d in extra_dirs))


def _cache_file(digest: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "archadvisor" / f"rules-{digest}.json"


def _from_cache(digest: str) -> RuleSet | None:
    """A RuleSet validated earlier from byte-identical files (the digest covers every file's bytes and
    this module's version), or None. Parsing and validating the YAML costs more than the whole rest of
    `recommend`; the cache is only ever a copy of a validated result."""
    try:
        data = json.loads(_cache_file(digest).read_text(encoding="utf-8"))
        data["sources"] = [Path(p) for p in data["sources"]]
        return RuleSet(**data)
    except (OSError, ValueError, TypeError):
        return None


def _to_cache(rs: RuleSet, key: str) -> None:
    path = _cache_file(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        body = {k: getattr(rs, k) for k in RuleSet.FIELDS}
        body["sources"] = [str(p) for p in rs.sources]
        tmp.write_text(json.dumps(body), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs speed


@cache
def _load(extra_dirs: tuple[Path, ...]) -> RuleSet:
    dirs = [_rule_files(rules_dir())] + [_rule_files(d) for d in extra_dirs]
    paths = [p for files in dirs for p in files]
    groups = [i for i, files in enumerate(dirs) for _ in files]  # which rules directory (given) each file is from
    blobs = [(p, _read_bytes(p)) for p in paths]
    # cache key: the validator version, every file's path and bytes (crc32 + length: zlib is already
    # loaded, hashlib's OpenSSL import is not); a stale key only means validating again
    key = f"{zlib.crc32(_SCHEMA_VERSION.encode()):08x}"
    for path, blob in blobs:
        key = f"{zlib.crc32(blob, zlib.crc32(str(path).encode(), int(key[-8:], 16))):08x}"
    key = f"{key}-{sum(len(b) for _, b in blobs)}"
    cached = _from_cache(key)
    if cached is not None:
        return cached
    rs = _validate(blobs, groups)
    import hashlib

    digest = hashlib.sha256()  # the rules' identity: file names and contents (recorded in projects)
    for path, blob in blobs:
        digest.update(path.name.encode() + b"\0" + blob)
    rs.digest = digest.hexdigest()[:16]
    _to_cache(rs, key)
    return rs


def _validate(blobs: list[tuple[Path, bytes]], groups: list[int] | None = None) -> RuleSet:
    """``groups[i]``: the rules directory file ``i`` came from (the built-in one is 0); ids are unique
    within a directory, and a later directory may override an earlier one's."""
    rs = RuleSet()
    ids: dict[Any, dict[tuple[str, str], tuple[str, int]]] = {}  # rules directory -> the ids it defined
    raw: list[tuple[_Ctx, dict]] = []
    for i, (path, blob) in enumerate(blobs):
        data = _read(path, blob)
        raw.append((_Ctx(display_name(path), ids.setdefault(groups[i] if groups else path.parent, {})), data))
    rs.sources = [p for p, _ in blobs]
    # catalog first: everything else refers to its names
    for ctx, data in raw:
        if data["kind"] == "catalog":
            _merge_catalog(rs, ctx, data)
    if not rs.catalog:
        raise RuleError(str(rules_dir()), None, None, "no catalog (kind: catalog) found")
    for ctx, data in raw:
        kind = data["kind"]
        if kind == "tasks":
            _merge_tasks(rs, ctx, data)
        elif kind == "selection":
            _merge_selection(rs, ctx, data)
        elif kind == "deployment":
            _merge_deployment(rs, ctx, data)
        elif kind == "recipes":
            _merge_recipes(rs, ctx, data)
        elif kind == "devices":
            _merge_devices(rs, ctx, data)
    _cross_check(rs)
    return rs


def _merge_devices(rs: RuleSet, ctx: _Ctx, data: dict) -> None:
    """A user file may override single targets: merge target by target, other keys whole. The merged
    profiles are checked after each file, so a problem is blamed on the file that brought it."""
    targets = data.get("targets", {})
    if not isinstance(targets, dict):
        raise ctx.fail(
            data, None, f"'targets' must be a mapping of target -> device profile, got {type(targets).__name__}"
        )
    merged = {**rs.devices, **{k: v for k, v in data.items() if k not in ("kind", "schema")}}
    merged["targets"] = {**rs.devices.get("targets", {}), **targets}
    try:
        from archadvisor.latency import validate_devices
    except ImportError:  # pragma: no cover - latency.py ships with the package
        validate_devices = None
    if validate_devices is not None:
        problems = validate_devices({k: v for k, v in merged.items() if not k.startswith("_")})
        if problems:
            at, sep, rest = problems[0].partition(": ")  # "line 12: targets.ios.x: ..." when the line is known
            if sep and at.startswith("line ") and at[5:].isdigit():
                raise ctx.fail(data, None, rest, int(at[5:]))
            raise ctx.fail(data, None, problems[0])
    merged.setdefault("_file", ctx.file)
    rs.devices = merged


def _merge_catalog(rs: RuleSet, ctx: _Ctx, data: dict) -> None:
    allowed = {"kind", "schema", "aliases", "families", "variants", "external", "licenses"}
    for key in data:
        if key not in allowed:
            raise ctx.fail(data, None, f"unknown key {key!r} in catalog; allowed: {', '.join(sorted(allowed))}")
    cat = rs.catalog or {"aliases": {}, "families": [], "variants": [], "external": [], "licenses": {}}
    licenses = data.get("licenses", {})
    if not isinstance(licenses, dict) or not all(
        isinstance(k, str) and v in LICENSE_KINDS for k, v in licenses.items()
    ):
        raise ctx.fail(data, None, f"licenses must map licence ids to one of {', '.join(LICENSE_KINDS)}")
    known_licenses = {**cat.get("licenses", {}), **licenses}

    def check_license(entry: dict, who: str) -> None:
        lic = entry.get("license")
        if lic is None:
            return
        if set(lic) != {"code", "weights"} or not all(isinstance(v, str) for v in lic.values()):
            raise ctx.fail(entry, who, "license must be {code: <licence id>, weights: <licence id>}")
        for part, lid in lic.items():
            if lid not in known_licenses:
                hint = closest(lid, known_licenses)
                extra = f" (did you mean {hint!r}?)" if hint else ""
                raise ctx.fail(entry, who, f"license.{part} {lid!r} is not in the licenses table{extra}")

    families = ctx.section(data, "families", "families")
    variants = ctx.section(data, "variants", "variants")
    externals = ctx.section(data, "external", "external models")
    for fam in families:
        _check(ctx, fam, FAMILY_SCHEMA, "family", fam.get("name") if isinstance(fam.get("name"), str) else None)
        ctx.claim(fam, "family", fam["name"], "family")
        check_license(fam, fam["name"])
        if fam["kind"] not in ("cnn", "transformer", "hybrid"):
            raise ctx.fail(fam, fam["name"], f"kind must be cnn, transformer or hybrid, got {fam['kind']!r}")
        # the module names a file that `--measure` imports and `scaffold` copies: only shipped model files
        shipped = model_modules()
        if fam["module"] not in shipped:
            raise ctx.fail(
                fam,
                fam["name"],
                f"module {fam['module']!r} is not a model file shipped with archadvisor; one of {', '.join(sorted(shipped))}",
            )
    for var in variants:
        _check(ctx, var, VARIANT_SCHEMA, "variant", var.get("name") if isinstance(var.get("name"), str) else None)
        ctx.claim(var, "model", var["name"], "model name")
        if var["depth"] not in conditions.DEPTHS:
            raise ctx.fail(var, var["name"], f"depth must be one of {', '.join(conditions.DEPTHS)}")
        ref = var["reference"]
        if set(ref) != {"library", "name"} or ref["library"] not in ("timm", "torchvision", "none"):
            raise ctx.fail(var, var["name"], "reference must be {library: timm|torchvision|none, name: ...}")
        if var["params"] <= 0 or var["gmacs"] <= 0:
            raise ctx.fail(var, var["name"], "params and gmacs must be positive")
    for ext in externals:
        _check(
            ctx, ext, EXTERNAL_SCHEMA, "external model", ext.get("name") if isinstance(ext.get("name"), str) else None
        )
        ctx.claim(ext, "model", ext["name"], "model name")
        check_license(ext, ext["name"])
        if ext["task"] not in TASKS:
            raise ctx.fail(ext, ext["name"], f"unknown task {ext['task']!r}; one of {', '.join(TASKS)}")
        if "module" in ext and ext["module"] not in model_modules():
            shipped = ", ".join(sorted(model_modules()))
            raise ctx.fail(
                ext,
                ext["name"],
                f"module {ext['module']!r} is not a model file shipped with archadvisor; one of {shipped}",
            )
        if "ultralytics" in ext:
            from archadvisor.ultralytics_project import UltralyticsError, check_model_yaml

            try:
                check_model_yaml(ext["ultralytics"])
            except UltralyticsError as e:
                raise ctx.fail(ext, ext["name"], str(e).replace("generated.build", "ultralytics")) from None
        if ("build" in ext) != ("module" in ext):
            raise ctx.fail(ext, ext["name"], "module and build go together: the model file and the variant it builds")
    aliases = data.get("aliases", {})
    if not isinstance(aliases, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()):
        raise ctx.fail(data, None, "aliases must map names to catalog variant names")
    cat["families"] = _merge_by(cat["families"], families, "name")
    cat["variants"] = _merge_by(cat["variants"], variants, "name")
    cat["external"] = _merge_by(cat["external"], externals, "name")
    cat["aliases"] = {**cat["aliases"], **aliases}
    cat["licenses"] = known_licenses
    fams = {f["name"] for f in cat["families"]}
    for var in variants:
        if var["family"] not in fams:
            hint = closest(var["family"], fams)
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise ctx.fail(var, var["name"], f"unknown family {var['family']!r}{extra}")
    rs.catalog = cat
    for item in variants + externals:
        rs.files[item["name"]] = ctx.file


def _merge_tasks(rs: RuleSet, ctx: _Ctx, data: dict) -> None:
    for key in data:
        if key not in ("kind", "schema", "tasks"):
            raise ctx.fail(data, None, f"unknown key {key!r} in tasks file; allowed: kind, schema, tasks")
    for t in ctx.section(data, "tasks", "tasks"):
        _check(ctx, t, TASK_SCHEMA, "task", t.get("task") if isinstance(t.get("task"), str) else None)
        ctx.claim(t, "task", t["task"], "task")
        if t["task"] not in TASKS:
            raise ctx.fail(t, t["task"], f"unknown task {t['task']!r}; one of {', '.join(TASKS)}")
        if t["selector"] not in ("catalog", "tree", "table"):
            raise ctx.fail(t, t["task"], f"selector must be catalog, tree or table, got {t['selector']!r}")
        classes = t.get("default_classes")
        if t["task"] in CLASSLESS_TASKS and classes is not None:
            raise ctx.fail(t, t["task"], f"default_classes {classes!r} does not apply to {t['task']}: it has no "
                           "classes (leave it out or null)")  # fmt: skip
        if t["task"] not in CLASSLESS_TASKS and (classes is None or classes < 1):
            raise ctx.fail(t, t["task"], f"default_classes of {t['task']} must be an integer >= 1, got {classes!r}")
        t.setdefault("default_classes", None)
        rs.tasks[t["task"]] = t
        rs.files[f"task.{t['task']}"] = ctx.file


def _merge_selection(rs: RuleSet, ctx: _Ctx, data: dict) -> None:
    _check(ctx, data, SELECTION_SCHEMA, "selection file")
    task = data["task"]
    if task not in TASKS:
        raise ctx.fail(data, None, f"unknown task {task!r}; one of {', '.join(TASKS)}")
    for axis, weight in data["axes"].items():
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight <= 0:
            raise ctx.fail(data, None, f"axis {axis!r} needs a positive weight, got {weight!r}")
    for c in data.get("constraints", []):
        _check(ctx, c, CONSTRAINT_SCHEMA, "constraint")
        ctx.claim(c, "rule", c["id"])
        _check_cond(ctx, c, c["id"], phase="spec")
        when = c["when"]
        if c.get("require_small_input") and not (
            when.get("var") == "image_size" and when.get("op") in ("le", "lt") and type(when.get("value")) is int
        ):
            raise ctx.fail(c, c["id"], "require_small_input needs `when: {var: image_size, op: le, value: N}` "
                           "(N: the largest image side that gets a small-input stem)")  # fmt: skip
        rs.files[c["id"]] = ctx.file
    for r in data["rules"]:
        _check(ctx, r, RULE_SCHEMA, "rule")
        ctx.claim(r, "rule", r["id"])
        _check_cond(ctx, r, r["id"], phase="spec")
        if r["axis"] not in data["axes"]:
            hint = closest(r["axis"], data["axes"])
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise ctx.fail(r, r["id"], f"axis {r['axis']!r} is not declared in axes{extra}")
        if not r["prefer"]:
            raise ctx.fail(r, r["id"], "prefer needs at least one architecture")
        rs.files[r["id"]] = ctx.file
    base = rs.selections.get(task)
    if base is None:
        rs.selections[task] = {**data, "constraints": list(data.get("constraints", [])), "file": ctx.file}
    else:
        base["axes"] = {**base["axes"], **data["axes"]}
        base["family_credit"] = data.get("family_credit", base.get("family_credit", 0.0))
        base["constraints"] = _merge_by(base["constraints"], data.get("constraints", []), "id")
        base["rules"] = _merge_by(base["rules"], data["rules"], "id")


def _merge_deployment(rs: RuleSet, ctx: _Ctx, data: dict) -> None:
    for key in data:
        if key not in ("kind", "schema", "targets"):
            raise ctx.fail(data, None, f"unknown key {key!r} in deployment file; allowed: kind, schema, targets")
    for t in ctx.section(data, "targets", "deployment targets"):
        _check(ctx, t, TARGET_SCHEMA, "deployment target")
        ctx.claim(t, "rule", t["id"])
        ctx.claim(t, "target", t["target"], "deployment row for target")
        if t["target"] not in TARGETS:
            hint = closest(t["target"], TARGETS)
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise ctx.fail(t, t["id"], f"unknown target {t['target']!r}{extra}")
        _check_quantize(ctx, t, t["id"], t["quantize"])
        for r in t.get("refine", []):
            _check(ctx, r, REFINE_SCHEMA, "refine row")
            ctx.claim(r, "rule", r["id"])
            _check_cond(ctx, r, r["id"], phase="model")
            read = sorted(set(_cond_vars(r["when"])) - set(REFINE_VARS))
            if read:
                raise ctx.fail(r, r["id"], f"a refine condition may read {', '.join(REFINE_VARS)}; {read[0]!r} "
                               "is not known for every candidate model")  # fmt: skip
            for key, value in r["set"].items():
                if key not in REFINE_FIELDS:
                    hint = closest(key, REFINE_FIELDS)
                    extra = f" (did you mean {hint!r}?)" if hint else ""
                    raise ctx.fail(r, r["id"], f"refine cannot set {key!r}{extra}; it sets {', '.join(REFINE_FIELDS)}")
                if not isinstance(value, str) or not value.strip():
                    raise ctx.fail(r, r["id"], f"refine {key} must be a non-empty string, got {value!r}")
            if "quantize" in r["set"]:
                _check_quantize(ctx, r, r["id"], r["set"]["quantize"])
            rs.files[r["id"]] = ctx.file
        rs.targets[t["target"]] = t
        rs.files[t["id"]] = ctx.file


def _check_quantize(ctx: _Ctx, node: dict, rule_id: str, value: str) -> None:
    if value not in QUANTIZE_MODES:
        hint = closest(value, QUANTIZE_MODES)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise ctx.fail(node, rule_id, f"unknown quantize {value!r}{extra}; one of {', '.join(QUANTIZE_MODES)}")


def _cond_vars(cond: dict) -> list[str]:
    """The variables a validated condition reads."""
    for key in ("all", "any"):
        if key in cond:
            return [v for c in cond[key] for v in _cond_vars(c)]
    if "not" in cond:
        return _cond_vars(cond["not"])
    return [cond["var"]]


def _merge_recipes(rs: RuleSet, ctx: _Ctx, data: dict) -> None:
    for key in data:
        if key not in ("kind", "schema", "tables"):
            raise ctx.fail(data, None, f"unknown key {key!r} in recipes file; allowed: kind, schema, tables")
    for table in ctx.section(data, "tables", "recipe tables"):
        _check(
            ctx, table, TABLE_SCHEMA, "recipe table", table.get("name") if isinstance(table.get("name"), str) else None
        )
        ctx.claim(table, "table", table["name"], "recipe table")
        catch_all: str | None = None
        for row in table["rows"]:
            _check(ctx, row, ROW_SCHEMA, "table row")
            ctx.claim(row, "rule", row["id"])
            if catch_all is not None:
                raise ctx.fail(row, row["id"], f"unreachable: it comes after the catch-all row {catch_all!r}")
            if "when" in row:
                _check_cond(ctx, row, row["id"], phase="model")
            else:
                catch_all = row["id"]
            for fname, value in row["set"].items():
                if fname not in RECIPE_FIELDS:
                    hint = closest(str(fname), RECIPE_FIELDS)
                    extra = f" (did you mean {hint!r}?)" if hint else ""
                    raise ctx.fail(row, row["id"], f"unknown recipe field {fname!r}{extra}")
                if not _type_ok(value, RECIPE_FIELDS[fname]):
                    raise ctx.fail(row, row["id"], f"{fname!r} must be {RECIPE_FIELDS[fname]}, got {value!r}")
            rs.files[row["id"]] = ctx.file
        existing = next((t for t in rs.tables if t["name"] == table["name"]), None)
        if existing is None:
            rs.tables.append({**table, "rows": list(table["rows"])})
        else:
            rows = list(existing["rows"])
            ids = {r["id"]: i for i, r in enumerate(rows)}
            for row in table["rows"]:
                if row["id"] in ids:
                    rows[ids[row["id"]]] = row
                else:  # new rows go before the catch-all so they can be reached
                    at = len(rows) - 1 if rows and "when" not in rows[-1] and "when" in row else len(rows)
                    rows.insert(at, row)
            existing["rows"] = rows


def _cross_check(rs: RuleSet) -> None:
    cat = rs.catalog
    variants = {v["name"] for v in cat["variants"]}
    externals = {e["name"]: e for e in cat["external"]}
    for alias, target in cat["aliases"].items():  # a zoo variant, or a library model (tft)
        if target not in variants and target not in externals:
            raise RuleError(rs.files.get(target, "catalog"), None, alias, f"alias points at unknown variant {target!r}")

    def known(name: str, file: str, node: Any, rid: str, *, zoo_only: bool, task: str | None = None) -> None:
        # a zoo selector (classification) ranks the zoo and the task's own library models (external, same task)
        pool = (
            variants | {n for n, e in externals.items() if e["task"] == task} if zoo_only else variants | set(externals)
        )
        if name not in pool:
            hint = closest(name, pool)
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise RuleError(file, line_of(node), rid, f"unknown architecture {name!r}{extra}")

    for task, t in rs.tasks.items():
        for key in ("best", "alternative", "mobile"):
            for name in t[key]:
                known(name, rs.files[f"task.{task}"], t, task, zoo_only=False)
    for task, sel in rs.selections.items():
        zoo_only = rs.tasks.get(task, {}).get("selector") == "catalog"
        for r in sel["rules"]:
            for name in r["prefer"]:
                known(name, rs.files[r["id"]], r, r["id"], zoo_only=zoo_only, task=task)
    for t in rs.targets.values():
        for name in t["prefer"]:
            known(name, rs.files[t["id"]], t, t["id"], zoo_only=True)
    missing = [t for t in TASKS if t not in rs.tasks]
    if missing:
        raise RuleError(str(rules_dir()), None, None, f"the tasks table lacks {', '.join(missing)}")
    missing = [t for t in TARGETS if t not in rs.targets]
    if missing:
        raise RuleError(str(rules_dir()), None, None, f"the deployment matrix lacks {', '.join(missing)}")
    # the devices profiles were checked as each file was merged (_merge_devices)
