"""WordPiece beyond BERT's own layout: MPNet, DistilBERT, other normalizers and pre-tokenizers.

Every tokenizer here is built offline: a WordPiece vocabulary trained on the STS-B sentences
with the ``tokenizers`` library, saved through transformers' tokenizer classes, loaded back
with ``AutoTokenizer`` as the reference. Parity is token for token (ids, type ids, mask) on
every STS-B sentence and pair, the probe corpus at two max lengths and random texts, and the
offsets equal the reference's ``offset_mapping``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import tensorflow as tf
import transformers
from tokenizers import normalizers, pre_tokenizers

from models import contract
from models.tokenizers import text_tokenizer_from_checkpoint
from models.tokenizers.errors import UnsupportedTokenizerError
from models.tokenizers.text_tokenizer import TextTokenizer
from tests.models.tokenizers.corpora import (
    neighbour_pairs,
    probe_texts,
    random_texts,
    stsb_pairs,
    stsb_sentences,
)
from tests.support.wordpiece_checkpoint import (
    WORDPIECE_LAYOUTS,
    custom_wordpiece,
    write_wordpiece_checkpoint,
)

MAX_LENGTH = 128


@pytest.fixture(scope="module", params=WORDPIECE_LAYOUTS)
def layout(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Any, TextTokenizer]:
    name = request.param
    directory = write_wordpiece_checkpoint(tmp_path_factory.mktemp(name), layout=name)
    reference = transformers.AutoTokenizer.from_pretrained(os.fspath(directory))
    tokenizer = text_tokenizer_from_checkpoint(
        directory, max_seq_length=MAX_LENGTH, pad_to_longest=True
    )
    return name, reference, tokenizer


def assert_parity(
    tokenizer: TextTokenizer,
    reference: Any,
    texts: Sequence[str],
    pairs: Sequence[str] | None = None,
    *,
    max_length: int = MAX_LENGTH,
) -> None:
    """Ids, mask and type ids equal the reference's row by row (type ids are all 0 where the
    reference's model takes none)."""
    pad = dict(padding="longest", truncation=True, max_length=max_length)
    if pairs is None:
        ours = tokenizer(tf.constant(list(texts)))
        theirs = reference(list(texts), **pad)
    else:
        ours = tokenizer(tf.constant(list(texts)), tf.constant(list(pairs)))
        theirs = reference(list(texts), list(pairs), **pad)
    ids = np.array(theirs["input_ids"], np.int32)
    expected = {
        contract.INPUT_WORD_IDS: ids,
        contract.INPUT_MASK: np.array(theirs["attention_mask"], np.int32),
        contract.INPUT_TYPE_IDS: np.array(theirs.get("token_type_ids", np.zeros_like(ids))),
    }
    width = ids.shape[1]
    for key, want in expected.items():
        got = ours[key].numpy()
        assert got.shape == (len(texts), width), key
        differing = np.flatnonzero((got != want).any(axis=1))
        if differing.size:
            row = int(differing[0])
            second = "" if pairs is None else f" + {pairs[row]!r}"
            pytest.fail(
                f"{key}: {differing.size} of {len(texts)} rows differ, first {texts[row]!r}"
                f"{second}: reference {want[row].tolist()} graph {got[row].tolist()}"
            )


def assert_offsets(tokenizer: Any, reference: Any, texts: Sequence[str]) -> None:
    ids, starts, ends = tokenizer.tokenize_with_offsets(tf.constant(list(texts)))
    theirs = reference(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    got = list(zip(ids.to_list(), starts.to_list(), ends.to_list(), strict=True))
    for row, text in enumerate(texts):
        want_ids = theirs["input_ids"][row]
        want = [list(span) for span in theirs["offset_mapping"][row]]
        our_ids, our_starts, our_ends = got[row]
        assert our_ids == want_ids, f"ids differ on {text!r}"
        spans = [[start, end] for start, end in zip(our_starts, our_ends, strict=True)]
        assert spans == want, f"offsets differ on {text!r}: {spans} vs {want}"


def test_layout_is_read_from_the_reference(layout: tuple[str, Any, TextTokenizer]) -> None:
    name, reference, tokenizer = layout
    template = tokenizer.template
    assert template.has_token_types == ("token_type_ids" in reference.model_input_names)
    pair = reference("hello", "world")["input_ids"]
    ours = tokenizer(tf.constant(["hello"]), tf.constant(["world"]))
    assert ours[contract.INPUT_WORD_IDS].numpy().tolist() == [pair]
    expected_middle = 2 if name == "mpnet" else 1
    assert len(template.pair_middle) == expected_middle
    assert tokenizer.special_tokens_dict()["mask_id"] == reference.mask_token_id


@pytest.mark.slow
def test_parity_on_stsb_sentences_and_pairs(layout: tuple[str, Any, TextTokenizer]) -> None:
    # Every sentence and pair for MPNet (the layout furthest from BERT's); every third pair
    # for the others, to keep the suite's time (tests/benchmarks/verify_tokenizers.py prints
    # the full figures for every layout).
    name, reference, tokenizer = layout
    pairs = stsb_pairs() if name == "mpnet" else stsb_pairs()[::3]
    assert_parity(tokenizer, reference, [text for pair in pairs for text in pair])
    assert_parity(tokenizer, reference, [a for a, _ in pairs], [b for _, b in pairs])


def test_parity_on_the_probe_corpus_at_two_lengths(
    layout: tuple[str, Any, TextTokenizer],
) -> None:
    name, reference, tokenizer = layout
    texts = probe_texts()
    firsts, seconds = neighbour_pairs(texts)
    assert_parity(tokenizer, reference, texts)
    assert_parity(tokenizer, reference, firsts, seconds)
    # A short limit truncates most texts and pairs (longest_first with the layout's specials).
    short = text_tokenizer_from_checkpoint(
        Path(reference.name_or_path), max_seq_length=12, pad_to_longest=True
    )
    assert_parity(short, reference, texts, max_length=12)
    assert_parity(short, reference, firsts, seconds, max_length=12)


def test_parity_on_random_texts(layout: tuple[str, Any, TextTokenizer]) -> None:
    _, reference, tokenizer = layout
    specials = [reference.mask_token, reference.sep_token, reference.cls_token, " <mask>"]
    texts = random_texts(2000, seed=7, specials=specials)
    assert_parity(tokenizer, reference, texts)
    assert_parity(tokenizer, reference, *neighbour_pairs(texts))


def test_offsets_equal_the_references_offset_mapping(
    layout: tuple[str, Any, TextTokenizer],
) -> None:
    _, reference, tokenizer = layout
    specials = [reference.mask_token, reference.sep_token, " <mask> "]
    assert_offsets(tokenizer, reference, probe_texts())
    assert_offsets(tokenizer, reference, random_texts(1000, seed=11, specials=specials))
    assert_offsets(tokenizer, reference, stsb_sentences()[::5])


@pytest.mark.parametrize(
    ("normalizer", "pre_tokenizer", "message"),
    [
        (normalizers.NFKC(), pre_tokenizers.BertPreTokenizer(), "^normalizer NFKC is not"),
        (
            normalizers.Sequence([normalizers.Replace("ab", "x")]),
            pre_tokenizers.BertPreTokenizer(),
            r"^normalizer Replace\(pattern=\{'String': 'ab'\}, content='x'\) is not",
        ),
        (
            normalizers.BertNormalizer(),
            pre_tokenizers.Split(r"\d+", behavior="isolated"),
            r"^pre_tokenizer Split\(pattern=\{'String': '\\\\d\+'\}, behavior='Isolated'",
        ),
        (normalizers.BertNormalizer(), pre_tokenizers.Whitespace(), "^pre_tokenizer Whitespace"),
        (
            normalizers.BertNormalizer(),
            pre_tokenizers.Digits(individual_digits=False),
            r"^pre_tokenizer Digits\(individual_digits=False\) is not",
        ),
        (normalizers.BertNormalizer(), None, "^no pre_tokenizer is not reproduced"),
    ],
)
def test_components_that_look_at_neighbours_are_refused(
    tmp_path: Path, normalizer: Any, pre_tokenizer: Any, message: str
) -> None:
    directory = _custom(normalizer=normalizer, pre_tokenizer=pre_tokenizer, directory=tmp_path)
    with pytest.raises(UnsupportedTokenizerError, match=message) as raised:
        text_tokenizer_from_checkpoint(directory, max_seq_length=16)
    assert "\n" not in str(raised.value)


def test_a_normalizer_that_is_not_per_character_on_the_corpus_is_refused(tmp_path: Path) -> None:
    # NFD alone reorders combining marks across characters: allowed by type, caught by the
    # check on the probe and fuzzed corpora.
    directory = _custom(
        normalizer=normalizers.NFD(),
        pre_tokenizer=pre_tokenizers.BertPreTokenizer(),
        directory=tmp_path,
    )
    with pytest.raises(UnsupportedTokenizerError, match="^normalizer NFD is not reproduced: it"):
        text_tokenizer_from_checkpoint(directory, max_seq_length=16)


def _custom(*, normalizer: Any, pre_tokenizer: Any, directory: Path) -> Path:
    tokenizer = custom_wordpiece(normalizer=normalizer, pre_tokenizer=pre_tokenizer)
    tokenizer.save_pretrained(os.fspath(directory))
    return directory
