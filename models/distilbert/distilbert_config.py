"""DistilBERT's hyper-parameters, read under their own names and held under BERT's."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from models.bert.bert_config import BertConfig

# DistilBERT's config.json names -> BERT's.
_RENAMES = {
    "dim": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "hidden_dim": "intermediate_size",
    "activation": "hidden_act",
}


@dataclasses.dataclass(frozen=True)
class DistilBertConfig(BertConfig):
    """Hyper-parameters of a DistilBERT encoder.

    Example::

        config = DistilBertConfig.from_json_file(checkpoint_dir / "config.json")
        encoder = DistilBertEncoder(**config.encoder_kwargs())
    """

    MODEL_TYPES: ClassVar[tuple[str, ...]] = ("distilbert",)

    @classmethod
    def _bert_spelling(cls, raw: dict[str, Any]) -> dict[str, Any]:
        renamed = {_RENAMES.get(key, key): value for key, value in raw.items()}
        # transformers' defaults; DistilBERT has no segments and hard-codes LayerNorm's eps.
        return {
            "hidden_size": 768,
            "num_hidden_layers": 6,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
            **renamed,
            "type_vocab_size": 0,
            "layer_norm_eps": 1e-12,
        }

    def encoder_kwargs(self, *, use_pooler: bool = False) -> dict[str, Any]:
        return super().encoder_kwargs(use_pooler=use_pooler)
