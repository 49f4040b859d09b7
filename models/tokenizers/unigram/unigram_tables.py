"""What the in-graph Unigram tokenizer needs, derived from a Hugging Face fast tokenizer.

Read from the reference's own ``tokenizer.json`` (``backend_tokenizer.to_str()``): the Unigram
pieces and scores, the normalizer as a list of steps the graph can run exactly, the Metaspace
pre-tokenizer's settings and the literal special tokens. Anything this does not reproduce
exactly raises :class:`UnsupportedTokenizerError` naming the component.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import types
from collections.abc import Mapping
from typing import Any

from models.tokenizers.errors import UnsupportedTokenizerError
from models.tokenizers.special_tokens_template import SpecialTokensTemplate
from models.tokenizers.unigram.precompiled_charsmap import PrecompiledCharsmap

# Normalizers that act on each code point alone (NFKD up to the canonical reordering of
# combining marks, see _per_char_map): the graph applies them as one lookup table.
_PER_CHAR_NORMALIZERS = ("NFD", "NFKD", "Lowercase", "StripAccents")
# Replace patterns given as regexes that RE2 (the graph) reads exactly as Oniguruma (the
# reference) does.
_PORTABLE_REGEXES = frozenset({" {2,}"})
# Precompiled looks a whole grapheme cluster up only when it is shorter than this many bytes.
PRECOMPILED_CLUSTER_BYTES = 6
_SURROGATES = range(0xD800, 0xE000)


@dataclasses.dataclass(frozen=True)
class Replacement:
    """A normalizer ``Replace``: RE2 ``pattern`` -> ``content``."""

    pattern: str
    content: str


@dataclasses.dataclass(frozen=True)
class SpecialToken:
    """An added token the reference matches in the raw text."""

    content: str
    id: int
    lstrip: bool
    rstrip: bool


@dataclasses.dataclass(frozen=True)
class UnigramTables:
    """Everything the graph needs, in the order the reference applies it.

    Example::

        tables = UnigramTables.from_checkpoint("path/to/xlm-roberta")
        tables.pieces[:4]            # ('<s>', '<pad>', '</s>', '<unk>')
        tables.charsmap_rules["ｶ"]   # 'カ'
    """

    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    unk_id: int
    # Normalizer: replacements, then a per-code-point map, then the Precompiled charsmap's
    # rules (None: no Precompiled step), then replacements.
    replacements_before: tuple[Replacement, ...]
    char_map: Mapping[str, str]
    charsmap_rules: Mapping[str, str] | None
    replacements_after: tuple[Replacement, ...]
    # Pre-tokenizer: optional WhitespaceSplit, then Metaspace.
    whitespace_split: bool
    replacement: str
    prepend_scheme: str
    split: bool
    special_tokens: tuple[SpecialToken, ...]
    # The decoder's replacement char when it is Metaspace dropping the leading space (what
    # entity words are decoded with), else None.
    decoder_metaspace: str | None
    do_lower_case: bool
    # Where the special tokens go around one or two segments (the reference's post-processor).
    template: SpecialTokensTemplate
    pad_id: int
    mask_id: int

    @classmethod
    def from_checkpoint(cls, checkpoint_dir: str | os.PathLike[str]) -> UnigramTables:
        """Loads the reference tokenizer of ``checkpoint_dir`` (offline) and derives the tables."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer  # heavy import, only needed at export time

        return cls.from_reference(AutoTokenizer.from_pretrained(os.fspath(checkpoint_dir)))

    @classmethod
    def from_reference(cls, tokenizer: Any) -> UnigramTables:
        """Derives the tables from a loaded ``transformers`` fast tokenizer."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise UnsupportedTokenizerError(
                f"{type(tokenizer).__name__} is not a fast (tokenizers-backed) tokenizer"
            )
        spec = json.loads(backend.to_str())
        model = spec.get("model") or {}
        if model.get("type") != "Unigram":
            raise UnsupportedTokenizerError(
                f"model {model.get('type')!r} is not reproduced by the Unigram tokenizer"
            )
        if model.get("byte_fallback"):
            raise UnsupportedTokenizerError("model Unigram with byte_fallback is not reproduced")
        if model.get("unk_id") is None:
            raise UnsupportedTokenizerError("model Unigram without unk_id is not reproduced")
        pieces = tuple(str(piece) for piece, _ in model["vocab"])
        if len(set(pieces)) != len(pieces) or any(
            piece == "" or "\n" in piece or "\r" in piece for piece in pieces
        ):
            # vocab.txt (one piece per line) could not round-trip them.
            raise UnsupportedTokenizerError(
                "model Unigram has an empty or repeated piece, or a line break in one"
            )
        ids = {piece: index for index, piece in enumerate(pieces)}
        for name in ("pad_token", "mask_token"):
            token = getattr(tokenizer, name, None)
            if token not in ids:
                raise UnsupportedTokenizerError(f"{name} {token!r} is missing from the vocabulary")
        steps = _flatten("normalizer", spec.get("normalizer"))
        before, char_types, charsmap, after = _normalizer_plan(steps)
        whitespace_split, metaspace = _pre_tokenizer_plan(spec.get("pre_tokenizer"))
        return cls(
            pieces=pieces,
            scores=tuple(float(score) for _, score in model["vocab"]),
            unk_id=int(model["unk_id"]),
            replacements_before=before,
            char_map=_per_char_map(char_types),
            charsmap_rules=None if charsmap is None else _charsmap_rules(charsmap),
            replacements_after=after,
            whitespace_split=whitespace_split,
            replacement=metaspace["replacement"],
            prepend_scheme=metaspace["prepend_scheme"],
            split=metaspace["split"],
            special_tokens=_special_tokens(spec.get("added_tokens") or [], len(pieces)),
            decoder_metaspace=_decoder_metaspace(spec.get("decoder")),
            do_lower_case="Lowercase" in char_types,
            template=SpecialTokensTemplate.from_reference(tokenizer),
            pad_id=ids[tokenizer.pad_token],
            mask_id=ids[tokenizer.mask_token],
        )


def _flatten(what: str, component: Any) -> list[dict[str, Any]]:
    if component is None:
        return []
    if component.get("type") == "Sequence":
        children = component.get("normalizers", component.get("pretokenizers")) or []
        return [step for child in children for step in _flatten(what, child)]
    return [component]


def _normalizer_plan(
    steps: list[dict[str, Any]],
) -> tuple[tuple[Replacement, ...], tuple[str, ...], str | None, tuple[Replacement, ...]]:
    """Splits the normalizer into replacements, per-char steps, Precompiled, replacements —
    the one order the graph runs (any other order is refused)."""
    stages: list[list[Any]] = [[], [], [], []]
    stage = 0
    for step in steps:
        kind = step.get("type")
        if kind == "Replace":
            stage = 0 if stage == 0 else 3
            stages[stage].append(_replacement(step))
            continue
        if kind in _PER_CHAR_NORMALIZERS and stage <= 1:
            stage = 1
            stages[1].append(kind)
            continue
        if kind == "Precompiled" and stage <= 1:
            stage = 2
            stages[2].append(step.get("precompiled_charsmap"))
            continue
        where = " in this position" if kind in (*_PER_CHAR_NORMALIZERS, "Precompiled") else ""
        raise UnsupportedTokenizerError(f"normalizer {kind} is not reproduced{where}")
    charsmap = stages[2][0] if stages[2] else None
    return tuple(stages[0]), tuple(stages[1]), charsmap, tuple(stages[3])


def _replacement(step: dict[str, Any]) -> Replacement:
    pattern = step.get("pattern") or {}
    if "String" in pattern:
        return Replacement(pattern=re.escape(pattern["String"]), content=step["content"])
    if pattern.get("Regex") in _PORTABLE_REGEXES:
        return Replacement(pattern=pattern["Regex"], content=step["content"])
    raise UnsupportedTokenizerError(f"normalizer Replace with pattern {pattern} is not reproduced")


def _pre_tokenizer_plan(component: Any) -> tuple[bool, dict[str, Any]]:
    steps = _flatten("pre_tokenizer", component)
    kinds = [step.get("type") for step in steps]
    if kinds not in (["Metaspace"], ["WhitespaceSplit", "Metaspace"]):
        raise UnsupportedTokenizerError(
            f"pre_tokenizer {kinds} is not reproduced (only [WhitespaceSplit,] Metaspace)"
        )
    metaspace = dict(steps[-1])
    if "add_prefix_space" in metaspace and "prepend_scheme" not in metaspace:
        metaspace["prepend_scheme"] = "always" if metaspace["add_prefix_space"] else "never"
    metaspace.setdefault("prepend_scheme", "always")
    metaspace.setdefault("split", True)
    if metaspace["prepend_scheme"] not in ("always", "never", "first"):
        raise UnsupportedTokenizerError(
            f"pre_tokenizer Metaspace prepend_scheme {metaspace['prepend_scheme']!r} "
            "is not reproduced"
        )
    if metaspace["prepend_scheme"] == "first" and kinds[0] == "WhitespaceSplit":
        raise UnsupportedTokenizerError(
            "pre_tokenizer Metaspace prepend_scheme 'first' after WhitespaceSplit is not reproduced"
        )
    if len(metaspace["replacement"]) != 1 or metaspace["replacement"] == " ":
        raise UnsupportedTokenizerError("pre_tokenizer Metaspace replacement must be one char")
    return kinds[0] == "WhitespaceSplit", metaspace


def _special_tokens(
    added_tokens: list[dict[str, Any]], vocab_size: int
) -> tuple[SpecialToken, ...]:
    tokens = []
    for added in added_tokens:
        content = added["content"]
        if added.get("normalized"):
            raise UnsupportedTokenizerError(
                f"added token {content!r} is matched in normalized text; only raw-text matches "
                "are reproduced"
            )
        if added.get("single_word"):
            raise UnsupportedTokenizerError(f"added token {content!r} is single_word")
        if not 0 <= added["id"] < vocab_size or content == "":
            raise UnsupportedTokenizerError(f"added token {content!r} is not in the vocabulary")
        tokens.append(
            SpecialToken(
                content=content,
                id=int(added["id"]),
                lstrip=bool(added.get("lstrip")),
                rstrip=bool(added.get("rstrip")),
            )
        )
    # The reference finds added tokens leftmost-longest in one pass; the graph replaces them
    # one after the other (longest first). Both agree unless two tokens overlap.
    for first in tokens:
        for second in tokens:
            if first is not second and (
                second.content in first.content
                or any(
                    second.content.startswith(first.content[cut:])
                    for cut in range(1, len(first.content))
                )
            ):
                raise UnsupportedTokenizerError(
                    f"added tokens {first.content!r} and {second.content!r} overlap"
                )
    return tuple(tokens)


def _decoder_metaspace(decoder: Any) -> str | None:
    if (
        decoder
        and decoder.get("type") == "Metaspace"
        and decoder.get("prepend_scheme", "always") in ("always", "first")
        and decoder.get("add_prefix_space", True)
    ):
        return str(decoder["replacement"])
    return None


_CHAR_MAPS: dict[tuple[str, ...], Mapping[str, str]] = {}


def _per_char_map(types_: tuple[str, ...]) -> Mapping[str, str]:
    """Char -> what the per-char normalizers make of it alone (only chars that change).

    Asked of the reference itself (its own Unicode tables), one code point at a time (~3 s,
    cached per configuration). Exact for whole texts except where NFD/NFKD would reorder two
    adjacent combining marks that both survive (StripAccents removes nonspacing marks)."""
    if not types_:
        return types.MappingProxyType({})
    if types_ not in _CHAR_MAPS:
        from tokenizers import normalizers

        normalizer = normalizers.Sequence([getattr(normalizers, kind)() for kind in types_])
        normalize = normalizer.normalize_str
        changed = {}
        for cp in range(0x110000):
            if cp in _SURROGATES:
                continue
            char = chr(cp)
            result = normalize(char)
            if result != char:
                changed[char] = result
        _CHAR_MAPS[types_] = types.MappingProxyType(changed)
    return _CHAR_MAPS[types_]


def _charsmap_rules(encoded: str | None) -> Mapping[str, str]:
    if not encoded:
        raise UnsupportedTokenizerError("normalizer Precompiled has an empty charsmap")
    # Rules longer than a looked-up cluster (or a single code point) are never reached.
    charsmap = PrecompiledCharsmap.from_base64(encoded, max_key_bytes=PRECOMPILED_CLUSTER_BYTES - 1)
    return types.MappingProxyType(dict(charsmap.rules))
