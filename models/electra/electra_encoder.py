"""A Keras 3 ELECTRA encoder, numerically equal to transformers' ElectraModel."""

from __future__ import annotations

from typing import Any

import keras

from models.bert.bert_encoder import BertEncoder


@keras.saving.register_keras_serializable(package="textserve")
class ElectraEncoder(BertEncoder):
    """BERT's architecture with factorized embeddings and no pooler.

    With ``embedding_size`` (not None) the embeddings are that wide and ``embeddings_project``
    maps them to ``hidden_size``; ``pooled_output`` is the [CLS] state (ELECTRA has no pooler).

    Example::

        encoder = ElectraEncoder(vocab_size=30522, hidden_size=256, embedding_size=128,
                                 num_layers=12, num_heads=4, intermediate_size=1024)
    """

    def __init__(self, *, use_pooler: bool = False, **kwargs: Any) -> None:
        super().__init__(use_pooler=use_pooler, **kwargs)

    def checkpoint_variables(self) -> dict[str, tuple[keras.Variable, bool]]:
        mapping = super().checkpoint_variables()
        if self.embeddings_project is not None:
            mapping["embeddings_project.weight"] = (self.embeddings_project.kernel, True)
            mapping["embeddings_project.bias"] = (self.embeddings_project.bias, False)
        return mapping
