"""The end-to-end model that is exported: in-graph tokenizer + BERT encoder + task head."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf

from models import contract
from models.bert.bert_encoder import BertEncoder
from models.export.entity_grouper import EntityGrouper
from models.export.tfhub_reusable_module import TfHubReusableModule
from models.layers.classification_head import ClassificationHead
from models.layers.masked_lm_head import MaskedLMHead
from models.layers.sentence_embedding_head import SentenceEmbeddingHead
from models.layers.token_classification_head import TokenClassificationHead
from models.tokenizers.wordpiece.bert_text_tokenizer import BertTextTokenizer

_IDS_SPECS = (
    tf.TensorSpec([None, None], tf.int32, name=contract.INPUT_WORD_IDS),
    tf.TensorSpec([None, None], tf.int32, name=contract.INPUT_MASK),
    tf.TensorSpec([None, None], tf.int32, name=contract.INPUT_TYPE_IDS),
)
_TEXT_SPEC = tf.TensorSpec([None], tf.string, name=contract.TEXT)
_TEXT_PAIR_SPEC = tf.TensorSpec([None], tf.string, name=contract.TEXT_PAIR)
_POSITIONS_SPEC = tf.TensorSpec([None, None], tf.int32, name=contract.MASKED_LM_POSITIONS)


class TextModel(TfHubReusableModule):
    """Raw strings in, task outputs out: what ``tf.saved_model.save`` writes.

    Signatures (names from :mod:`models.contract`, see :meth:`signatures`):

    - ``serving_default``: ``text`` -> task outputs; ``serving_pair``: ``text`` + ``text_pair``;
    - ``preprocess``: ``text`` -> ``input_word_ids``/``input_mask``/``input_type_ids``;
    - ``encode``: those three -> ``pooled_output``, ``sequence_output``, ``default``,
      ``encoder_outputs`` ``[layers, batch, seq, hidden]``;
    - ``mlm`` (fill-mask only): the three + ``masked_lm_positions`` -> ``mlm_logits``.

    The loaded object is also callable (``model(text)`` = ``serving_default``) and carries TF
    Hub's REUSABLE attributes (``variables``, ``trainable_variables``: the encoder's and head's
    weights; ``regularization_losses``: none), so ``hub.load`` / ``hub.KerasLayer`` accept it.

    Task outputs: ``embedding``; ``logits``, ``probabilities``, ``labels``; for token
    classification ``token_logits``/``token_probabilities`` ``[batch, seq, labels]`` and
    ``token_labels`` ``[batch, seq]`` (every position of the padded input); or, for fill-mask,
    ``top_k_tokens``/``top_k_ids``/``top_k_scores`` ``[batch, masks, k]`` and ``mask_positions``
    ``[batch, masks]`` for each [MASK] of each text (``masks`` = the most in any text of the
    batch; rows with fewer masks are padded with position -1, id -1, token "" and score 0).

    ``jit_compile=True`` compiles the encoder alone with XLA; the tokenizer (string ops) and the
    string outputs always run in plain TensorFlow.

    Example::

        model = TextModel(tokenizer=tok, encoder=enc, task="embedding",
                          head=SentenceEmbeddingHead(pooling_mode="mean", normalize=True))
        tf.saved_model.save(model, path, signatures=model.signatures())
    """

    def __init__(
        self,
        *,
        tokenizer: BertTextTokenizer,
        encoder: BertEncoder,
        task: str,
        head: SentenceEmbeddingHead | ClassificationHead | MaskedLMHead | TokenClassificationHead,
        id2label: Sequence[str] = (),
        top_k: int = 5,
        jit_compile: bool = False,
        prompts: Mapping[str, str] | None = None,
        default_prompt_name: str | None = None,
    ) -> None:
        super().__init__(name="text_model")
        if task not in contract.TASKS:
            raise ValueError(f"task must be one of {contract.TASKS}, not {task!r}")
        if (
            task in (contract.TASK_CLASSIFICATION, contract.TASK_TOKEN_CLASSIFICATION)
            and not id2label
        ):
            raise ValueError(f"a {task} model needs id2label")
        if task == contract.TASK_FILL_MASK and not 1 <= top_k <= tokenizer.vocab_size:
            raise ValueError(f"top_k must lie in [1, {tokenizer.vocab_size}], not {top_k}")
        self.task = task
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.head = head
        self.id2label = tuple(id2label)
        self.top_k = int(top_k)
        self.jit_compile = jit_compile
        self.prompts = dict(prompts or {})
        if self.prompts and task != contract.TASK_EMBEDDING:
            raise ValueError(f"prompts apply to embedding exports only, not {task!r}")
        if default_prompt_name is not None and default_prompt_name not in self.prompts:
            raise ValueError(f"default_prompt_name {default_prompt_name!r} is not a prompt")
        self.default_prompt_name = default_prompt_name
        # Root attributes TF Hub-style consumers read (contract.ATTR_*).
        setattr(self, contract.ATTR_VOCAB_FILE, tf.saved_model.Asset(tokenizer.vocab_file))
        setattr(
            self,
            contract.ATTR_DO_LOWER_CASE,
            tf.Variable(bool(tokenizer.do_lower_case), trainable=False, dtype=tf.bool),
        )
        setattr(
            self,
            contract.ATTR_MAX_SEQ_LENGTH,
            tf.Variable(int(tokenizer.max_seq_length), trainable=False, dtype=tf.int32),
        )
        setattr(
            self,
            contract.ATTR_LENGTH_BUCKETS,
            tf.Variable(list(tokenizer.length_buckets), trainable=False, dtype=tf.int32),
        )
        if task == contract.TASK_FILL_MASK:
            # id -> token string, read from the vocab asset (the vocab is never inlined).
            self._id_to_token = tf.lookup.StaticHashTable(
                tf.lookup.TextFileInitializer(
                    getattr(self, contract.ATTR_VOCAB_FILE),
                    key_dtype=tf.int64,
                    key_index=tf.lookup.TextFileIndex.LINE_NUMBER,
                    value_dtype=tf.string,
                    value_index=tf.lookup.TextFileIndex.WHOLE_LINE,
                ),
                default_value="",
            )
        if task == contract.TASK_TOKEN_CLASSIFICATION:
            self._entity_grouper = EntityGrouper(
                id2label=self.id2label,
                vocab_file=getattr(self, contract.ATTR_VOCAB_FILE),
                unk_id=-1 if tokenizer.unk_id is None else tokenizer.unk_id,
                decoder=tokenizer.token_decoder,
            )
        weights = {id(w): w for w in [*encoder.weights, *head.weights]}
        self.set_reusable_weights(trainable=list(weights.values()))
        # autograph=False everywhere: nothing here branches on tensors, and autograph's source
        # conversion of the tokenizer and Keras code costs ~10 s per trace.
        self._run_encoder = tf.function(
            self._encoder_body, jit_compile=jit_compile, autograph=False
        )
        if task == contract.TASK_FILL_MASK:
            # Only fill-mask exports have the MLM head this signature needs (and the saver
            # traces every tf.function attribute, so it must not exist otherwise).
            self.mlm = tf.function(
                self._mlm, input_signature=[*_IDS_SPECS, _POSITIONS_SPEC], autograph=False
            )

    # --- numeric core ------------------------------------------------------------------------
    def _encoder_body(
        self, input_word_ids: tf.Tensor, input_mask: tf.Tensor, input_type_ids: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        outputs = self.encoder(
            {
                contract.INPUT_WORD_IDS: input_word_ids,
                contract.INPUT_MASK: input_mask,
                contract.INPUT_TYPE_IDS: input_type_ids,
            }
        )
        return {
            contract.SEQUENCE_OUTPUT: outputs[contract.SEQUENCE_OUTPUT],
            contract.POOLED_OUTPUT: outputs[contract.POOLED_OUTPUT],
            contract.ENCODER_OUTPUTS: tf.stack(outputs[contract.ENCODER_OUTPUTS], axis=0),
        }

    def task_outputs(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Task outputs for tokenized inputs (the three ``input_*`` tensors)."""
        encoded = self._run_encoder(
            inputs[contract.INPUT_WORD_IDS],
            inputs[contract.INPUT_MASK],
            inputs[contract.INPUT_TYPE_IDS],
        )
        if self.task == contract.TASK_EMBEDDING:
            embedding = self.head(encoded[contract.SEQUENCE_OUTPUT], inputs[contract.INPUT_MASK])
            return {contract.EMBEDDING: tf.identity(embedding)}
        if self.task == contract.TASK_CLASSIFICATION:
            outputs = dict(self.head(encoded[contract.POOLED_OUTPUT]))
            best = tf.argmax(outputs[contract.LOGITS], axis=-1, output_type=tf.int32)
            outputs[contract.LABELS] = tf.gather(tf.constant(self.id2label, tf.string), best)
            return outputs
        if self.task == contract.TASK_TOKEN_CLASSIFICATION:
            outputs = dict(self.head(encoded[contract.SEQUENCE_OUTPUT]))
            best = tf.argmax(outputs[contract.TOKEN_LOGITS], axis=-1, output_type=tf.int32)
            outputs[contract.TOKEN_LABELS] = tf.gather(tf.constant(self.id2label, tf.string), best)
            return outputs
        return self._fill_mask(inputs[contract.INPUT_WORD_IDS], encoded[contract.SEQUENCE_OUTPUT])

    def _fill_mask(self, word_ids: tf.Tensor, sequence_output: tf.Tensor) -> dict[str, tf.Tensor]:
        is_mask = tf.equal(word_ids, self.tokenizer.mask_id)
        where = tf.where(is_mask)  # row-major [n, 2]: (row, position)
        counts = tf.reduce_sum(tf.cast(is_mask, tf.int32), axis=1)
        most = tf.reduce_max(tf.concat([counts, [0]], axis=0))
        batch = tf.shape(word_ids)[0]
        positions = tf.RaggedTensor.from_value_rowids(
            tf.cast(where[:, 1], tf.int32), where[:, 0], nrows=tf.cast(batch, tf.int64)
        ).to_tensor(-1, shape=tf.stack([batch, most]))
        valid = positions >= 0
        hidden = tf.gather(sequence_output, tf.maximum(positions, 0), batch_dims=1)
        probabilities = tf.nn.softmax(self.head(hidden), axis=-1)
        scores, ids = tf.math.top_k(probabilities, k=self.top_k)
        valid_k = tf.broadcast_to(valid[:, :, None], tf.shape(ids))
        tokens = self._id_to_token.lookup(tf.cast(ids, tf.int64))
        return {
            contract.TOP_K_TOKENS: tf.where(valid_k, tokens, ""),
            contract.TOP_K_IDS: tf.where(valid_k, ids, -1),
            contract.TOP_K_SCORES: tf.where(valid_k, scores, 0.0),
            contract.MASK_POSITIONS: positions,
        }

    # --- signatures ---------------------------------------------------------------------------
    @tf.function(autograph=False, input_signature=[_TEXT_SPEC])
    def __call__(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        """The callable root: ``serving_default`` (calls its trace rather than re-tracing)."""
        return self.serve_text(text)

    @tf.function(autograph=False, input_signature=[_TEXT_SPEC])
    def serve_text(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        # As SentenceTransformer.encode(texts) without prompt_name: the default prompt applies.
        if self.default_prompt_name is not None:
            return self._serve_with_prompt(text, self.prompts[self.default_prompt_name])
        inputs = self.preprocess(text)
        outputs = self.task_outputs(inputs)
        if self.task == contract.TASK_TOKEN_CLASSIFICATION:
            outputs.update(self._entities(text, inputs[contract.INPUT_WORD_IDS], outputs))
        return outputs

    def _serve_with_prompt(self, text: tf.Tensor, prompt: str) -> dict[str, tf.Tensor]:
        """Embedding of ``prompt + text`` (sentence-transformers prepends the prompt string)."""
        return self.task_outputs(self.preprocess(tf.strings.join([prompt, text])))

    def _prompt_signature(self, prompt: str) -> Any:
        serve = tf.function(
            lambda text: self._serve_with_prompt(text, prompt),
            input_signature=[_TEXT_SPEC],
            autograph=False,
        )
        return serve.get_concrete_function()

    def _entities(
        self, text: tf.Tensor, word_ids: tf.Tensor, outputs: dict[str, tf.Tensor]
    ) -> dict[str, tf.Tensor]:
        """The pipeline's entities: token offsets from the tokenizer, laid out like the packed
        input ([CLS] first, truncated to max_seq_length) and grouped by :class:`EntityGrouper`."""
        _, starts, ends = self.tokenizer.tokenize_with_offsets(text)
        batch = tf.shape(word_ids, out_type=tf.int64)[0]
        width = tf.shape(word_ids, out_type=tf.int64)[1]
        kept = self.tokenizer.max_seq_length - 2

        def packed(offsets: tf.RaggedTensor) -> tf.Tensor:
            dense = tf.cast(offsets[:, :kept].to_tensor(-1), tf.int32)
            dense = tf.concat([tf.fill(tf.stack([batch, 1]), -1), dense], axis=1)
            return tf.pad(
                dense,
                [[0, 0], [0, width - tf.shape(dense, out_type=tf.int64)[1]]],
                constant_values=-1,
            )

        start, end = packed(starts), packed(ends)
        # The reference's special_tokens_mask marks the tokens the packing added ([CLS],
        # [SEP]; padding here), not literal special tokens in the text: those are entities'
        # tokens like any other, and positions without an offset are exactly the added ones.
        special = start < 0
        return self._entity_grouper(
            text, word_ids, special, start, end, outputs[contract.TOKEN_PROBABILITIES]
        )

    @tf.function(autograph=False, input_signature=[_TEXT_SPEC, _TEXT_PAIR_SPEC])
    def serve_pair(self, text: tf.Tensor, text_pair: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.task_outputs(self.preprocess_pair(text, text_pair))

    # The two tokenizer functions are called (not re-traced) by the serving functions: each
    # trace of the tokenizer builds thousands of graph ops.
    @tf.function(autograph=False, input_signature=[_TEXT_SPEC])
    def preprocess(self, text: tf.Tensor) -> dict[str, tf.Tensor]:
        return dict(self.tokenizer(text))

    @tf.function(autograph=False, input_signature=[_TEXT_SPEC, _TEXT_PAIR_SPEC])
    def preprocess_pair(self, text: tf.Tensor, text_pair: tf.Tensor) -> dict[str, tf.Tensor]:
        """Pair tokenization; saved as a function (not a signature) for export verification."""
        return dict(self.tokenizer(text, text_pair))

    @tf.function(autograph=False, input_signature=list(_IDS_SPECS))
    def encode(
        self, input_word_ids: tf.Tensor, input_mask: tf.Tensor, input_type_ids: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        encoded = self._run_encoder(input_word_ids, input_mask, input_type_ids)
        return {
            contract.POOLED_OUTPUT: encoded[contract.POOLED_OUTPUT],
            contract.SEQUENCE_OUTPUT: encoded[contract.SEQUENCE_OUTPUT],
            contract.DEFAULT_OUTPUT: tf.identity(encoded[contract.POOLED_OUTPUT]),
            contract.ENCODER_OUTPUTS: encoded[contract.ENCODER_OUTPUTS],
        }

    def _mlm(
        self,
        input_word_ids: tf.Tensor,
        input_mask: tf.Tensor,
        input_type_ids: tf.Tensor,
        masked_lm_positions: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        """``mlm`` signature (fill-mask exports): MLM logits at the given positions."""
        encoded = self._run_encoder(input_word_ids, input_mask, input_type_ids)
        hidden = tf.gather(encoded[contract.SEQUENCE_OUTPUT], masked_lm_positions, batch_dims=1)
        return {contract.MLM_LOGITS: self.head(hidden)}

    def signatures(self) -> dict[str, Any]:
        """The concrete functions to pass to ``tf.saved_model.save(..., signatures=...)``."""
        signatures = {
            contract.SERVING_DEFAULT: self.serve_text.get_concrete_function(),
            contract.SERVING_PAIR: self.serve_pair.get_concrete_function(),
            contract.PREPROCESS: self.preprocess.get_concrete_function(),
            contract.ENCODE: self.encode.get_concrete_function(),
        }
        if self.task == contract.TASK_FILL_MASK:
            signatures[contract.MLM] = self.mlm.get_concrete_function()
        for name, prompt in self.prompts.items():
            signatures[contract.SERVING_PROMPT_PREFIX + name] = self._prompt_signature(prompt)
        return signatures
