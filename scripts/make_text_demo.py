"""Rebuild templates/tasks/text/demo/{train,val}.csv from Debian's ``fortunes`` package (BSD licence).

    apt-get download fortunes && dpkg-deb -x fortunes_*.deb fortunes-deb
    python scripts/make_text_demo.py fortunes-deb/usr/share/games/fortunes

Four categories of fortune cookies (computers, food, love, sports); each cookie (the text between ``%`` lines)
with the terminal overstrike (``X\\bX``) removed and whitespace collapsed to single spaces; 20 to 400
characters; at most 200 per category, drawn with a fixed seed; split 75 / 25 stratified by category
(scikit-learn ``train_test_split(random_state=0)``).
"""

import csv
import random
import re
import sys
from pathlib import Path

from sklearn.model_selection import train_test_split

CATEGORIES = ("computers", "food", "love", "sports")
PER_CATEGORY, MIN_CHARS, MAX_CHARS = 200, 20, 400
OUT = Path(__file__).resolve().parents[1] / "templates" / "tasks" / "text" / "demo"


def cookies(path: Path) -> list[str]:
    """The cookies of one fortune file, cleaned and filtered by length."""
    out = []
    for raw in path.read_text(encoding="utf-8").split("\n%\n"):
        text = " ".join(re.sub(r".\x08", "", raw).split())
        if MIN_CHARS <= len(text) <= MAX_CHARS:
            out.append(text)
    return out


def main(source: Path) -> None:
    texts, labels = [], []
    for category in CATEGORIES:
        chosen = cookies(source / category)
        random.Random(0).shuffle(chosen)
        texts += chosen[:PER_CATEGORY]
        labels += [category] * len(chosen[:PER_CATEGORY])
    splits = train_test_split(texts, labels, test_size=0.25, stratify=labels, random_state=0)
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (x, y) in (("train", splits[0::2]), ("val", splits[1::2])):
        with open(OUT / f"{name}.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["text", "label"])
            writer.writerows(zip(x, y, strict=True))
        print(f"{OUT / name}.csv: {len(x)} texts")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
