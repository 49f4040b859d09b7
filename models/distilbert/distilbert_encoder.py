"""A Keras 3 DistilBERT encoder, numerically equal to transformers' DistilBertModel."""

from __future__ import annotations

from typing import Any, ClassVar

import keras

from models.bert.bert_encoder import BertEncoder

#: TransformerLayer sublayers -> DistilBERT's TransformerBlock module names.
DISTILBERT_LAYER_KEYS = {
    "query": "attention.q_lin",
    "key": "attention.k_lin",
    "value": "attention.v_lin",
    "attention_output": "attention.out_lin",
    "attention_layer_norm": "sa_layer_norm",
    "intermediate": "ffn.lin1",
    "output_dense": "ffn.lin2",
    "output_layer_norm": "output_layer_norm",
}


@keras.saving.register_keras_serializable(package="textserve")
class DistilBertEncoder(BertEncoder):
    """BERT's post-LN layers without segment embeddings or pooler (``input_type_ids`` ignored).

    ``pooled_output`` is the [CLS] state, which DistilBertForSequenceClassification classifies.

    Example::

        encoder = DistilBertEncoder(vocab_size=30522, num_layers=6)
    """

    LAYER_KEY_PREFIX: ClassVar[str] = "transformer.layer."
    LAYER_KEYS: ClassVar[dict[str, str]] = DISTILBERT_LAYER_KEYS

    def __init__(self, *, type_vocab_size: int = 0, use_pooler: bool = False, **kwargs: Any):
        if use_pooler:
            raise ValueError("DistilBERT has no pooler (its checkpoints hold no weights for one)")
        super().__init__(type_vocab_size=type_vocab_size, use_pooler=use_pooler, **kwargs)
