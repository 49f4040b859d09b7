"""Blocking REST client for TF Serving's JSON API (and textserve-server's /v1/embeddings)."""

from __future__ import annotations

import httpx

from clients._base_client import SyncShell
from clients._base_rest_client import BaseRestClient
from clients._io import blocking


class RestClient(SyncShell, BaseRestClient):
    """Calls a model over TF Serving's REST API with httpx.

    ``base_url`` is ``"http://host:port"`` or ``"https://host:port"`` (``tls`` customises the
    trusted CA / client certificate). Every call has a deadline (``timeout_s``) that covers
    its retries; retries follow :class:`RetryPolicy` exactly as the gRPC clients do (HTTP 503
    and connection failures; 429 when ``retry_on_overload``). JSON has no dtypes, so
    :meth:`predict` reads them from the signature's metadata (fetched once, cached). Chunks
    of a long ``embed`` run on a pool of ``max_concurrency`` threads.

    Example::

        from clients import RestClient

        with RestClient("http://localhost:8501", model_name="minilm") as client:
            client.wait_until_ready(timeout_s=60)
            vectors = client.embed(["a sentence", "another one"])  # float32 [2, 384]
    """

    http_class = httpx.Client

    embed_openai = blocking(BaseRestClient._embed_openai)
    rerank = blocking(BaseRestClient._rerank)
