"""Offline byte-level BPE (RoBERTa-style) tokenizer checkpoints for tests and benchmarks.

A byte-level BPE is trained with the ``tokenizers`` library on the vendored STS-B sentences
(11 languages) and saved the way a released RoBERTa checkpoint ships it: transformers'
``RobertaTokenizerFast.save_pretrained`` (tokenizer.json + tokenizer_config.json), so
``AutoTokenizer.from_pretrained(directory)`` is the reference the in-graph tokenizer must equal.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

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


def random_unicode_texts(count: int, *, seed: int, extra_tokens: Sequence[str] = ()) -> list[str]:
    """Texts over all of Unicode (no surrogates), salted with what the pre-tokenizer and the
    added-token split treat specially: runs of mixed whitespace, contractions, special tokens
    with and without surrounding spaces."""
    rng = random.Random(seed)
    salt = [
        " ", "  ", "\t", "\n", "\u00a0", "\u3000", "\u2028", "\x00", " \t", "'s", "'S", "'ll",
        "'re", "''", " '", "'", "1", "²", "٣", "a", "É", "ß", "東", "🇩🇪", "e\u0301",
        *ROBERTA_SPECIALS, *(" " + token + " " for token in ROBERTA_SPECIALS), *extra_tokens,
    ]  # fmt: skip
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(0, 24)):
            if rng.random() < 0.45:
                parts.append(rng.choice(salt))
            else:
                code_point = rng.randrange(0x110000 - 0x800)
                parts.append(chr(code_point + 0x800 if code_point >= 0xD800 else code_point))
        texts.append("".join(parts))
    return texts


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
        trainers.BpeTrainer(
            vocab_size=600, special_tokens=list(ROBERTA_SPECIALS), show_progress=False
        ),
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
    spec = json.loads(spec_json)
    spec["model"]["unk_token"] = None
    return json.dumps(spec)


def edited_checkpoint(source: Path, target: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of a checkpoint whose tokenizer.json ``edit`` changed in place, loaded as written
    by the generic fast tokenizer (RobertaTokenizer would rebuild the model and pre-tokenizer
    from vocab and merges and undo the edit)."""
    shutil.copytree(source, target)
    spec_file = target / "tokenizer.json"
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    edit(spec)
    spec_file.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    config_file = target / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    return target
