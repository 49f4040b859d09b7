"""End-to-end DistilBERT export (WordPiece without type ids in the graph), against PyTorch."""

from __future__ import annotations

from pathlib import Path

import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)
import transformers

from models import contract
from models.export.exporter import export_model
from tests.support.families import (
    FAMILY_CASES,
    perturbed_model,
    stsb_parity,
    with_wordpiece_tokenizer,
    wordpiece_vocab_size,
    write_checkpoint,
)


def test_classification_export_matches_pytorch_on_stsb(tmp_path: Path) -> None:
    """pre_classifier + ReLU + classifier on [CLS]; pairs carry no type ids."""
    model = perturbed_model(
        FAMILY_CASES["distilbert"], "classification", vocab_size=wordpiece_vocab_size()
    )
    checkpoint = with_wordpiece_tokenizer(
        write_checkpoint(tmp_path / "checkpoint", model), transformers.DistilBertTokenizer
    )
    output = tmp_path / "exported" / "1"
    report = export_model(checkpoint=checkpoint, output=output, progress=False)
    assert report.task == contract.TASK_CLASSIFICATION and report.verified
    assert report.labels == ("negative", "neutral", "positive")
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-4
    assert stsb_parity(output, checkpoint, task=report.task, count=200) <= 1e-4
