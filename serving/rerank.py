"""``POST /v1/rerank``: the rerank API TEI, Infinity, Cohere and Jina share, on cross-encoders.

A classification export with a ``serving_pair`` signature scores (query, document) pairs.
The request's query x documents run as ONE pair request through the normal batcher; the
score is the model's own activation of its logits: sigmoid of the logit when the model has
one (sentence-transformers' CrossEncoder default), the softmax probability of the LAST class
otherwise (the "relevant" class of two-label rerankers). Results are sorted by score, highest
first (ties keep document order), cut to ``top_n``.

Request: ``{"model", "query", "documents" | "texts", "top_n"?, "return_documents"?}``.
Answer: ``{"model", "results": [{"index", "relevance_score", "document"?}], "usage":
{"pairs"}}``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from models import contract
from serving.core_api import CheckedInputs, ModelRef, PredictCall
from serving.errors import Code, ServingError
from serving.input_checks import InputChecks
from serving.served_signature import ServedSignature
from serving.tf_serving_api import TfServingApi


@dataclasses.dataclass(frozen=True)
class RerankRequest:
    model: str
    query: str
    documents: list[str]
    top_n: int
    return_documents: bool

    @classmethod
    def from_json(cls, doc: Any, *, max_documents: int) -> RerankRequest:
        if not isinstance(doc, dict):
            raise _invalid("JSON body must be an object")
        model = doc.get("model")
        if not isinstance(model, str) or not model:
            raise _invalid("'model' must name a served model")
        query = doc.get("query")
        if not isinstance(query, str):
            raise _invalid("'query' must be a string")
        if "documents" in doc and "texts" in doc:
            raise _invalid("give 'documents' or 'texts', not both")
        key = "texts" if "texts" in doc else "documents"
        documents = doc.get(key)
        if not isinstance(documents, list) or not documents:
            raise _invalid(f"'{key}' must be a non-empty list of strings")
        if not all(isinstance(d, str) for d in documents):
            raise _invalid(f"'{key}' must hold strings")
        if len(documents) > max_documents:
            raise _invalid(
                f"'{key}' has {len(documents)} documents; the limit is {max_documents} "
                "(the server's max_rows_per_request)"
            )
        top_n = doc.get("top_n")
        if top_n is None:
            top_n = len(documents)
        if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
            raise _invalid("'top_n' must be a positive integer")
        return_documents = doc.get("return_documents", False)
        if not isinstance(return_documents, bool):
            raise _invalid("'return_documents' must be true or false")
        return cls(model, query, documents, min(top_n, len(documents)), return_documents)


class Rerank:
    """Runs one ``RerankRequest`` on the core through ``TfServingApi.predict``."""

    def __init__(self, api: TfServingApi, checks: InputChecks) -> None:
        self.api = api
        self.checks = checks

    def pair_inputs(self, request: RerankRequest) -> CheckedInputs:
        limit = self.checks.limits.max_text_chars
        texts = [request.query] * len(request.documents)
        arrays = {}
        for name, column in ((contract.TEXT, texts), (contract.TEXT_PAIR, request.documents)):
            for index, text in enumerate(column):
                if len(text) > limit:
                    raise self.checks.too_long(name, index, len(text))
            array = np.empty(len(column), dtype=object)
            array[:] = [text.encode("utf-8") for text in column]
            arrays[name] = array
        return self.checks.check_inputs(arrays, texts_checked=set(arrays))

    async def run(self, request: RerankRequest, *, deadline: float | None) -> dict[str, Any]:
        inputs = self.pair_inputs(request)
        ref = ModelRef(name=request.model)
        if contract.SERVING_PAIR not in self.api.signature_names(ref):
            raise _invalid(
                f"model '{request.model}' cannot rerank: it has no '{contract.SERVING_PAIR}' "
                "signature (rerank needs a classification export, a cross-encoder)"
            )

        def decode(signature: ServedSignature) -> CheckedInputs:
            if contract.LOGITS not in signature.outputs:
                raise _invalid(
                    f"model '{request.model}' cannot rerank: its '{contract.SERVING_PAIR}' "
                    f"signature has no '{contract.LOGITS}' output (not a classification export)"
                )
            return inputs

        result = await self.api.predict(
            PredictCall(
                model=ref,
                signature_name=contract.SERVING_PAIR,
                decode=decode,
                exact_dtypes=True,
                output_filter=(contract.LOGITS,),
                deadline=deadline,
                api="rerank",
            )
        )
        scores = relevance_scores(np.asarray(result.outputs[contract.LOGITS]))
        order = np.argsort(-scores, kind="stable")[: request.top_n]
        results = []
        for index in order.tolist():
            item: dict[str, Any] = {"index": index, "relevance_score": float(scores[index])}
            if request.return_documents:
                item["document"] = {"text": request.documents[index]}
            results.append(item)
        # Token counts would need the pair tokenized twice (preprocess takes single texts).
        usage = {"pairs": len(request.documents)}
        return {"model": result.model_name, "results": results, "usage": usage}


def relevance_scores(logits: np.ndarray) -> np.ndarray:
    """Sigmoid of a single logit; softmax probability of the last class otherwise (float64)."""
    values = logits.astype(np.float64).reshape(len(logits), -1)
    if values.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-values[:, 0]))
    shifted = np.exp(values - values.max(axis=1, keepdims=True))
    return shifted[:, -1] / shifted.sum(axis=1)


def _invalid(message: str) -> ServingError:
    return ServingError(Code.INVALID_ARGUMENT, message)
