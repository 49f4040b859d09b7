"""Offline byte-level BPE (RoBERTa-style) tokenizer checkpoints for tests and benchmarks.

A byte-level BPE is trained with the ``tokenizers`` library on the vendored STS-B sentences
(11 languages) and saved the way a released RoBERTa checkpoint ships it: transformers'
``RobertaTokenizerFast.save_pretrained`` (tokenizer.json + tokenizer_config.json), so
``AutoTokenizer.from_pretrained(directory)`` is the reference the in-graph tokenizer must equal.
"""

from __future__ import annotations

import csv
import functools
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.support.data import STSB_DIR

ROBERTA_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


@functools.cache
def stsb_sentences() -> tuple[str, ...]:
    """Both sentences of every STS-B test pair, all 11 languages, file by file."""
    sentences: list[str] = []
    for path in sorted(STSB_DIR.glob("stsb-*-test.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                sentences += [row[0], row[1]]
    return tuple(sentences)


@functools.cache
def _trained_vocab(vocab_size: int) -> Path:
    """vocab.json + merges.txt of a byte-level BPE trained on STS-B (~4 s, once per size)."""
    from tokenizers import ByteLevelBPETokenizer

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(
        stsb_sentences(),
        vocab_size=vocab_size,
        special_tokens=list(ROBERTA_SPECIALS),
        show_progress=False,
    )
    directory = Path(tempfile.mkdtemp(prefix="textserve-bpe-vocab-"))
    trainer.save_model(os.fspath(directory))
    return directory


def write_roberta_checkpoint(
    directory: Path,
    *,
    vocab_size: int = 1500,
    add_prefix_space: bool = False,
    mask_lstrip: bool = True,
    added_tokens: Sequence[str] = (),
) -> Path:
    """Saves a RoBERTa-style tokenizer (trained byte-level BPE) into ``directory``.

    ``mask_lstrip`` is how released RoBERTa checkpoints declare "<mask>" (it swallows the
    space before it); ``added_tokens`` are added as user tokens (``normalized=True``).
    """
    from tokenizers import AddedToken
    from transformers import RobertaTokenizerFast

    reference = RobertaTokenizerFast.from_pretrained(
        os.fspath(_trained_vocab(vocab_size)),
        mask_token=AddedToken("<mask>", lstrip=mask_lstrip, normalized=False, special=True),
        add_prefix_space=add_prefix_space,
    )
    if added_tokens:
        reference.add_tokens(list(added_tokens))
    reference.save_pretrained(os.fspath(directory))
    return directory


def write_english_alphabet_checkpoint(directory: Path, *, unk_token: str | None) -> Path:
    """A byte-level BPE trained on English STS-B only, WITHOUT the full byte alphabet: bytes
    English never uses have no symbol, so other text exercises the reference's unknown-symbol
    rule (``<unk>`` per byte, or dropped when the model has no unk token)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    english = [sentence for sentence in stsb_sentences() if sentence.isascii()]
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.train_from_iterator(
        english,
        trainers.BpeTrainer(vocab_size=600, special_tokens=list(ROBERTA_SPECIALS), show_progress=False),
    )
    backend.post_processor = processors.RobertaProcessing(
        ("</s>", backend.token_to_id("</s>")), ("<s>", backend.token_to_id("<s>"))
    )
    if unk_token is None:
        backend = Tokenizer.from_str(_without_unk(backend.to_str()))
    # The generic fast tokenizer keeps tokenizer.json as it is; RobertaTokenizer would rebuild
    # the BPE model from vocab and merges and lose its unk token.
    reference = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
    )
    reference.save_pretrained(os.fspath(directory))
    return directory


def _without_unk(spec_json: str) -> str:
    import json

    spec = json.loads(spec_json)
    spec["model"]["unk_token"] = None
    return json.dumps(spec)
