"""The tokenizers package's error (part of :mod:`models.errors`' hierarchy)."""

from __future__ import annotations

from models.errors import CheckpointError


class UnsupportedTokenizerError(CheckpointError, ValueError):
    """The reference tokenizer uses a configuration the in-graph tokenizer cannot reproduce.

    Its message is one line naming the component (``pre_tokenizer Split(...) is not
    reproduced``); the export CLI reports it as a bad checkpoint (exit code 2).
    """
