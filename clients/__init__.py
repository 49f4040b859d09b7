"""Light clients for TF Serving-compatible servers (TF Serving, textserve-server).

No TensorFlow: the wire messages are the project's own compatible protobuf definitions.

Example::

    from clients import GrpcClient, RestClient

    with GrpcClient("localhost:8500", model_name="minilm") as grpc_client:
        vectors = grpc_client.embed(["hello world"])          # numpy float32 [1, 384]
    with RestClient("http://localhost:8501", model_name="minilm") as rest_client:
        status = rest_client.model_status()                   # [ModelVersionStatus(...)]
"""

from clients._metadata import ModelMetadata, ModelVersionStatus, SignatureSpec, TensorSpec
from clients._rerank import RerankResult
from clients.async_grpc_client import AsyncGrpcClient
from clients.async_rest_client import AsyncRestClient
from clients.errors import (
    DeadlineExceededError,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    TextServeError,
    UnavailableError,
)
from clients.grpc_client import GrpcClient
from clients.rest_client import RestClient
from clients.retry_policy import RetryPolicy
from clients.tls_config import TlsConfig

__all__ = [
    "AsyncGrpcClient",
    "AsyncRestClient",
    "DeadlineExceededError",
    "GrpcClient",
    "InvalidInputError",
    "ModelMetadata",
    "ModelVersionStatus",
    "NotFoundError",
    "OverloadedError",
    "RerankResult",
    "RestClient",
    "RetryPolicy",
    "SignatureSpec",
    "TensorSpec",
    "TextServeError",
    "TlsConfig",
    "UnavailableError",
]
