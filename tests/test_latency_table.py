"""The cloud-cpu latency estimates against measurements of `archadvisor profile` committed in
bench/results/cpu_latency.json (bench/cpu_latency_table.py measures and refits them). No timing here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archadvisor.catalog import Catalog
from archadvisor.latency import estimate_latency_ms
from archadvisor.ruleset import load_rules

TABLE = json.loads((Path(__file__).parents[1] / "bench" / "results" / "cpu_latency.json").read_text(encoding="utf-8"))
CATALOG = Catalog(load_rules())


def test_the_table_covers_the_smallest_variant_of_every_family_at_each_size():
    smallest = {}
    for v in CATALOG.variants:
        if v.family not in smallest or v.params < smallest[v.family].params:
            smallest[v.family] = v
    measured = {(r["model"], r["image_size"]) for r in TABLE["rows"]}
    for v in smallest.values():
        sizes = (32, 64, 224) if v.small_input else (64, 224)
        assert {(v.name, s) for s in sizes} <= measured, v.name


@pytest.mark.parametrize("row", TABLE["rows"], ids=[f"{r['model']}@{r['image_size']}" for r in TABLE["rows"]])
def test_estimate_is_within_2x_of_the_measurement(row):
    variant = CATALOG.get(row["model"])
    est = estimate_latency_ms(variant, "cloud-cpu", row["image_size"], small_input=row["small_input"])
    assert est.measured is False and "estimate" in est.basis
    ratio = est.ms / row["median_ms"]
    assert 0.5 <= ratio <= 2.0, (
        f"{row['model']} at {row['image_size']} px: estimate {est.ms:.2f} ms vs {row['median_ms']} ms"
    )


def test_a_tiny_model_is_not_dominated_by_a_constant():
    """The old fit put a 23 ms floor under every cloud-cpu estimate; simple_cnn at 32 px runs in ~1 ms."""
    est = estimate_latency_ms(CATALOG.get("simple_cnn"), "cloud-cpu", 32, small_input=True)
    assert est.ms < 5
