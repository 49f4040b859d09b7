"""Tables that let a graph reproduce a Hugging Face byte-level BPE tokenizer (GPT-2, RoBERTa).

The reference is the Rust ``tokenizers`` library behind ``transformers``' fast tokenizers. Its
ByteLevel pre-tokenizer splits text with the GPT-2 regex
``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+``
in Oniguruma, whose Unicode tables need not match RE2's (and RE2 has no lookahead). So the
character classes that regex depends on (letter, number, whitespace, other) are ASKED of the
reference pre-tokenizer for every code point here; the graph maps each character to its class
and splits the class string.

Everything else is read from the reference's ``tokenizer.json``: the vocabulary, the merges with
their ranks, the added tokens and their matching flags. A setting the in-graph tokenizer does
not reproduce raises :class:`UnsupportedTokenizerError` naming the component.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from models.tokenizers.errors import UnsupportedTokenizerError
from models.tokenizers.special_tokens_template import SpecialTokensTemplate

# Class codes of the pre-tokenizer regex, one per code point (ASCII letters so that the graph
# can build a class string from them directly).
LETTER, NUMBER, WHITESPACE, OTHER = b"a", b"0", b"W", b"!"
CODE_POINTS = 0x110000
_SURROGATES = range(0xD800, 0xE000)
# The contraction alternatives of the regex are the only places where the actual character
# matters (the regex is case-sensitive: "'S" is not a contraction).
CONTRACTION_CHARS = "'strevmld"


@dataclasses.dataclass(frozen=True)
class AddedToken:
    """An added token as the reference matches it in raw text (before pre-tokenization)."""

    content: str
    id: int
    lstrip: bool  # swallows the whitespace before it
    rstrip: bool  # swallows the whitespace after it
    normalized: bool  # matched in a second pass, after the non-normalized tokens


@dataclasses.dataclass(frozen=True)
class ByteLevelBpeTables:
    """Everything the in-graph tokenizer needs, derived from a reference byte-level BPE tokenizer.

    Example::

        tables = ByteLevelBpeTables.from_checkpoint("path/to/roberta")
        tables.byte_ids[0x20]        # id of "Ġ", the byte-level form of a space
        tables.merges[0]             # (left id, right id, merged id) of the lowest-ranked merge
    """

    vocab: Mapping[str, int]
    # Input byte -> id of its byte-level character in the vocabulary; -1: the reference drops it.
    byte_ids: tuple[int, ...]
    # (left id, right id, merged id, rank) in rank order; a pair listed twice keeps its last
    # rank, as in the reference, and its earlier entries are absent.
    merges: tuple[tuple[int, int, int, int], ...]
    add_prefix_space: bool
    use_regex: bool
    added_tokens: tuple[AddedToken, ...]
    # The characters the reference's lstrip/rstrip swallow (Rust's Unicode White_Space).
    strip_whitespace: str
    # Special tokens around one or two segments, read from the reference's post-processor.
    template: SpecialTokensTemplate
    pad_token: str
    mask_token: str
    unk_token: str | None  # the BPE model's (None: unknown bytes are dropped)
    # The post-processor's ByteLevel offset trimming (only offsets depend on it): whether
    # leading/trailing "Ġ" come off token spans, and whether a first token keeps one.
    trim_offsets: bool
    trim_prefix_space: bool
    # Whether the reference's decoder is ByteLevel (what entity words are decoded with).
    byte_level_decoder: bool

    def token_id(self, token: str) -> int:
        return self._ids[token]

    @functools.cached_property
    def _ids(self) -> dict[str, int]:
        ids = dict(self.vocab)
        ids.update((added.content, added.id) for added in self.added_tokens)
        return ids

    @property
    def id_space(self) -> int:
        """One more than the largest id (vocabulary and added tokens)."""
        return max(self._ids.values()) + 1

    def write_vocab_file(self) -> str:
        """Writes every token, one per line in id order, to a new vocab.txt (the SavedModel's
        vocabulary asset; a byte-level vocabulary has no line breaks in its tokens)."""
        by_id = {index: token for token, index in self._ids.items()}
        if sorted(by_id) != list(range(len(by_id))):
            raise UnsupportedTokenizerError("BPE vocabulary ids are not contiguous from 0")
        path = Path(tempfile.mkdtemp(prefix="textserve-vocab-")) / "vocab.txt"
        path.write_text("".join(by_id[index] + "\n" for index in range(len(by_id))), "utf-8")
        return os.fspath(path)

    @property
    def char_classes(self) -> bytes:
        """The pre-tokenizer regex's class of every code point (see :func:`char_classes`)."""
        return char_classes()

    @classmethod
    def from_checkpoint(cls, checkpoint_dir: str | os.PathLike[str]) -> ByteLevelBpeTables:
        """Loads the reference tokenizer of ``checkpoint_dir`` (offline) and derives the tables."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer  # heavy import, only needed at export time

        return cls.from_reference(AutoTokenizer.from_pretrained(os.fspath(checkpoint_dir)))

    @classmethod
    def from_reference(cls, tokenizer: Any) -> ByteLevelBpeTables:
        """Derives the tables from a loaded ``transformers`` fast tokenizer."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise UnsupportedTokenizerError(
                f"{type(tokenizer).__name__} is not a fast (tokenizers-backed) tokenizer"
            )
        spec = json.loads(backend.to_str())
        if spec.get("normalizer") is not None:
            raise UnsupportedTokenizerError(
                f"normalizer {spec['normalizer'].get('type')!r}: only byte-level BPE without a "
                "normalizer is reproduced in-graph"
            )
        pre_tokenizer = _byte_level_pre_tokenizer(spec.get("pre_tokenizer"))
        model = _bpe_model(spec.get("model"))
        vocab: dict[str, int] = dict(model["vocab"])
        added_tokens = _added_tokens(spec.get("added_tokens") or [], vocab)
        token_ids = dict(vocab)
        token_ids.update((added.content, added.id) for added in added_tokens)

        byte_ids = _byte_ids(vocab, model)
        special = {name: getattr(tokenizer, name, None) for name in ("pad_token", "mask_token")}
        for name, token in special.items():
            if token is None or token not in token_ids:
                raise UnsupportedTokenizerError(f"{name} {token!r} is missing from the vocabulary")
        trim_offsets, trim_prefix_space = _offset_trimming(spec.get("post_processor"))
        return cls(
            vocab=vocab,
            byte_ids=byte_ids,
            merges=_ranked_merges(model["merges"], vocab),
            add_prefix_space=bool(pre_tokenizer["add_prefix_space"]),
            use_regex=bool(pre_tokenizer.get("use_regex", True)),
            added_tokens=added_tokens,
            strip_whitespace=_strip_whitespace() if added_tokens else "",
            template=SpecialTokensTemplate.from_reference(tokenizer),
            unk_token=model.get("unk_token"),
            byte_level_decoder=(spec.get("decoder") or {}).get("type") == "ByteLevel",
            trim_offsets=trim_offsets,
            trim_prefix_space=trim_prefix_space,
            pad_token=str(special["pad_token"]),
            mask_token=str(special["mask_token"]),
        )


def _offset_trimming(post_processor: Any) -> tuple[bool, bool]:
    """What the post-processor's ByteLevel step does to offsets (RobertaProcessing and the
    ByteLevel processor have one; others leave offsets alone): (trim_offsets,
    trim_prefix_space)."""
    components = [post_processor] if isinstance(post_processor, dict) else []
    if components and components[0].get("type") == "Sequence":
        components = components[0].get("processors", [])
    for component in components:
        if component.get("type") in ("RobertaProcessing", "ByteLevel"):
            return (
                bool(component.get("trim_offsets", True)),
                bool(component.get("add_prefix_space", True)),
            )
    return False, False


def _byte_level_pre_tokenizer(component: Any) -> dict[str, Any]:
    kind = component.get("type") if isinstance(component, dict) else None
    if kind == "Sequence" and len(component.get("pretokenizers", [])) == 1:
        return _byte_level_pre_tokenizer(component["pretokenizers"][0])
    if kind != "ByteLevel":
        raise UnsupportedTokenizerError(
            f"pre_tokenizer {kind!r}: only the ByteLevel pre-tokenizer is reproduced in-graph"
        )
    return component


def _bpe_model(model: Any) -> dict[str, Any]:
    kind = model.get("type") if isinstance(model, dict) else None
    if kind != "BPE":
        raise UnsupportedTokenizerError(f"model {kind!r}: only a BPE model is reproduced in-graph")
    unsupported = {
        "dropout": model.get("dropout") not in (None, 0.0),
        "continuing_subword_prefix": bool(model.get("continuing_subword_prefix")),
        "end_of_word_suffix": bool(model.get("end_of_word_suffix")),
        "ignore_merges": bool(model.get("ignore_merges")),
    }
    for option, present in unsupported.items():
        if present:
            raise UnsupportedTokenizerError(
                f"BPE model option {option}={model.get(option)!r} is not reproduced in-graph"
            )
    return model


def _byte_ids(vocab: dict[str, int], model: dict[str, Any]) -> tuple[int, ...]:
    """Id of every byte's initial symbol, as the reference's BPE model looks it up."""
    characters = byte_level_alphabet()
    missing = [byte for byte in range(256) if characters[byte] not in vocab]
    if missing and model.get("byte_fallback"):
        raise UnsupportedTokenizerError(
            "BPE model option byte_fallback=True with bytes missing from the vocabulary is not "
            "reproduced in-graph"
        )
    unk_token = model.get("unk_token")
    if missing and unk_token is not None:
        if model.get("fuse_unk"):
            raise UnsupportedTokenizerError(
                "BPE model option fuse_unk=True with bytes missing from the vocabulary is not "
                "reproduced in-graph"
            )
        if unk_token not in vocab:
            raise UnsupportedTokenizerError(f"BPE unk_token {unk_token!r} is not in the vocabulary")
    # Without an unk token the reference silently drops a symbol it cannot look up.
    unknown = vocab[unk_token] if missing and unk_token is not None else -1
    return tuple(vocab.get(characters[byte], unknown) for byte in range(256))


def _ranked_merges(
    merges: list[Any], vocab: dict[str, int]
) -> tuple[tuple[int, int, int, int], ...]:
    by_pair: dict[tuple[int, int], tuple[int, int]] = {}
    for rank, merge in enumerate(merges):
        left, right = merge.split(" ", 1) if isinstance(merge, str) else merge
        # A later duplicate overwrites the earlier rank, as the reference's pair map does.
        by_pair[(vocab[left], vocab[right])] = (vocab[left + right], rank)
    ranked = sorted(
        ((left, right, merged, rank) for (left, right), (merged, rank) in by_pair.items()),
        key=lambda merge: merge[3],
    )
    _check_rank_order(ranked)
    return tuple(ranked)


def _check_rank_order(merges: list[tuple[int, int, int, int]]) -> None:
    # The graph merges, per word and step, every occurrence of the lowest-ranked pair; the
    # reference pops (rank, position) from a heap. Both agree when a token is only ever merged
    # further at a higher rank than any merge that creates it, which BPE training guarantees.
    created_at: dict[int, int] = {}
    for _, _, merged, rank in merges:
        created_at[merged] = max(rank, created_at.get(merged, -1))
    for left, right, _, rank in merges:
        if rank <= max(created_at.get(left, -1), created_at.get(right, -1)):
            raise UnsupportedTokenizerError(
                f"BPE merge of rank {rank} uses a token created by a later merge; only merges "
                "in creation order are reproduced in-graph"
            )


def _added_tokens(added: list[dict[str, Any]], vocab: dict[str, int]) -> tuple[AddedToken, ...]:
    tokens = []
    whitespace = set(_strip_whitespace()) if added else set()
    for entry in added:
        content = entry["content"]
        if entry.get("single_word"):
            raise UnsupportedTokenizerError(
                f"added token {content!r} is single_word; not reproduced in-graph"
            )
        # The graph stands in "\x01" for NUL while it looks for added tokens.
        if content == "" or whitespace.intersection(content) or {"\x00", "\x01"} & set(content):
            raise UnsupportedTokenizerError(
                f"added token {content!r} is empty or holds whitespace, NUL or U+0001; not "
                "reproduced in-graph"
            )
        if content in vocab and vocab[content] != entry["id"]:
            raise UnsupportedTokenizerError(
                f"added token {content!r} has id {entry['id']}, the vocabulary {vocab[content]}"
            )
        tokens.append(
            AddedToken(
                content=content,
                id=int(entry["id"]),
                lstrip=bool(entry.get("lstrip")),
                rstrip=bool(entry.get("rstrip")),
                # Without a normalizer "normalized" only moves the token to the second pass.
                normalized=bool(entry.get("normalized")),
            )
        )
    _check_strip_overlap(tokens)
    return tuple(tokens)


def _check_strip_overlap(tokens: list[AddedToken]) -> None:
    # The reference finds tokens leftmost-longest, then widens a match over whitespace; the graph
    # matches "whitespace + token" in one regex. They agree unless a stripping token lies inside
    # another token of the same pass with different flags.
    for first in tokens:
        for second in tokens:
            if (
                first is not second
                and first.normalized == second.normalized
                and (first.lstrip, first.rstrip) != (second.lstrip, second.rstrip)
                and first.content in second.content
            ):
                raise UnsupportedTokenizerError(
                    f"added token {first.content!r} lies inside {second.content!r} with different "
                    "lstrip/rstrip flags; not reproduced in-graph"
                )


@functools.cache
def byte_level_alphabet() -> tuple[str, ...]:
    """The character GPT-2's byte-to-unicode table assigns to each byte (printable bytes map to
    themselves, the rest to U+0100 onwards in byte order)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {byte: chr(byte) for byte in printable}
    shifted = 0
    for byte in range(256):
        if byte not in table:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return tuple(table[byte] for byte in range(256))


@functools.cache
def char_classes() -> bytes:
    """The ByteLevel regex's class of every code point, asked of the reference pre-tokenizer:
    byte ``cp`` of the result is LETTER (\\p{L}), NUMBER (\\p{N}), WHITESPACE (\\s) or OTHER.
    Surrogates (never in a str) are OTHER. Takes ~10 s, once per process."""
    from tokenizers import pre_tokenizers

    splitter = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    classes = bytearray(OTHER * CODE_POINTS)
    # Python's Unicode tables only propose a class; the reference decides. Each proposed group
    # is asked as one string behind a probe of its class: every piece of the answer is a run of
    # one class (the regex has no alternative mixing classes once U+0020 and "'s" are kept
    # apart, and sorted groups never put "s" after "'"), so asking one character of each piece
    # settles the whole piece. Python usually agrees, and then the answer is a single piece.
    groups: dict[bytes, list[str]] = {LETTER: [], NUMBER: [], WHITESPACE: [], OTHER: []}
    for cp in range(CODE_POINTS):
        if cp not in _SURROGATES:
            groups[_proposed_class(chr(cp))].append(chr(cp))
    # Whitespace is asked character by character: U+0020 joins a following non-space piece.
    for char in groups.pop(WHITESPACE):
        classes[ord(char)] = _asked_class(splitter, char)[0]
    for code, members in groups.items():
        probe = _PROBES[code]
        text = probe + "".join(members)
        for _, (start, end) in splitter.pre_tokenize_str(text):
            answer = code if start == 0 else _asked_class(splitter, text[start])
            for char in text[max(start, 1) : end]:
                classes[ord(char)] = answer[0]
    return bytes(classes)


_PROBES = {LETTER: "a", NUMBER: "1", OTHER: "!"}


def _proposed_class(char: str) -> bytes:
    category = unicodedata.category(char)
    if category[0] == "L":
        return LETTER
    if category[0] == "N":
        return NUMBER
    if char.isspace() or category[0] == "Z":
        return WHITESPACE
    return OTHER


def _asked_class(splitter: Any, char: str) -> bytes:
    # "pc" is one piece exactly when c is in p's class: \p{L}+, \p{N}+ or [^\s\p{L}\p{N}]+.
    for code, probe in _PROBES.items():
        if len(splitter.pre_tokenize_str(probe + char)) == 1:
            return code
    return WHITESPACE


@functools.cache
def _strip_whitespace() -> str:
    """The characters an lstrip/rstrip added token swallows, asked of the reference: Rust's
    ``\\s`` (Unicode White_Space). Only plausible candidates are asked (spaces, separators,
    controls, format characters): White_Space has no member outside them."""
    from tokenizers import AddedToken as ReferenceAddedToken
    from tokenizers import Tokenizer, models

    probe = Tokenizer(models.WordLevel({"x": 0, "?": 1}, unk_token="?"))
    probe.add_special_tokens([ReferenceAddedToken("x", lstrip=True, normalized=False)])
    candidates = [
        chr(cp)
        for cp in range(CODE_POINTS)
        if cp not in _SURROGATES
        and (chr(cp).isspace() or unicodedata.category(chr(cp)) in ("Zs", "Zl", "Zp", "Cc", "Cf"))
    ]
    stripped = []
    for char in candidates:
        encoding = probe.encode("?" + char + "x", add_special_tokens=False)
        if encoding.offsets[-1][0] == 1:
            stripped.append(char)
    return "".join(stripped)
