"""Load pretrained weights into a ``model.py`` model, and freeze its backbone for fine-tuning.

``model.py`` keeps the reference implementation's state_dict names (torchvision's or timm's), so published
ImageNet weights load as they are. This file adds the parts a fine-tuning run needs around that:

* reading a weights file safely: ``torch.load(..., weights_only=True)`` unpickles tensors and plain
  containers only, never arbitrary Python objects (a pickle can run any code when it is loaded);
* accepting the usual wrappers: a checkpoint dict holding ``"model"``/``"state_dict"``/``"model_ema"``, and
  the ``module.`` (DistributedDataParallel) and ``_orig_mod.`` (``torch.compile``) key prefixes;
* replacing the classifier when the class count differs: the head tensors whose shape differs are skipped
  (they keep the model's fresh initialisation) and reported; everything else must match exactly;
* ``freeze_backbone`` for linear probing / the first epochs of fine-tuning.

Sources: a local file, ``torchvision:<WeightsEnum>`` (e.g. ``torchvision:ResNet50_Weights.IMAGENET1K_V2``) or
``timm:<model>.<tag>`` (e.g. ``timm:convnext_tiny.fb_in1k``). The last two download the weights (cached by
torchvision / Hugging Face Hub) and only run when asked for. timm is optional: it is imported only for
``timm:`` sources.

Self-contained: imports torch and torchvision only, so it can be copied into a project next to ``model.py``.
"""

import difflib
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "LoadReport",
    "PretrainedWeightsError",
    "SkippedTensor",
    "freeze_backbone",
    "head_parameter_names",
    "load_pretrained",
]

# DistributedDataParallel / DataParallel wrap the model as ``.module``; torch.compile as ``._orig_mod``
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# where training scripts (ours, timm's, torchvision's references) put the weights inside a checkpoint dict
_MODEL_KEYS = ("model", "state_dict")
_EMA_KEYS = ("model_ema", "state_dict_ema")

Shape = tuple[int, ...]


class PretrainedWeightsError(RuntimeError):
    """The weights cannot be loaded: unreadable file, unsafe pickle, tensors that do not fit the model, or a
    download that cannot reach its server (``unreachable``: no network, or the hub is offline)."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable


@dataclass(frozen=True)
class SkippedTensor:
    """A state_dict entry that was not loaded. A shape is ``None`` where that side has no such key."""

    key: str
    checkpoint_shape: Shape | None
    model_shape: Shape | None
    is_head: bool

    def __str__(self) -> str:
        ckpt = "absent" if self.checkpoint_shape is None else str(tuple(self.checkpoint_shape))
        ours = "absent" if self.model_shape is None else str(tuple(self.model_shape))
        return f"{self.key}: checkpoint {ckpt}, model {ours}{' (head)' if self.is_head else ''}"


@dataclass(frozen=True)
class LoadReport:
    """What ``load_pretrained`` did: how many tensors came from the checkpoint and which were skipped."""

    source: str
    loaded: int
    total: int
    skipped: tuple[SkippedTensor, ...] = ()
    checkpoint_key: str | None = None

    @property
    def skipped_keys(self) -> list[str]:
        """The keys of the skipped tensors, in state_dict order."""
        return [s.key for s in self.skipped]

    def __str__(self) -> str:
        where = f"{self.source} [{self.checkpoint_key}]" if self.checkpoint_key else self.source
        lines = [f"loaded {self.loaded}/{self.total} tensors from {where}"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} (they keep the model's own initialisation):")
            lines += [f"  {s}" for s in self.skipped]
        return "\n".join(lines)


def _unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def head_parameter_names(model: nn.Module) -> list[str]:
    """The names of the classifier-head parameters: those of the last ``nn.Linear`` registered in the model.

    Found without building a second model: every ``model.py`` registers its classifier last (our zoo contract,
    and the torchvision / timm layout), so the last ``nn.Linear`` in module order is the layer whose shape
    depends on ``num_classes`` (``fc``, ``head``, ``head.fc``, ``classifier.1``, ...). Linears inside the
    backbone (Transformer MLPs, a head's hidden layer) come before it.
    """
    model = _unwrap_model(model)
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = name
    if last is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer, so it has no classifier head to find")
    head = model.get_submodule(last)
    return [f"{last}.{p}" if last else p for p, _ in head.named_parameters(recurse=False)]


def freeze_backbone(model: nn.Module, trainable: bool = False) -> list[str]:
    """Freeze (``trainable=False``) or unfreeze (``True``) every parameter except the head's.

    The head (see ``head_parameter_names``) always stays trainable. Freezing sets ``requires_grad=False``, so
    no gradients are computed or stored for the backbone and the optimizer skips it. BatchNorm running
    statistics still update in ``train()`` mode; for a strict linear probe put the backbone's BatchNorm
    layers in ``eval()`` after each ``model.train()``.

    Returns:
        The names of the parameters that are trainable afterwards.
    """
    head = set(head_parameter_names(model))
    trainable_names = []
    for name, p in _unwrap_model(model).named_parameters():
        p.requires_grad_(trainable or name in head)
        if p.requires_grad:
            trainable_names.append(name)
    return trainable_names


def _strip_prefixes(key: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix) :], True
    return key


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _select_state_dict(obj: Any, source: str, prefer_ema: bool) -> tuple[Mapping[str, torch.Tensor], str | None]:
    """The state_dict itself, or the one inside a training checkpoint dict (and the key it was under)."""
    if _is_state_dict(obj):
        return obj, None
    if isinstance(obj, Mapping):
        order = _EMA_KEYS + _MODEL_KEYS if prefer_ema else _MODEL_KEYS + _EMA_KEYS
        for key in order:
            if _is_state_dict(obj.get(key)):
                return obj[key], key
        keys = ", ".join(map(str, list(obj)[:10]))
        raise PretrainedWeightsError(
            f"{source} is a dict without model weights: no tensors at the top level and none under "
            f"{', '.join(repr(k) for k in order)} (its keys: {keys})"
        )
    raise PretrainedWeightsError(f"{source} holds a {type(obj).__name__}, not a state_dict")


def _read_file(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            raise PretrainedWeightsError(
                f"{path} contains Python objects other than tensors, and loading it would have to run them "
                "(torch.load weights_only=True refused). Save only the state_dict "
                "(torch.save(model.state_dict(), path)); if you trust the file, load it yourself and pass the "
                "state_dict to load_pretrained"
            ) from e
        raise PretrainedWeightsError(f"{path} is not a PyTorch weights file ({e})") from e
    except Exception as e:  # torch.load raises RuntimeError, EOFError, IndexError, ... on a damaged file
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise PretrainedWeightsError(
            f"{path} is not a readable PyTorch weights file (corrupt or truncated?): {type(e).__name__}: {first_line}"
        ) from e


def _download_torchvision(name: str) -> Mapping[str, torch.Tensor]:
    from torchvision.models import get_weight

    try:
        weights = get_weight(name)
    except (ValueError, KeyError) as e:
        raise PretrainedWeightsError(
            f"unknown torchvision weights {name!r}: expected <WeightsEnum>.<VALUE>, "
            "e.g. torchvision:ResNet50_Weights.IMAGENET1K_V2 (torchvision.models.list_models() lists the models)"
        ) from e
    return weights.get_state_dict(progress=True, check_hash=True)


def _download_timm(name: str) -> Mapping[str, torch.Tensor]:
    try:
        import timm
    except ImportError as e:
        raise PretrainedWeightsError(
            f"timm:{name} needs the timm package (pip install timm); or download the weights once and pass the file"
        ) from e
    available = timm.list_pretrained()
    if name not in available and not any(a.startswith(f"{name}.") for a in available):
        close = difflib.get_close_matches(name, available, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise PretrainedWeightsError(f"timm has no pretrained weights {name!r}{hint}")
    # timm converts foreign layouts (e.g. the original JAX ViT .npz) while it builds the model
    return timm.create_model(name, pretrained=True).state_dict()


def _read_source(
    source: str | Path | Mapping[str, Any], prefer_ema: bool
) -> tuple[Mapping[str, torch.Tensor], str, str | None]:
    """The state_dict named by ``source``, a description of it, and the checkpoint key it came from."""
    if isinstance(source, Mapping):
        sd, key = _select_state_dict(source, "the given dict", prefer_ema)
        return sd, "a state_dict in memory", key
    text = str(source)
    downloads = {"torchvision:": _download_torchvision, "timm:": _download_timm}
    for prefix, download in downloads.items():
        if isinstance(source, str) and text.startswith(prefix):
            try:
                return download(text.removeprefix(prefix)), text, None
            except OSError as e:  # urllib's URLError, huggingface_hub's offline / not-cached errors
                first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise PretrainedWeightsError(
                    f"cannot download {text}: {type(e).__name__}: {first_line}", unreachable=True
                ) from e
    path = Path(source).expanduser()
    sd, key = _select_state_dict(_read_file(path), str(path), prefer_ema)
    return sd, str(path), key


def _describe(problems: list[SkippedTensor], limit: int = 8) -> str:
    lines = [f"  {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


def load_pretrained(
    model: nn.Module,
    source: str | Path | Mapping[str, Any],
    *,
    strict_backbone: bool = True,
    prefer_ema: bool = False,
) -> LoadReport:
    """Load pretrained weights into ``model`` in place, replacing the head if the class count differs.

    Args:
        model: the model to fill (a DDP- or torch.compile-wrapped model works too).
        source: a weights file (a state_dict, or a checkpoint dict with the weights under ``"model"``,
            ``"state_dict"`` or ``"model_ema"``), ``"torchvision:<WeightsEnum>"``, ``"timm:<model>.<tag>"``,
            or an already loaded state_dict (for files you trust but that ``weights_only`` refuses).
        strict_backbone: every tensor outside the head must be present in both and have the same shape; a
            difference is an error that names the keys. ``False`` skips and reports any tensor that does not
            fit, e.g. the 3x3 stem of a ``small_input`` model when loading ImageNet weights with a 7x7 stem.
        prefer_ema: from a checkpoint holding both, take the EMA weights rather than the raw ones.

    Returns:
        A ``LoadReport``; ``print(report)`` lists what was skipped.

    Raises:
        FileNotFoundError: the file does not exist.
        PretrainedWeightsError: unreadable or unsafe file, unknown source name, or weights for another
            architecture.
    """
    state, description, checkpoint_key = _read_source(source, prefer_ema)
    state = {_strip_prefixes(k): v for k, v in state.items()}
    target = _unwrap_model(model)
    own = target.state_dict()
    head = set(head_parameter_names(target))

    loadable: dict[str, torch.Tensor] = {}
    skipped: list[SkippedTensor] = []
    for key, tensor in state.items():
        if key not in own:
            skipped.append(SkippedTensor(key, tuple(tensor.shape), None, is_head=False))
        elif tensor.shape != own[key].shape:
            skipped.append(SkippedTensor(key, tuple(tensor.shape), tuple(own[key].shape), is_head=key in head))
        else:
            loadable[key] = tensor
    for key, tensor in own.items():
        # BatchNorm's step counter is missing from old checkpoints; BatchNorm itself tolerates that
        if key not in state and not key.endswith("num_batches_tracked"):
            skipped.append(SkippedTensor(key, None, tuple(tensor.shape), is_head=key in head))

    problems = [s for s in skipped if not s.is_head]
    if strict_backbone and problems:
        missing = sum(s.checkpoint_shape is None for s in problems)
        unexpected = sum(s.model_shape is None for s in problems)
        reshaped = len(problems) - missing - unexpected
        hint = (
            "the weights are probably for another architecture or variant"
            if missing or unexpected
            else "if only the stem differs (small_input), strict_backbone=False loads the rest"
        )
        raise PretrainedWeightsError(
            f"{description} does not fit {type(target).__name__} outside its head: {missing} missing, "
            f"{unexpected} unexpected, {reshaped} with another shape; {hint}.\n{_describe(problems)}"
        )

    # load through the strict path: the skipped tensors are the model's own, copied onto themselves
    merged = dict(own)
    merged.update(loadable)
    target.load_state_dict(merged, strict=True)
    order = {k: i for i, k in enumerate(own)}
    skipped.sort(key=lambda s: order.get(s.key, len(order)))
    return LoadReport(
        source=description,
        loaded=len(loadable),
        total=len(own),
        skipped=tuple(skipped),
        checkpoint_key=checkpoint_key,
    )
