"""Text classifiers trained from scratch on token ids: a BiLSTM / BiGRU, a small Transformer encoder, a fastText bag.

Every model takes one input, ``input_ids`` (batch, sequence) of token ids padded on the right with ``pad_id``,
and returns logits (batch, num_classes). The padding mask is derived from ``pad_id`` inside the model, so a
sample's logits do not change when a batch pads it further (tested), and the exported ONNX graph has one input
with a dynamic batch and sequence length.

* ``bilstm_classifier`` / ``bigru_classifier``: a bidirectional recurrent encoder whose features are the final
  states of both directions at each sample's own length (Graves & Schmidhuber 2005, "Framewise phoneme
  classification with bidirectional LSTM"). The backward direction reads each sample reversed within its length
  instead of through ``pack_padded_sequence``, which neither ONNX exporter supports.
* ``text_transformer_small``: token + learned position embeddings, pre-norm Transformer encoder blocks
  (Vaswani et al. 2017, arXiv:1706.03762; pre-norm: Xiong et al. 2020, arXiv:2002.04745) through
  ``nn.TransformerEncoder`` with a key padding mask, mean-pooled over the real tokens.
* ``fasttext_bag``: the mean embedding of the tokens and their hashed bigrams through ``nn.EmbeddingBag``, then
  a linear classifier (Joulin et al. 2016, "Bag of Tricks for Efficient Text Classification", arXiv:1607.01759).

Variants are data (the ``VARIANTS`` table); ``build_model`` is the one builder. Each model class says which ONNX
exporter to use (``onnx_dynamo``), as measured with torch 2.14 and onnxruntime 1.32 at dynamic batch and length:
the Transformer and the bag need the torch.export-based one (the TorchScript-based one rejects EmbeddingBag with
padding_idx, and freezes the sequence length into the attention's reshapes); the recurrent models export with
both to the same single ONNX LSTM/GRU node, and use the TorchScript-based one, which does it ten times faster.
"""

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["VARIANTS", "BagConfig", "FastTextBag", "RNNClassifier", "RNNConfig", "TransformerClassifier",
           "TransformerConfig", "build_model"]  # fmt: skip


# --- variants ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RNNConfig:
    cell: str  # "lstm" or "gru"
    embed_dim: int
    hidden: int  # per direction
    layers: int
    dropout: float  # on the embeddings, between layers and before the classifier


@dataclass(frozen=True)
class TransformerConfig:
    dim: int
    depth: int
    heads: int
    mlp_ratio: int
    max_len: int  # learned positions: longer inputs must be truncated (the tokenizer does)
    dropout: float


@dataclass(frozen=True)
class BagConfig:
    dim: int
    ngram_buckets: int  # hashed bigram ids (fastText's hashing trick); 0 = unigrams only


ModelConfig = RNNConfig | TransformerConfig | BagConfig

VARIANTS: dict[str, ModelConfig] = {
    "bilstm_classifier": RNNConfig(cell="lstm", embed_dim=128, hidden=128, layers=1, dropout=0.3),
    "bigru_classifier": RNNConfig(cell="gru", embed_dim=128, hidden=128, layers=1, dropout=0.3),
    "text_transformer_small": TransformerConfig(dim=128, depth=2, heads=4, mlp_ratio=4, max_len=512, dropout=0.1),
    "fasttext_bag": BagConfig(dim=64, ngram_buckets=2**15),
}


# --- helpers -------------------------------------------------------------------------------------------------


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each sample of ``x`` (batch, time, features) reversed over its first ``length`` steps, padding left in
    place. Its own inverse. What ``pack_padded_sequence`` gives a backward RNN, in ops both exporters know."""
    steps = torch.arange(x.size(1), device=x.device).unsqueeze(0)
    last = (lengths - 1).unsqueeze(1)
    index = torch.where(steps <= last, last - steps, steps)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


# --- models --------------------------------------------------------------------------------------------------


class RNNClassifier(nn.Module):
    """Bidirectional LSTM / GRU; features: both directions' outputs at each sample's last real token."""

    onnx_dynamo = False  # both exporters emit one ONNX LSTM/GRU node; this one in ~1 s instead of ~10 s

    def __init__(self, cfg: RNNConfig, num_classes: int, vocab_size: int, pad_id: int) -> None:
        super().__init__()
        if cfg.cell not in ("lstm", "gru"):
            raise ValueError(f"RNNConfig.cell {cfg.cell!r}: supported are lstm, gru")
        self.pad_id = pad_id
        rnn = nn.LSTM if cfg.cell == "lstm" else nn.GRU
        self.embed = nn.Embedding(vocab_size, cfg.embed_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(cfg.dropout)
        # one unidirectional RNN per direction and layer: the backward one reads a per-sample reversed copy
        widths = [cfg.embed_dim] + [2 * cfg.hidden] * (cfg.layers - 1)
        self.forward_rnns = nn.ModuleList(rnn(w, cfg.hidden, batch_first=True) for w in widths)
        self.backward_rnns = nn.ModuleList(rnn(w, cfg.hidden, batch_first=True) for w in widths)
        self.head = nn.Linear(2 * cfg.hidden, num_classes)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # at least 1: an all-padding row (an empty text) reads position 0 instead of indexing -1
        lengths = (input_ids != self.pad_id).sum(1).clamp(min=1)
        x = self.dropout(self.embed(input_ids))
        for i, (fwd, bwd) in enumerate(zip(self.forward_rnns, self.backward_rnns, strict=True)):
            ahead = fwd(x)[0]
            behind = bwd(reverse_within_length(x, lengths))[0]  # in reversed order
            if i + 1 < len(self.forward_rnns):  # the next layer sees both directions at the same position
                x = self.dropout(torch.cat([ahead, reverse_within_length(behind, lengths)], dim=-1))
        # the state after the last real token, in both reading orders (never a state that has read padding)
        last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, ahead.size(-1))
        features = torch.cat([ahead.gather(1, last), behind.gather(1, last)], dim=-1).squeeze(1)
        return self.head(self.dropout(features))


class TransformerClassifier(nn.Module):
    """Pre-norm Transformer encoder over token + position embeddings, mean-pooled over the real tokens."""

    onnx_dynamo = True  # the TorchScript exporter bakes the traced sequence length into the attention's reshapes

    def __init__(self, cfg: TransformerConfig, num_classes: int, vocab_size: int, pad_id: int) -> None:
        super().__init__()
        if cfg.dim % cfg.heads:
            raise ValueError(f"TransformerConfig.dim {cfg.dim} must be divisible by heads {cfg.heads}")
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, cfg.dim, padding_idx=pad_id)
        self.position = nn.Embedding(cfg.max_len, cfg.dim)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, cfg.mlp_ratio * cfg.dim, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)  # fmt: skip
        # pre-norm blocks need a final LayerNorm; the nested-tensor fast path does not apply to norm_first layers
        self.encoder = nn.TransformerEncoder(layer, cfg.depth, norm=nn.LayerNorm(cfg.dim), enable_nested_tensor=False)
        self.head = nn.Linear(cfg.dim, num_classes)
        # BERT's initialisation of the embeddings (Devlin et al. 2019, arXiv:1810.04805): N(0, 0.02)
        for embedding in (self.embed, self.position):
            nn.init.normal_(embedding.weight, std=0.02)
        with torch.no_grad():
            self.embed.weight[pad_id].zero_()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        padding = input_ids == self.pad_id  # True where attention must not look
        positions = torch.arange(input_ids.size(1), device=input_ids.device)
        x = self.dropout(self.embed(input_ids) + self.position(positions))
        x = self.encoder(x, src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.head(pooled)


class FastTextBag(nn.Module):
    """fastText: mean of unigram and hashed-bigram embeddings (one ``nn.EmbeddingBag``), then a linear layer."""

    onnx_dynamo = True  # the TorchScript exporter rejects EmbeddingBag with padding_idx

    # a prime multiplier spreads (a, b) pairs over the buckets; ids stay far below int64 overflow
    HASH_PRIME = 1_000_003

    def __init__(self, cfg: BagConfig, num_classes: int, vocab_size: int, pad_id: int) -> None:
        super().__init__()
        self.pad_id, self.vocab_size, self.buckets = pad_id, vocab_size, cfg.ngram_buckets
        self.bag = nn.EmbeddingBag(vocab_size + cfg.ngram_buckets, cfg.dim, mode="mean", padding_idx=pad_id)
        self.head = nn.Linear(cfg.dim, num_classes)
        # fastText's initialisation: embeddings uniform in +-1/dim, the output layer at zero
        nn.init.uniform_(self.bag.weight, -1.0 / cfg.dim, 1.0 / cfg.dim)
        with torch.no_grad():
            self.bag.weight[pad_id].zero_()
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        tokens = input_ids
        if self.buckets:
            a, b = input_ids[:, :-1], input_ids[:, 1:]
            bigrams = self.vocab_size + (a * self.HASH_PRIME + b) % self.buckets
            # a bigram that touches padding is padding: the bag's mean skips it
            bigrams = torch.where((a == self.pad_id) | (b == self.pad_id), self.pad_id, bigrams)
            tokens = torch.cat([input_ids, bigrams], dim=1)
        return self.head(self.bag(tokens))


# --- the builder ---------------------------------------------------------------------------------------------

_CLASSES: dict[type, type[nn.Module]] = {
    RNNConfig: RNNClassifier,
    TransformerConfig: TransformerClassifier,
    BagConfig: FastTextBag,
}


def build_model(arch: str, num_classes: int, vocab_size: int, pad_id: int, **kwargs: object) -> nn.Module:
    """The ``arch`` variant with fresh weights; ``kwargs`` override fields of its config (e.g. ``max_len``,
    ``dropout``). Never downloads anything."""
    if arch not in VARIANTS:
        raise ValueError(f"unknown text model {arch!r}: supported are {', '.join(VARIANTS)}")
    cfg = VARIANTS[arch]
    fields = {f.name for f in dataclasses.fields(cfg)}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ValueError(f"{arch} has no setting {', '.join(unknown)}: it takes {', '.join(sorted(fields))}")
    if not 0 <= pad_id < vocab_size:
        raise ValueError(f"pad_id {pad_id} is outside the vocabulary of {vocab_size} tokens")
    return _CLASSES[type(cfg)](dataclasses.replace(cfg, **kwargs), num_classes, vocab_size, pad_id)
