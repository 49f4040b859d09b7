"""End-to-end ELECTRA exports (WordPiece in the graph), verified against PyTorch."""

from __future__ import annotations

from pathlib import Path

import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)
import transformers

from models import contract
from models.export.exporter import export_model
from tests.support.families import (
    FAMILY_CASES,
    TASK_OF,
    perturbed_model,
    report_signatures,
    stsb_parity,
    with_wordpiece_tokenizer,
    wordpiece_vocab_size,
    write_checkpoint,
)


def test_fill_mask_export_matches_pytorch_on_stsb(tmp_path: Path) -> None:
    """The generator's head (narrowing to embedding_size, tied decoder) end to end; the
    classification head is covered on ids (one export per family keeps the suite fast)."""
    kind = "masked_lm"
    model = perturbed_model(FAMILY_CASES["electra"], kind, vocab_size=wordpiece_vocab_size())
    checkpoint = with_wordpiece_tokenizer(
        write_checkpoint(tmp_path / "checkpoint", model), transformers.ElectraTokenizer
    )
    output = tmp_path / "exported" / "1"
    report = export_model(checkpoint=checkpoint, output=output, progress=False)
    assert report.task == TASK_OF[kind] and report.verified
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-4
    assert stsb_parity(output, checkpoint, task=report.task, count=200) <= 1e-4
    assert report.tied_decoder and report.output_dim == wordpiece_vocab_size()
    assert contract.MLM in report_signatures(output)
