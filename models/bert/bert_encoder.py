"""A Keras 3 BERT encoder (post-LN transformer), numerically equal to transformers' BertModel.

Written here rather than taken from transformers' TF classes (removed in transformers 5) or
keras-hub / tf-keras, so the exported graph holds only TF core ops and the weights map one to
one onto Hugging Face checkpoint keys (see :meth:`BertEncoder.checkpoint_variables`).
Inference only: there are no dropout layers, because nothing here trains.
"""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import numpy as np
from keras import ops

from models import contract
from models.layers.layer_norm import LayerNorm
from models.layers.token_packing import TokenPacking
from models.layers.transformer_layer import TransformerLayer

_FLOAT32_MIN = float(np.finfo(np.float32).min)
#: TransformerLayer sublayers -> BertLayer module names (RoBERTa and ELECTRA share them).
BERT_LAYER_KEYS = {
    "query": "attention.self.query",
    "key": "attention.self.key",
    "value": "attention.self.value",
    "attention_output": "attention.output.dense",
    "attention_layer_norm": "attention.output.LayerNorm",
    "intermediate": "intermediate.dense",
    "output_dense": "output.dense",
    "output_layer_norm": "output.LayerNorm",
}


@keras.saving.register_keras_serializable(package="textserve")
class BertEncoder(keras.Model):
    """BERT encoder: embeddings + N post-LN transformer layers + optional pooler.

    Inputs are a dict with ``input_word_ids``, ``input_mask`` and ``input_type_ids`` (int32
    ``[batch, seq]``, the TF Hub encoder contract); outputs a dict with ``sequence_output``
    ``[batch, seq, hidden]``, ``pooled_output`` ``[batch, hidden]`` and ``encoder_outputs``
    (a list of each layer's output). Without a pooler (``use_pooler=False``, e.g. a
    BertForMaskedLM checkpoint has none) ``pooled_output`` is the [CLS] hidden state.

    ``skip_padding`` (default) runs the layers on the batch's real tokens only, so padded
    positions cost nothing and ``sequence_output``/``encoder_outputs`` are 0 there; real tokens
    are unchanged. ``skip_padding=False`` computes padded positions as the reference does
    (the TF Hub encoder export, whose ``sequence_output`` callers may read unmasked).

    ``matmul_dtype="bfloat16"`` (an opt-in lower-precision export, see docs/precision.md)
    stores the transformer layers' projection and FFN weights in bf16 and runs every matmul of
    the layers in bf16; embeddings, LayerNorms, softmax, the pooler and the outputs stay
    float32. The default ``"float32"`` is exact.

    The other BERT-family encoders subclass it: ``embedding_size`` factorizes the embeddings
    (ELECTRA, ALBERT), ``position_padding_id`` numbers positions RoBERTa's way,
    ``type_vocab_size=0`` drops segment embeddings (DistilBERT, MPNet); the hooks
    ``_make_layers``/``_layer_schedule``/``_attention_bias`` let ALBERT share one layer group
    and MPNet add its relative position bias.

    Example::

        encoder = BertEncoder(vocab_size=30522, hidden_size=384, num_layers=6, num_heads=12,
                              intermediate_size=1536)
        outputs = encoder({"input_word_ids": ids, "input_mask": mask, "input_type_ids": types})
    """

    #: How the family's checkpoints name layer i's modules: LAYER_KEY_PREFIX + i + LAYER_KEYS.
    LAYER_KEY_PREFIX: ClassVar[str] = "encoder.layer."
    LAYER_KEYS: ClassVar[dict[str, str]] = BERT_LAYER_KEYS

    def __init__(
        self,
        *,
        vocab_size: int,
        hidden_size: int = 768,
        num_layers: int = 12,
        num_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        layer_norm_epsilon: float = 1e-12,
        use_pooler: bool = True,
        embedding_size: int | None = None,
        position_padding_id: int | None = None,
        skip_padding: bool = True,
        matmul_dtype: str = "float32",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.layer_norm_epsilon = layer_norm_epsilon
        self.use_pooler = use_pooler
        self.embedding_size = embedding_size
        self.position_padding_id = position_padding_id
        self.skip_padding = skip_padding
        self.matmul_dtype = matmul_dtype
        width = embedding_size or hidden_size
        self.word_embeddings = keras.layers.Embedding(vocab_size, width, name="word_embeddings")
        self.position_embeddings = keras.layers.Embedding(
            max_position_embeddings, width, name="position_embeddings"
        )
        # DistilBERT and MPNet have no segment embeddings (type_vocab_size 0).
        self.token_type_embeddings = (
            keras.layers.Embedding(type_vocab_size, width, name="token_type_embeddings")
            if type_vocab_size
            else None
        )
        self.embeddings_layer_norm = LayerNorm(
            epsilon=layer_norm_epsilon, name="embeddings_layer_norm"
        )
        # ELECTRA and ALBERT factorize the embeddings: a narrower table, then a projection.
        self.embeddings_project = (
            keras.layers.Dense(hidden_size, name="embeddings_project")
            if embedding_size is not None
            else None
        )
        self.transformer_layers = self._make_layers()
        self.pooler = (
            keras.layers.Dense(hidden_size, activation="tanh", name="pooler")
            if use_pooler
            else None
        )

    # --- what a family changes (ALBERT: the layers; MPNet: the attention bias) --------------
    def _make_layers(self) -> list[TransformerLayer]:
        return [self._transformer_layer(f"transformer_layer_{i}") for i in range(self.num_layers)]

    def _transformer_layer(self, name: str) -> TransformerLayer:
        return TransformerLayer(
            hidden_size=self.hidden_size,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            layer_norm_epsilon=self.layer_norm_epsilon,
            matmul_dtype=self.matmul_dtype,
            name=name,
        )

    def _layer_schedule(self) -> list[list[TransformerLayer]]:
        """The layers applied, in order, grouped by the encoder output each group produces."""
        return [[layer] for layer in self.transformer_layers]

    def _attention_bias(self, mask: Any, seq: Any) -> Any:
        # Additive mask as in transformers: padded keys get the most negative float32, so their
        # softmax weight is exactly 0.
        keep = ops.cast(mask, "float32")[:, None, None, :]
        return (1.0 - keep) * _FLOAT32_MIN

    def _position_ids(self, word_ids: Any) -> Any:
        if self.position_padding_id is None:
            return ops.expand_dims(ops.arange(ops.shape(word_ids)[1], dtype="int32"), 0)
        # RoBERTa's create_position_ids_from_input_ids: real tokens count up from pad + 1,
        # padding tokens sit at the padding index (whatever the attention mask says).
        real = ops.cast(ops.not_equal(word_ids, self.position_padding_id), "int32")
        return ops.cumsum(real, axis=1) * real + self.position_padding_id

    def _embed(self, word_ids: Any, type_ids: Any) -> Any:
        hidden = self.word_embeddings(word_ids) + self.position_embeddings(
            self._position_ids(word_ids)
        )
        if self.token_type_embeddings is not None:
            hidden = hidden + self.token_type_embeddings(type_ids)
        hidden = self.embeddings_layer_norm(hidden)
        if self.embeddings_project is not None:
            hidden = self.embeddings_project(hidden)
        return hidden

    # --- Keras ---------------------------------------------------------------------------------
    def build(self, input_shape: Any = None) -> None:
        width = self.embedding_size or self.hidden_size
        self.word_embeddings.build((None, None))
        self.position_embeddings.build((None, None))
        if self.token_type_embeddings is not None:
            self.token_type_embeddings.build((None, None))
        self.embeddings_layer_norm.build((None, None, width))
        if self.embeddings_project is not None:
            self.embeddings_project.build((None, None, width))
        for layer in self.transformer_layers:
            layer.build((None, self.hidden_size))
        if self.pooler is not None:
            self.pooler.build((None, self.hidden_size))
        self.built = True

    def call(self, inputs: dict[str, Any]) -> dict[str, Any]:
        word_ids = ops.cast(inputs[contract.INPUT_WORD_IDS], "int32")
        mask = inputs[contract.INPUT_MASK]
        type_ids = ops.cast(inputs[contract.INPUT_TYPE_IDS], "int32")
        # The layers run on [tokens, hidden]: with skip_padding the real tokens only, and the
        # outputs have zeros at the padded positions (models/layers/token_packing.py).
        packing = TokenPacking(mask, skip_padding=self.skip_padding)
        hidden = packing.pack(self._embed(word_ids, type_ids))
        attention_bias = self._attention_bias(mask, ops.shape(word_ids)[1])
        layer_outputs = []
        for group in self._layer_schedule():
            for layer in group:
                hidden = layer(hidden, attention_bias, packing=packing)
            layer_outputs.append(packing.unpack(hidden))
        hidden = layer_outputs[-1]
        cls_state = hidden[:, 0, :]
        pooled = self.pooler(cls_state) if self.pooler is not None else cls_state
        return {
            contract.SEQUENCE_OUTPUT: hidden,
            contract.POOLED_OUTPUT: pooled,
            contract.ENCODER_OUTPUTS: layer_outputs,
        }

    def _embedding_variables(self) -> dict[str, tuple[keras.Variable, bool]]:
        """The embedding keys every family but DistilBERT's spells BERT's way."""
        if not self.built:
            self.build()
        mapping: dict[str, tuple[keras.Variable, bool]] = {
            "embeddings.word_embeddings.weight": (self.word_embeddings.embeddings, False),
            "embeddings.position_embeddings.weight": (self.position_embeddings.embeddings, False),
            "embeddings.LayerNorm.weight": (self.embeddings_layer_norm.gamma, False),
            "embeddings.LayerNorm.bias": (self.embeddings_layer_norm.beta, False),
        }
        if self.token_type_embeddings is not None:
            mapping["embeddings.token_type_embeddings.weight"] = (
                self.token_type_embeddings.embeddings,
                False,
            )
        return mapping

    def checkpoint_variables(self) -> dict[str, tuple[keras.Variable, bool]]:
        """Canonical Hugging Face key (without ``bert.``) -> (variable, transpose?).

        Dense kernels are transposed because torch's Linear stores ``[out, in]``.
        """
        mapping = self._embedding_variables()
        for i, layer in enumerate(self.transformer_layers):
            mapping.update(
                layer.checkpoint_variables(
                    prefix=f"{self.LAYER_KEY_PREFIX}{i}.", names=self.LAYER_KEYS
                )
            )
        if self.pooler is not None:
            mapping["pooler.dense.weight"] = (self.pooler.kernel, True)
            mapping["pooler.dense.bias"] = (self.pooler.bias, False)
        return mapping

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            max_position_embeddings=self.max_position_embeddings,
            type_vocab_size=self.type_vocab_size,
            layer_norm_epsilon=self.layer_norm_epsilon,
            use_pooler=self.use_pooler,
            embedding_size=self.embedding_size,
            position_padding_id=self.position_padding_id,
            skip_padding=self.skip_padding,
            matmul_dtype=self.matmul_dtype,
        )
        return config
