"""The special-token layout read from the reference's post-processor, by behaviour."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import transformers
from tokenizers import processors

from models.tokenizers.errors import UnsupportedTokenizerError
from models.tokenizers.special_tokens_template import SpecialTokens, SpecialTokensTemplate

WORDS = ["hello", "world", "##s", "a", "b"]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"]


def _vocab(specials: list[str]) -> dict[str, int]:
    return {token: index for index, token in enumerate([*specials, *WORDS])}


def _bert(tokenizer_class: Any = transformers.BertTokenizerFast) -> Any:
    return tokenizer_class(vocab=_vocab(BERT_SPECIALS))


def test_bert_layout() -> None:
    template = SpecialTokensTemplate.from_reference(_bert())
    assert template == SpecialTokensTemplate.bert(cls_id=2, sep_id=3)
    assert template.describe() == "[2] A [3] | [2] A [3] B:1 [3:1]"
    assert (template.start_of_sequence_id, template.end_of_segment_id) == (2, 3)
    assert template.num_special_tokens(pair=False) == 2
    assert template.num_special_tokens(pair=True) == 3


def test_distilbert_has_no_token_types() -> None:
    template = SpecialTokensTemplate.from_reference(_bert(transformers.DistilBertTokenizerFast))
    assert not template.has_token_types
    # The reference's post-processor says B:1, but the model reads no type ids: all zeros.
    assert template.second_type_id == 0 and template.pair_end == SpecialTokens((3,), (0,))
    assert template.describe() == "[2] A [3] | [2] A [3] B [3]"


def test_mpnet_layout() -> None:
    reference = transformers.MPNetTokenizerFast(vocab=_vocab(ROBERTA_SPECIALS))
    template = SpecialTokensTemplate.from_reference(reference)
    assert template.pair_middle.ids == (2, 2)
    assert template.describe() == "[0] A [2] | [0] A [2 2] B [2]"
    assert not template.has_token_types


def test_template_inside_a_sequence() -> None:
    reference = _bert()
    reference.backend_tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="[CLS] $A [SEP]",
                pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
            ),
        ]
    )
    assert SpecialTokensTemplate.from_reference(reference) == SpecialTokensTemplate.bert(
        cls_id=2, sep_id=3
    )


@pytest.mark.parametrize(
    ("single", "pair", "message"),
    [
        ("$A [SEP]", "$A [SEP] $B:1 [SEP]:1", "no start or no end"),
        (
            "[CLS] $A [SEP]",
            "[CLS] $B:1 [SEP] $A [SEP]",
            r"TemplateProcessing\('\[CLS\] A \[SEP\]'\)",
        ),
    ],
)
def test_other_templates_are_refused(single: str, pair: str, message: str) -> None:
    reference = _bert()
    reference.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    with pytest.raises(UnsupportedTokenizerError, match=message) as raised:
        SpecialTokensTemplate.from_reference(reference)
    assert "\n" not in str(raised.value)


def test_no_post_processor_is_refused() -> None:
    reference = _bert()
    reference.backend_tokenizer.post_processor = None
    with pytest.raises(UnsupportedTokenizerError, match="no post_processor is not reproduced"):
        SpecialTokensTemplate.from_reference(reference)
