"""A Keras 3 RoBERTa / XLM-RoBERTa encoder, numerically equal to transformers' RobertaModel."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from models.bert.bert_encoder import BertEncoder


@keras.saving.register_keras_serializable(package="textserve")
class RobertaEncoder(BertEncoder):
    """BERT's architecture with RoBERTa's position ids and no segments.

    Positions count real tokens from ``pad_token_id + 1`` (padding stays at the padding index);
    ``input_type_ids`` are ignored: RoBERTa's tokenizers emit none, so transformers adds the
    row-0 segment embedding to every token. Checkpoint keys are BERT's (under ``roberta.``).

    Example::

        encoder = RobertaEncoder(vocab_size=50265, pad_token_id=1, type_vocab_size=1,
                                 max_position_embeddings=514, layer_norm_epsilon=1e-5)
    """

    def __init__(
        self,
        *,
        pad_token_id: int = 1,
        type_vocab_size: int = 1,
        use_pooler: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("position_padding_id", None)  # always pad_token_id (get_config returns it)
        super().__init__(
            type_vocab_size=type_vocab_size,
            use_pooler=use_pooler,
            position_padding_id=pad_token_id,
            **kwargs,
        )
        self.pad_token_id = pad_token_id

    def _embed(self, word_ids: Any, type_ids: Any) -> Any:
        return super()._embed(word_ids, ops.zeros_like(word_ids))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(pad_token_id=self.pad_token_id)
        return config
