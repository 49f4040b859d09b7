"""ByteLevelBpeTables: what is read from the reference, and what is refused in one line.

Each refusal edits a real saved RoBERTa tokenizer.json the way another checkpoint would differ,
loads it with the reference (so the configuration is one the reference accepts), and checks
the in-graph side refuses it naming the component.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import transformers
from tokenizers import pre_tokenizers, processors

from models.errors import CheckpointError
from models.tokenizers.bpe.byte_level_bpe_tables import (
    LETTER,
    NUMBER,
    OTHER,
    WHITESPACE,
    ByteLevelBpeTables,
    byte_level_alphabet,
    char_classes,
)
from models.tokenizers.errors import UnsupportedTokenizerError
from tests.support.byte_level_bpe_checkpoint import edited_checkpoint, write_roberta_checkpoint


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_roberta_checkpoint(tmp_path_factory.mktemp("roberta"))


def test_reads_vocabulary_merges_and_roberta_tokens(roberta_dir: Path) -> None:
    reference = transformers.AutoTokenizer.from_pretrained(os.fspath(roberta_dir))
    tables = ByteLevelBpeTables.from_reference(reference)
    spec = json.loads(reference.backend_tokenizer.to_str())
    first_left, first_right = spec["model"]["merges"][0]
    assert tables.merges[0] == (
        tables.vocab[first_left],
        tables.vocab[first_right],
        tables.vocab[first_left + first_right],
        0,
    )
    assert tables.byte_ids[ord(" ")] == tables.vocab["Ġ"]
    assert tables.byte_ids[ord("a")] == tables.vocab["a"]
    assert [token.content for token in tables.added_tokens] == [
        "<s>",
        "<pad>",
        "</s>",
        "<unk>",
        "<mask>",
    ]
    mask = tables.added_tokens[-1]
    assert (mask.lstrip, mask.rstrip, mask.normalized) == (True, False, False)
    assert tables.template.start_of_sequence_id == tables.vocab["<s>"]
    assert tables.template.end_of_segment_id == tables.vocab["</s>"]
    assert (tables.pad_token, tables.mask_token, tables.unk_token) == ("<pad>", "<mask>", None)
    assert not tables.add_prefix_space and tables.use_regex


def test_byte_level_alphabet_is_the_reference_one() -> None:
    alphabet = byte_level_alphabet()
    assert sorted(alphabet) == sorted(pre_tokenizers.ByteLevel.alphabet())
    assert (alphabet[ord(" ")], alphabet[ord("\n")], alphabet[ord("A")]) == ("Ġ", "Ċ", "A")


def test_char_classes_agree_with_the_reference_regex() -> None:
    classes = char_classes()
    expected = {
        "a": LETTER, "É": LETTER, "東": LETTER, "ß": LETTER, "1": NUMBER, "²": NUMBER, "Ⅻ": NUMBER,
        " ": WHITESPACE, "\t": WHITESPACE, "\u3000": WHITESPACE, "\u0085": WHITESPACE,
        "!": OTHER, "\x00": OTHER, "\u0301": OTHER, "\U0010ffff": OTHER, "\u200b": OTHER,
    }  # fmt: skip
    assert {char: classes[ord(char)] for char in expected} == {
        char: code[0] for char, code in expected.items()
    }


def _set_normalizer(spec: dict[str, Any]) -> None:
    spec["normalizer"] = {"type": "NFC"}


def _set_pre_tokenizer(spec: dict[str, Any]) -> None:
    spec["pre_tokenizer"] = {"type": "Whitespace"}


def _set_dropout(spec: dict[str, Any]) -> None:
    spec["model"]["dropout"] = 0.1


def _set_suffix(spec: dict[str, Any]) -> None:
    spec["model"]["end_of_word_suffix"] = "</w>"


def _set_ignore_merges(spec: dict[str, Any]) -> None:
    spec["model"]["ignore_merges"] = True


def _set_single_word(spec: dict[str, Any]) -> None:
    spec["added_tokens"][-1]["single_word"] = True


def _move_merge_first(spec: dict[str, Any]) -> None:
    # A merge that uses a token created later: the heap order and per-rank steps could differ.
    merges = spec["model"]["merges"]
    created = {"".join(merge) for merge in merges}
    index = next(i for i, merge in enumerate(merges) if merge[0] in created or merge[1] in created)
    merges.insert(0, merges.pop(index))


@pytest.mark.parametrize(
    ("edit", "component"),
    [
        (_set_normalizer, "normalizer 'NFC'"),
        (_set_pre_tokenizer, "pre_tokenizer 'Whitespace'"),
        (_set_dropout, "dropout"),
        (_set_suffix, "end_of_word_suffix"),
        (_set_ignore_merges, "ignore_merges"),
        (_set_single_word, "single_word"),
        (_move_merge_first, "merge of rank 0"),
    ],
)
def test_refuses_what_it_does_not_reproduce(
    roberta_dir: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None], component: str
) -> None:
    directory = edited_checkpoint(roberta_dir, tmp_path / "edited", edit)
    with pytest.raises(UnsupportedTokenizerError, match=component) as refused:
        ByteLevelBpeTables.from_checkpoint(directory)
    assert isinstance(refused.value, CheckpointError)
    assert "\n" not in str(refused.value)


def test_refuses_a_wordpiece_checkpoint(minilm_checkpoint: Path) -> None:
    with pytest.raises(UnsupportedTokenizerError, match="normalizer 'BertNormalizer'"):
        ByteLevelBpeTables.from_checkpoint(minilm_checkpoint)


def test_refuses_a_gpt2_checkpoint_without_pad_and_mask_tokens(
    roberta_dir: Path, tmp_path: Path
) -> None:
    # GPT-2's tokenizer: the same byte-level BPE, but no padding, mask or special-token layout.
    def as_gpt2(spec: dict[str, Any]) -> None:
        spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] == "</s>"]
        spec["post_processor"] = json.loads(processors.ByteLevel(trim_offsets=True).__getstate__())

    directory = edited_checkpoint(roberta_dir, tmp_path / "gpt2", as_gpt2)
    config_file = directory / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    for name in ("pad_token", "mask_token", "cls_token", "sep_token", "unk_token", "bos_token"):
        config.pop(name, None)
    config["eos_token"] = "</s>"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(UnsupportedTokenizerError, match="^pad_token None is missing"):
        ByteLevelBpeTables.from_checkpoint(directory)
