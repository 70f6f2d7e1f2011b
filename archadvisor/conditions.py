"""Declarative conditions: ``all``/``any``/``not`` of ``{var, op, value}`` leaves.

Rule files are untrusted data. A condition can only compare a whitelisted, typed variable with a
literal through an operator from a fixed table; nothing is ever evaluated as code.
"""

import operator
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from archadvisor.errors import closest
from archadvisor.vocab import COMPUTE, DEPTHS, MODEL_KINDS, OBJECT_SIZES, TARGETS, TASKS


class Var(NamedTuple):  # a NamedTuple, not a dataclass: cheaper to define at start-up
    """A variable rules may test: its type, its allowed values (enums) and whether it may be null."""

    type: str  # "int" | "number" | "bool" | "enum" | "str"
    choices: tuple[str, ...] = ()
    nullable: bool = False
    phase: str = "spec"  # "spec": known from the inputs; "model": known once an architecture is chosen
    doc: str = ""


VARIABLES: dict[str, Var] = {
    "task": Var("enum", TASKS, doc="what is learned"),
    "images": Var("int", doc="labelled training examples"),
    "classes": Var("int", nullable=True, doc="number of classes (unset for forecasting, generation, speech)"),
    "image_size": Var("int", nullable=True, doc="input resolution in pixels (unset for non-image tasks)"),
    "compute": Var("enum", COMPUTE, doc="training budget"),
    "gpus": Var("int", doc="GPUs for training"),
    "gpu_memory_gb": Var("number", nullable=True, doc="memory per GPU"),
    "latency_ms": Var("number", nullable=True, doc="inference budget per image on the target"),
    "target": Var("enum", TARGETS, doc="where the model runs"),
    "pretrained": Var("bool", doc="ImageNet/COCO weights may be used"),
    "hflip": Var("bool", nullable=True, doc="a mirrored image keeps its class (unset for non-image tasks)"),
    "permissive": Var("bool", doc="only permissively licensed models (--permissive)"),
    "object_size": Var("enum", OBJECT_SIZES, nullable=True, doc="detection: object size"),
    "arch_forced": Var("bool", doc="--arch was given"),
    "horizon": Var("int", nullable=True, doc="forecasting: steps to predict"),
    "lookback": Var("int", nullable=True, doc="forecasting: steps of history"),
    "frequency": Var("str", nullable=True, doc="forecasting: canonical sampling frequency (h, D, W, ME ...)"),
    "series": Var("int", nullable=True, doc="forecasting: number of series"),
    "channels": Var("int", nullable=True, doc="sequences: variables per step"),
    "length": Var("int", nullable=True, doc="sequences: steps (tokens for text) per example"),
    # known once an architecture is chosen (recipe tables)
    "arch": Var("str", phase="model", doc="the chosen variant"),
    "family": Var("str", phase="model", doc="the chosen family"),
    "kind": Var("enum", MODEL_KINDS, phase="model", doc="cnn | transformer | hybrid | external"),
    "params_m": Var("number", phase="model", doc="parameters, millions"),
    "gmacs": Var("number", phase="model", doc="GMACs at the catalog input size"),
    "depth": Var("enum", DEPTHS, phase="model", doc="shallow | medium | deep"),
    "fine_tune": Var("bool", phase="model", doc="starting from pretrained weights"),
    "small_input": Var("bool", phase="model", doc="the model uses a small-image stem"),
}


def _between(a: Any, b: Any) -> bool:
    lo, hi = b
    return lo <= a < hi


# op -> (function, what the value must be)
OPERATORS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "eq": (operator.eq, "scalar"),
    "ne": (operator.ne, "scalar"),
    "lt": (operator.lt, "number"),
    "le": (operator.le, "number"),
    "gt": (operator.gt, "number"),
    "ge": (operator.ge, "number"),
    "in": (lambda a, b: a in b, "list"),
    "not_in": (lambda a, b: a not in b, "list"),
    "between": (_between, "range"),  # lo <= x < hi
    "is_null": (lambda a, b: (a is None) == bool(b), "bool"),
}


class ConditionError(ValueError):
    """A malformed condition; ``line`` points into the rule file when known."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


def _line(node: Any) -> int | None:
    return getattr(node, "line", None)


def _check_scalar(var: str, spec: Var, value: Any, line: int | None) -> None:
    if value is None:
        if not spec.nullable:
            raise ConditionError(f"variable {var!r} is never null", line)
        return
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "enum": isinstance(value, str),
        "str": isinstance(value, str),
    }[spec.type]
    if not ok:
        raise ConditionError(f"variable {var!r} is {spec.type}, got {value!r}", line)
    if spec.type == "enum" and value not in spec.choices:
        hint = closest(value, spec.choices)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise ConditionError(f"{value!r} is not a value of {var!r}: one of {', '.join(spec.choices)}{extra}", line)


MAX_DEPTH = 32  # all/any/not nested deeper than this is refused (no rule needs more than a few)
MAX_NODES = 1_000  # combinators and leaves in one condition


def validate(cond: Any, *, phase: str = "model", line: int | None = None, _seen: list[int] | None = None) -> None:
    """Raise ConditionError unless ``cond`` is a well-formed condition over known variables.

    Bounded: at most MAX_DEPTH levels of all/any/not and MAX_NODES nodes (so validation never recurses
    out of the stack, however the file nests)."""
    seen = [0, 0] if _seen is None else _seen  # [nodes so far, current depth]
    line = _line(cond) or line
    seen[0] += 1
    if seen[0] > MAX_NODES:
        raise ConditionError(f"condition has more than {MAX_NODES} nodes (the limit)", line)
    if seen[1] > MAX_DEPTH:
        raise ConditionError(f"condition nested deeper than {MAX_DEPTH} levels of all/any/not (the limit)", line)
    if not isinstance(cond, Mapping):
        raise ConditionError(f"a condition must be a mapping, got {type(cond).__name__}", line)
    combinators = [k for k in ("all", "any", "not") if k in cond]
    if combinators:
        if len(cond) != 1:
            raise ConditionError(f"{combinators[0]!r} must stand alone, found keys {sorted(map(str, cond))}", line)
        key = combinators[0]
        seen[1] += 1
        try:
            if key == "not":
                validate(cond["not"], phase=phase, line=line, _seen=seen)
                return
            items = cond[key]
            if not isinstance(items, list) or not items:
                raise ConditionError(f"{key!r} needs a non-empty list of conditions", line)
            for item in items:
                validate(item, phase=phase, line=line, _seen=seen)
        finally:
            seen[1] -= 1
        return
    unknown = set(cond) - {"var", "op", "value"}
    if unknown:
        raise ConditionError(
            f"unknown key(s) in condition: {sorted(map(str, unknown))}; expected var, op, value or all/any/not", line
        )
    for key in ("var", "op", "value"):
        if key not in cond:
            raise ConditionError(f"condition is missing {key!r}", line)
    var, op, value = cond["var"], cond["op"], cond["value"]
    if not isinstance(var, str):
        raise ConditionError(f"'var' must be a variable name, got {var!r}; one of {', '.join(VARIABLES)}", line)
    if not isinstance(op, str):
        raise ConditionError(f"'op' must be an operator name, got {op!r}; valid: {', '.join(OPERATORS)}", line)
    if var not in VARIABLES:
        hint = closest(str(var), VARIABLES)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise ConditionError(f"unknown variable {var!r}{extra}", line)
    spec = VARIABLES[var]
    if phase == "spec" and spec.phase == "model":
        raise ConditionError(f"variable {var!r} is only known after the architecture is chosen", line)
    if op not in OPERATORS:
        hint = closest(str(op), OPERATORS)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise ConditionError(f"unknown operator {op!r}{extra}; valid: {', '.join(OPERATORS)}", line)
    kind = OPERATORS[op][1]
    if kind == "number":
        if spec.type not in ("int", "number"):
            raise ConditionError(f"operator {op!r} needs a numeric variable, {var!r} is {spec.type}", line)
        _check_scalar(var, Var("number"), value, line)
    elif kind == "list":
        if not isinstance(value, list) or not value:
            raise ConditionError(f"operator {op!r} needs a non-empty list value", line)
        for v in value:
            _check_scalar(var, spec, v, line)
    elif kind == "range":
        if spec.type not in ("int", "number"):
            raise ConditionError(f"operator {op!r} needs a numeric variable, {var!r} is {spec.type}", line)
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        ):
            raise ConditionError("operator 'between' needs [low, high] numbers", line)
        if value[0] >= value[1]:
            raise ConditionError(f"empty range {value}: low must be below high", line)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ConditionError("operator 'is_null' needs true or false", line)
    else:
        _check_scalar(var, spec, value, line)


def evaluate(cond: Mapping[str, Any], env: Mapping[str, Any]) -> bool:
    """Evaluate a validated condition against the variables in ``env``.

    A comparison with a null variable (e.g. ``latency_ms lt 10`` with no budget) is false.
    """
    if "all" in cond:
        return all(evaluate(c, env) for c in cond["all"])
    if "any" in cond:
        return any(evaluate(c, env) for c in cond["any"])
    if "not" in cond:
        return not evaluate(cond["not"], env)
    fn, kind = OPERATORS[cond["op"]]
    actual = env.get(cond["var"])
    if actual is None and kind != "bool" and cond["op"] not in ("eq", "ne"):
        return False
    return bool(fn(actual, cond["value"]))


def describe(cond: Mapping[str, Any], env: Mapping[str, Any] | None = None) -> str:
    """A readable rendering, e.g. ``images < 10000 (is 8000)``."""
    symbols = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "in": "in", "not_in": "not in"}
    if "all" in cond:
        return " and ".join(describe(c, env) for c in cond["all"])
    if "any" in cond:
        return "(" + " or ".join(describe(c, env) for c in cond["any"]) + ")"
    if "not" in cond:
        return f"not ({describe(cond['not'], env)})"
    var, op, value = cond["var"], cond["op"], cond["value"]
    if op == "between":
        text = f"{value[0]} <= {var} < {value[1]}"
    elif op == "is_null":
        text = f"{var} unset" if value else f"{var} set"
    else:
        text = f"{var} {symbols[op]} {value}"
    if env is not None and var in env:
        text += f" (is {env[var]})"
    return text
