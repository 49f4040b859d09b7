"""End-to-end MPNet export: a sentence-transformers checkpoint (all-mpnet-base-v2's layout)."""

from __future__ import annotations

from pathlib import Path

import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)
import transformers

from models import contract
from models.export.exporter import export_model
from tests.support.families import (
    FAMILY_CASES,
    as_sentence_transformers,
    perturbed_model,
    stsb_parity,
    with_wordpiece_tokenizer,
    wordpiece_vocab_size,
    write_checkpoint,
)


def test_sentence_transformers_export_matches_pytorch_on_stsb(tmp_path: Path) -> None:
    """MPNet + mean Pooling + Normalize; the tokenizer packs <s> A </s></s> B </s> and its
    ``<mask>`` swallows the space before it, as in released MPNet checkpoints."""
    # <s> <pad> </s> <unk> + BERT's words + <mask>: mpnet-base's 30527.
    model = perturbed_model(FAMILY_CASES["mpnet"], "base", vocab_size=wordpiece_vocab_size() + 5)
    checkpoint = with_wordpiece_tokenizer(
        write_checkpoint(tmp_path / "checkpoint", model),
        transformers.MPNetTokenizer,
    )
    as_sentence_transformers(checkpoint, pooling="mean_tokens", normalize=True)
    output = tmp_path / "exported" / "1"
    report = export_model(checkpoint=checkpoint, output=output, progress=False)
    assert report.task == contract.TASK_EMBEDDING and report.verified
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-5
    assert stsb_parity(output, checkpoint, task=report.task, count=200) <= 1e-5
