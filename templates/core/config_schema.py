"""Reading config.yaml: every key known, every value of the right type and range, before anything runs.

    cfg = load_config(Path("config.yaml"), overrides={"training.lr": 0.01})

The file is parsed with a loader that refuses duplicate keys (plain PyYAML keeps the last one silently) and
reads ``1e-3`` as a number (YAML 1.1 wants ``1.0e-3``); then the ``--set`` / flag overrides are applied and the
result is checked against the schema: an unknown key (with the closest known one), a missing key, a wrong type or
an out-of-range value is one ``ConfigError`` naming the key, the value and what is expected.

The schema is the core's sections (training, export, run: CORE_SCHEMA) merged with the task part's
``task_schema.CONFIG_SCHEMA`` (its model and data sections, its augmentation, the training keys only it
reads). A task part adds a key by adding it there; the core never lists a task's keys. This module imports
neither torch nor the task's code, so it can be checked on its own.
"""

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from errors import ProjectError

SCHEDULES = ("cosine", "poly", "multistep", "linear", "constant")
OPTIMIZERS = ("sgd", "adamw")


class ConfigError(ProjectError):
    """config.yaml (or an override) has an unknown key or a value train.py cannot use. The message stays one
    line whatever the file held: a newline in a key would otherwise split it."""

    def __init__(self, message: str) -> None:
        super().__init__("".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in message))


# --- parsing: no duplicate keys, 1e-3 is a number ------------------------------------------------------------


class ConfigLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping and reads ``1e-3`` / ``5E+2`` as floats."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} is not a name")
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: key {key!r} is given twice in one section")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 floats without a dot (1e-3, 2E5): YAML 1.1, PyYAML's dialect, reads them as strings
ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)
ConfigLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, ConfigLoader.construct_mapping)


def parse(text: str, where: str) -> Any:
    """A YAML document (config.yaml, a --set value); a syntax error or a duplicate key is a ConfigError."""
    try:
        return yaml.load(text, Loader=ConfigLoader)  # a SafeLoader subclass
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise ConfigError(f"{where}: not valid YAML{at} ({problem})") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply") from None


# --- the schema: what each key may hold ------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """What one config value must be: ``check`` says whether a value qualifies, ``expected`` says it in words."""

    expected: str
    check: Callable[[Any], bool]
    optional: bool = False  # may be left out (the recipe had nothing to say there)


def optional(key: "Key | Schema") -> "Key | Schema":
    """A key (or a whole section) config.yaml may leave out: the recipe sets it only where it applies."""
    if isinstance(key, Key):
        return Key(key.expected, key.check, optional=True)
    return {**key, OPTIONAL_SECTION: Key("", lambda v: True, optional=True)}


OPTIONAL_SECTION = "__optional__"  # marks a section mapping as optional (never a config key)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def number(*, above: float | None = None, least: float | None = None, most: float | None = None,
           below: float | None = None, null: bool = False) -> Key:  # fmt: skip
    """A finite int or float within the bounds (``above``/``below`` exclusive, ``least``/``most`` inclusive)."""
    bounds = [f"> {above:g}" if above is not None else "", f">= {least:g}" if least is not None else "",
              f"<= {most:g}" if most is not None else "", f"< {below:g}" if below is not None else ""]  # fmt: skip
    words = " and ".join(b for b in bounds if b)
    words = "a finite number" + (f" {words}" if words else "")

    def check(v: Any) -> bool:
        if v is None:
            return null
        return (
            _is_number(v)
            and math.isfinite(v)
            and (above is None or v > above)
            and (least is None or v >= least)
            and (most is None or v <= most)
            and (below is None or v < below)
        )

    return Key(words + (" or null" if null else ""), check)


def integer(*, least: int | None = None, most: int | None = None, null: bool = False) -> Key:
    if least is not None and most is not None:
        words = f"an integer from {least} to {most}"
    else:
        words = (
            "an integer" + (f" >= {least}" if least is not None else "") + (f" <= {most}" if most is not None else "")
        )

    def check(v: Any) -> bool:
        if v is None:
            return null
        return (
            isinstance(v, int)
            and not isinstance(v, bool)
            and (least is None or v >= least)
            and (most is None or v <= most)
        )

    return Key(words + (" or null" if null else ""), check)


def boolean(*, null: bool = False) -> Key:
    return Key("true or false" + (" or null" if null else ""), lambda v: isinstance(v, bool) or (null and v is None))


def choice(*values: Any) -> Key:
    """One of ``values`` (``1`` is not ``true``, nor ``"1"`` 1)."""
    return Key(
        "one of " + ", ".join("null" if v is None else str(v) for v in values),
        lambda v: any(v == x and type(v) is type(x) for x in values),
    )


def text(*, null: bool = False) -> Key:
    return Key("a string" + (" or null" if null else ""), lambda v: isinstance(v, str) or (null and v is None))


def either(*keys: Key) -> Key:
    return Key(" or ".join(k.expected for k in keys), lambda v: any(k.check(v) for k in keys))


def list_of(item: Key, *, length: int | None = None, null: bool = False) -> Key:
    size = f"{length} " if length is not None else ""
    words = f"a list of {size}values, each {item.expected}" + (" (or null)" if null else "")

    def check(v: Any) -> bool:
        if v is None:
            return null
        return isinstance(v, list) and (length is None or len(v) == length) and all(item.check(x) for x in v)

    return Key(words, check)


Schema = Mapping[str, "Key | Schema"]

CORE_SCHEMA: Schema = {
    "training": {
        "epochs": integer(least=1),
        "monitor": {"metric": text(), "mode": choice("min", "max")},
        "optimizer": {
            "name": choice(*OPTIMIZERS),
            "momentum": number(least=0, below=1, null=True),
            "nesterov": boolean(null=True),
            "betas": list_of(number(least=0, below=1), length=2, null=True),
        },
        "lr": number(above=0),
        "min_lr": number(least=0),
        "weight_decay": number(least=0),
        "schedule": choice(*SCHEDULES),
        "poly_power": optional(number(above=0)),
        "milestones": optional(list_of(integer(least=0))),
        "warmup_epochs": integer(least=0),
        "warmup_steps": optional(integer(least=0)),
        "grad_accum_steps": integer(least=1),
        "grad_clip_norm": number(above=0, null=True),
        "ema_decay": optional(number(above=0, below=1, null=True)),
        "early_stopping_patience": integer(least=1, null=True),
        "amp": boolean(),
        "channels_last": boolean(),
        "freeze": optional({"mode": choice("none", "head-only", "progressive"), "epochs": integer(least=0)}),
    },
    "export": {
        "target": text(),
        "format": text(),
        "runtime": text(),
        "precision": choice("fp32", "fp16", "int8"),
        "quantize": choice("none", "int8-dynamic", "int8-static", "int8-weights"),
        "opset": integer(least=7),
        "dynamo": boolean(null=True),
        "expected_latency_ms": number(least=0, null=True),
    },
    "run": {"seed": integer(least=0, most=2**32 - 1), "deterministic": boolean(), "out": text()},
}


def merge(core: Schema, part: Schema) -> Schema:
    """The core's schema with a task part's sections and keys added (a key both define is a programming error)."""
    merged = dict(core)
    for key, value in part.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(merged[key], Mapping) and isinstance(value, Mapping):
            merged[key] = merge(merged[key], value)
        else:
            raise TypeError(f"task_schema.CONFIG_SCHEMA redefines the core's config key {key!r}")
    return merged


@cache
def schema() -> Schema:
    """Every key config.yaml has: the core's and the task part's ``task_schema.CONFIG_SCHEMA`` (imported here,
    not at the top: the task's schema is built from the helpers above)."""
    from task_schema import CONFIG_SCHEMA

    return merge(CORE_SCHEMA, CONFIG_SCHEMA)


# --- checking ---------------------------------------------------------------------------------------------


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def validate(cfg: Any, where: str = "config.yaml", keys: Schema | None = None, prefix: str = "") -> dict[str, Any]:
    """``cfg`` itself when it matches the schema (or ``keys``, a section of it); else a ConfigError naming the
    first key that does not."""
    known = keys if keys is not None else schema()
    if not isinstance(cfg, dict) or (not cfg and not prefix):
        what = "empty" if cfg is None or cfg == {} else f"{type(cfg).__name__} {_shown(cfg)}"
        name = f"{prefix.rstrip('.')}" if prefix else "the file"
        names = ", ".join(k for k in known if k != OPTIONAL_SECTION)
        raise ConfigError(f"{where}: {name} is {what}; expected a mapping with the keys {names}")
    for key in cfg:
        if key not in known or key == OPTIONAL_SECTION:
            close = difflib.get_close_matches(str(key), [k for k in known if k != OPTIONAL_SECTION], n=1)
            names = ", ".join(k for k in known if k != OPTIONAL_SECTION)
            hint = f" (did you mean {prefix}{close[0]}?)" if close else f"; known here: {names}"
            raise ConfigError(f"{where}: unknown key {prefix}{key}{hint}")
    for key, spec in known.items():
        name = prefix + key
        if key == OPTIONAL_SECTION:
            continue
        if key not in cfg:
            if (isinstance(spec, Key) and spec.optional) or (not isinstance(spec, Key) and OPTIONAL_SECTION in spec):
                continue
            expected = spec.expected if isinstance(spec, Key) else "a section"
            raise ConfigError(f"{where}: {name} is missing (expected {expected})")
        value = cfg[key]
        if isinstance(spec, Key):
            if not spec.check(value):
                raise ConfigError(f"{where}: {name} is {_shown(value)}; expected {spec.expected}")
        else:
            validate(value, where, spec, f"{name}.")
    if not prefix:
        check_relations(cfg, where)
    return cfg


def check_relations(cfg: dict[str, Any], where: str) -> None:
    """What no single key can say: values that must agree with each other."""
    t = cfg["training"]
    if t["min_lr"] > t["lr"]:
        raise ConfigError(f"{where}: training.min_lr {t['min_lr']!r} is above training.lr {t['lr']!r}")


# --- loading, with overrides ---------------------------------------------------------------------------------


def set_value(cfg: dict[str, Any], dotted: str, value: Any, where: str = "--set") -> None:
    """Set ``section.key``; the key must exist (an unknown one is named, with the closest match)."""
    *parents, leaf = dotted.split(".")
    node, spec = cfg, schema()
    for i, key in enumerate([*parents, leaf]):
        known = [k for k in spec if k != OPTIONAL_SECTION] if isinstance(spec, Mapping) else []
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            path = [*parents, leaf]
            hint = f" (did you mean {'.'.join(path[:i] + close + path[i + 1 :])}?)" if close else ""
            raise ConfigError(f"{where}: unknown config key {dotted!r}{hint}")
        spec = spec[key]
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[leaf] = value


def parse_override(item: str) -> tuple[str, Any]:
    """``--set KEY=VALUE``: the key and the value read as YAML (``lr=1e-3`` is a number, ``x=[1, 2]`` a list)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
    return key.strip(), parse(value, f"--set {key.strip()}")


def load_config(path: Path, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """config.yaml with ``overrides`` (dotted key -> value) applied, checked against the schema."""
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the config {path}: {getattr(e, 'strerror', None) or e}") from None
    cfg = parse(source, str(path))
    if not isinstance(cfg, dict) or not cfg:
        validate(cfg, where=str(path))  # raises: empty, or not a mapping
    for key, value in (overrides or {}).items():
        set_value(cfg, key, value)
    return validate(cfg, where=str(path))


DEVICE = re.compile(r"^(auto|cpu|cuda(:[0-9]+)?|mps)$")


def check_device(device: str) -> str:
    """--device: auto, cpu, cuda or cuda:N (mps on Apple silicon)."""
    if not DEVICE.match(device):
        raise ConfigError(f"--device {device!r}: expected auto, cpu, cuda or cuda:N")
    return device
