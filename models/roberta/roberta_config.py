"""RoBERTa's and XLM-RoBERTa's hyper-parameters (BERT's, with RoBERTa's defaults)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from models.bert.bert_config import BertConfig


@dataclasses.dataclass(frozen=True)
class RobertaConfig(BertConfig):
    """Hyper-parameters of a RoBERTa or XLM-RoBERTa encoder (the same architecture).

    Example::

        config = RobertaConfig.from_json_file(checkpoint_dir / "config.json")
        encoder = RobertaEncoder(**config.encoder_kwargs(use_pooler=False))
    """

    MODEL_TYPES: ClassVar[tuple[str, ...]] = ("roberta", "xlm-roberta")

    @classmethod
    def _bert_spelling(cls, raw: dict[str, Any]) -> dict[str, Any]:
        # transformers' RobertaConfig defaults (a config.json may omit them).
        return {"pad_token_id": 1, **raw}

    @property
    def max_sequence_length(self) -> int:
        # 514 positions hold 512 tokens: positions start at pad_token_id + 1.
        return self.max_position_embeddings - (self.pad_token_id + 1)

    def encoder_kwargs(self, *, use_pooler: bool = True) -> dict[str, Any]:
        return {**super().encoder_kwargs(use_pooler=use_pooler), "pad_token_id": self.pad_token_id}
