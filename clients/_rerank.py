"""Rerank: the ``POST /v1/rerank`` body (textserve-server's TEI/Cohere-style rerank) both ways,
and the same ranking from a plain Predict on ``serving_pair`` (gRPC; works against TF Serving)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from clients.errors import InvalidInputError, TextServeError

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


def check_rerank_request(documents: Sequence[str], top_n: int | None) -> None:
    """What the server's rerank refuses, refused before sending (gRPC has no rerank route)."""
    if not documents:
        raise InvalidInputError("INVALID_ARGUMENT", "rerank needs at least one document")
    if top_n is not None and top_n < 1:
        raise InvalidInputError("INVALID_ARGUMENT", f"top_n must be at least 1, not {top_n}")


def rank_by_probabilities(probabilities: npt.NDArray[Any], top_n: int | None) -> list[RerankResult]:
    """The server's ranking from ``serving_pair``'s ``probabilities``: the LAST column is the
    relevance (the sigmoid of a one-logit cross-encoder, else the "relevant" class's softmax),
    best first, ties in document order, at most ``top_n``."""
    scores = np.asarray(probabilities, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise TextServeError("DATA_LOSS", f"probabilities of shape {scores.shape}, not [n, labels]")
    relevance = scores[:, -1]
    order = np.argsort(-relevance, kind="stable")[:top_n]
    return [RerankResult(index=int(i), relevance_score=float(relevance[i])) for i in order]
