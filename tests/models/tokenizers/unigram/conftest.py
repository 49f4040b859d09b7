"""Unigram checkpoints (trained once per session with sentencepiece) and their references."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.models.tokenizers.unigram import unigram_checkpoints

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def unigram_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> checkpoint directory: ``xlmr``, ``albert``, ``minilm`` (BertModel with an XLM-R
    tokenizer, released tokenizer.json form) and ``legacy`` (the same file kept verbatim)."""
    root = tmp_path_factory.mktemp("unigram")
    xlmr = unigram_checkpoints.xlmr_checkpoint(root / "xlmr")
    return {
        "xlmr": xlmr,
        "albert": unigram_checkpoints.albert_checkpoint(root / "albert"),
        "minilm": unigram_checkpoints.multilingual_minilm_checkpoint(root / "minilm", xlmr),
        "legacy": unigram_checkpoints.multilingual_minilm_checkpoint(
            root / "legacy", xlmr, verbatim=True
        ),
    }


@pytest.fixture(scope="session")
def unigram_references(unigram_dirs: dict[str, Path]) -> dict[str, Any]:
    from transformers import AutoTokenizer

    return {name: AutoTokenizer.from_pretrained(path) for name, path in unigram_dirs.items()}


@pytest.fixture(scope="session")
def metaspace_variants(unigram_dirs: dict[str, Path]) -> list[tuple[dict[str, Any], Any, Any]]:
    """(variant, HF reference, our tokenizer) for Metaspace's ``prepend_scheme`` never / first
    and ``split=False``, applied to the released tokenizer.json form (no WhitespaceSplit), where
    they change where "▁" is prepended and what a word is."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from models.tokenizers.unigram.unigram_tables import UnigramTables
    from models.tokenizers.unigram.unigram_tokenizer import UnigramTokenizer

    spec = json.loads((unigram_dirs["legacy"] / "tokenizer.json").read_text(encoding="utf-8"))
    variants = []
    for variant in ({"prepend_scheme": "never"}, {"prepend_scheme": "first"}, {"split": False}):
        changed = json.loads(json.dumps(spec))
        changed["pre_tokenizer"].pop("add_prefix_space")
        changed["pre_tokenizer"].update(variant)
        reference = PreTrainedTokenizerFast(
            tokenizer_object=Tokenizer.from_str(json.dumps(changed)),
            bos_token="<s>",
            eos_token="</s>",
            pad_token="<pad>",
            mask_token="<mask>",
            unk_token="<unk>",
        )
        tokenizer = UnigramTokenizer(
            UnigramTables.from_reference(reference),
            max_seq_length=unigram_checkpoints.MAX_SEQ_LENGTH,
        )
        variants.append((variant, reference, tokenizer))
    return variants
