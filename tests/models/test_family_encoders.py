"""What every family's encoder and heads share, checked for each family of
``tests.support.families.FAMILY_CASES``: outputs equal transformers' on random ids (alone and
as pairs) and on real texts through the family's reference tokenizer, token classification
too, and the Keras config round-trips. Each family's own file keeps what only that family has."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.families import (
    ENCODER_FAMILIES,
    FAMILY_CASES,
    TASK_CLASSES,
    TASK_OF,
    TEXT_FAMILIES,
    FamilyCheckpoints,
    assert_matches_torch,
    id_inputs,
    perturbed_model,
    text_parity,
    tiny_encoder,
    write_checkpoint,
)


@pytest.mark.parametrize("family", sorted(FAMILY_CASES))
@pytest.mark.parametrize("kind", TASK_CLASSES)
@pytest.mark.parametrize("pairs", [False, True])
def test_matches_pytorch(
    family_checkpoints: FamilyCheckpoints, family: str, kind: str, pairs: bool
) -> None:
    directory, model = family_checkpoints.checkpoint(family, kind)
    case = FAMILY_CASES[family]
    inputs = id_inputs(case, vocab_size=len(family_checkpoints.tokenizer(family)), pairs=pairs)
    assert_matches_torch(case, directory, model, TASK_OF[kind], inputs)


@pytest.mark.parametrize("family", TEXT_FAMILIES)
@pytest.mark.parametrize("kind", TASK_CLASSES)
def test_matches_pytorch_on_texts(
    family_checkpoints: FamilyCheckpoints, family: str, kind: str
) -> None:
    """PROBE_TEXTS and 300 STS-B sentences, alone and as pairs, through the family's reference
    tokenizer (WordPiece, byte-level BPE or SentencePiece; type ids where it emits them)."""
    directory, model = family_checkpoints.checkpoint(family, kind)
    tokenizer = family_checkpoints.tokenizer(family)
    text_parity(FAMILY_CASES[family], directory, model, TASK_OF[kind], tokenizer, count=300)


@pytest.mark.parametrize("family", ENCODER_FAMILIES)
def test_get_config_round_trip(family: str) -> None:
    encoder = tiny_encoder(family)
    clone = type(encoder).from_config(encoder.get_config())
    assert clone.get_config() == encoder.get_config()
    assert sorted(clone.checkpoint_variables()) == sorted(encoder.checkpoint_variables())


@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_token_classification_matches_pytorch(tmp_path: Path, family: str) -> None:
    """Every family's *ForTokenClassification: one ``classifier`` on each token's state."""
    case = FAMILY_CASES[family]
    model = perturbed_model(case, "token_classification", vocab_size=99)
    write_checkpoint(tmp_path, model)
    inputs = id_inputs(case, vocab_size=99, pairs=True)
    assert_matches_torch(case, tmp_path, model, TASK_OF["token_classification"], inputs)
