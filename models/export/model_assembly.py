"""Build the end-to-end model of one checkpoint: encoder + task head (weights loaded strictly)
and the in-graph tokenizer, wrapped in a :class:`~models.export.text_model.TextModel`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, TypeAlias

from models import contract
from models.errors import ExportConfigError, Keyword, ModelError

if TYPE_CHECKING:
    from models.bert.bert_config import BertConfig
    from models.bert.bert_encoder import BertEncoder
    from models.export.text_model import TextModel
    from models.layers.classification_head import ClassificationHead
    from models.layers.masked_lm_head import MaskedLMHead
    from models.layers.sentence_embedding_head import SentenceEmbeddingHead
    from models.layers.token_classification_head import TokenClassificationHead
    from models.loading.checkpoint_loader import CheckpointLoader, LoadReport
    from models.tokenizers.text_tokenizer import TextTokenizer

    TaskHead: TypeAlias = (
        SentenceEmbeddingHead | ClassificationHead | MaskedLMHead | TokenClassificationHead
    )

#: Padded lengths of ``length_buckets="default"`` and of ``jit_compile`` exports (capped at
#: max_seq_length, which is always the last bucket). Steps of 1.5x rather than 2x: padding a
#: 17-token text to 32 would waste ~45% of the encoder's work. Without XLA an export pads each
#: batch to its longest row instead: a dynamic length costs nothing there, and on length-sorted
#: STS-B batches these buckets still meant 37% more tokens and ~30% fewer sentences/s on CPU.
DEFAULT_LENGTH_BUCKETS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384)
#: Tasks whose outputs are named by the checkpoint's id2label.
LABELLED_TASKS = (contract.TASK_CLASSIFICATION, contract.TASK_TOKEN_CLASSIFICATION)


def resolve_max_seq_length(loader: CheckpointLoader, requested: int | None) -> int:
    """``requested``, checked against the model's positions; None: the checkpoint's default."""
    if requested is None:
        return int(loader.default_max_seq_length)
    limit = loader.config.max_sequence_length
    if not 3 <= requested <= limit:
        raise ExportConfigError(
            Keyword("max_seq_length"),
            f" must lie in [3, {limit}] (the model's positions), not {requested}",
        )
    return int(requested)


def sigmoid_probabilities(config: BertConfig) -> bool:
    """Independent sigmoids for multi-label checkpoints and for a single logit: a softmax over
    one logit is always 1, and sigmoid is what sentence-transformers' CrossEncoder applies to
    one-logit (reranker) checkpoints."""
    return config.problem_type == "multi_label_classification" or len(config.id2label) == 1


def build_encoder_and_head(
    loader: CheckpointLoader,
    *,
    task: str,
    skip_padding: bool = True,
    precision: str = contract.PRECISION_FLOAT32,
) -> tuple[BertEncoder, TaskHead, LoadReport]:
    """(encoder, task head, load report) for ``loader``'s family, weights loaded strictly.

    The heads follow each family's Hugging Face task classes (see :mod:`models.family`).
    ``skip_padding`` and ``precision`` (the encoder's ``matmul_dtype``): see
    :class:`models.bert.bert_encoder.BertEncoder`. The heads always run in float32.
    """
    from models.layers.classification_head import ClassificationHead
    from models.layers.masked_lm_head import MaskedLMHead
    from models.layers.sentence_embedding_head import SentenceEmbeddingHead
    from models.layers.token_classification_head import TokenClassificationHead

    config, family = loader.config, loader.family
    # RoBERTa & co. classify the first token's state, which the encoder's pooled_output is
    # when it has no pooler.
    first_token_classifier = (
        task == contract.TASK_CLASSIFICATION and family.classifier_activation is not None
    )
    encoder = family.encoder_class(
        **config.encoder_kwargs(use_pooler=loader.has_pooler and not first_token_classifier),
        skip_padding=skip_padding,
        matmul_dtype=precision,
    )
    targets = dict(encoder.checkpoint_variables())
    head: TaskHead
    if task == contract.TASK_EMBEDDING:
        head = SentenceEmbeddingHead(pooling_mode=loader.pooling_mode, normalize=loader.normalize)
    elif task == contract.TASK_CLASSIFICATION:
        head = ClassificationHead(
            num_labels=len(config.id2label),
            hidden_size=config.hidden_size,
            multi_label=sigmoid_probabilities(config),
            inner_activation=family.classifier_activation,
        )
        targets.update(family.rename(head.checkpoint_variables(), family.classifier_renames))
    elif task == contract.TASK_TOKEN_CLASSIFICATION:
        # Every family's *ForTokenClassification: one `classifier` on every token's state.
        head = TokenClassificationHead(
            num_labels=len(config.id2label), hidden_size=config.hidden_size
        )
        targets.update(head.checkpoint_variables())
    else:
        head = MaskedLMHead(
            vocab_size=config.vocab_size,
            hidden_size=config.hidden_size,
            hidden_act=family.mlm_activation or config.hidden_act,
            layer_norm_epsilon=config.layer_norm_eps,
            token_embedding=encoder.word_embeddings if loader.decoder_is_tied else None,
            embedding_size=getattr(config, "embedding_size", None)
            if family.mlm_to_embedding_size
            else None,
        )
        targets.update(family.rename(head.checkpoint_variables(), family.mlm_renames))
    return encoder, head, loader.assign(targets, task=task)


def build_text_model(
    loader: CheckpointLoader,
    *,
    task: str,
    max_seq_length: int,
    length_buckets: Sequence[int] | Literal["default"] | None,
    top_k: int,
    jit_compile: bool,
    precision: str = contract.PRECISION_FLOAT32,
) -> tuple[TextModel, LoadReport]:
    """The end-to-end model of ``loader`` for ``task`` and the report of its weight loading."""
    from models.export.text_model import TextModel
    from models.tokenizers import text_tokenizer_from_checkpoint

    config = loader.config
    # Length buckets and XLA exist for static shapes (one compiled program per padded shape):
    # packing the real tokens would make the token count dynamic again, so bucketed and
    # jit_compile exports compute the padding; a pad-to-longest export skips it.
    static_shapes = length_buckets is not None or jit_compile
    encoder, head, load_report = build_encoder_and_head(
        loader, task=task, skip_padding=not static_shapes, precision=precision
    )
    # The tokenizer takes seconds to derive; a checkpoint that cannot load fails before that.
    try:
        pad_to_longest = length_buckets is None and not jit_compile
        if length_buckets == "default" or (length_buckets is None and jit_compile):
            length_buckets = [b for b in DEFAULT_LENGTH_BUCKETS if b < max_seq_length]
            length_buckets.append(max_seq_length)
        tokenizer: TextTokenizer = text_tokenizer_from_checkpoint(
            loader.model_dir,
            max_seq_length=max_seq_length,
            length_buckets=None if pad_to_longest else length_buckets,
            pad_to_longest=pad_to_longest,
        )
    except ModelError:
        raise
    except (ValueError, OSError) as exc:
        raise ExportConfigError(f"cannot build the tokenizer: {exc}") from exc
    if tokenizer.vocab_size > config.vocab_size:
        raise ExportConfigError(
            f"the tokenizer's vocabulary ({tokenizer.vocab_size}) is larger than the model's "
            f"embedding table ({config.vocab_size})"
        )
    embedding = task == contract.TASK_EMBEDDING
    try:
        model = TextModel(
            tokenizer=tokenizer,
            encoder=encoder,
            task=task,
            head=head,
            id2label=config.id2label if task in LABELLED_TASKS else (),
            top_k=top_k,
            jit_compile=jit_compile,
            prompts=loader.prompts if embedding else None,
            default_prompt_name=loader.default_prompt_name if embedding else None,
        )
    except ValueError as exc:
        raise ExportConfigError(str(exc)) from exc
    return model, load_report
