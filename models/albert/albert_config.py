"""ALBERT's hyper-parameters (BERT's plus the embedding width and the layer sharing)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from models.bert.bert_config import BertConfig
from models.errors import CheckpointError


@dataclasses.dataclass(frozen=True)
class AlbertConfig(BertConfig):
    """Hyper-parameters of an ALBERT encoder.

    Example::

        config = AlbertConfig.from_json_file(checkpoint_dir / "config.json")
        encoder = AlbertEncoder(**config.encoder_kwargs())
    """

    MODEL_TYPES: ClassVar[tuple[str, ...]] = ("albert",)

    embedding_size: int = 128
    num_hidden_groups: int = 1
    inner_group_num: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_hidden_layers % self.num_hidden_groups:
            # transformers' int(i / (layers / groups)) would then give groups unequal shares.
            raise CheckpointError(
                f"num_hidden_layers {self.num_hidden_layers} is not a multiple of "
                f"num_hidden_groups {self.num_hidden_groups}"
            )

    @classmethod
    def _bert_spelling(cls, raw: dict[str, Any]) -> dict[str, Any]:
        # transformers' AlbertConfig defaults (a config.json may omit them).
        return {
            "hidden_size": 4096,
            "num_attention_heads": 64,
            "intermediate_size": 16384,
            "hidden_act": "gelu_new",
            "pad_token_id": 0,
            **raw,
        }

    @classmethod
    def _family_fields(cls, raw: dict[str, Any]) -> dict[str, Any]:
        return {
            "embedding_size": int(raw.get("embedding_size", 128)),
            "num_hidden_groups": int(raw.get("num_hidden_groups", 1)),
            "inner_group_num": int(raw.get("inner_group_num", 1)),
        }

    def encoder_kwargs(self, *, use_pooler: bool = True) -> dict[str, Any]:
        return {
            **super().encoder_kwargs(use_pooler=use_pooler),
            "embedding_size": self.embedding_size,
            "num_hidden_groups": self.num_hidden_groups,
            "inner_group_num": self.inner_group_num,
        }
