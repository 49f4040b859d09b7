"""ELECTRA's hyper-parameters (BERT's plus the embedding width)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from models.bert.bert_config import BertConfig


@dataclasses.dataclass(frozen=True)
class ElectraConfig(BertConfig):
    """Hyper-parameters of an ELECTRA encoder (discriminator or generator).

    Example::

        config = ElectraConfig.from_json_file(checkpoint_dir / "config.json")
        encoder = ElectraEncoder(**config.encoder_kwargs())
    """

    MODEL_TYPES: ClassVar[tuple[str, ...]] = ("electra",)

    embedding_size: int = 128

    @classmethod
    def _family_fields(cls, raw: dict[str, Any]) -> dict[str, Any]:
        return {"embedding_size": int(raw.get("embedding_size", 128))}

    def encoder_kwargs(self, *, use_pooler: bool = False) -> dict[str, Any]:
        # transformers projects the embeddings only when their width differs from the hidden's.
        width = None if self.embedding_size == self.hidden_size else self.embedding_size
        return {**super().encoder_kwargs(use_pooler=use_pooler), "embedding_size": width}
