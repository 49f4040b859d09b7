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
import random
import types
from collections.abc import Mapping
from typing import Any

from models.tokenizers.errors import UnsupportedTokenizerError
from models.tokenizers.special_tokens_template import SpecialTokensTemplate

__all__ = ["WORD_BREAK", "ReferenceTables", "UnsupportedTokenizerError"]

# Word boundaries in the composed map. A space is whitespace for every pre-tokenizer reproduced
# here (checked when the map is derived), so no word can contain it after the map is applied.
WORD_BREAK = " "
# Rust's char::is_whitespace (Unicode White_Space): what the reference's lstrip/rstrip of added
# tokens and its whitespace pre-tokenizers treat as whitespace.
WHITESPACE = "".join(
    chr(cp)
    for cp in (
        *range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
        0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
    )
)  # fmt: skip

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
    # Literal tokens that swallow the whitespace before / after them -> (lstrip, rstrip).
    literal_strip: Mapping[str, tuple[bool, bool]] = dataclasses.field(default_factory=dict)

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
        normalizer = spec.get("normalizer")
        _check_normalizer(normalizer)
        _check_pre_tokenizer(spec.get("pre_tokenizer"))
        model = _expect_type(spec.get("model"), "WordPiece", "model")
        bert = normalizer if (normalizer or {}).get("type") == "BertNormalizer" else None
        members = _members(normalizer)

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
        literal_tokens, literal_strip = _literal_tokens(spec.get("added_tokens") or [], ids)
        template = SpecialTokensTemplate.from_reference(tokenizer)

        return cls(
            vocab=vocab,
            char_map=_cached_char_map(backend, spec),
            do_lower_case=bool(bert["lowercase"]) if bert else "Lowercase" in members,
            strip_accents=bert.get("strip_accents") if bert else "StripAccents" in members,
            handle_chinese_chars=bool(bert and bert["handle_chinese_chars"]),
            clean_text=bool(bert and bert["clean_text"]),
            continuing_subword_prefix=model["continuing_subword_prefix"],
            max_input_chars_per_word=int(model["max_input_chars_per_word"]),
            literal_tokens=literal_tokens,
            literal_strip=literal_strip,
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


def _literal_tokens(
    added_tokens: list[dict[str, Any]], ids: dict[str, int]
) -> tuple[dict[str, int], dict[str, tuple[bool, bool]]]:
    literal: dict[str, int] = {}
    strip: dict[str, tuple[bool, bool]] = {}
    for added in added_tokens:
        content = added["content"]
        if added.get("normalized"):
            raise UnsupportedTokenizerError(
                f"added token {content!r} is normalized; only raw-text matches "
                "(normalized=False) are reproduced"
            )
        if added.get("single_word"):
            raise UnsupportedTokenizerError(f"added token {content!r} is single_word")
        if ids.get(content) != added["id"]:
            raise UnsupportedTokenizerError(
                f"added token {content!r} (id {added['id']}) is not the vocabulary's token"
            )
        literal[content] = added["id"]
        if added.get("lstrip") or added.get("rstrip"):
            if any(char in WHITESPACE for char in content):
                raise UnsupportedTokenizerError(
                    f"added token {content!r} strips whitespace and contains some"
                )
            strip[content] = (bool(added.get("lstrip")), bool(added.get("rstrip")))
    _check_no_overlap(list(literal))
    return literal, strip


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
        _check_on_corpus(composed, backend, spec)
        _CHAR_MAPS[key] = types.MappingProxyType(composed)
    return _CHAR_MAPS[key]


# --- which normalizers and pre-tokenizers the map can stand for ------------------------------
# Normalizers that map each code point on its own (NFD/NFKD only as far as the corpus check
# below confirms: their canonical reordering of combining marks spans characters, which a
# following StripAccents hides). NFC/NFKC compose across characters; Replace patterns of more
# than one code point, Prepend, Strip and Precompiled charsmaps look at neighbours.
_CHARWISE_NORMALIZERS = {"BertNormalizer", "Lowercase", "StripAccents", "NFD", "NFKD", "Replace"}
# Pre-tokenizers whose decision for a character depends on that character alone.
_CHARWISE_PRE_TOKENIZERS = {"BertPreTokenizer", "WhitespaceSplit", "Punctuation", "Digits"}


def _members(component: dict[str, Any] | None) -> list[str]:
    if component is None:
        return []
    if component.get("type") == "Sequence":
        inner = component.get("normalizers", component.get("pretokenizers", []))
        return [name for member in inner for name in _members(member)]
    return [component.get("type", "?")]


def component_name(component: dict[str, Any] | None) -> str:
    """``Split(pattern=..., behavior=...)``: a component's type and settings, for refusals."""
    if component is None:
        return "none"
    kind = component.get("type", "?")
    if kind == "Sequence":
        inner = component.get("normalizers", component.get("pretokenizers", []))
        return f"Sequence[{', '.join(component_name(member) for member in inner)}]"
    settings = ", ".join(f"{key}={value!r}" for key, value in component.items() if key != "type")
    return f"{kind}({settings})" if settings else kind


def _flat_components(component: dict[str, Any] | None) -> list[dict[str, Any]]:
    if component is None:
        return []
    if component.get("type") == "Sequence":
        inner = component.get("normalizers", component.get("pretokenizers", []))
        return [leaf for member in inner for leaf in _flat_components(member)]
    return [component]


def _check_normalizer(normalizer: dict[str, Any] | None) -> None:
    for leaf in _flat_components(normalizer):
        kind = leaf.get("type")
        single_char_replace = (
            kind == "Replace"
            and set(leaf.get("pattern", {})) == {"String"}
            and len(leaf["pattern"]["String"]) == 1
        )
        if kind not in _CHARWISE_NORMALIZERS or (kind == "Replace" and not single_char_replace):
            raise UnsupportedTokenizerError(
                f"normalizer {component_name(leaf)} is not reproduced: it does not map each "
                "character on its own"
            )


def _check_pre_tokenizer(pre_tokenizer: dict[str, Any] | None) -> None:
    if pre_tokenizer is None:
        raise UnsupportedTokenizerError(
            "no pre_tokenizer is not reproduced: WordPiece would see whole texts as one word"
        )
    for leaf in _flat_components(pre_tokenizer):
        kind = leaf.get("type")
        charwise = kind in _CHARWISE_PRE_TOKENIZERS
        if kind == "Punctuation":
            charwise = leaf.get("behavior") == "Isolated"
        if kind == "Digits":
            charwise = bool(leaf.get("individual_digits"))
        if not charwise:
            raise UnsupportedTokenizerError(
                f"pre_tokenizer {component_name(leaf)} is not reproduced: its split depends on "
                "more than one character"
            )


def _check_on_corpus(char_map: Mapping[str, str], backend: Any, spec: dict[str, Any]) -> None:
    """The premise, checked at export time: the map's words equal the reference's
    pre-tokenized words on the probe corpus and a fuzzed one (per-character normalization and
    per-character splitting both hold there, or the configuration is refused)."""
    from models.probe_texts import PROBE_TEXTS

    normalizer, pre_tokenizer = backend.normalizer, backend.pre_tokenizer
    for text in [*PROBE_TEXTS, *_fuzz_texts()]:
        normalized = text if normalizer is None else normalizer.normalize_str(text)
        if normalizer is not None and normalized != "".join(map(normalizer.normalize_str, text)):
            raise UnsupportedTokenizerError(
                f"normalizer {component_name(spec['normalizer'])} is not reproduced: it does "
                f"not act character by character (e.g. on {text!r})"
            )
        theirs = [word for word, _ in pre_tokenizer.pre_tokenize_str(normalized)]
        mapped = "".join(char_map.get(char, char) for char in text)
        ours = [word for word in mapped.split(WORD_BREAK) if word]
        if ours != theirs:
            raise UnsupportedTokenizerError(
                f"pre_tokenizer {component_name(spec['pre_tokenizer'])} is not reproduced: it "
                f"does not split character by character (e.g. on {text!r})"
            )


def _fuzz_texts() -> list[str]:
    """Short random texts mixing what breaks per-character assumptions: combining marks in
    every order, conjoining jamo, final sigma, whitespace and punctuation runs, digits, and
    code points from all of Unicode."""
    rng = random.Random(20261203)
    pools = [
        [chr(cp) for cp in (*range(0x300, 0x370), 0x1DC0, 0x0591, 0x05B0, 0x0E38, 0x0E48, 0x3099)],
        list("aeiouAEIOUΣσΟΔİIßﬁﬀ①한국\u1100\u1161\u11a8日本ｶﾞ"),
        list(" \t\n\u3000\u00a0\u2003.,!?-'\"()[]<>#@/\\…。、！"),
        list("0123456789٠١٢"),
    ]
    texts = []
    for _ in range(3000):
        chars = []
        for _ in range(rng.randint(1, 16)):
            if rng.random() < 0.15:
                cp = rng.randrange(0x110000)
                chars.append(chr(cp) if cp not in _SURROGATES else "x")
            else:
                chars.append(rng.choice(rng.choice(pools)))
        texts.append("".join(chars))
    return texts


def _composed_char_map(normalizer: Any, pre_tokenizer: Any) -> dict[str, str]:
    """Input char -> normalized chars, each whitespace spelled WORD_BREAK, each punctuation
    character p spelled " p ". Only characters whose result differs from themselves are kept."""
    characters = [chr(cp) for cp in range(0x110000) if cp not in _SURROGATES]
    word_class: dict[str, str] = {}
    for start in range(0, len(characters), _CLASSIFY_CHUNK):
        word_class.update(_word_classes(pre_tokenizer, characters[start : start + _CLASSIFY_CHUNK]))
    normalize = normalizer.normalize_str if normalizer is not None else str
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
