"""Tables that let a graph reproduce a Hugging Face fast BERT tokenizer exactly.

The reference (``transformers.AutoTokenizer.from_pretrained(checkpoint_dir)``, backed by the
Rust ``tokenizers`` library) normalizes text code point by code point: BertNormalizer's clean-up,
CJK spacing, accent stripping and lowercasing map each character on its own, and
BertPreTokenizer's whitespace and punctuation classes depend on the character alone. So instead
of re-implementing those rules with ICU or RE2 (whose Unicode versions and case-folding rules
drift from the reference's: ICU folds ß to "ss", NFKC folds fullwidth forms the reference keeps),
this module ASKS the reference about every code point and composes the answers into one map:
input character -> the string the graph must emit for it, with word boundaries spelled as " ".

Everything is read from the reference tokenizer object; a configuration this scheme does not
reproduce raises :class:`UnsupportedTokenizerError` instead of exporting a tokenizer that drifts.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import types
from collections.abc import Mapping
from typing import Any

from models.tokenizers.errors import UnsupportedTokenizerError
from models.tokenizers.special_tokens_template import SpecialTokensTemplate

__all__ = ["WORD_BREAK", "ReferenceTables", "UnsupportedTokenizerError"]

# Word boundaries in the composed map. A space is whitespace for every BERT pre-tokenizer, so no
# word can contain it after the map is applied.
WORD_BREAK = " "

_SURROGATES = range(0xD800, 0xE000)


@dataclasses.dataclass(frozen=True)
class ReferenceTables:
    """Everything the in-graph tokenizer needs, derived from a reference fast BERT tokenizer.

    Example::

        tables = ReferenceTables.from_checkpoint("path/to/checkpoint")
        tables.char_map["É"]  # 'e' for an uncased model (lowercase + strip accents)
        tables.char_map["!"]  # ' ! ' (punctuation is a word of its own)
    """

    vocab: tuple[str, ...]
    # input character -> its replacement; characters not listed stay as they are.
    char_map: Mapping[str, str]
    do_lower_case: bool
    strip_accents: bool | None  # the reference's raw setting: None follows do_lower_case
    handle_chinese_chars: bool
    clean_text: bool
    unk_token: str
    continuing_subword_prefix: str
    max_input_chars_per_word: int
    # Added tokens the reference matches in the RAW text before normalization -> their ids.
    literal_tokens: Mapping[str, int]
    cls_token: str
    sep_token: str
    pad_token: str
    mask_token: str
    # Special tokens and type ids around one or two segments (the reference's post-processor).
    template: SpecialTokensTemplate

    def token_id(self, token: str) -> int:
        return self._ids[token]

    @functools.cached_property
    def _ids(self) -> dict[str, int]:
        return {token: index for index, token in enumerate(self.vocab)}

    @classmethod
    def from_checkpoint(cls, checkpoint_dir: str | os.PathLike[str]) -> ReferenceTables:
        """Loads the reference tokenizer of ``checkpoint_dir`` (offline) and derives the tables."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer  # heavy import, only needed at export time

        tokenizer = AutoTokenizer.from_pretrained(os.fspath(checkpoint_dir))
        return cls.from_reference(tokenizer)

    @classmethod
    def from_reference(cls, tokenizer: Any) -> ReferenceTables:
        """Derives the tables from a loaded ``transformers`` fast tokenizer."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise UnsupportedTokenizerError(
                f"{type(tokenizer).__name__} is not a fast (tokenizers-backed) tokenizer"
            )
        spec = json.loads(backend.to_str())
        normalizer = _expect_type(spec.get("normalizer"), "BertNormalizer", "normalizer")
        _expect_type(spec.get("pre_tokenizer"), "BertPreTokenizer", "pre_tokenizer")
        model = _expect_type(spec.get("model"), "WordPiece", "model")

        vocab = _vocab_in_id_order(model["vocab"])
        special = {
            "cls_token": tokenizer.cls_token,
            "sep_token": tokenizer.sep_token,
            "pad_token": tokenizer.pad_token,
            "mask_token": tokenizer.mask_token,
            "unk_token": model["unk_token"],
        }
        for name, token in special.items():
            if token is None or token not in vocab:
                raise UnsupportedTokenizerError(f"{name} {token!r} is missing from the vocabulary")
        ids = {token: index for index, token in enumerate(vocab)}
        literal_tokens = _literal_tokens(spec.get("added_tokens") or [], ids)
        template = SpecialTokensTemplate.from_reference(tokenizer)

        return cls(
            vocab=vocab,
            char_map=_cached_char_map(backend, spec),
            do_lower_case=bool(normalizer["lowercase"]),
            strip_accents=normalizer.get("strip_accents"),
            handle_chinese_chars=bool(normalizer["handle_chinese_chars"]),
            clean_text=bool(normalizer["clean_text"]),
            continuing_subword_prefix=model["continuing_subword_prefix"],
            max_input_chars_per_word=int(model["max_input_chars_per_word"]),
            literal_tokens=literal_tokens,
            template=template,
            **special,
        )


def _expect_type(component: Any, expected: str, what: str) -> dict[str, Any]:
    actual = component.get("type") if isinstance(component, dict) else None
    if actual != expected:
        raise UnsupportedTokenizerError(
            f"the reference tokenizer's {what} is {actual!r}; "
            f"only {expected} is reproduced in-graph"
        )
    return component


def _vocab_in_id_order(vocab: dict[str, int]) -> tuple[str, ...]:
    by_id = sorted(vocab.items(), key=lambda item: item[1])
    if [index for _, index in by_id] != list(range(len(by_id))):
        raise UnsupportedTokenizerError("WordPiece vocabulary ids are not contiguous from 0")
    tokens = tuple(token for token, _ in by_id)
    if any(token == "" or "\n" in token or "\r" in token for token in tokens):
        # vocab.txt (one token per line) could not round-trip such a token.
        raise UnsupportedTokenizerError("the vocabulary has an empty token or a line break in one")
    return tokens


def _literal_tokens(added_tokens: list[dict[str, Any]], ids: dict[str, int]) -> dict[str, int]:
    literal: dict[str, int] = {}
    for added in added_tokens:
        content = added["content"]
        if added.get("normalized") or added.get("lstrip") or added.get("rstrip"):
            raise UnsupportedTokenizerError(
                f"added token {content!r} is normalized or strips spaces; only raw-text matches "
                "(normalized=False, lstrip=False, rstrip=False) are reproduced"
            )
        if added.get("single_word"):
            raise UnsupportedTokenizerError(f"added token {content!r} is single_word")
        if ids.get(content) != added["id"]:
            raise UnsupportedTokenizerError(
                f"added token {content!r} (id {added['id']}) is not the vocabulary's token"
            )
        literal[content] = added["id"]
    _check_no_overlap(list(literal))
    return literal


def _check_no_overlap(tokens: list[str]) -> None:
    # The reference finds added tokens leftmost-longest in one pass; the graph replaces them one
    # after the other. Both agree when no token contains another and no token's suffix starts
    # another, which holds for BERT's bracketed specials; anything else must not export silently.
    for first in tokens:
        for second in tokens:
            if first == second:
                continue
            if second in first:
                raise UnsupportedTokenizerError(f"added token {second!r} lies inside {first!r}")
            if any(second.startswith(first[cut:]) for cut in range(1, len(first))):
                raise UnsupportedTokenizerError(f"added tokens {first!r} and {second!r} overlap")


# The derivation takes ~5 s and depends only on the two components' settings (and the
# tokenizers library in this process); an export, its verification and the tests build several
# tokenizers for the same configuration.
_CHAR_MAPS: dict[str, Mapping[str, str]] = {}


def _cached_char_map(backend: Any, spec: dict[str, Any]) -> Mapping[str, str]:
    key = json.dumps([spec["normalizer"], spec["pre_tokenizer"]], sort_keys=True)
    if key not in _CHAR_MAPS:
        composed = _composed_char_map(backend.normalizer, backend.pre_tokenizer)
        _CHAR_MAPS[key] = types.MappingProxyType(composed)
    return _CHAR_MAPS[key]


def _composed_char_map(normalizer: Any, pre_tokenizer: Any) -> dict[str, str]:
    """Input char -> normalized chars, each whitespace spelled WORD_BREAK, each punctuation
    character p spelled " p ". Only characters whose result differs from themselves are kept."""
    characters = [chr(cp) for cp in range(0x110000) if cp not in _SURROGATES]
    word_class: dict[str, str] = {}
    for start in range(0, len(characters), _CLASSIFY_CHUNK):
        word_class.update(_word_classes(pre_tokenizer, characters[start : start + _CLASSIFY_CHUNK]))
    normalize = normalizer.normalize_str
    composed: dict[str, str] = {}
    for char in characters:
        # One character at a time: the normalizer's per-character behaviour is what the graph
        # reproduces, so it is what must be asked (the whole-string answer is the same, FACTS.md).
        result = "".join(word_class[piece] for piece in normalize(char))
        if result != char:
            composed[char] = result
    return composed


# One pre_tokenize_str call per chunk instead of per character: 1.1M calls take ~7 s.
_CLASSIFY_CHUNK = 1 << 15


def _word_classes(pre_tokenizer: Any, chars: list[str]) -> dict[str, str]:
    """How BertPreTokenizer treats each char between two letters: dropped as a boundary
    (whitespace), isolated (punctuation) or kept inside the word. The chars are asked in one
    string "a c0 a c1 a ... a" (without spaces); the pre-tokenizer's classes depend on the
    character alone, and the offsets tell which piece each character landed in."""
    text = "a" + "a".join(chars) + "a"
    inside_word = bytearray(len(text))
    isolated = bytearray(len(text))
    for piece, (start, end) in pre_tokenizer.pre_tokenize_str(text):
        if text[start:end] != piece:
            raise UnsupportedTokenizerError(f"the pre-tokenizer rewrites {text[start:end]!r}")
        if end - start == 1 and start % 2 == 1:
            isolated[start] = 1
        else:
            inside_word[start:end] = b"\x01" * (end - start)
    classes: dict[str, str] = {}
    for index, char in enumerate(chars):
        position = 2 * index + 1
        if isolated[position]:
            classes[char] = WORD_BREAK + char + WORD_BREAK
        elif inside_word[position]:
            classes[char] = char
        else:
            classes[char] = WORD_BREAK
    return classes
