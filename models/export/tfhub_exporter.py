"""Export a checkpoint as TF Hub Common SavedModel API halves (encoder, encoder with MLM,
preprocessing), verified against the reference.

Called by :func:`models.export.exporter.export_model` for every ``export_type`` but
``end-to-end``; shares its output layout (``BASE/VERSION``, written beside it and renamed into
place) and its :class:`~models.export.exporter.ExportReport`.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

from models import contract
from models.errors import ExportConfigError, VerificationError
from models.export.exporter import (
    ExportReport,
    _check_output,
    _max_seq_length,
    _publish,
    _Steps,
    _version,
    staging_dir,
)

#: Max abs difference allowed against PyTorch: hidden states are unit-scale, logits larger.
ENCODER_TOLERANCE = 1e-5
MLM_TOLERANCE = 1e-4
# Encoder verification runs on this many probe texts and pairs: tokenization is checked by the
# preprocessing export; here the numbers matter, which a few dozen texts of all lengths cover.
_VERIFY_TEXTS = 48


def export_tfhub(
    *,
    checkpoint: str | Path | None,
    output: str | Path,
    export_type: str,
    max_seq_length: int | None = None,
    verify: bool = True,
    overwrite: bool = False,
    progress: bool = True,
    do_lower_case: bool | None = None,
) -> ExportReport:
    """Export one TF Hub half of ``checkpoint`` to ``output`` (see :func:`export_model`).

    Any checkpoint :func:`export_model` reads works here too, TF1/TF2 BERT checkpoints included
    (``do_lower_case`` as there).

    ``encoder`` loads the encoder weights only (any BERT checkpoint); ``encoder-with-mlm``
    also needs the masked-LM head (``cls.predictions.*``); ``preprocessing`` writes the
    tokenizer with ``seq_length`` defaulting to 128 (TF Hub's default; ``max_seq_length``
    overrides it).
    """
    started = time.monotonic()
    if export_type not in contract.EXPORT_TYPES or export_type == contract.EXPORT_END_TO_END:
        raise ExportConfigError(f"not a TF Hub export type: {export_type!r}")
    output = Path(output).expanduser().absolute()
    _check_output(output, overwrite=overwrite)

    from models.bundled import bundled_checkpoint
    from models.loading import open_checkpoint
    from models.loading.checkpoint_loader import CheckpointLoader

    with _Steps(progress) as steps, contextlib.ExitStack() as stack:
        steps.start("reading checkpoint")
        opened = stack.enter_context(
            open_checkpoint(
                bundled_checkpoint() if checkpoint is None else checkpoint,
                do_lower_case=do_lower_case,
            )
        )
        loader = CheckpointLoader(opened.model_dir)
        seq_length = _max_seq_length(
            loader,
            max_seq_length
            if max_seq_length is not None
            else min(contract.TFHUB_DEFAULT_SEQ_LENGTH, loader.default_max_seq_length),
        )
        steps.start("building model and loading weights")
        if export_type == contract.EXPORT_PREPROCESSING:
            module = _build_preprocessor(
                loader, seq_length=seq_length, limit=max(seq_length, loader.default_max_seq_length)
            )
            weights_loaded = 0
        else:
            module, weights_loaded = _build_encoder(
                loader, with_mlm=export_type == contract.EXPORT_ENCODER_WITH_MLM
            )
        with staging_dir(output) as staging:
            steps.start("saving SavedModel")
            import tensorflow as tf

            module.trace()
            tf.saved_model.save(module, str(staging))
            steps.start("auditing ops")
            from models.export.export_verification import audit_ops

            ops, tf_text_ops = audit_ops(staging)
            verification: dict[str, Any] | None = None
            if verify:
                steps.start("verifying against the reference")
                verification = verify_tfhub_export(
                    staging, loader=loader, export_type=export_type, seq_length=seq_length
                )
            card = {
                "export_type": export_type,
                "seq_length": seq_length if export_type == contract.EXPORT_PREPROCESSING else None,
                "source": {
                    "checkpoint": str(opened.source),
                    "weights_loaded": weights_loaded,
                    **opened.card_fields(),
                },
                "versions": {"textserve": _version("textserve"), "tensorflow": tf.__version__},
                "tf_text_ops": tf_text_ops,
                "op_count": len(ops),
                "verification": verification,
            }
            card_path = staging / contract.MODEL_CARD_FILE
            card_path.parent.mkdir(parents=True, exist_ok=True)
            card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
            steps.start("publishing")
            _publish(staging, output, overwrite=overwrite)

    return ExportReport(
        output=output,
        checkpoint=opened.source,
        task=export_type,
        max_seq_length=seq_length,
        length_buckets=(),
        output_dim=loader.config.hidden_size,
        labels=(),
        weights_loaded=weights_loaded,
        unexpected_keys_allowed=(),
        tied_decoder=False,
        warmup_records=0,
        verified=verification is not None,
        max_abs_diff=None if verification is None else verification["max_abs_diff"],
        tf_text_ops=tf_text_ops,
        seconds=time.monotonic() - started,
        export_type=export_type,
    )


def _build_encoder(loader: Any, *, with_mlm: bool) -> tuple[Any, int]:
    from models.export.exporter import build_encoder_and_head
    from models.export.tfhub_encoder import TfHubEncoder

    if with_mlm and not loader.has_mlm_head:
        raise ExportConfigError(
            f"--export-type {contract.EXPORT_ENCODER_WITH_MLM} needs a checkpoint with a "
            f"masked-LM head; {loader.weights_file} has none"
        )
    # The family's encoder and, for the MLM, its fill-mask head, loaded as end-to-end exports
    # load them (the embedding task loads the encoder alone; its pooling head has no weights).
    task = contract.TASK_FILL_MASK if with_mlm else contract.TASK_EMBEDDING
    # Callers of a TF Hub encoder may read sequence_output unmasked: compute padded positions
    # as the reference does (an end-to-end export's outputs never expose them).
    encoder, head, report = build_encoder_and_head(loader, task=task, skip_padding=False)
    tokenizer = _tokenizer(loader, seq_length=loader.default_max_seq_length)
    module = TfHubEncoder(
        encoder=encoder,
        mlm_head=head if with_mlm else None,
        vocab_file=tokenizer.vocab_file,
        do_lower_case=bool(tokenizer.do_lower_case),
    )
    return module, report.num_loaded


def _build_preprocessor(loader: Any, *, seq_length: int, limit: int) -> Any:
    """``limit``: the longest input the model takes (the tokenizer's max_seq_length);
    ``bert_pack_inputs`` is traced for lengths up to it."""
    from models.export.tfhub_preprocessor import TfHubPreprocessor

    return TfHubPreprocessor(
        tokenizer=_tokenizer(loader, seq_length=limit), seq_length=seq_length, max_seq_length=limit
    )


def _tokenizer(loader: Any, *, seq_length: int) -> Any:
    from models.errors import ModelError
    from models.tokenizers import text_tokenizer_from_checkpoint

    try:
        return text_tokenizer_from_checkpoint(
            loader.model_dir, max_seq_length=seq_length, pad_to_longest=True
        )
    except ModelError:
        raise
    except (ValueError, OSError) as exc:
        raise ExportConfigError(f"cannot build the tokenizer: {exc}") from exc


def verify_tfhub_export(
    saved_dir: str | Path, *, loader: Any, export_type: str, seq_length: int
) -> dict[str, Any]:
    """Load ``saved_dir`` back and compare it with the Hugging Face reference.

    Encoders: ``sequence_output`` and every ``encoder_outputs`` entry at the real tokens, and
    ``pooled_output`` (the pooler's, or the [CLS] state without one), to 1e-5; ``mlm_logits``
    at every real position to 1e-4. Preprocessing:
    ``input_word_ids`` / ``input_type_ids`` token for token (texts and pairs). Raises
    :class:`VerificationError` on the first mismatch.
    """
    import numpy as np
    import tensorflow as tf

    from models.export.export_verification import probe_pairs
    from models.export.reference import TorchReference
    from models.export.tfhub_encoder import ENCODER_INPUT_SPECS
    from models.probe_texts import PROBE_TEXTS

    loaded = tf.saved_model.load(str(saved_dir))
    texts = list(PROBE_TEXTS)
    firsts, seconds = probe_pairs(texts)
    if export_type == contract.EXPORT_PREPROCESSING:
        from models.export.tfhub_preprocessor import check_preprocessor_parity

        checked = check_preprocessor_parity(
            loaded, loader.model_dir, texts=texts, pairs=(firsts, seconds), seq_length=seq_length
        )
        return {"token_texts": checked, "max_abs_diff": 0.0}

    with_mlm = export_type == contract.EXPORT_ENCODER_WITH_MLM
    # Probe texts truncated as the model's longest input (MiniLM: 256; capped at 512).
    limit = loader.default_max_seq_length
    reference = TorchReference(loader.model_dir, task=contract.TASK_EMBEDDING, max_seq_length=limit)
    texts = texts[:_VERIFY_TEXTS]
    worst = 0.0
    for pairs in (None, seconds[:_VERIFY_TEXTS]):
        batch_texts = texts if pairs is None else firsts[:_VERIFY_TEXTS]
        batch = reference.encode_batch(batch_texts, pairs)
        expected = reference_encoder_outputs(reference.model, batch, has_pooler=loader.has_pooler)
        inputs = tfhub_inputs(batch)
        ours = loaded(inputs)
        diff = encoder_max_diff(ours, expected, mask=inputs[contract.INPUT_MASK])
        if diff > ENCODER_TOLERANCE:
            raise VerificationError(
                f"encoder outputs differ from PyTorch by {diff:.3g} (> {ENCODER_TOLERANCE})"
            )
        worst = max(worst, diff)
    if with_mlm:
        mlm_reference = TorchReference(
            loader.model_dir, task=contract.TASK_FILL_MASK, max_seq_length=limit
        )
        expected_mlm = mlm_reference.outputs(texts)
        inputs = {name: expected_mlm[name].astype(np.int32) for name in ENCODER_INPUT_SPECS}
        # Every real position of every row: the head is checked wherever it can be asked.
        width = inputs[contract.INPUT_WORD_IDS].shape[1]
        positions = np.tile(np.arange(width, dtype=np.int32), (len(texts), 1))
        mlm = loaded.mlm({**inputs, contract.MASKED_LM_POSITIONS: positions})
        real = inputs[contract.INPUT_MASK].astype(bool)
        diff = float(
            np.max(np.abs(mlm[contract.MLM_LOGITS].numpy() - expected_mlm["mlm_logits"])[real])
        )
        if diff > MLM_TOLERANCE:
            raise VerificationError(
                f"mlm_logits differ from PyTorch by {diff:.3g} (> {MLM_TOLERANCE})"
            )
        worst = max(worst, diff)
    return {"output_texts": 2 * len(texts), "max_abs_diff": worst}


def tfhub_inputs(batch: dict[str, Any]) -> dict[str, Any]:
    """A Hugging Face tokenizer's torch batch as the TF Hub encoder's int32 input dict (all
    type ids 0 for tokenizers that have none, e.g. RoBERTa's)."""
    import numpy as np

    ids = batch["input_ids"].numpy().astype(np.int32)
    types = batch.get("token_type_ids")
    return {
        contract.INPUT_WORD_IDS: ids,
        contract.INPUT_MASK: batch["attention_mask"].numpy().astype(np.int32),
        contract.INPUT_TYPE_IDS: np.zeros_like(ids)
        if types is None
        else types.numpy().astype(np.int32),
    }


def reference_encoder_outputs(model: Any, batch: dict[str, Any], *, has_pooler: bool) -> dict:
    """PyTorch BertModel's outputs under the TF Hub names (``encoder_outputs`` a list)."""
    import torch

    with torch.inference_mode():
        result = model(**batch, output_hidden_states=True)
    sequence = result.last_hidden_state.numpy()
    return {
        contract.SEQUENCE_OUTPUT: sequence,
        contract.POOLED_OUTPUT: result.pooler_output.numpy() if has_pooler else sequence[:, 0],
        contract.ENCODER_OUTPUTS: [h.numpy() for h in result.hidden_states[1:]],
    }


def encoder_max_diff(ours: dict[str, Any], expected: dict[str, Any], *, mask: Any) -> float:
    """Largest abs difference over pooled, default, and sequence and every encoder output at
    the real (``mask`` 1) positions: padded positions' states are never read downstream, and
    the two frameworks' masking leaves them different (1e-4 on MiniLM)."""
    import numpy as np

    if len(ours[contract.ENCODER_OUTPUTS]) != len(expected[contract.ENCODER_OUTPUTS]):
        raise VerificationError(
            f"encoder_outputs has {len(ours[contract.ENCODER_OUTPUTS])} layers, the reference "
            f"{len(expected[contract.ENCODER_OUTPUTS])}"
        )
    real = np.asarray(mask).astype(bool)
    per_token = [
        (ours[contract.SEQUENCE_OUTPUT], expected[contract.SEQUENCE_OUTPUT]),
        *zip(ours[contract.ENCODER_OUTPUTS], expected[contract.ENCODER_OUTPUTS], strict=True),
    ]
    diffs = [float(np.max(np.abs(np.asarray(a) - b)[real])) for a, b in per_token]
    for name in (contract.POOLED_OUTPUT, contract.DEFAULT_OUTPUT):
        diffs.append(
            float(np.max(np.abs(np.asarray(ours[name]) - expected[contract.POOLED_OUTPUT])))
        )
    return max(diffs)
