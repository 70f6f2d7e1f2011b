"""Texts to token ids: a WordPiece or BPE tokenizer trained on the training texts, or a pretrained model's own.

Both kinds are a Hugging Face ``tokenizers.Tokenizer``, and both travel inside every checkpoint as its JSON
string (``TextEncoder.to_json``), so evaluating, predicting and exporting need no file beside the checkpoint
and nothing downloaded. The trained tokenizer follows BERT's recipe (Devlin et al. 2019, arXiv:1810.04805:
Unicode normalization, lowercasing, punctuation split, WordPiece) or byte-level BPE (Sennrich et al. 2016,
arXiv:1508.07909; Radford et al. 2019), and puts ``[CLS]`` first in every text, so even an empty text has
one token that is not padding.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

PAD, UNK, CLS = "[PAD]", "[UNK]", "[CLS]"
KINDS = ("wordpiece", "bpe")


def train_tokenizer(
    texts: Iterable[str], *, kind: str = "wordpiece", vocab_size: int = 8000, lowercase: bool = True
) -> Tokenizer:
    """A tokenizer learned from ``texts``: ``[PAD]`` is id 0, ``[UNK]`` 1, ``[CLS]`` 2.

    The vocabulary has at most ``vocab_size`` entries (fewer when the texts hold fewer distinct pieces).
    Training is not reproducible (the library breaks ties between equally frequent pieces in hash order): a run
    trains its tokenizer once and reuses it (task.trained_tokenizer), so its DDP ranks and its ``--resume`` agree.
    """
    specials = [PAD, UNK, CLS]
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=UNK))
        tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    elif kind == "bpe":
        # byte-level: every string is encodable, no [UNK] ever needed
        tok = Tokenizer(models.BPE(unk_token=UNK))
        norms = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
        tok.normalizer = normalizers.Sequence(norms)
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    else:
        raise ValueError(f"tokenizer kind {kind!r}: supported are {', '.join(KINDS)}")
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"{CLS} $A", special_tokens=[(CLS, tok.token_to_id(CLS))])
    return tok


@dataclass
class Encoded:
    """Token ids per text (int64 arrays, no padding) and how many texts were cut at ``max_length``."""

    ids: list[np.ndarray]
    truncated: int


class TextEncoder:
    """A ``tokenizers.Tokenizer`` that cuts at ``max_length`` tokens, never pads, and knows its padding id."""

    def __init__(self, tokenizer: Tokenizer, max_length: int, pad_id: int) -> None:
        if max_length < 2:
            raise ValueError(f"max_length {max_length}: at least 2 tokens (a special token and a word)")
        self.tokenizer, self.max_length, self.pad_id = tokenizer, max_length, pad_id
        tokenizer.no_padding()  # each batch is padded to its own longest text (data.collate)
        tokenizer.enable_truncation(max_length)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, texts: Sequence[str]) -> Encoded:
        encodings = self.tokenizer.encode_batch(list(texts))
        return Encoded(
            ids=[np.asarray(e.ids, dtype=np.int64) for e in encodings],
            truncated=sum(1 for e in encodings if e.overflowing),  # the cut-off tail, when there was one
        )

    def to_json(self) -> str:
        """The tokenizer as one JSON string (vocabulary, normalizer, special tokens, truncation)."""
        return self.tokenizer.to_str()

    @classmethod
    def from_json(cls, text: str, max_length: int, pad_id: int) -> "TextEncoder":
        return cls(Tokenizer.from_str(text), max_length, pad_id)
