"""Every rule says where its value comes from, and nothing cites a file its reader does not have.

- each ``because`` in the built-in rules names a primary source a reader can find: a paper (an arXiv id,
  or authors and year), a library default or reference script (torchvision references, timm, ultralytics
  default.yaml, the HF Trainer, torch.optim ...), or a measurement kept in this repository
  (rules/catalog.yaml, bench/). Where a value is the guide's own choice the text says so and names the
  closest published recipe. Pass-through rows (``set: {}``) set nothing, so they have nothing to cite;
- no file shipped with the tool (archadvisor/, rules/, templates/) points at the design notes or the
  reference files the tool was built from, which its users do not have.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from archadvisor.resources import rules_dir

ROOT = Path(__file__).resolve().parents[1]

ARXIV = r"arXiv:\d{4}\.\d{4,5}"
AUTHORS_YEAR = r"\bet al\.|\b[A-Z][A-Za-z-]+( & [A-Z][A-Za-z-]+)? (19|20)\d\d\b"
LIBRARIES = (
    "torchvision",
    "timm",
    "ultralytics",
    "torch.optim",
    "torch.autocast",
    "HF Trainer",
    "onnxruntime",
    "TensorRT",
    "trtexec",
    "coremltools",
    "TFLite",
    "tensorflow/tpu",
    "super-gradients",
)
MEASURED = r"rules/catalog\.yaml|bench/\w+\.py"
SOURCE = re.compile("|".join([ARXIV, AUTHORS_YEAR, MEASURED, *(re.escape(name) for name in LIBRARIES)]))

# Names of files that exist only where the tool was written, never where it is used.
UNREADABLE = re.compile(r"DESIGN\.md|guide_deviations|architect-guide|shared/reference")


def _rows(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping with a ``because`` in a parsed rule file, at any depth."""
    if isinstance(node, dict):
        if "because" in node:
            yield node
        for value in node.values():
            yield from _rows(value)
    elif isinstance(node, list):
        for value in node:
            yield from _rows(value)


def _because_rows() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(rules_dir().glob("*.yaml")):
        out += [(f"{path.name}:{row.get('id')}", row) for row in _rows(yaml.safe_load(path.read_text("utf-8")))]
    return out


ROWS = _because_rows()


def test_the_built_in_rules_have_reasons_to_check() -> None:
    assert len(ROWS) >= 100, len(ROWS)
    assert len({name for name, _ in ROWS}) == len(ROWS), "rule ids repeat"


@pytest.mark.parametrize("name,row", ROWS, ids=[name for name, _ in ROWS])
def test_every_because_names_a_primary_source(name: str, row: dict[str, Any]) -> None:
    because = row["because"]
    assert isinstance(because, str) and because.strip(), name
    assert "\n" not in because and "#" not in because, f"{name}: keep the reason to one plain line"
    assert not UNREADABLE.search(because), f"{name}: cites a file its reader does not have: {because}"
    assert not UNREADABLE.search(str(row.get("guide", ""))), f"{name}: guide field names a file: {row['guide']}"
    if row.get("set") == {}:
        return  # a pass-through row sets nothing: the value comes from an earlier table's row
    assert SOURCE.search(because), f"{name}: names no paper, library default or measurement: {because}"


def _shipped_files() -> Iterator[Path]:
    for top in ("archadvisor", "rules", "templates"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".png"}:
                yield path


def test_no_shipped_file_cites_a_document_its_reader_does_not_have() -> None:
    offenders = []
    for path in _shipped_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if UNREADABLE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
