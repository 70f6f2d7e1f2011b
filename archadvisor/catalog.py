"""The architecture catalog as typed values: zoo variants (buildable) and external models."""

from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

from archadvisor.errors import InputError
from archadvisor.ruleset import RuleSet, load_rules


class License(NamedTuple):
    """A model's code and weights licences and what they allow (the worse of the two that are used)."""

    code: str
    weights: str
    code_kind: str
    weights_kind: str

    def kind(self, *, weights_used: bool) -> str:
        """The binding kind: the code's, and the weights' when pretrained weights are used."""
        kinds = [self.code_kind] + ([self.weights_kind] if weights_used else [])
        order = ("proprietary", "non-commercial", "gated", "copyleft", "use-restricted", "other", "permissive", "none")
        return min(kinds, key=order.index)


UNKNOWN_LICENSE = License("unknown", "unknown", "other", "other")


class Variant(NamedTuple):  # NamedTuples, not dataclasses: cheaper to define at start-up (recommendation.py)
    """One model of the zoo, with its reference facts (rules/catalog.yaml)."""

    name: str
    family: str
    module: str
    kind: str  # cnn | transformer | hybrid
    depth: str  # shallow | medium | deep
    params: int
    head_features: int  # the classifier's input width
    gmacs: float
    input_size: int
    imagenet_top1: float | None
    top1_source: str
    cpu_latency_ms: float | None
    reference_library: str
    reference_name: str
    license: License  # of our model code and of the reference weights
    small_input: bool  # the family supports small_input=True
    scaffold: bool
    paper: str
    structure: str

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    def params_m_for(self, num_classes: int) -> float:
        """Parameters (millions) with a ``num_classes``-way head instead of ImageNet's 1000."""
        return (self.params + (self.head_features + 1) * (num_classes - 1000)) / 1e6

    @property
    def reference(self) -> str:
        return f"{self.reference_library} {self.reference_name}" if self.reference_library != "none" else "none"

    def gmacs_at(self, image_size: int, small_input: bool = False) -> float:
        """GMACs at another resolution: compute scales with the number of pixels for these models.

        A small-input stem (total stride 8 instead of 32) sees a 4x larger map at every stage, so it
        costs what the ImageNet stem costs on a 4x larger image (16x the pixels).
        """
        scale = (image_size / self.input_size) ** 2
        if small_input and self.family != "SimpleCNN":
            scale *= 16
        return self.gmacs * scale


class External(NamedTuple):
    """A model outside the zoo (detection, language, speech ...): advice only, no scaffold."""

    name: str
    task: str
    provider: str
    params_m: float | None
    metric: str
    source: str
    hosted: bool = False  # a hosted API: nothing to deploy on your own target, no latency you control
    license: License | None = None
    module: str | None = None  # the shipped model file a project of this model is generated from
    build: str | None = None  # the variant name that file's build_model takes
    gmacs: float | None = None  # at input_size, for latency estimates
    input_size: int | None = None
    arch_kind: str | None = None  # cnn | transformer | hybrid: the device profile's kind factor
    ultralytics: str | None = None  # the ultralytics model YAML (yolo11n.yaml) an ultralytics project trains from
    imagenet_top1: float | None = None  # classification models: the published top-1 (the selector's tie-break)

    @property
    def params(self) -> int:
        return int((self.params_m or 0) * 1e6)

    @property
    def small_input(self) -> bool:
        return False

    @property
    def cpu_latency_ms(self) -> None:
        return None

    @property
    def kind(self) -> str:
        return self.arch_kind or "cnn"

    def gmacs_at(self, image_size: int, small_input: bool = False) -> float:
        return float(self.gmacs or 0.0) * (image_size / (self.input_size or image_size)) ** 2

    @property
    def generatable(self) -> bool:
        return self.module is not None


class Catalog:
    """Lookup by name or alias; unknown names fail with the closest match."""

    def __init__(self, rules: RuleSet):
        data = rules.catalog
        families = {f["name"]: f for f in data["families"]}
        kinds = data.get("licenses", {})

        def license_of(entry: dict[str, Any]) -> License:
            lic = entry.get("license")
            if not lic:
                return UNKNOWN_LICENSE
            return License(
                lic["code"], lic["weights"], kinds.get(lic["code"], "other"), kinds.get(lic["weights"], "other")
            )

        self.families: dict[str, dict[str, Any]] = families
        self.variants: list[Variant] = []
        for v in data["variants"]:
            fam = families[v["family"]]
            self.variants.append(
                Variant(
                    name=v["name"],
                    family=v["family"],
                    module=fam["module"],
                    kind=fam["kind"],
                    depth=v["depth"],
                    params=v["params"],
                    head_features=v["head_features"],
                    gmacs=float(v["gmacs"]),
                    input_size=v["input_size"],
                    imagenet_top1=v["imagenet_top1"],
                    top1_source=v["top1_source"],
                    cpu_latency_ms=v["cpu_latency_ms"],
                    reference_library=v["reference"]["library"],
                    reference_name=v["reference"]["name"],
                    license=license_of(fam),
                    small_input=fam["small_input"],
                    scaffold=fam["scaffold"],
                    paper=fam["paper"],
                    structure=fam["structure"],
                )
            )
        self.external: list[External] = [
            External(**{**{k: v for k, v in e.items() if k != "license"}, "license": license_of(e)})
            for e in data["external"]
        ]
        self._by_name = {v.name: v for v in self.variants}
        # other spellings of zoo variants (torchvision / timm names), and short names of the per-task tables'
        # library models (tft: temporal_fusion_transformer)
        self.aliases: dict[str, str] = {a: t for a, t in data["aliases"].items() if t in self._by_name}
        self.library_aliases: dict[str, str] = {a: t for a, t in data["aliases"].items() if t not in self._by_name}
        self._ext_by_name = {e.name: e for e in self.external}

    def names(self) -> list[str]:
        return [v.name for v in self.variants]

    def get(self, name: str) -> Variant | None:
        return self._by_name.get(self.aliases.get(name, name))

    def external_model(self, name: str) -> External | None:
        """The library model called ``name`` or an alias of it (``tft``: temporal_fusion_transformer)."""
        return self._ext_by_name.get(self.library_aliases.get(name, name))

    def canonical(self, name: str) -> str:
        """``name`` with an alias replaced by the name it stands for."""
        return self.aliases.get(name) or self.library_aliases.get(name, name)

    def resolve(self, name: str, flag: str = "--arch") -> Variant:
        """The variant called ``name`` (or an alias of it); InputError with a suggestion otherwise."""
        found = self.get(name)
        if found is None:
            raise InputError(flag, name, self.names() + sorted(self.aliases))
        return found

    def in_family(self, family: str) -> list[Variant]:
        return [v for v in self.variants if v.family == family]


def load_catalog(extra_rules: Iterable[Path] = ()) -> Catalog:
    """The catalog from the built-in rules plus any ``--rules`` directories."""
    return Catalog(load_rules(extra_rules))
