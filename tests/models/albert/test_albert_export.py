"""End-to-end ALBERT and XLM-RoBERTa exports (SentencePiece Unigram in the graph), verified
against PyTorch: ALBERT's classifier on its pooler, XLM-R's fill-mask lm_head, and both as
token classification with the pipeline's entities."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)

from models import contract
from models.export.export_verification import check_entity_parity
from models.export.exporter import export_model
from models.export.reference import TorchReference
from models.probe_texts import PROBE_TEXTS
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


NER_FAMILIES = ("albert", "xlm-roberta")
NER_LABELS = {0: "O", 1: "B-PER", 2: "I-PER"}


@pytest.mark.parametrize("family", NER_FAMILIES)
def test_token_classification_exports_with_the_pipelines_entities(
    tmp_path: Path, family: str
) -> None:
    # Entity spans come from the Unigram tokenizer's in-graph offsets; the export's own
    # verification compares them (and groups, words, scores) with transformers' pipeline on
    # the probe texts, and this test once more on texts with unknowns, specials and accents.
    case = FAMILY_CASES[family]
    checkpoint = tmp_path / "checkpoint"
    tokenizer = sentencepiece_tokenizer(checkpoint, family=family)
    model = perturbed_model(case, "token_classification", vocab_size=len(tokenizer))
    model.config.id2label = dict(NER_LABELS)
    model.config.label2id = {label: index for index, label in NER_LABELS.items()}
    write_checkpoint(checkpoint, model)
    output = tmp_path / "exported" / "1"
    report = export_model(checkpoint=checkpoint, output=output, progress=False)
    assert report.task == contract.TASK_TOKEN_CLASSIFICATION and report.verified
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-4
    card = json.loads((output / contract.MODEL_CARD_FILE).read_text(encoding="utf-8"))
    assert card["verification"]["entity_texts"] >= 200

    reference = TorchReference(checkpoint, task=report.task, max_seq_length=128)
    texts = [*ENTITY_TEXTS, *PROBE_TEXTS[:40]]
    loaded = tf.saved_model.load(str(output))
    assert check_entity_parity(loaded, reference, texts=texts) >= len(ENTITY_TEXTS)
    entities = [reference.entities(text) for text in ENTITY_TEXTS]
    # Not a vacuous comparison: several entities, some of more than one token.
    assert sum(len(found) for found in entities) >= 5
    assert any(len(entity["word"]) > 3 for found in entities for entity in found)


ENTITY_TEXTS = [
    "My name is Wolfgang and I live in Berlin.",
    "Angela Merkel visited Paris, France, on Tuesday!",
    "Straße İstanbul café naïve Zürich ﬁne",
    "東京 and 北京 are cities; ＡＢＣ corp. ☃ (unknown here)",
    "The capital of France is <mask> [MASK].",
    "  leading and  double  spaces ``quoted''",
    "",
]
