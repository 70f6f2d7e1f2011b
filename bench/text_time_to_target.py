"""Seconds to a stated validation accuracy on the bundled text demo, from scratch, and training tokens per second.

    python bench/text_time_to_target.py                       # each owned text model, target 60 %
    python bench/text_time_to_target.py --arch fasttext_bag --target 65 --epochs 30

The demo (templates/tasks/text/demo: 4 categories of Debian's fortune cookies, 471 train / 157 val texts) has
a majority class of 31.8 % and a TF-IDF + logistic regression baseline of 76.4 %. The project is assembled as
the scaffolder does (the core's scripts, the text task part, model.py) and trained by its own train.py; the
seconds are the sum of the epochs' wall times up to the first epoch at or above the target (tokenizer training
and data loading included in the first). Tokens/s counts the non-padding training tokens per second of epoch wall
time (training and validation). Figures are for orientation: the 2 CPU cores are shared. Never fails on speed.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import shutil
import sys
import tempfile
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_text import CONFIG  # noqa: E402  the text part's config values, kept in one place

TEMPLATES = ROOT / "templates"
# fastText: the recipe's AdamW 1e-2 without weight decay or clipping (rules lr.task.text_fasttext, clip.fasttext)
LR = {"fasttext_bag": 1e-2, "bilstm_classifier": 3e-3, "bigru_classifier": 3e-3, "text_transformer_small": 1e-3}


def assemble(folder: Path) -> None:
    for path in (TEMPLATES / "core").glob("*.py"):
        shutil.copy(path, folder / path.name)
    shutil.copytree(TEMPLATES / "tasks" / "text", folder, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.j2"))
    shutil.copy(TEMPLATES / "models" / "text.py", folder / "model.py")
    shutil.copy(TEMPLATES / "models" / "weights.py", folder / "weights.py")


def run(arch: str, target: float, epochs: int, folder: Path) -> None:
    cfg = yaml.safe_load(yaml.safe_dump(CONFIG))
    cfg["model"]["arch"] = arch
    bag = arch == "fasttext_bag"
    cfg["training"].update(epochs=epochs, lr=LR[arch], weight_decay=0.0 if bag else 0.01,
                           grad_clip_norm=None if bag else cfg["training"]["grad_clip_norm"])  # fmt: skip
    cfg["run"]["out"] = str(folder / "runs" / arch)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    train, task = importlib.import_module("train"), importlib.import_module("task")
    train.main(["--config", str(folder / "config.yaml")])
    with open(Path(cfg["run"]["out"]) / "metrics.csv", encoding="utf-8") as fh:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(fh)]
    loaded = task.build_data(cfg, 0, rank=0, world_size=1, pin_memory=False)
    tokens = sum(int((ids != loaded.encoder.pad_id).sum()) for ids, _ in loaded.train_loader)
    elapsed, reached = 0.0, None
    for r in rows:
        elapsed += r["seconds"]
        if reached is None and r["val_acc1"] >= target:
            reached = (int(r["epoch"]), elapsed)
    rate = tokens * len(rows) / sum(r["seconds"] for r in rows)
    best = max(r["val_acc1"] for r in rows)
    where = f"{reached[1]:.1f} s (epoch {reached[0]})" if reached else f"not reached in {len(rows)} epochs"
    print(f"{arch}: val acc {target:.0f}% in {where}; best {best:.1f}%; {rate:,.0f} train tokens/s "
          f"({torch.get_num_threads()} threads)", flush=True)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", action="append", help="default: every owned text model")
    p.add_argument("--target", type=float, default=60.0, help="validation accuracy in percent (default 60)")
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        assemble(folder)
        sys.path.insert(0, str(folder))
        for arch in args.arch or list(LR):
            run(arch, args.target, args.epochs, folder)


if __name__ == "__main__":
    main()
