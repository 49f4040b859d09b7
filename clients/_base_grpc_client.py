"""The gRPC clients' one implementation: constructor, method bodies and error boundary, shared
by :class:`~clients.GrpcClient` (``grpc`` channel) and :class:`~clients.AsyncGrpcClient`
(``grpc.aio`` channel)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

from clients._base_client import BaseClient
from clients._chunking import EmbedChunk, EmbedPlan, embedding_rows
from clients._error_mapping import error_from_grpc
from clients._grpc_channel import (
    GET_MODEL_METADATA_METHOD,
    GET_MODEL_STATUS_METHOD,
    PREDICT_METHOD,
    grpc_channel_options,
    grpc_target,
)
from clients._grpc_messages import (
    build_metadata_request,
    build_predict_request,
    build_status_request,
    parse_metadata_response,
    parse_predict_response,
    parse_status_response,
)
from clients._metadata import ModelMetadata, ModelVersionStatus
from clients._predict_arguments import PredictArguments
from clients._rerank import RerankResult, check_rerank_request, rank_by_probabilities
from clients._settings import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_TIMEOUT_S,
    ClientSettings,
)
from clients.protos import serving_apis_pb2 as apis
from clients.retry_policy import DEFAULT_RETRY_POLICY, RetryPolicy
from clients.tls_config import TlsConfig
from models import contract


class BaseGrpcClient(BaseClient):
    """Calls a model over gRPC; works against TF Serving and textserve-server alike.

    ``target`` is ``"host:port"``, a ``"dns:///name:port"`` target (every address the name
    resolves to is used, round robin), an ``"ipv4:a:p,b:q"`` list, or a list of IP:port.
    Every call has a deadline (``timeout_s``); UNAVAILABLE (and RESOURCE_EXHAUSTED, see
    :class:`RetryPolicy`) are retried by gRPC itself per the channel's service config.
    """

    channel_module: Any  # grpc or grpc.aio: the two have the same channel constructors

    def __init__(
        self,
        target: str | Sequence[str],
        *,
        model_name: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
        tls: TlsConfig | None = None,
        bearer_token: str | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
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
        options = grpc_channel_options(self.settings, channel_options)
        address = grpc_target(target)
        if tls is None:
            self._channel = self.channel_module.insecure_channel(address, options=options)
        else:
            root, key, chain = tls.grpc_credential_parts()
            credentials = grpc.ssl_channel_credentials(root, key, chain)
            self._channel = self.channel_module.secure_channel(
                address, credentials, options=options
            )
        self._metadata = self.settings.auth_metadata()
        self._predict_rpc = self._channel.unary_unary(
            PREDICT_METHOD,
            request_serializer=apis.PredictRequest.SerializeToString,
            response_deserializer=apis.PredictResponse.FromString,
        )
        self._metadata_rpc = self._channel.unary_unary(
            GET_MODEL_METADATA_METHOD,
            request_serializer=apis.GetModelMetadataRequest.SerializeToString,
            response_deserializer=apis.GetModelMetadataResponse.FromString,
        )
        self._status_rpc = self._channel.unary_unary(
            GET_MODEL_STATUS_METHOD,
            request_serializer=apis.GetModelStatusRequest.SerializeToString,
            response_deserializer=apis.GetModelStatusResponse.FromString,
        )

    async def _rerank(
        self,
        query: str,
        documents: Sequence[str],
        *,
        top_n: int | None = None,
        timeout_s: float | None = None,
    ) -> list[RerankResult]:
        """Cross-encoder scores for (query, document) pairs, best first: one Predict on a
        classification export's ``serving_pair`` signature, ranked as textserve-server's
        ``/v1/rerank`` ranks (so it also works against TF Serving). Example::

            client.rerank("how to bake bread", ["knead and bake", "stock prices"], top_n=1)
        """
        check_rerank_request(documents, top_n)
        outputs = await self._predict(
            {contract.TEXT: [query] * len(documents), contract.TEXT_PAIR: list(documents)},
            signature_name=contract.SERVING_PAIR,
            output_filter=(contract.PROBABILITIES,),
            timeout_s=timeout_s,
        )
        return rank_by_probabilities(outputs[contract.PROBABILITIES], top_n)

    # --- the one transport boundary -----------------------------------------------------
    async def _call(self, method: Any, request: Any, timeout_s: float | None) -> Any:
        try:
            return await self._io.settle(
                method(
                    request, timeout=timeout_s or self.settings.timeout_s, metadata=self._metadata
                )
            )
        except grpc.RpcError as exc:  # grpc.aio.AioRpcError is one too
            raise error_from_grpc(exc.code().name, exc.details()) from exc

    async def _close_transport(self) -> None:
        await self._io.settle(self._channel.close())

    # --- the protocol's part of the shared method bodies -------------------------------------
    async def _send_predict(
        self, call: PredictArguments, timeout_s: float | None
    ) -> dict[str, npt.NDArray[Any]]:
        request = build_predict_request(
            self.settings.model_name,
            call.inputs,
            signature_name=call.signature_name,
            version=call.version,
            version_label=call.version_label,
            output_filter=call.output_filter,
        )
        return parse_predict_response(await self._call(self._predict_rpc, request, timeout_s))

    async def _embed_chunk(
        self, plan: EmbedPlan, chunk: EmbedChunk, timeout_s: float | None
    ) -> npt.NDArray[np.float32]:
        response = await self._call(self._predict_rpc, plan.grpc_request(chunk), timeout_s)
        return embedding_rows(parse_predict_response(response), len(chunk.texts))

    async def _fetch_status(
        self, version: int | None, version_label: str | None, timeout_s: float | None
    ) -> list[ModelVersionStatus]:
        request = build_status_request(
            self.settings.model_name, version=version, version_label=version_label
        )
        return parse_status_response(await self._call(self._status_rpc, request, timeout_s))

    async def _fetch_metadata(
        self, version: int | None, version_label: str | None, timeout_s: float | None
    ) -> ModelMetadata:
        request = build_metadata_request(
            self.settings.model_name, version=version, version_label=version_label
        )
        response = await self._call(self._metadata_rpc, request, timeout_s)
        return parse_metadata_response(response)
