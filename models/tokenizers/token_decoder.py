"""Which decoder of the reference renders token strings as text (what transformers'
``convert_tokens_to_string`` calls): entity words of token classification are decoded with it."""

from __future__ import annotations

import dataclasses
from typing import Literal

#: tokenizers' decoder types (``tokenizer.json``'s ``decoder.type``) reproduced in-graph.
DecoderKind = Literal["WordPiece", "Metaspace", "ByteLevel"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TokenDecoder:
    """The reference's decoder as far as entity words need it; a tokenizer provides its own
    (``TextTokenizer.token_decoder``) and :class:`~models.export.entity_grouper.EntityGrouper`
    applies it in the graph.

    ``WordPiece``: ``continuing_subword_prefix`` joins a token to the previous one, other
    tokens are joined with a space, then the spaces before punctuation are cleaned up (BERT
    and its relatives). ``Metaspace``: ``replacement`` reads as a space, except in the first
    token, where it is dropped (SentencePiece). ``ByteLevel``: each character maps back to
    the byte GPT-2's byte-to-unicode table gave it, the bytes are decoded as UTF-8 with
    U+FFFD for invalid sequences (byte-level BPE: GPT-2, RoBERTa).

    Example::

        TokenDecoder()                                  # WordPiece with "##"
        TokenDecoder(kind="Metaspace", replacement="▁")
        TokenDecoder(kind="ByteLevel")
    """

    kind: DecoderKind = "WordPiece"
    continuing_subword_prefix: str = "##"  # WordPiece only
    replacement: str = "\u2581"  # Metaspace only

    def __post_init__(self) -> None:
        if self.kind not in ("WordPiece", "Metaspace", "ByteLevel"):
            raise ValueError(f"unknown token decoder kind {self.kind!r}")


#: BERT's decoder (WordPiece with "##"), the default.
WORDPIECE_DECODER = TokenDecoder()
