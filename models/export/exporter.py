"""Export a BERT-family checkpoint as one end-to-end SavedModel (raw text in), verified.

The library behind ``textserve-export`` (see :func:`export_model`). It runs the steps; each
job is its own module: :mod:`~models.export.model_assembly` (encoder, head, tokenizer),
:mod:`~models.export.warmup_requests`, :mod:`~models.export.end_to_end_verification`,
:mod:`~models.export.model_card` and :mod:`~models.export.version_directory` (TF Serving's
``BASE/VERSION`` layout, staged and published atomically).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from models import contract
from models.errors import ExportConfigError, Keyword
from models.export.export_progress import ExportProgress
from models.export.export_report import ExportReport
from models.export.model_assembly import (
    DEFAULT_LENGTH_BUCKETS,
    LABELLED_TASKS,
    build_text_model,
    resolve_max_seq_length,
)
from models.export.version_directory import check_version_dir, publish, staging_dir

__all__ = ["DEFAULT_LENGTH_BUCKETS", "ExportReport", "export_model"]

# top_k's default, which a TF Hub export must leave alone.
_TOP_K = 5


def export_model(
    *,
    checkpoint: str | Path | None,
    output: str | Path,
    task: str | None = None,
    max_seq_length: int | None = None,
    length_buckets: Sequence[int] | Literal["default"] | None = None,
    jit_compile: bool = False,
    top_k: int = _TOP_K,
    verify: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    do_lower_case: bool | None = None,
    export_type: str = contract.EXPORT_END_TO_END,
    precision: str = contract.PRECISION_FLOAT32,
) -> ExportReport:
    """Export ``checkpoint`` to ``output`` (``BASE/VERSION``, TF Serving's layout).

    ``export_type``: ``end-to-end`` (the default: raw text -> task outputs, what TF Serving
    serves) or one half of TF Hub's Common SavedModel API for text: ``preprocessing``,
    ``encoder``, ``encoder-with-mlm`` (see :func:`models.export.tfhub_exporter.export_tfhub`;
    ``max_seq_length`` is then the preprocessor's ``seq_length``, default 128, and the
    end-to-end options ``task``, ``length_buckets``, ``jit_compile``, ``top_k`` and
    ``precision`` are refused).

    ``precision``: ``float32`` (the default, exact) or ``bfloat16``, an opt-in end-to-end export
    whose transformer layers store their weights and run their matmuls in bf16 (LayerNorm,
    softmax, pooling and the outputs stay float32; the signatures are the fp32 export's). It is
    verified to a looser tolerance (see
    :data:`models.export.export_verification.BFLOAT16_TOLERANCES`) and its model card records the
    precision and the measured max abs difference; token classification is refused (its entity
    check is exact). See docs/precision.md.

    ``checkpoint=None`` exports the bundled sentence-transformers/all-MiniLM-L6-v2. A Google
    TF1 BERT or TF Model Garden TF2 checkpoint is converted first (see
    :mod:`models.loading.tf_checkpoint`); ``do_lower_case`` is its tokenizer's lowercasing when
    the checkpoint cannot tell. ``task``
    defaults to the checkpoint's own (sentence-transformers and BertModel -> embedding,
    ``*ForSequenceClassification`` -> classification, ``*ForMaskedLM`` -> fill-mask).
    ``max_seq_length`` defaults to sentence_bert_config.json's, else the config's
    max_position_embeddings capped at 512. ``length_buckets`` are the padded lengths the graph
    runs at: ``"default"`` means :data:`DEFAULT_LENGTH_BUCKETS` below max_seq_length, then
    max_seq_length; ``None`` (the default) pads each batch to its longest row, except with
    ``jit_compile`` (XLA compiles once per shape), which gets the default buckets. Export with
    buckets for XLA, including TF Serving's ``--tf_xla_auto_jit`` on GPU.

    The SavedModel is written to a temporary directory beside ``output``, verified there
    (``verify=False`` skips token/output parity, which is unsafe: a tokenizer or weight mismatch
    then ships silently; the op audit always runs), and renamed into place, so a server polling
    BASE never sees a half-written version. An existing non-empty version is kept unless
    ``overwrite=True``. Raises a :class:`models.errors.ModelError` on any failure.

    Example::

        report = export_model(checkpoint=None, output="exported/minilm/1")
    """
    if precision not in contract.PRECISIONS:
        raise ExportConfigError(
            Keyword("precision"),
            f" must be one of {', '.join(contract.PRECISIONS)}, not {precision!r}",
        )
    if export_type != contract.EXPORT_END_TO_END:
        if export_type not in contract.EXPORT_TYPES:
            raise ExportConfigError(
                Keyword("export_type"),
                f" must be one of {', '.join(contract.EXPORT_TYPES)}, not {export_type!r}",
            )
        if (
            task is not None
            or length_buckets is not None
            or jit_compile
            or top_k != _TOP_K
            or precision != contract.PRECISION_FLOAT32
        ):
            raise ExportConfigError(
                Keyword("task"),
                ", ",
                Keyword("length_buckets"),
                ", ",
                Keyword("jit_compile"),
                ", ",
                Keyword("top_k"),
                " and ",
                Keyword("precision"),
                " apply to end-to-end exports only, not to ",
                Keyword("export_type"),
                f" {export_type}",
            )
        from models.export.tfhub_exporter import export_tfhub

        return export_tfhub(
            checkpoint=checkpoint,
            output=output,
            export_type=export_type,
            max_seq_length=max_seq_length,
            verify=verify,
            overwrite=overwrite,
            progress=progress,
            do_lower_case=do_lower_case,
        )
    started = time.monotonic()
    output = Path(output).expanduser().absolute()
    check_version_dir(output, overwrite=overwrite)
    if task is not None and task not in contract.TASKS:
        raise ExportConfigError(
            Keyword("task"), f" must be one of {', '.join(contract.TASKS)}, not {task!r}"
        )
    if top_k < 1:
        raise ExportConfigError(Keyword("top_k"), f" must be at least 1, not {top_k}")

    from models.bundled import bundled_checkpoint
    from models.export.export_verification import audit_ops
    from models.export.model_card import build_model_card, write_model_card
    from models.export.warmup_requests import write_warmup_requests
    from models.loading import open_checkpoint
    from models.loading.checkpoint_loader import CheckpointLoader
    from models.loading.task_guard import checkpoint_task

    with ExportProgress(enabled=progress) as steps, contextlib.ExitStack() as stack:
        steps.start("reading checkpoint")
        opened = open_checkpoint(
            bundled_checkpoint() if checkpoint is None else checkpoint,
            do_lower_case=do_lower_case,
        )
        stack.enter_context(opened)
        loader = CheckpointLoader(opened.model_dir)
        task = checkpoint_task(loader, task)
        opened.check_task(task)
        if precision != contract.PRECISION_FLOAT32 and task == contract.TASK_TOKEN_CLASSIFICATION:
            raise ExportConfigError(
                Keyword("precision"),
                f" {precision} is not offered for {task} exports: their entities are verified "
                "exactly against the transformers pipeline, which lower precision can change",
            )
        seq_length = resolve_max_seq_length(loader, max_seq_length)
        if task in LABELLED_TASKS and not loader.config.id2label:
            raise ExportConfigError(f"a {task} export needs num_labels/id2label in config")

        steps.start("building model and loading weights")
        model, load_report = build_text_model(
            loader,
            task=task,
            max_seq_length=seq_length,
            length_buckets=length_buckets,
            top_k=top_k,
            jit_compile=jit_compile,
            precision=precision,
        )

        with staging_dir(output) as staging:
            steps.start("saving SavedModel")
            import tensorflow as tf

            tf.saved_model.save(model, str(staging), signatures=model.signatures())
            steps.start("writing warmup requests")
            warmup_records = write_warmup_requests(staging, model.tokenizer)

            steps.start("auditing ops")
            ops, tf_text_ops = audit_ops(staging)
            verification = None
            if verify:
                from models.export.end_to_end_verification import verify_end_to_end

                verification = verify_end_to_end(
                    staging,
                    loader=loader,
                    model=model,
                    task=task,
                    seq_length=seq_length,
                    progress=steps,
                    precision=precision,
                )

            card = build_model_card(
                loader=loader,
                checkpoint_fields=opened.card_fields(),
                model=model,
                task=task,
                load_report=load_report,
                tf_text_ops=tf_text_ops,
                ops=ops,
                verification=verification,
                jit_compile=jit_compile,
                precision=precision,
            )
            write_model_card(staging, card)
            steps.start("publishing")
            publish(staging, output, overwrite=overwrite)

    return ExportReport(
        output=output,
        checkpoint=opened.source,
        task=task,
        max_seq_length=seq_length,
        length_buckets=tuple(model.tokenizer.length_buckets),
        output_dim=card["output_dim"],
        labels=tuple(model.id2label),
        weights_loaded=load_report.num_loaded,
        unexpected_keys_allowed=load_report.unexpected_allowed,
        tied_decoder=load_report.tied_decoder,
        warmup_records=warmup_records,
        verified=verification is not None,
        max_abs_diff=None if verification is None else verification["max_abs_diff"],
        tf_text_ops=tf_text_ops,
        seconds=time.monotonic() - started,
        precision=precision,
    )
