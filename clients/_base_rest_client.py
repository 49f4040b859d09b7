"""The REST clients' one implementation: constructor, method bodies, retry loop and error
boundary, shared by :class:`~clients.RestClient` (``httpx.Client``) and
:class:`~clients.AsyncRestClient` (``httpx.AsyncClient``)."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from clients._base_client import BaseClient
from clients._chunking import EmbedChunk, EmbedPlan, embedding_rows
from clients._error_mapping import error_from_http, error_from_transport
from clients._metadata import ModelMetadata, ModelVersionStatus, output_dtypes, single_output_name
from clients._openai import build_openai_embeddings_body, parse_openai_embeddings_body
from clients._predict_arguments import PredictArguments
from clients._rerank import RERANK_PATH, RerankResult, build_rerank_body, parse_rerank_body
from clients._rest_json import (
    build_rest_predict_body,
    filter_outputs,
    parse_json,
    parse_rest_metadata_body,
    parse_rest_predict_body,
    parse_rest_status_body,
    rest_model_path,
)
from clients._settings import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_TIMEOUT_S,
    ClientSettings,
)
from clients._tensor_proto import encode_texts
from clients.errors import DeadlineExceededError
from clients.retry_policy import DEFAULT_RETRY_POLICY, RetryPolicy, retry_delay
from clients.tls_config import TlsConfig
from models import contract


class BaseRestClient(BaseClient):
    """Calls a model over TF Serving's REST API with httpx.

    ``base_url`` is ``"http://host:port"`` or ``"https://host:port"`` (``tls`` customises the
    trusted CA / client certificate). Every call has a deadline (``timeout_s``) that covers
    its retries; retries follow :class:`RetryPolicy` exactly as the gRPC clients do (HTTP 503
    and connection failures; 429 when ``retry_on_overload``). JSON has no dtypes, so
    ``predict`` reads them from the signature's metadata (fetched once, cached).
    """

    http_class: type[httpx.Client] | type[httpx.AsyncClient]

    def __init__(
        self,
        base_url: str,
        *,
        model_name: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        tls: TlsConfig | None = None,
        bearer_token: str | None = None,
        row_format: bool = False,
        max_connections: int = 100,
    ) -> None:
        super().__init__(
            ClientSettings(
                model_name=model_name,
                timeout_s=timeout_s,
                chunk_size=chunk_size,
                max_concurrency=max_concurrency,
                retry=retry,
                tls=tls,
                bearer_token=bearer_token,
            )
        )
        self._row_format = row_format
        self._http = self.http_class(
            base_url=base_url,
            headers=self.settings.http_headers(),
            verify=tls.ssl_context() if tls is not None else True,
            # Calls beyond the pool wait for a connection (inside their deadline).
            limits=httpx.Limits(max_connections=max(max_connections, max_concurrency)),
        )
        self._rng = random.Random()

    # --- the one transport boundary -----------------------------------------------------
    async def _request(
        self, method: str, path: str, *, body: Any = None, timeout_s: float | None = None
    ) -> Any:
        """Send with retries inside the call's deadline; return the parsed JSON body."""
        budget = timeout_s or self.settings.timeout_s
        deadline = time.monotonic() + budget
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceededError(
                    "DEADLINE_EXCEEDED", f"{method} {path}: no answer within {budget} s"
                )
            cause: Exception | None = None
            try:
                response: httpx.Response = await self._io.settle(
                    self._http.request(method, path, json=body, timeout=remaining)
                )
                if response.is_success:
                    return parse_json(response.content)
                error = error_from_http(response.status_code, response.content)
            except (httpx.TransportError, OSError) as exc:
                error, cause = error_from_transport(exc), exc
            delay = retry_delay(
                self.settings.retry,
                error,
                attempt=attempt,
                remaining_s=deadline - time.monotonic(),
                rng=self._rng,
            )
            if delay is None:
                raise error from cause
            await self._io.sleep(delay)

    async def _close_transport(self) -> None:
        if isinstance(self._http, httpx.Client):
            self._http.close()
        else:
            await self._http.aclose()

    # --- the protocol's part of the shared method bodies -------------------------------------
    async def _send_predict(
        self, call: PredictArguments, timeout_s: float | None
    ) -> dict[str, npt.NDArray[Any]]:
        # JSON has no dtypes: the signature's metadata (fetched once per version) has them.
        metadata = self._metadata_cache.get((call.version, call.version_label))
        if metadata is None:
            metadata = await self._model_metadata(
                version=call.version, version_label=call.version_label, timeout_s=timeout_s
            )
        path = self._model_path(call.version, call.version_label) + ":predict"
        body = await self._request(
            "POST",
            path,
            body=build_rest_predict_body(
                call.inputs, signature_name=call.signature_name, row_format=self._row_format
            ),
            timeout_s=timeout_s,
        )
        outputs = parse_rest_predict_body(
            body,
            output_dtypes=output_dtypes(metadata, call.signature_name),
            single_output_name=single_output_name(
                metadata, call.signature_name, call.output_filter
            ),
        )
        return filter_outputs(outputs, call.output_filter)

    async def _embed_chunk(
        self, plan: EmbedPlan, chunk: EmbedChunk, timeout_s: float | None
    ) -> npt.NDArray[np.float32]:
        body = await self._request(
            "POST",
            plan.rest_path,
            body=build_rest_predict_body(
                {contract.TEXT: chunk.texts},
                signature_name=contract.SERVING_DEFAULT,
                row_format=self._row_format,
            ),
            timeout_s=timeout_s,
        )
        outputs = parse_rest_predict_body(body, single_output_name=contract.EMBEDDING)
        return embedding_rows(outputs, len(chunk.texts))

    async def _embed_openai(
        self, texts: Sequence[str], *, timeout_s: float | None = None
    ) -> npt.NDArray[np.float32]:
        """Embeddings through textserve-server's OpenAI-compatible ``POST /v1/embeddings``
        (one request; TF Serving has no such endpoint). Example::

            client.embed_openai(["hello", "world"])  # float32 [2, 384]
        """
        encoded = encode_texts(texts)
        body = await self._request(
            "POST",
            contract.OPENAI_EMBEDDINGS_PATH,
            body=build_openai_embeddings_body(self.settings.model_name, encoded),
            timeout_s=timeout_s,
        )
        return parse_openai_embeddings_body(body, len(encoded))

    async def _rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        timeout_s: float | None = None,
    ) -> list[RerankResult]:
        """Cross-encoder scores through textserve-server's ``POST /v1/rerank`` (a
        classification export with a ``serving_pair`` signature), best first. Example::

            client.rerank("how to bake bread", ["knead and bake", "stock prices"], top_n=1)
        """
        body = await self._request(
            "POST",
            RERANK_PATH,
            body=build_rerank_body(self.settings.model_name, query, documents, top_n),
            timeout_s=timeout_s,
        )
        return parse_rerank_body(body, len(documents))

    async def _fetch_status(
        self, version: int | None, version_label: str | None, timeout_s: float | None
    ) -> list[ModelVersionStatus]:
        body = await self._request(
            "GET", self._model_path(version, version_label), timeout_s=timeout_s
        )
        return parse_rest_status_body(body)

    async def _fetch_metadata(
        self, version: int | None, version_label: str | None, timeout_s: float | None
    ) -> ModelMetadata:
        path = self._model_path(version, version_label) + "/metadata"
        return parse_rest_metadata_body(await self._request("GET", path, timeout_s=timeout_s))

    def _model_path(self, version: int | None, version_label: str | None) -> str:
        return rest_model_path(
            self.settings.model_name, version=version, version_label=version_label
        )
