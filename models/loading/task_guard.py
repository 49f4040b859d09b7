"""Which task a checkpoint is exported as: derived from its ``architectures`` and weights, and
never one that would drop (or misuse) a fine-tuned head.

A fine-tuned head (``*ForSequenceClassification``, ``*ForTokenClassification``) is the point of
its checkpoint: exporting it as another task would silently serve something else, and the two
classification heads even have the same ``classifier`` weights, so the wrong one would load
without a shape error. Pre-training heads (``*ForMaskedLM``, ``*ForPreTraining``) may be left out
when a task is asked for explicitly: serving a pretrained encoder's embeddings is the usual use
of such a checkpoint (the model card lists the keys left out).
"""

from __future__ import annotations

from typing import Any

from models import contract
from models.errors import CheckpointError

_FINE_TUNED = {
    "ForSequenceClassification": contract.TASK_CLASSIFICATION,
    "ForTokenClassification": contract.TASK_TOKEN_CLASSIFICATION,
}
_CLASSIFIER_PREFIX = "classifier."


def checkpoint_task(loader: Any, requested: str | None) -> str:
    """The task to export ``loader``'s checkpoint as (``requested`` if given and allowed).

    Raises :class:`CheckpointError` in one line: for question-answering checkpoints (not
    supported), and for a ``requested`` task that would drop or misuse a fine-tuned head.
    """
    own = None
    for arch in loader.config.architectures:
        if arch.endswith("ForQuestionAnswering"):
            raise CheckpointError(
                f"{arch} checkpoints are not supported (question answering has no export task)"
            )
        own = next((task for suffix, task in _FINE_TUNED.items() if arch.endswith(suffix)), own)
    head = sorted(k for k in loader.tensors if k.startswith(_CLASSIFIER_PREFIX))
    if own is None and head and not loader.sentence_transformers:
        raise CheckpointError(
            f"the checkpoint holds a classifier ({', '.join(head)}) but its config names no "
            "*ForSequenceClassification / *ForTokenClassification architecture to tell which"
        )
    if own is not None and requested not in (None, own):
        arch = ", ".join(loader.config.architectures)
        raise CheckpointError(
            f"{arch} is a {own} checkpoint: exporting it as {requested} would drop its "
            f"head ({', '.join(head)})"
        )
    if own is not None:
        return own
    return requested or str(loader.default_task())
