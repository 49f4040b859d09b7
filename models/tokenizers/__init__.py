"""In-graph tokenizers: raw strings in, encoder inputs out, exact against the reference.

Every tokenizer is a :class:`~models.tokenizers.text_tokenizer.TextTokenizer` (same public
surface); :func:`text_tokenizer_from_checkpoint` picks the algorithm from the checkpoint's
reference tokenizer (``tokenizer.json``'s ``model.type``).

Exactness comes from tables derived from the reference at construction time (see
``reference_tables.py``): the reference is asked about every code point, and the graph applies
the answers with core TF ops; the segment layout comes from the reference's post-processor
(``special_tokens_template.py``) and is packed by one shared packer (``segment_packer.py``).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.tokenizers.errors import UnsupportedTokenizerError

__all__ = ["UnsupportedTokenizerError", "text_tokenizer_from_checkpoint"]

# tokenizer.json model type -> (module, class) of the in-graph tokenizer reproducing it.
# Imported lazily: each pulls in TensorFlow, and a module that is not there yet means the
# algorithm is refused, not that the package is broken.
_ALGORITHMS = {
    "WordPiece": ("models.tokenizers.wordpiece.bert_text_tokenizer", "BertTextTokenizer"),
    "BPE": ("models.tokenizers.bpe.byte_level_bpe_tokenizer", "ByteLevelBpeTokenizer"),
    "Unigram": ("models.tokenizers.unigram.unigram_tokenizer", "UnigramTokenizer"),
}


def text_tokenizer_from_checkpoint(
    checkpoint_dir: str | os.PathLike[str],
    *,
    max_seq_length: int,
    length_buckets: Sequence[int] | None = None,
    pad_to_longest: bool = False,
) -> Any:
    """The in-graph tokenizer for a Hugging Face checkpoint's tokenizer files.

    Raises :class:`UnsupportedTokenizerError` (one line naming the component) when the
    checkpoint's tokenizer cannot be reproduced exactly.

    Example::

        tokenizer = text_tokenizer_from_checkpoint(path, max_seq_length=256)
        inputs = tokenizer(tf.constant(["hello world"]))
    """
    model_type = _model_type(Path(checkpoint_dir))
    if model_type not in _ALGORITHMS:
        raise UnsupportedTokenizerError(f"tokenizer model {model_type} is not reproduced in-graph")
    module_name, class_name = _ALGORITHMS[model_type]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the tokenizer's own module missing means "not available"; a missing dependency
        # inside it is a real error.
        if exc.name is None or not module_name.startswith(exc.name):
            raise
        raise UnsupportedTokenizerError(
            f"tokenizer model {model_type} is not reproduced in-graph yet ({module_name} is not "
            "installed)"
        ) from exc
    tokenizer_class = getattr(module, class_name)
    return tokenizer_class.from_checkpoint(
        checkpoint_dir,
        max_seq_length=max_seq_length,
        length_buckets=length_buckets,
        pad_to_longest=pad_to_longest,
    )


def _model_type(checkpoint_dir: Path) -> str:
    """``model.type`` of the checkpoint's fast tokenizer (tokenizer.json, else converted)."""
    spec_file = checkpoint_dir / "tokenizer.json"
    if spec_file.is_file():
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
    else:
        # No tokenizer.json (e.g. only vocab.txt or a sentencepiece model): transformers
        # converts the slow files to the fast tokenizer the reference will use.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer  # heavy import, only needed at export time

        try:
            reference = AutoTokenizer.from_pretrained(os.fspath(checkpoint_dir))
        except (OSError, ValueError) as exc:
            raise UnsupportedTokenizerError(
                f"cannot load the reference tokenizer of {checkpoint_dir}: {exc}"
            ) from exc
        backend = getattr(reference, "backend_tokenizer", None)
        if backend is None:
            raise UnsupportedTokenizerError(
                f"{type(reference).__name__} is not a fast (tokenizers-backed) tokenizer"
            )
        spec = json.loads(backend.to_str())
    model = spec.get("model") or {}
    return str(model.get("type", "unknown"))
