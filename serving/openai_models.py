"""``GET /v1/models``: OpenAI's model list (what SDKs and UIs call for discovery).

One entry per served model that has an AVAILABLE version, in OpenAI's shape plus what a
caller needs to use it: ``task`` (read from the served signatures), ``dims`` for embedding
models, ``num_labels`` for classifiers. TF Serving's ``/v1/models/{name}`` routes are
untouched; only the bare path lists.
"""

from __future__ import annotations

from typing import Any

from models import contract
from serving.core_api import InferenceCore, ModelRef, Servable
from serving.errors import ServingError

OWNED_BY = "textserve"
# The task of an export, by an output only that task's serving_default has.
_TASK_BY_OUTPUT = (
    (contract.EMBEDDING, contract.TASK_EMBEDDING),
    (contract.LOGITS, contract.TASK_CLASSIFICATION),
    (contract.TOP_K_TOKENS, contract.TASK_FILL_MASK),
    (contract.TOKEN_LOGITS, contract.TASK_TOKEN_CLASSIFICATION),
)


class OpenAiModels:
    """Builds the list from the core's configured models and their AVAILABLE versions."""

    def __init__(self, core: InferenceCore, *, created: int) -> None:
        self.core = core
        self.created = created  # the server's start time: exports carry no creation date

    def model_list(self) -> dict[str, Any]:
        data = []
        for name in self.core.model_names():
            try:
                servable = self.core.resolve(ModelRef(name=name))
            except ServingError:  # no AVAILABLE version: not usable, so not listed
                continue
            data.append(self._entry(servable))
        return {"object": "list", "data": data}

    def _entry(self, servable: Servable) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": servable.model,
            "object": "model",
            "created": self.created,
            "owned_by": OWNED_BY,
            "version": servable.version,
            "task": None,
        }
        signature = servable.specs.get(contract.SERVING_DEFAULT)
        outputs = signature.outputs if signature is not None else {}
        for output, task in _TASK_BY_OUTPUT:
            if output in outputs:
                entry["task"] = task
                break
        width = _last_dim(outputs.get(contract.EMBEDDING) or outputs.get(contract.LOGITS))
        if entry["task"] == contract.TASK_EMBEDDING:
            entry["dims"] = width
        elif entry["task"] == contract.TASK_CLASSIFICATION:
            entry["num_labels"] = width
            entry["rerank"] = contract.SERVING_PAIR in servable.specs
        return entry


def _last_dim(tensor: Any) -> int | None:
    shape = getattr(tensor, "shape", None)
    return shape[-1] if shape else None
