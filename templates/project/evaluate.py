"""Validation accuracy and loss of a checkpoint, with its EMA weights unless told otherwise.

python evaluate.py                                # runs/train/best.pt on the val split of config.yaml
python evaluate.py runs/train/last.pt --no-ema    # the raw (non-averaged) weights of the last epoch
python evaluate.py --data path/to/images          # another ImageFolder with the same class folders
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from data import DataError, error_line, val_loader
from model import build_model
from train import HERE, evaluate


def load_checkpoint_model(path: Path, *, ema: bool = True) -> tuple[nn.Module, dict[str, Any]]:
    """The model saved in a train.py checkpoint (``best.pt`` or ``last.pt``), in eval mode, and the checkpoint.

    ``ema=True`` takes the EMA weights when the run kept them (what train.py validated), else the raw ones.
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(ckpt["arch"], ckpt["num_classes"], small_input=ckpt["small_input"])
    weights = ckpt["model_ema"] if ema and ckpt["model_ema"] is not None else ckpt["model"]
    model.load_state_dict(weights)
    return model.eval(), ckpt


def open_checkpoint(args: argparse.Namespace) -> tuple[Path, nn.Module, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """What evaluate.py and export.py start from: the checkpoint path (argument or <run.out>/best.pt of
    config.yaml), its model, the checkpoint, the run's own config with --data applied, and config.yaml."""
    with open(args.config, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    path = args.checkpoint or Path(config["run"]["out"]) / "best.pt"
    if not path.is_file():
        raise SystemExit(f"error: no checkpoint at {path} (train first: python train.py)")
    model, ckpt = load_checkpoint_model(path, ema=not args.no_ema)
    cfg = ckpt["config"]  # the run's own data settings (normalization, crop)
    if args.data:
        cfg["data"]["root"] = str(args.data)
    return path, model, ckpt, cfg, config


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description="Evaluate a checkpoint on the validation split.")
    p.add_argument("checkpoint", nargs="?", type=Path, help="default: <run.out>/best.pt from config.yaml")
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--data", type=Path, help="ImageFolder root with val/ (default: the checkpoint's data.root)")
    p.add_argument("--no-ema", action="store_true", help="evaluate the raw weights instead of the EMA ones")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)

    path, model, ckpt, cfg, _ = open_checkpoint(args)
    loader, classes = val_loader(cfg, ckpt["image_size"])
    if classes != ckpt["classes"]:
        raise SystemExit(
            f"error: the val folders {classes} differ from the classes the model was trained on {ckpt['classes']}"
        )
    device = torch.device(args.device)
    val_loss, val_acc1 = evaluate(model.to(device), loader, device=device)
    result = {"checkpoint": str(path), "ema": ckpt["model_ema"] is not None and not args.no_ema,
              "val_loss": val_loss, "val_acc1": val_acc1, "images": len(loader.dataset)}  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    try:
        main()
    except DataError as e:
        sys.exit(f"error: {error_line(e)}")
