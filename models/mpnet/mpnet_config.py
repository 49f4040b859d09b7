"""MPNet's hyper-parameters (BERT's, no segments, plus the relative attention buckets)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from models.bert.bert_config import BertConfig


@dataclasses.dataclass(frozen=True)
class MPNetConfig(BertConfig):
    """Hyper-parameters of an MPNet encoder.

    Example::

        config = MPNetConfig.from_json_file(checkpoint_dir / "config.json")
        encoder = MPNetEncoder(**config.encoder_kwargs())
    """

    MODEL_TYPES: ClassVar[tuple[str, ...]] = ("mpnet",)

    relative_attention_num_buckets: int = 32

    @classmethod
    def _bert_spelling(cls, raw: dict[str, Any]) -> dict[str, Any]:
        # MPNet has no segment embeddings; its padding index is 1 whatever the config says.
        return {**raw, "type_vocab_size": 0, "pad_token_id": 1}

    @classmethod
    def _family_fields(cls, raw: dict[str, Any]) -> dict[str, Any]:
        return {
            "relative_attention_num_buckets": int(raw.get("relative_attention_num_buckets", 32))
        }

    @property
    def max_sequence_length(self) -> int:
        # Positions start at 2, after padding index 1 (514 positions hold 512 tokens).
        return self.max_position_embeddings - 2

    def encoder_kwargs(self, *, use_pooler: bool = True) -> dict[str, Any]:
        return {
            **super().encoder_kwargs(use_pooler=use_pooler),
            "relative_attention_num_buckets": self.relative_attention_num_buckets,
        }
