"""Offline WordPiece tokenizer checkpoints in several layouts, for tests and benchmarks.

A cased WordPiece vocabulary (6,000) is trained with the ``tokenizers`` library on the vendored
STS-B sentences (11 languages) and saved through transformers' tokenizer classes, so
``AutoTokenizer.from_pretrained(directory)`` is the reference the in-graph tokenizer must equal.

Layouts (:data:`WORDPIECE_LAYOUTS`):

- ``mpnet``: MPNetTokenizerFast: ``<s> A </s></s> B </s>``, no token types, ``<mask>`` strips
  the whitespace before it;
- ``distilbert``: DistilBertTokenizerFast: ``[CLS] A [SEP] B [SEP]``, the model reads no type
  ids;
- ``sequence``: normalizer ``Sequence[NFD, Lowercase, StripAccents]``, pre-tokenizer
  ``Sequence[WhitespaceSplit, Punctuation]`` (not the Bert* components), BERT template;
- ``no-normalizer``: no normalizer at all (cased; control and private-use characters reach
  WordPiece), BertPreTokenizer, BERT template.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from tests.support.data import STSB_DIR

SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>", "<pad>", "<mask>")
BERT_SPECIALS = {"unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "pad": "[PAD]", "mask": "[MASK]"}
WORDPIECE_LAYOUTS = ("distilbert", "mpnet", "no-normalizer", "sequence")


@functools.cache
def trained_vocab() -> dict[str, int]:
    """The cased WordPiece vocabulary trained on STS-B (~3 s, once per process)."""
    import csv

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    sentences = []
    for path in sorted(STSB_DIR.glob("stsb-*-test.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            sentences += [text for row in csv.reader(handle) for text in row[:2]]
    trainer_model = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    trainer_model.normalizer = normalizers.BertNormalizer(lowercase=False)
    trainer_model.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer_model.train_from_iterator(
        sentences,
        trainers.WordPieceTrainer(
            vocab_size=6000, special_tokens=list(SPECIALS), show_progress=False
        ),
    )
    return dict(trainer_model.get_vocab())


def write_wordpiece_checkpoint(directory: Path, *, layout: str) -> Path:
    """Saves the trained vocabulary as a tokenizer of ``layout`` into ``directory``."""
    import transformers
    from tokenizers import normalizers, pre_tokenizers

    vocab = trained_vocab()
    if layout == "mpnet":
        tokenizer: Any = transformers.MPNetTokenizerFast(vocab=vocab)
    elif layout == "distilbert":
        tokenizer = transformers.DistilBertTokenizerFast(vocab=vocab)
    elif layout == "sequence":
        tokenizer = custom_wordpiece(
            normalizer=normalizers.Sequence(
                [normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()]
            ),
            pre_tokenizer=pre_tokenizers.Sequence(
                [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
            ),
        )
    elif layout == "no-normalizer":
        tokenizer = custom_wordpiece(
            normalizer=None, pre_tokenizer=pre_tokenizers.BertPreTokenizer()
        )
    else:
        raise ValueError(f"unknown WordPiece layout {layout!r}")
    tokenizer.save_pretrained(os.fspath(directory))
    return directory


def custom_wordpiece(*, normalizer: Any, pre_tokenizer: Any) -> Any:
    """A transformers fast tokenizer over the trained vocabulary with these components and
    BERT's template (``[CLS] A [SEP] B:1 [SEP]:1``)."""
    import transformers
    from tokenizers import Tokenizer, models, processors

    backend = Tokenizer(models.WordPiece(trained_vocab(), unk_token="[UNK]"))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", SPECIALS.index("[CLS]")), ("[SEP]", SPECIALS.index("[SEP]"))],
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, **{f"{key}_token": value for key, value in BERT_SPECIALS.items()}
    )
