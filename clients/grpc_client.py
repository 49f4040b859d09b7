"""Blocking gRPC client for TF Serving's PredictionService / ModelService."""

from __future__ import annotations

import grpc  # type: ignore[import-untyped]

from clients._base_client import SyncShell
from clients._base_grpc_client import BaseGrpcClient
from clients._io import blocking


class GrpcClient(SyncShell, BaseGrpcClient):
    """Calls a model over gRPC; works against TF Serving and textserve-server alike.

    ``target`` is ``"host:port"``, a ``"dns:///name:port"`` target (every address the name
    resolves to is used, round robin), an ``"ipv4:a:p,b:q"`` list, or a list of IP:port.
    Every call has a deadline (``timeout_s``); UNAVAILABLE (and RESOURCE_EXHAUSTED, see
    :class:`RetryPolicy`) are retried by gRPC itself per the channel's service config.
    Chunks of a long ``embed`` run on a pool of ``max_concurrency`` threads.

    Example::

        from clients import GrpcClient

        with GrpcClient("localhost:8500", model_name="minilm") as client:
            client.wait_until_ready(timeout_s=60)
            vectors = client.embed(["a sentence", "another one"])  # float32 [2, 384]
            ids = client.predict({"text": ["hi"]}, signature_name="preprocess")["input_word_ids"]
    """

    channel_module = grpc
    rerank = blocking(BaseGrpcClient._rerank)
