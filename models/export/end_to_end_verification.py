"""Verify a staged end-to-end export against the reference: token parity on the probe corpus
and its pairs, then task outputs (every prompt signature too) and, for token classification,
entities. Raises :class:`models.errors.VerificationError` on the first disagreement."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from models import contract

if TYPE_CHECKING:
    from models.export.export_progress import ExportProgress
    from models.export.text_model import TextModel
    from models.loading.checkpoint_loader import CheckpointLoader

# Output parity on pairs runs on this many of them (every pair gets token parity): pairs add
# the type-id path, which a few dozen long and short pairs exercise fully.
_OUTPUT_PAIRS = 64


class VerificationSummary(TypedDict):
    """What was verified; the model card's ``verification``."""

    entity_texts: int | None
    token_texts: int
    token_pairs: int
    output_texts: int
    max_abs_diff: float
    tolerance: float
    worst_text: str


def verify_end_to_end(
    staging: Path,
    *,
    loader: CheckpointLoader,
    model: TextModel,
    task: str,
    seq_length: int,
    progress: ExportProgress,
    precision: str = contract.PRECISION_FLOAT32,
) -> VerificationSummary:
    """Load the SavedModel in ``staging`` back and check it against PyTorch ``loader`` (in
    float32), to the tolerance of ``precision`` (see
    :func:`~models.export.export_verification.output_tolerance`)."""
    import tensorflow as tf

    from models.export.export_verification import (
        check_entity_parity,
        check_output_parity,
        check_token_parity,
        output_tolerance,
        probe_pairs,
    )
    from models.export.reference import TorchReference
    from models.probe_texts import PROBE_TEXTS

    progress.start("loading the SavedModel back")
    loaded = tf.saved_model.load(str(staging))
    progress.start("loading the PyTorch reference")
    reference = TorchReference(
        loader.model_dir,
        task=task,
        max_seq_length=seq_length,
        pooling_mode=loader.pooling_mode,
        normalize=loader.normalize,
    )
    texts = list(PROBE_TEXTS)
    firsts, seconds = probe_pairs(texts)
    progress.start("verifying token parity")
    token_texts = check_token_parity(loaded, reference, texts)
    token_pairs = check_token_parity(loaded, reference, firsts, pairs=seconds)
    if task == contract.TASK_FILL_MASK:
        # Fill-mask needs masks: one inside every probe text, a second in every other one
        # (written the family's way: [MASK], <mask>).
        mask = reference.tokenizer.mask_token
        texts = [
            f"{t[: len(t) // 2]} {mask} {t[len(t) // 2 :]}" + (f" {mask}." if i % 2 else "")
            for i, t in enumerate(texts)
        ]
    progress.start(
        "verifying outputs against PyTorch",
        total=len(texts) * (1 + len(model.prompts)) + _OUTPUT_PAIRS,
    )
    tolerance = output_tolerance(task, precision)
    output_parity = functools.partial(
        check_output_parity,
        loaded,
        reference,
        task=task,
        tolerance=tolerance,
        mask_id=model.tokenizer.mask_id,
        id2label=model.id2label,
        progress=progress.advance,
    )
    default_prompt = model.prompts.get(model.default_prompt_name or "", "")
    single_diff, single_worst = output_parity(texts=texts, prompt=default_prompt)
    for name, prompt in model.prompts.items():
        prompt_diff, prompt_worst = output_parity(
            texts=texts, signature_name=contract.SERVING_PROMPT_PREFIX + name, prompt=prompt
        )
        single_diff, single_worst = max((single_diff, single_worst), (prompt_diff, prompt_worst))
    pair_diff, pair_worst = output_parity(
        texts=firsts[:_OUTPUT_PAIRS], pairs=seconds[:_OUTPUT_PAIRS]
    )
    worst_diff, worst_text = max((single_diff, single_worst), (pair_diff, pair_worst))
    entity_texts = None
    if task == contract.TASK_TOKEN_CLASSIFICATION:
        progress.start("verifying entities against the transformers pipeline")
        entity_texts = check_entity_parity(loaded, reference, texts=texts)
    return {
        "entity_texts": entity_texts,
        "token_texts": token_texts,
        "token_pairs": token_pairs,
        "output_texts": len(texts) + min(len(firsts), _OUTPUT_PAIRS),
        "max_abs_diff": worst_diff,
        "tolerance": tolerance,
        "worst_text": worst_text,
    }
