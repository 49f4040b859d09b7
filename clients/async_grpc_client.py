"""asyncio gRPC client (grpc.aio) for TF Serving's PredictionService / ModelService."""

from __future__ import annotations

import grpc  # type: ignore[import-untyped]

from clients._base_client import AsyncShell
from clients._base_grpc_client import BaseGrpcClient


class AsyncGrpcClient(AsyncShell, BaseGrpcClient):
    """asyncio twin of :class:`GrpcClient` (same arguments, awaitable methods).

    Create it inside a running event loop (grpc.aio binds the channel to it).

    Example::

        from clients import AsyncGrpcClient

        async with AsyncGrpcClient("localhost:8500", model_name="minilm") as client:
            await client.wait_until_ready(timeout_s=60)
            vectors = await client.embed(["a sentence", "another one"])
    """

    channel_module = grpc.aio
    rerank = BaseGrpcClient._rerank
