"""Pretrained encoders fine-tuned for classification through Hugging Face ``transformers``.

``AutoModelForSequenceClassification`` puts a fresh classifier on a pretrained encoder (Devlin et al. 2019,
arXiv:1810.04805: fine-tune everything, 2-5 epochs, lr 2e-5..5e-5). ``model.pretrained`` names the weights: a
Hugging Face Hub id (``distilbert/distilbert-base-uncased``), ``true`` for the hub id of ``model.arch``, or a
local folder written by ``save_pretrained`` (or ``huggingface-cli download ID --local-dir DIR``), which works
without network. The checkpoint keeps the model's config and its tokenizer as JSON, so evaluating, predicting
and exporting a fine-tuned model rebuild it offline from the checkpoint alone.
"""

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from errors import ProjectError
from tokenizer import TextEncoder

# model.arch -> its Hugging Face Hub id, for model.pretrained: true
HUB_IDS = {
    "modernbert_base": "answerdotai/ModernBERT-base",
    "deberta_v3_base": "microsoft/deberta-v3-base",
    "minilm_l12_h384": "microsoft/MiniLM-L12-H384-uncased",
    "distilbert_base_uncased": "distilbert/distilbert-base-uncased",
    "bert_base_uncased": "google-bert/bert-base-uncased",
}


class SequenceClassifier(nn.Module):
    """A ``transformers`` classifier behind this project's one-tensor interface: ``input_ids`` padded with
    ``pad_id`` in, logits out (the attention mask is derived from the padding, as in model.py's models)."""

    def __init__(self, model: nn.Module, pad_id: int) -> None:
        super().__init__()
        self.model, self.pad_id = model, pad_id

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        attention_mask = (input_ids != self.pad_id).to(torch.int64)
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def resolve_source(arch: str, pretrained: Any) -> str:
    """The hub id or folder ``model.pretrained`` names (``true``: the hub id of ``arch``)."""
    if pretrained is True:
        if arch not in HUB_IDS:
            raise ProjectError(f"model.pretrained: true, but {arch!r} has no hub id; name one or a local folder")
        return HUB_IDS[arch]
    return str(pretrained)


def _unavailable(source: str, error: Exception) -> ProjectError:
    """One line: which model could not be loaded, and how to supply it as a local folder."""
    local = Path(source).expanduser().is_dir()
    where = "from that folder" if local else "(no network, and not in the Hugging Face cache)"
    return ProjectError(
        f"cannot load the pretrained model {source!r} {where}: {str(error).strip().splitlines()[0][:160]}; "
        f"on a machine with network run `huggingface-cli download {source} --local-dir DIR` "
        "(or save_pretrained(DIR)), copy DIR here and set model.pretrained: DIR"
    )


def load_encoder(source: str, max_length: int) -> TextEncoder:
    """The pretrained model's own (fast) tokenizer, cut at ``max_length`` or the model's limit if lower."""
    from transformers import AutoTokenizer

    try:
        hf_tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as e:
        raise _unavailable(source, e) from e
    if not getattr(hf_tokenizer, "is_fast", False) or hf_tokenizer.pad_token_id is None:
        raise ProjectError(f"{source}: needs a fast tokenizer (tokenizer.json) with a padding token")
    limit = min(max_length, int(min(hf_tokenizer.model_max_length, 1 << 20)))
    return TextEncoder(hf_tokenizer.backend_tokenizer, limit, hf_tokenizer.pad_token_id)


def load_config(source: str, num_classes: int) -> str:
    """The model's config with a ``num_classes`` head, as JSON (what ``from_config`` rebuilds it from)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, num_labels=num_classes).to_json_string()
    except (OSError, ValueError) as e:
        raise _unavailable(source, e) from e


def load_model(source: str, num_classes: int, pad_id: int) -> SequenceClassifier:
    """The pretrained encoder with a fresh ``num_classes`` classifier head."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    logging.set_verbosity_error()  # "some weights were newly initialized": the classifier head, as intended
    try:
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=num_classes)
    except (OSError, ValueError) as e:
        raise _unavailable(source, e) from e
    return SequenceClassifier(model, pad_id)


def from_config(config_json: str, pad_id: int) -> SequenceClassifier:
    """The architecture of a fine-tuned checkpoint with fresh weights, from its saved config: no download."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    values = json.loads(config_json)
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    return SequenceClassifier(AutoModelForSequenceClassification.from_config(config), pad_id)
