"""The OpenAI embeddings body (textserve-server's ``/v1/embeddings``) both ways."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from clients.errors import TextServeError


def build_openai_embeddings_body(model_name: str, texts: npt.NDArray[np.object_]) -> dict[str, Any]:
    return {"model": model_name, "input": [t.decode("utf-8", errors="strict") for t in texts]}


def parse_openai_embeddings_body(body: Any, n: int) -> npt.NDArray[np.float32]:
    """Rows of ``data`` placed by their ``index`` (the API does not promise order)."""
    try:
        data = body["data"]
        rows: list[Any] = [None] * n
        for item in data:
            rows[int(item["index"])] = item["embedding"]
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise TextServeError("DATA_LOSS", f"malformed embeddings response: {exc!r}") from exc
    if any(r is None for r in rows) or len(data) != n:
        raise TextServeError("DATA_LOSS", f"expected {n} embeddings, got {len(data)}")
    return np.asarray(rows, dtype=np.float32)
