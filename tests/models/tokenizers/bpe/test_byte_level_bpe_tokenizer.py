"""Parity of the in-graph ByteLevelBpeTokenizer with the reference (Hugging Face fast tokenizer).

The reference is ``transformers.AutoTokenizer.from_pretrained(checkpoint_dir)`` of byte-level
BPE checkpoints trained here on STS-B (tests/support/byte_level_bpe_checkpoint.py); every check
compares ids token for token.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import tensorflow as tf
import transformers
from tokenizers import processors

from models import contract
from models.probe_texts import PROBE_TEXTS
from models.tokenizers import text_tokenizer_from_checkpoint
from models.tokenizers.bpe.byte_level_bpe_tokenizer import ByteLevelBpeTokenizer
from models.tokenizers.errors import UnsupportedTokenizerError
from tests.support.byte_level_bpe_checkpoint import (
    edited_checkpoint,
    random_unicode_texts,
    stsb_sentences,
    write_english_alphabet_checkpoint,
    write_roberta_checkpoint,
)

MAX_SEQ_LENGTH = 64
USER_TOKENS = ("hello", "<ent>")


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_roberta_checkpoint(tmp_path_factory.mktemp("roberta"))


@pytest.fixture(scope="module")
def reference(roberta_dir: Path) -> Any:
    return transformers.AutoTokenizer.from_pretrained(os.fspath(roberta_dir))


@pytest.fixture(scope="module")
def tokenizer(roberta_dir: Path) -> ByteLevelBpeTokenizer:
    return ByteLevelBpeTokenizer.from_checkpoint(roberta_dir, max_seq_length=MAX_SEQ_LENGTH)


def assert_ids_equal(
    tokenizer: ByteLevelBpeTokenizer, reference: Any, texts: Sequence[str]
) -> None:
    got = tokenizer.tokenize(tf.constant(list(texts), tf.string)).to_list()
    want = reference(list(texts), add_special_tokens=False)["input_ids"]
    mismatches = [index for index in range(len(texts)) if got[index] != want[index]]
    assert not mismatches, (
        f"{len(mismatches)} of {len(texts)} differ; first: {texts[mismatches[0]]!r}: "
        f"{got[mismatches[0]]} != {want[mismatches[0]]}"
    )


def assert_packed_equal(
    tokenizer: ByteLevelBpeTokenizer | Any,
    reference: Any,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    *,
    facts: ByteLevelBpeTokenizer | None = None,
) -> None:
    """``tokenizer(texts, pairs)`` equals ``reference(texts, pairs, truncation=True,
    max_length=max_seq_length, padding="longest")``; columns past the reference's longest row
    (up to the bucket) are padding, and RoBERTa's type ids are all 0. ``tokenizer`` may be a
    traced ``__call__``; ``facts`` is then the tokenizer it belongs to."""
    facts = facts or tokenizer
    if pairs is None:
        ours = tokenizer(tf.constant(list(texts)))
        theirs = reference(
            list(texts), truncation=True, max_length=facts.max_seq_length, padding="longest"
        )
    else:
        ours = tokenizer(tf.constant(list(texts)), tf.constant(list(pairs)))
        theirs = reference(
            list(texts),
            list(pairs),
            truncation=True,
            max_length=facts.max_seq_length,
            padding="longest",
        )
    want_ids = np.array(theirs["input_ids"], np.int32)
    want_mask = np.array(theirs["attention_mask"], np.int32)
    got_ids = ours[contract.INPUT_WORD_IDS].numpy()
    longest = want_ids.shape[1]
    assert got_ids.shape[1] == facts.bucket_width(tf.constant([longest])).numpy()
    differing = np.flatnonzero((got_ids[:, :longest] != want_ids).any(axis=1))
    assert not differing.size, (
        f"{differing.size} of {len(texts)} rows differ; first {texts[differing[0]]!r}: "
        f"{reference.convert_ids_to_tokens(got_ids[differing[0]])} != "
        f"{reference.convert_ids_to_tokens(want_ids[differing[0]])}"
    )
    np.testing.assert_array_equal(ours[contract.INPUT_MASK].numpy()[:, :longest], want_mask)
    assert (got_ids[:, longest:] == facts.pad_id).all()
    assert (ours[contract.INPUT_MASK].numpy()[:, longest:] == 0).all()
    assert not ours[contract.INPUT_TYPE_IDS].numpy().any()


@pytest.mark.slow
def test_all_stsb_sentences_single_and_paired_match_the_reference(
    tokenizer: ByteLevelBpeTokenizer, reference: Any
) -> None:
    # Traced once: eagerly, every BPE step would dispatch its ops from Python.
    tokenize = tf.function(tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    sentences = list(stsb_sentences())
    assert len(sentences) > 30_000
    got = [row for start in range(0, len(sentences), 4096)
           for row in tokenize(tf.constant(sentences[start : start + 4096])).to_list()]  # fmt: skip
    want = reference(sentences, add_special_tokens=False)["input_ids"]
    mismatches = [index for index in range(len(sentences)) if got[index] != want[index]]
    assert not mismatches, f"{len(mismatches)} differ; first: {sentences[mismatches[0]]!r}"

    pack = tf.function(
        tokenizer.__call__,
        input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)],
    )
    first, second = sentences[0::2], sentences[1::2]
    for start in range(0, len(first), 4096):
        assert_packed_equal(
            pack,
            reference,
            first[start : start + 4096],
            second[start : start + 4096],
            facts=tokenizer,
        )


def test_probe_texts_match_the_reference(tokenizer: ByteLevelBpeTokenizer, reference: Any) -> None:
    assert_ids_equal(tokenizer, reference, PROBE_TEXTS)


@pytest.mark.parametrize("max_seq_length", [16, MAX_SEQ_LENGTH])
def test_probe_texts_pack_as_the_reference(
    roberta_dir: Path, reference: Any, max_seq_length: int
) -> None:
    tokenizer = ByteLevelBpeTokenizer.from_checkpoint(roberta_dir, max_seq_length=max_seq_length)
    texts = list(PROBE_TEXTS)
    assert_packed_equal(tokenizer, reference, texts)
    # <s> A </s></s> B </s>, longest_first truncation of the pair.
    assert_packed_equal(tokenizer, reference, texts, texts[::-1])


def test_the_dispatcher_builds_it_with_roberta_special_tokens(
    roberta_dir: Path, reference: Any
) -> None:
    tokenizer = text_tokenizer_from_checkpoint(roberta_dir, max_seq_length=32, pad_to_longest=True)
    assert isinstance(tokenizer, ByteLevelBpeTokenizer)
    ids = reference.convert_tokens_to_ids
    assert tokenizer.special_tokens_dict() == {
        "vocab_size": len(reference),
        "padding_id": ids("<pad>"),
        "start_of_sequence_id": ids("<s>"),
        "end_of_segment_id": ids("</s>"),
        "mask_id": ids("<mask>"),
    }
    vocab = Path(tokenizer.vocab_file).read_text(encoding="utf-8").splitlines()
    assert vocab == reference.convert_ids_to_tokens(list(range(len(reference))))
    assert_packed_equal(tokenizer, reference, ["a <mask> b", ""], ["", "c"])


def test_random_unicode_texts_match_the_reference(
    tokenizer: ByteLevelBpeTokenizer, reference: Any
) -> None:
    assert_ids_equal(tokenizer, reference, random_unicode_texts(3000, seed=0))


def test_whitespace_contractions_and_specials_split_as_the_reference(
    tokenizer: ByteLevelBpeTokenizer, reference: Any
) -> None:
    texts = [
        "", " ", "  ", "a  b", "a \tb", "a\t b", "a\u00a0\u00a0b", "trailing  ", "\t\ttabs",
        "it's", "IT'S", " 's", "''s", "'sa", "we'll'll", "a'", "1 2  3", "x!!  ?", "NUL\x00in",
        "<s>", "<s><s>", " <s> ", "a<mask>b", "a <mask> b", "a\u3000 <mask>", "</s> <pad><unk>",
        "<mask", "<<mask>>", "<s>hello</s>",
    ]  # fmt: skip
    assert_ids_equal(tokenizer, reference, texts)


def test_mask_swallows_the_whitespace_before_it(
    tokenizer: ByteLevelBpeTokenizer, reference: Any
) -> None:
    ids = tokenizer.tokenize(tf.constant(["Paris is the <mask> of France."])).to_list()[0]
    tokens = reference.convert_ids_to_tokens(ids)
    assert tokens[tokens.index("<mask>") - 1] == "Ġthe"
    assert_ids_equal(tokenizer, reference, ["a  \t<mask>", "<mask> x", "\u2003<mask>"])


def test_prefix_space_and_user_tokens_match_the_reference(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    directory = write_roberta_checkpoint(
        tmp_path_factory.mktemp("prefix_space"), add_prefix_space=True, added_tokens=USER_TOKENS
    )
    reference = transformers.AutoTokenizer.from_pretrained(os.fspath(directory))
    tokenizer = ByteLevelBpeTokenizer.from_checkpoint(directory, max_seq_length=MAX_SEQ_LENGTH)
    texts = [
        *random_unicode_texts(1500, seed=1, extra_tokens=USER_TOKENS),
        *PROBE_TEXTS,
        "hello<ent>hello",
        " hello",
        "<s>hello",
        "x<mask>hello",
        "hellohello <ent>",
    ]
    assert_ids_equal(tokenizer, reference, texts)


@pytest.mark.parametrize("unk_token", ["<unk>", None], ids=["unk", "dropped"])
def test_bytes_missing_from_the_vocabulary_follow_the_reference(
    tmp_path_factory: pytest.TempPathFactory, unk_token: str | None
) -> None:
    directory = write_english_alphabet_checkpoint(
        tmp_path_factory.mktemp("english"), unk_token=unk_token
    )
    reference = transformers.AutoTokenizer.from_pretrained(os.fspath(directory))
    tokenizer = ByteLevelBpeTokenizer.from_checkpoint(directory, max_seq_length=MAX_SEQ_LENGTH)
    foreign = "Zürich — 東京"
    unk_id = reference.convert_tokens_to_ids("<unk>")
    # The case under test happens: foreign bytes become <unk> (one per byte) or vanish.
    unknown = reference(foreign, add_special_tokens=False)["input_ids"].count(unk_id)
    assert unknown == (len(foreign.encode()) - len("Zrich  ") if unk_token else 0)
    assert_ids_equal(tokenizer, reference, [foreign, *random_unicode_texts(500, seed=2)])


def test_works_inside_tf_function_and_on_empty_batches(
    tokenizer: ByteLevelBpeTokenizer, reference: Any
) -> None:
    tokenize = tf.function(tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    texts = ["Hello world", "", "<mask>"]
    assert (
        tokenize(tf.constant(texts)).to_list() == tokenizer.tokenize(tf.constant(texts)).to_list()
    )
    assert tokenize(tf.constant([], tf.string)).to_list() == []
    assert_ids_equal(tokenizer, reference, texts)


def test_survives_saved_model_round_trip(
    tokenizer: ByteLevelBpeTokenizer, reference: Any, tmp_path: Path
) -> None:
    module = tf.Module()
    module.tokenizer = tokenizer
    module.tokenize = tf.function(
        lambda text: tokenizer.tokenize(text).to_tensor(default_value=-1),
        input_signature=[tf.TensorSpec([None], tf.string, name="text")],
    )
    module.starts = tf.function(
        lambda text: tokenizer.tokenize_with_offsets(text)[1].to_tensor(default_value=-1),
        input_signature=[tf.TensorSpec([None], tf.string, name="text")],
    )
    module.pack = tf.function(
        tokenizer.__call__,
        input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.string)],
    )
    tf.saved_model.save(module, os.fspath(tmp_path / "saved"))
    loaded = tf.saved_model.load(os.fspath(tmp_path / "saved"))
    texts = [*PROBE_TEXTS[:40], "a <mask> b", ""]
    padded = loaded.tokenize(tf.constant(texts)).numpy().tolist()
    got = [[token for token in row if token != -1] for row in padded]
    assert got == reference(texts, add_special_tokens=False)["input_ids"]
    want = reference(texts, add_special_tokens=False, return_offsets_mapping=True)
    padded = loaded.starts(tf.constant(texts)).numpy().tolist()
    assert [
        row[: len(spans)] for row, spans in zip(padded, want["offset_mapping"], strict=True)
    ] == [[start for start, _ in spans] for spans in want["offset_mapping"]]
    assert_packed_equal(
        lambda first, second: loaded.pack(first, second),
        reference,
        texts,
        texts[::-1],
        facts=tokenizer,
    )


def assert_offsets_equal(
    tokenizer: ByteLevelBpeTokenizer, reference: Any, texts: Sequence[str]
) -> None:
    ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(list(texts)))
    want = reference(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    assert ids.to_list() == want["input_ids"]
    got = [
        list(zip(*row, strict=True)) for row in zip(starts.to_list(), ends.to_list(), strict=True)
    ]
    mismatches = [
        index
        for index in range(len(texts))
        if got[index] != [tuple(span) for span in want["offset_mapping"][index]]
    ]
    assert not mismatches, (
        f"{len(mismatches)} of {len(texts)} differ; first {texts[mismatches[0]]!r}: "
        f"{got[mismatches[0]]} != {want['offset_mapping'][mismatches[0]]}"
    )


OFFSET_TEXTS = [
    "Hello world", " a  b ", "x  <mask> y", " <mask> x", "é東京 z", "<s> hi", "<s>hi", "  lead",
    "a\t\tb", "hi<s>x", "x<mask>\t", "a<s>é", "",
]  # fmt: skip


def test_offsets_match_the_reference(tokenizer: ByteLevelBpeTokenizer, reference: Any) -> None:
    texts = [*OFFSET_TEXTS, *PROBE_TEXTS, *random_unicode_texts(1000, seed=3)]
    assert_offsets_equal(tokenizer, reference, texts)


def test_offsets_with_prefix_space_match_the_reference(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # The first token keeps the space the pre-tokenizer added; an lstrip "<mask>" at the start
    # keeps the one space it swallowed.
    directory = write_roberta_checkpoint(
        tmp_path_factory.mktemp("prefix_offsets"), add_prefix_space=True, added_tokens=USER_TOKENS
    )
    reference = transformers.AutoTokenizer.from_pretrained(os.fspath(directory))
    tokenizer = ByteLevelBpeTokenizer.from_checkpoint(directory, max_seq_length=MAX_SEQ_LENGTH)
    texts = [*OFFSET_TEXTS, *random_unicode_texts(1000, seed=4, extra_tokens=USER_TOKENS)]
    assert_offsets_equal(tokenizer, reference, texts)


def test_offsets_are_refused_when_unknown_bytes_are_dropped(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    directory = write_english_alphabet_checkpoint(
        tmp_path_factory.mktemp("dropping"), unk_token=None
    )
    tokenizer = ByteLevelBpeTokenizer.from_checkpoint(directory, max_seq_length=MAX_SEQ_LENGTH)
    with pytest.raises(UnsupportedTokenizerError, match="^offsets of a BPE model that drops"):
        tokenizer.tokenize_with_offsets(tf.constant(["Zürich"]))


def test_offsets_stay_untrimmed_without_byte_level_post_processing(
    roberta_dir: Path, tmp_path: Path
) -> None:
    # A TemplateProcessing post-processor (same layout as RoBERTa) does not trim offsets.
    def template_processing(spec: dict[str, Any]) -> None:
        spec["post_processor"] = json.loads(
            processors.TemplateProcessing(
                single="<s> $A </s>",
                pair="<s> $A </s> </s> $B </s>",
                special_tokens=[("<s>", 0), ("</s>", 2)],
            ).__getstate__()
        )

    directory = edited_checkpoint(roberta_dir, tmp_path / "template", template_processing)
    reference = transformers.AutoTokenizer.from_pretrained(os.fspath(directory))
    tokenizer = ByteLevelBpeTokenizer.from_checkpoint(directory, max_seq_length=MAX_SEQ_LENGTH)
    assert_offsets_equal(tokenizer, reference, [*OFFSET_TEXTS, *random_unicode_texts(300, seed=6)])
    _, starts, _ = tokenizer.tokenize_with_offsets(tf.constant([" a"]))
    assert starts.to_list() == [[0]]  # "Ġa" keeps its space


def test_without_the_split_regex_each_piece_is_one_word(roberta_dir: Path, tmp_path: Path) -> None:
    def no_regex(spec: dict[str, Any]) -> None:
        spec["pre_tokenizer"]["use_regex"] = False

    directory = edited_checkpoint(roberta_dir, tmp_path / "no_regex", no_regex)
    reference = transformers.AutoTokenizer.from_pretrained(os.fspath(directory))
    tokenizer = ByteLevelBpeTokenizer.from_checkpoint(directory, max_seq_length=MAX_SEQ_LENGTH)
    assert not tokenizer.use_regex
    assert_offsets_equal(tokenizer, reference, [*OFFSET_TEXTS, *random_unicode_texts(300, seed=7)])
