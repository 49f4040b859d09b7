"""Checkpoint loading: which layout a checkpoint has, and strict loading of its weights.

:func:`open_checkpoint` detects the layout (Hugging Face / sentence-transformers, Google's TF1
BERT release, TF Model Garden TF2) and returns an object whose ``model_dir`` is a Hugging Face
directory the strict :class:`~models.loading.checkpoint_loader.CheckpointLoader` reads.
"""

from __future__ import annotations

from pathlib import Path

from models.errors import CheckpointError, Keyword
from models.loading.hf_checkpoint import HfCheckpoint
from models.loading.tf_checkpoint import TfCheckpoint, find_checkpoint_prefix


def open_checkpoint(
    path: str | Path, *, do_lower_case: bool | None = None
) -> HfCheckpoint | TfCheckpoint:
    """The checkpoint at ``path``, converted to the Hugging Face layout if it is a TF one.

    ``do_lower_case`` only applies to TF checkpoints (their ``vocab.txt`` does not say); a
    Hugging Face checkpoint's tokenizer files decide for themselves. Use the result as a
    context manager: a TF checkpoint's staging directory is removed on exit.

    Example::

        with open_checkpoint("uncased_L-12_H-768_A-12") as ckpt:
            loader = CheckpointLoader(ckpt.model_dir)
    """
    source = Path(path).expanduser()
    if source.is_dir() and (
        (source / "config.json").is_file() or (source / "modules.json").is_file()
    ):
        if do_lower_case is not None:
            raise CheckpointError(
                Keyword("do_lower_case"),
                f" applies to TF checkpoints only; {source} is a Hugging Face checkpoint whose "
                "tokenizer files decide",
            )
        return HfCheckpoint(source)
    if find_checkpoint_prefix(source) is not None:
        return TfCheckpoint(source, do_lower_case=do_lower_case)
    # Not a TF checkpoint either: the strict loader names what is missing.
    return HfCheckpoint(source)
