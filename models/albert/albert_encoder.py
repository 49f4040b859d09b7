"""A Keras 3 ALBERT encoder, numerically equal to transformers' AlbertModel."""

from __future__ import annotations

from typing import Any

import keras

from models.bert.bert_encoder import BertEncoder
from models.layers.transformer_layer import TransformerLayer

#: TransformerLayer sublayers -> AlbertLayer module names.
ALBERT_LAYER_KEYS = {
    "query": "attention.query",
    "key": "attention.key",
    "value": "attention.value",
    "attention_output": "attention.dense",
    "attention_layer_norm": "attention.LayerNorm",
    "intermediate": "ffn",
    "output_dense": "ffn_output",
    "output_layer_norm": "full_layer_layer_norm",
}


@keras.saving.register_keras_serializable(package="textserve")
class AlbertEncoder(BertEncoder):
    """Factorized embeddings + ``num_hidden_groups`` groups of ``inner_group_num`` layers.

    The embeddings are ``embedding_size`` wide and always projected to ``hidden_size``
    (``encoder.embedding_hidden_mapping_in``). Only ``num_hidden_groups x inner_group_num``
    layers own weights (released ALBERTs: one); layer i of ``num_layers`` applies group
    ``i // (num_layers // num_hidden_groups)``. ``encoder_outputs`` holds every layer
    application, as transformers' ``hidden_states`` does.

    Example::

        encoder = AlbertEncoder(vocab_size=30000, embedding_size=128, hidden_size=768,
                                num_layers=12, num_heads=12, intermediate_size=3072,
                                hidden_act="gelu_new")
    """

    def __init__(
        self,
        *,
        embedding_size: int = 128,
        num_hidden_groups: int = 1,
        inner_group_num: int = 1,
        **kwargs: Any,
    ) -> None:
        self.num_hidden_groups = num_hidden_groups
        self.inner_group_num = inner_group_num
        super().__init__(embedding_size=embedding_size, **kwargs)

    def _make_layers(self) -> list[TransformerLayer]:
        return [
            self._transformer_layer(f"albert_group_{g}_layer_{j}")
            for g in range(self.num_hidden_groups)
            for j in range(self.inner_group_num)
        ]

    def _layer_schedule(self) -> list[list[TransformerLayer]]:
        per_group = self.num_layers // self.num_hidden_groups
        schedule: list[list[TransformerLayer]] = []
        for i in range(self.num_layers):
            start = (i // per_group) * self.inner_group_num
            schedule.extend(
                [layer] for layer in self.transformer_layers[start : start + self.inner_group_num]
            )
        return schedule

    def checkpoint_variables(self) -> dict[str, tuple[keras.Variable, bool]]:
        mapping = self._embedding_variables()
        assert self.embeddings_project is not None  # ALBERT always projects
        mapping["encoder.embedding_hidden_mapping_in.weight"] = (
            self.embeddings_project.kernel,
            True,
        )
        mapping["encoder.embedding_hidden_mapping_in.bias"] = (self.embeddings_project.bias, False)
        for index, layer in enumerate(self.transformer_layers):
            g, j = divmod(index, self.inner_group_num)
            mapping.update(
                layer.checkpoint_variables(
                    prefix=f"encoder.albert_layer_groups.{g}.albert_layers.{j}.",
                    names=ALBERT_LAYER_KEYS,
                )
            )
        if self.pooler is not None:
            mapping["pooler.weight"] = (self.pooler.kernel, True)
            mapping["pooler.bias"] = (self.pooler.bias, False)
        return mapping

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            num_hidden_groups=self.num_hidden_groups, inner_group_num=self.inner_group_num
        )
        return config
