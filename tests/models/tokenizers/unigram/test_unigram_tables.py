"""UnigramTables: what is derived from the reference, and what is refused in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from models.tokenizers.errors import UnsupportedTokenizerError
from models.tokenizers.unigram.precompiled_charsmap import PrecompiledCharsmap
from models.tokenizers.unigram.unigram_tables import UnigramTables


def _reference(spec: dict[str, Any]) -> Any:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        bos_token="<s>", eos_token="</s>", pad_token="<pad>", mask_token="<mask>",
        unk_token="<unk>",
    )  # fmt: skip


@pytest.fixture(scope="module")
def legacy_spec(unigram_dirs: dict[str, Path]) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(
        (unigram_dirs["legacy"] / "tokenizer.json").read_text(encoding="utf-8")
    )
    return spec


def test_tables_follow_the_reference(
    unigram_references: dict[str, Any],
) -> None:
    xlmr = UnigramTables.from_reference(unigram_references["xlmr"])
    assert xlmr.pieces[:4] == ("<s>", "<pad>", "</s>", "<unk>") and xlmr.unk_id == 3
    assert xlmr.whitespace_split and xlmr.prepend_scheme == "always" and xlmr.split
    assert xlmr.charsmap_rules is not None and not xlmr.char_map
    # nmt_nfkc: halfwidth katakana folds; a base letter + combining accent composes.
    assert xlmr.charsmap_rules["\uff76"] == "\u30ab"
    assert xlmr.charsmap_rules["e\u0301"] == "\u00e9"
    albert = UnigramTables.from_reference(unigram_references["albert"])
    assert [r.content for r in albert.replacements_before] == ['"', '"']
    assert albert.char_map["\u00c9"] == "e"  # NFKD + StripAccents + Lowercase
    assert albert.do_lower_case and (albert.pad_id, albert.mask_id) == (0, 4)
    legacy = UnigramTables.from_reference(unigram_references["legacy"])
    assert [r.pattern for r in legacy.replacements_after] == [" {2,}"]
    assert not legacy.whitespace_split
    assert [(t.content, t.lstrip) for t in legacy.special_tokens if t.lstrip] == [("<mask>", True)]


def test_charsmap_rules_match_the_reference_per_character(
    legacy_spec: dict[str, Any],
) -> None:
    import base64

    from tokenizers import normalizers

    encoded = legacy_spec["normalizer"]["normalizers"][0]["precompiled_charsmap"]
    rules = PrecompiledCharsmap.from_base64(encoded, max_key_bytes=5).rules
    reference = normalizers.Precompiled(base64.b64decode(encoded))
    singles = {key: value for key, value in rules.items() if len(key) == 1}
    assert len(singles) > 5000
    assert all(reference.normalize_str(key) == value for key, value in singles.items())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["model"].update(byte_fallback=True), "model Unigram with byte_fallback"),
        (lambda s: s["model"].update(unk_id=None), "model Unigram without unk_id"),
        (
            lambda s: s.update(normalizer={"type": "NFKC"}),
            "normalizer NFKC is not reproduced",
        ),
        (
            lambda s: s["normalizer"]["normalizers"].append({"type": "Lowercase"}),
            "normalizer Lowercase is not reproduced in this position",
        ),
        (
            lambda s: s["normalizer"]["normalizers"][1]["pattern"].update(Regex=r"\s+"),
            "normalizer Replace with pattern",
        ),
        (
            lambda s: s.update(pre_tokenizer={"type": "Whitespace"}),
            "pre_tokenizer ['Whitespace'] is not reproduced",
        ),
        (
            lambda s: s.update(
                pre_tokenizer={
                    "type": "Sequence",
                    "pretokenizers": [
                        {"type": "WhitespaceSplit"},
                        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first"},
                    ],
                }
            ),
            "prepend_scheme 'first' after WhitespaceSplit",
        ),
        (
            lambda s: s["added_tokens"][-1].update(normalized=True),
            "added token '<mask>' is matched in normalized text",
        ),
        (
            lambda s: s["added_tokens"][-1].update(single_word=True),
            "added token '<mask>' is single_word",
        ),
    ],
)
def test_what_is_not_reproduced_is_refused_in_one_line(
    legacy_spec: dict[str, Any], change: Any, message: str
) -> None:
    spec = json.loads(json.dumps(legacy_spec))
    change(spec)
    try:
        reference = _reference(spec)
    except Exception as exc:  # the reference itself may reject the change
        pytest.fail(f"reference rejected the test's change: {exc}")
    with pytest.raises(UnsupportedTokenizerError, match=re.escape(message)) as raised:
        UnigramTables.from_reference(reference)
    assert "\n" not in str(raised.value)


def test_other_models_are_refused(unigram_references: dict[str, Any]) -> None:
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    bpe = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE()))
    with pytest.raises(UnsupportedTokenizerError, match="model 'BPE' is not reproduced"):
        UnigramTables.from_reference(bpe)
