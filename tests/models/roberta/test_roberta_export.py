"""End-to-end RoBERTa export (byte-level BPE in the graph), verified against PyTorch."""

from __future__ import annotations

from pathlib import Path

import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)

from models.export.exporter import export_model
from tests.support.families import (
    FAMILY_CASES,
    TASK_OF,
    bpe_tokenizer,
    perturbed_model,
    report_signatures,
    stsb_parity,
    write_checkpoint,
)


def test_fill_mask_export_matches_pytorch_on_stsb(tmp_path: Path) -> None:
    """lm_head (dense, gelu, layer_norm, tied decoder) over positions counted from the
    padding index; ``<mask>`` swallows the space before it, as in released checkpoints."""
    checkpoint = tmp_path / "checkpoint"
    tokenizer = bpe_tokenizer(checkpoint)
    model = perturbed_model(FAMILY_CASES["roberta"], "masked_lm", vocab_size=len(tokenizer))
    write_checkpoint(checkpoint, model)
    output = tmp_path / "exported" / "1"
    report = export_model(checkpoint=checkpoint, output=output, progress=False)
    assert report.task == TASK_OF["masked_lm"] and report.verified and report.tied_decoder
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-4
    assert stsb_parity(output, checkpoint, task=report.task, count=200) <= 1e-4
    assert "mlm" in report_signatures(output)
