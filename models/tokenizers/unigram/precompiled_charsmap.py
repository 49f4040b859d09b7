"""The rules of a SentencePiece ``precompiled_charsmap`` (the ``Precompiled`` normalizer), read
out of its double-array trie so the graph can apply them with hash tables."""

from __future__ import annotations

import base64
import dataclasses
import struct
from collections.abc import Mapping

import numpy as np

from models.tokenizers.reference_tables import UnsupportedTokenizerError


@dataclasses.dataclass(frozen=True)
class PrecompiledCharsmap:
    """The rules of a charsmap (up to a key length): the UTF-8 string matched -> its replacement.

    Example::

        charsmap = PrecompiledCharsmap.from_base64(spec["precompiled_charsmap"])
        charsmap.rules["ｶ"]        # 'カ' (nmt_nfkc folds halfwidth katakana)
        charsmap.rules["e\u0301"]  # 'é' (a rule spanning two code points)
    """

    rules: Mapping[str, str]

    @classmethod
    def from_base64(cls, encoded: str, *, max_key_bytes: int) -> PrecompiledCharsmap:
        return cls.from_bytes(base64.b64decode(encoded), max_key_bytes=max_key_bytes)

    @classmethod
    def from_bytes(cls, blob: bytes, *, max_key_bytes: int) -> PrecompiledCharsmap:
        """Parses SentencePiece's layout: u32 trie size, the darts-clone trie, then the
        NUL-terminated replacement strings the trie's values point into. Only rules matching
        at most ``max_key_bytes`` bytes are read."""
        if len(blob) < 4:
            raise UnsupportedTokenizerError("normalizer Precompiled has a truncated charsmap")
        (trie_size,) = struct.unpack_from("<I", blob)
        if trie_size % 4 or 4 + trie_size > len(blob):
            raise UnsupportedTokenizerError("normalizer Precompiled has a malformed charsmap")
        units = np.frombuffer(blob, dtype="<u4", count=trie_size // 4, offset=4).astype(np.int64)
        replacements = blob[4 + trie_size :]
        rules: dict[str, str] = {}
        for key, value in _trie_entries(units, max_key_bytes=max_key_bytes):
            end = replacements.index(b"\0", value)
            try:
                rules[key.decode("utf-8")] = replacements[value:end].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UnsupportedTokenizerError(
                    "normalizer Precompiled has a rule that is not UTF-8"
                ) from exc
        return cls(rules=rules)


def _offset(unit: np.ndarray) -> np.ndarray:
    return (unit >> 10) << ((unit & (1 << 9)) >> 6)


def _trie_entries(units: np.ndarray, *, max_key_bytes: int) -> list[tuple[bytes, int]]:
    """All (key, value) pairs of a darts-clone double array with keys of at most
    ``max_key_bytes``, breadth first over all nodes of a depth at once: every node tries all
    255 byte labels in one vectorized step (the trie keeps no list of children)."""
    labels = np.arange(1, 256, dtype=np.int64)
    keys = np.zeros((1, 0), dtype=np.uint8)
    bases = np.array([_offset(units[0])], dtype=np.int64)
    entries: list[tuple[bytes, int]] = []
    for _ in range(max_key_bytes):
        if not len(bases):
            break
        child = bases[:, None] ^ labels[None, :]
        inside = child < len(units)
        unit = np.where(inside, units[np.where(inside, child, 0)], -1)
        # label(): the low byte, with bit 31 set for leaf units so they never match a label.
        parent, label_index = np.nonzero((unit & ((1 << 31) | 0xFF)) == labels[None, :])
        unit = unit[parent, label_index]
        bases = child[parent, label_index] ^ _offset(unit)
        keys = np.concatenate([keys[parent], labels[label_index, None].astype(np.uint8)], axis=1)
        for index in np.nonzero((unit >> 8) & 1)[0]:
            entries.append((keys[index].tobytes(), int(units[bases[index]] & ((1 << 31) - 1))))
    return entries
