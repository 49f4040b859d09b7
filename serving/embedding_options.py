"""The ``/v1/embeddings`` options peers (OpenAI, TEI, Infinity) accept beyond ``model`` and
``input``: each is honoured or refused with a 400 naming it, never silently ignored.

- ``encoding_format`` ``float`` | ``base64`` and ``dimensions`` (only the model's own width):
  read by ``serving.rest_front``.
- ``normalize`` (TEI): ``true`` L2-normalises the served vectors (a no-op up to float rounding
  for exports that normalise in the graph); ``false`` is refused: the export's own pooling and
  normalisation are served as built and cannot be undone here.
- ``truncate`` (TEI): ``true`` is what every export does (texts are cut at its
  ``max_seq_length``); ``false`` (an error for long texts) is refused.
- ``prompt_name`` (TEI, sentence-transformers): embeds with the model's
  ``serving_prompt_<name>`` signature (exported from the checkpoint's sentence-transformers
  ``prompts``: the prompt is prepended in the graph); a name the model lacks, or any name for a
  model without prompts, is a 400 listing the model's prompts. Read by ``serving.rest_front``.
- ``user`` (OpenAI): accepted and ignored, it does not change the answer.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from serving.errors import Code, ServingError


@dataclasses.dataclass(frozen=True)
class EmbeddingOptions:
    normalize: bool = False  # L2-normalise the answer
    prompt_name: str | None = None  # embed with serving_prompt_<name>

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EmbeddingOptions:
        normalize = doc.get("normalize")
        if normalize is not None and not isinstance(normalize, bool):
            raise _invalid("'normalize' must be true or false")
        if normalize is False:
            raise _invalid(
                "'normalize': false is not supported: the model's own pooling and normalisation "
                "are served as exported; omit 'normalize' or send true"
            )
        truncate = doc.get("truncate")
        if truncate is not None and not isinstance(truncate, bool):
            raise _invalid("'truncate' must be true or false")
        if truncate is False:
            raise _invalid(
                "'truncate': false is not supported: every export truncates texts at its "
                "max_seq_length; omit 'truncate' or send true"
            )
        prompt_name = doc.get("prompt_name")
        if prompt_name is not None and not isinstance(prompt_name, str):
            raise _invalid("'prompt_name' must be a string")
        user = doc.get("user")
        if user is not None and not isinstance(user, str):
            raise _invalid("'user' must be a string")
        return cls(normalize=bool(normalize), prompt_name=prompt_name)


def _invalid(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)
