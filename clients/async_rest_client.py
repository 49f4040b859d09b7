"""asyncio REST client (httpx.AsyncClient) for TF Serving's JSON API and /v1/embeddings."""

from __future__ import annotations

import httpx

from clients._base_client import AsyncShell
from clients._base_rest_client import BaseRestClient


class AsyncRestClient(AsyncShell, BaseRestClient):
    """asyncio twin of :class:`RestClient` (same arguments, awaitable methods).

    Example::

        from clients import AsyncRestClient

        async with AsyncRestClient("http://localhost:8501", model_name="minilm") as client:
            await client.wait_until_ready(timeout_s=60)
            vectors = await client.embed(["a sentence", "another one"])
    """

    http_class = httpx.AsyncClient

    embed_openai = BaseRestClient._embed_openai
    rerank = BaseRestClient._rerank
