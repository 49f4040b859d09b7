"""End-to-end ALBERT and XLM-RoBERTa exports (SentencePiece Unigram in the graph), verified
against PyTorch: ALBERT's classifier on its pooler, XLM-R's fill-mask lm_head."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)

from models.export.exporter import export_model
from tests.support.families import (
    FAMILY_CASES,
    TASK_OF,
    perturbed_model,
    sentencepiece_tokenizer,
    stsb_parity,
    write_checkpoint,
)

CASES = {
    # family: (case, kind): ALBERT's classifier on its pooler, XLM-R's fill-mask lm_head.
    "albert": (FAMILY_CASES["albert"], "classification"),
    "xlm-roberta": (FAMILY_CASES["xlm-roberta"], "masked_lm"),
}


@pytest.mark.parametrize("family", sorted(CASES))
def test_export_matches_pytorch_on_stsb(tmp_path: Path, family: str) -> None:
    case, kind = CASES[family]
    checkpoint = tmp_path / "checkpoint"
    tokenizer = sentencepiece_tokenizer(checkpoint, family=family)
    write_checkpoint(checkpoint, perturbed_model(case, kind, vocab_size=len(tokenizer)))
    output = tmp_path / "exported" / "1"
    report = export_model(checkpoint=checkpoint, output=output, progress=False)
    assert report.task == TASK_OF[kind] and report.verified
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-4
    assert stsb_parity(output, checkpoint, task=report.task, count=200) <= 1e-4


def test_token_classification_without_offsets_is_refused_in_one_line(tmp_path: Path) -> None:
    # XLM-R NER checkpoints are common; their Unigram tokenizer has no in-graph character
    # offsets yet, so the entity spans the task promises cannot be computed: refused by name
    # (an UnsupportedTokenizerError, exit code 2 in the CLI), never a traceback or an export
    # without spans.
    from models.tokenizers.errors import UnsupportedTokenizerError

    ner = FAMILY_CASES["xlm-roberta"]
    checkpoint = tmp_path / "checkpoint"
    tokenizer = sentencepiece_tokenizer(checkpoint, family="xlm-roberta")
    write_checkpoint(
        checkpoint, perturbed_model(ner, "token_classification", vocab_size=len(tokenizer))
    )
    with pytest.raises(UnsupportedTokenizerError, match="needs character offsets") as refused:
        export_model(checkpoint=checkpoint, output=tmp_path / "exported" / "1", progress=False)
    assert "UnigramTokenizer" in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "exported" / "1").exists()
