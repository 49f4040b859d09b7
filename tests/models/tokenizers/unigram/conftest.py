"""Unigram checkpoints (trained once per session with sentencepiece) and their references."""

from __future__ import annotations

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
