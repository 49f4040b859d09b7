"""Every family's *ForTokenClassification (one `classifier` on each token) against PyTorch."""

from __future__ import annotations

from pathlib import Path

import pytest
import transformers

from tests.models.albert.test_albert_encoder import CASES as ALBERT_CASES
from tests.models.distilbert.test_distilbert_encoder import DISTILBERT
from tests.models.electra.test_electra_encoder import CASES as ELECTRA_CASES
from tests.models.mpnet.test_mpnet_encoder import MPNET
from tests.models.roberta.test_roberta_encoder import ROBERTA, XLM_ROBERTA
from tests.support.families import (
    TASK_OF,
    FamilyCase,
    assert_matches_torch,
    id_inputs,
    perturbed_model,
    write_checkpoint,
)

CASES = {
    "roberta": (ROBERTA, transformers.RobertaForTokenClassification),
    "xlm-roberta": (XLM_ROBERTA, transformers.XLMRobertaForTokenClassification),
    "distilbert": (DISTILBERT, transformers.DistilBertForTokenClassification),
    "electra": (ELECTRA_CASES[16], transformers.ElectraForTokenClassification),
    "albert": (ALBERT_CASES[1, 1], transformers.AlbertForTokenClassification),
    "mpnet": (MPNET, transformers.MPNetForTokenClassification),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_token_classification_matches_pytorch(tmp_path: Path, name: str) -> None:
    base, model_class = CASES[name]
    case = FamilyCase(
        config=base.config,
        classes={"token_classification": model_class},
        pad_id=base.pad_id,
        uses_types=base.uses_types,
    )
    model = perturbed_model(case, "token_classification", vocab_size=99)
    write_checkpoint(tmp_path, model)
    inputs = id_inputs(case, vocab_size=99, pairs=True)
    assert_matches_torch(case, tmp_path, model, TASK_OF["token_classification"], inputs)
