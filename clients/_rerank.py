"""The ``POST /v1/rerank`` body (textserve-server's TEI/Cohere-style rerank) both ways."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from clients.errors import TextServeError

RERANK_PATH = "/v1/rerank"


@dataclasses.dataclass(frozen=True)
class RerankResult:
    """One document's place: its ``index`` in the request and its ``relevance_score``."""

    index: int
    relevance_score: float


def build_rerank_body(
    model_name: str, query: str, documents: Sequence[str], top_n: int | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model_name, "query": query, "documents": list(documents)}
    if top_n is not None:
        body["top_n"] = top_n
    return body


def parse_rerank_body(body: Any, n: int) -> list[RerankResult]:
    """Results as the server sorted them (highest score first)."""
    try:
        results = [
            RerankResult(index=int(item["index"]), relevance_score=float(item["relevance_score"]))
            for item in body["results"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise TextServeError("DATA_LOSS", f"malformed rerank response: {exc!r}") from exc
    if any(not 0 <= r.index < n for r in results):
        raise TextServeError("DATA_LOSS", f"rerank response names a document outside 0..{n - 1}")
    return results
