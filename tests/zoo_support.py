"""Shared helpers for the model-zoo tests: the catalog as data and the reference implementations."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from archadvisor.resources import load_model_module, rules_dir


@cache
def catalog() -> dict[str, Any]:
    with open(rules_dir() / "catalog.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def families() -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in catalog()["families"]}


def variants() -> list[dict[str, Any]]:
    return catalog()["variants"]


def module_of(variant: dict[str, Any]) -> str:
    return families()[variant["family"]]["module"]


@cache
def family_module(module: str):
    return load_model_module(module)


def build(variant: dict[str, Any], **kw):
    return family_module(module_of(variant)).build_model(variant["name"], **kw)


def build_reference(variant: dict[str, Any], num_classes: int = 1000):
    """The reference implementation with random weights (never downloads anything)."""
    ref = variant["reference"]
    if ref["library"] == "torchvision":
        import torchvision

        return torchvision.models.get_model(ref["name"], weights=None, num_classes=num_classes)
    if ref["library"] == "timm":
        import timm

        return timm.create_model(ref["name"], pretrained=False, num_classes=num_classes)
    return None


def smallest_per_family() -> list[dict[str, Any]]:
    """The variant with the fewest parameters in each family (for the numerical and forward tests)."""
    best: dict[str, dict[str, Any]] = {}
    for v in variants():
        if v["family"] not in best or v["params"] < best[v["family"]]["params"]:
            best[v["family"]] = v
    return list(best.values())
