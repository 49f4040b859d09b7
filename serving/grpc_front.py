"""TF Serving's gRPC API (PredictionService, ModelService, grpc.health.v1) over ``InferenceCore``.

The handlers only translate: protos -> calls of ``TfServingApi`` (TensorProtos decoded and
checked by ``TensorProtoCodec``), and a ``ServingError`` becomes the gRPC status with its
message.

No TensorFlow in this process: the messages are the project's own wire-compatible ones
(``clients.protos``, ``serving.protos.textserve_front_pb2``), served under TF Serving's
service names by generic handlers, so tensorflow-serving-api stubs call them unchanged.

Example::

    front = GrpcFront(core, port=8500, enable_health=True)
    bound_port = await front.start()
    ...
    await front.stop(grace=5.0)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import message
from grpc_health.v1 import _async as health_async
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.protos import serving_apis_pb2 as apis
from models import contract
from serving.api_keys import ApiKeys
from serving.bearer_auth_interceptor import BearerAuthInterceptor
from serving.connection_limits import ConnectionLimits
from serving.core_api import InferenceCore, ModelRef, PredictCall
from serving.errors import Code, ServingError
from serving.input_checks import InputChecks
from serving.limits import Limits
from serving.protos import textserve_front_pb2 as tfs
from serving.server_config import SslSettings
from serving.tensor_proto_codec import TensorProtoCodec
from serving.tf_serving_api import ExampleMethod, TfServingApi
from serving.tf_serving_messages import metadata_response, status_response

_log = logging.getLogger(__name__)

# Services a health check may name besides "" (the whole server).
_HEALTH_SERVICES = ("", contract.PREDICTION_SERVICE, contract.MODEL_SERVICE)
_HEALTH_POLL_S = 0.1  # Watch streams see a readiness change within this

_Response = TypeVar("_Response")


def model_ref(spec: apis.ModelSpec) -> ModelRef:
    """A ModelSpec as the core's ``ModelRef`` (version and version_label are a oneof)."""
    choice = spec.WhichOneof("version_choice")
    return ModelRef(
        name=spec.name,
        version=spec.version.value if choice == "version" else None,
        label=spec.version_label if choice == "version_label" else None,
    )


async def _answer(
    context: grpc.aio.ServicerContext, method: str, work: Callable[[], Awaitable[_Response]]
) -> _Response:
    """Runs one RPC; the single place where ServingError becomes a gRPC status."""
    try:
        return await work()
    except ServingError as exc:
        await context.abort(_GRPC_STATUS[exc.code.grpc_value], exc.message)
    except (asyncio.CancelledError, grpc.aio.AbortError):
        raise
    except Exception as exc:  # a bug: say so instead of dropping the connection
        _log.exception("gRPC %s failed", method)
        await context.abort(grpc.StatusCode.INTERNAL, f"{method} failed: {exc!r}")
    raise AssertionError("context.abort returns only by raising")


_GRPC_STATUS = {status.value[0]: status for status in grpc.StatusCode}


def _serialize(response: message.Message) -> bytes:
    return response.SerializeToString()


# One RPC's work: (request, context) -> response.
_Work = Callable[[Any, grpc.aio.ServicerContext], Awaitable[message.Message]]


def _unary(
    method: str, request_type: type[message.Message], work: _Work, core: InferenceCore
) -> grpc.RpcMethodHandler:
    async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> message.Message:
        # Parsed here rather than by gRPC's request_deserializer, whose failure answers
        # UNKNOWN with the internal exception's class name.
        try:
            request = request_type.FromString(raw)
        except message.DecodeError:
            core.record_request(model="", api="grpc", code=Code.INVALID_ARGUMENT)
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid {request_type.DESCRIPTOR.full_name.rsplit('.', 1)[-1]}"
                f" message",
            )
        return await _answer(context, method, lambda: work(request, context))

    # No request_deserializer: the handler receives the message's bytes.
    return grpc.unary_unary_rpc_method_handler(handle, response_serializer=_serialize)


class _HealthServicer(health_async.HealthServicer):
    """grpc.health.v1 whose answer is the core's readiness at the moment of the call."""

    def __init__(self, core: InferenceCore) -> None:
        super().__init__()
        self._core = core

    def current(self) -> int:
        serving = self._core.is_serving() and not self._gracefully_shutting_down
        return (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else (health_pb2.HealthCheckResponse.NOT_SERVING)
        )

    async def Check(  # noqa: N802
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        if request.service not in _HEALTH_SERVICES:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=self.current())

    async def refresh(self) -> None:
        status = self.current()
        for service in _HEALTH_SERVICES:
            await self.set(service, status)


class GrpcFront:
    """tensorflow_model_server's gRPC port: PredictionService, ModelService, optional health.

    ``port=0`` binds an ephemeral port; ``start()`` returns the bound port.
    ``tensor_content=True`` answers with ``TensorProto.tensor_content`` (TF Serving's
    ``--enable_serialization_as_tensor_content``): faster for big outputs, same values.
    """

    def __init__(
        self,
        core: InferenceCore,
        *,
        port: int = contract.DEFAULT_GRPC_PORT,
        host: str = "0.0.0.0",
        limits: Limits | None = None,
        enable_health: bool = False,
        tensor_content: bool = False,
        max_concurrent_rpcs: int | None = None,
        ssl: SslSettings | None = None,
        connections: ConnectionLimits | None = None,
        api_keys: ApiKeys | None = None,
        keys_cover_health: bool = False,
    ) -> None:
        self.core = core
        self.connections = connections or ConnectionLimits()
        self.api_keys = api_keys
        self.keys_cover_health = keys_cover_health
        self.api = TfServingApi(core)
        self.ssl = ssl
        self.port = port
        self.host = host
        self.codec = TensorProtoCodec(InputChecks(limits))
        self.enable_health = enable_health
        self.tensor_content = tensor_content
        self.max_concurrent_rpcs = max_concurrent_rpcs
        self._server: grpc.aio.Server | None = None
        self._health: _HealthServicer | None = None
        self._health_task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        options = [
            # gRPC refuses bigger messages itself, with RESOURCE_EXHAUSTED, before decoding.
            ("grpc.max_receive_message_length", self.codec.checks.limits.max_request_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),
            *self.connections.grpc_options(),
        ]
        interceptors = []
        if self.api_keys is not None:
            interceptors.append(
                BearerAuthInterceptor(
                    keys=self.api_keys,
                    cover_health=self.keys_cover_health,
                    on_refused=lambda: self.core.record_request(
                        model="", api="grpc", code=Code.UNAUTHENTICATED
                    ),
                )
            )
        server = grpc.aio.server(
            options=options,
            maximum_concurrent_rpcs=self.max_concurrent_rpcs,
            interceptors=interceptors,
        )
        server.add_generic_rpc_handlers(self._services())
        if self.enable_health:
            self._health = _HealthServicer(self.core)
            health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        address = f"{self.host}:{self.port}"
        if self.ssl is None:
            bound = server.add_insecure_port(address)
        else:  # TF Serving's BuildServerCredentialsFromSSLConfigFile
            bound = server.add_secure_port(
                address,
                grpc.ssl_server_credentials(
                    [(self.ssl.server_key.encode(), self.ssl.server_cert.encode())],
                    root_certificates=self.ssl.custom_ca.encode() or None,
                    require_client_auth=self.ssl.client_verify,
                ),
            )
        if bound == 0:
            raise OSError(f"gRPC could not bind {self.host}:{self.port}")
        await server.start()
        self._server = server
        self.port = bound
        if self._health is not None:
            await self._health.refresh()
            self._health_task = asyncio.create_task(self._poll_health(self._health))
        _log.info("gRPC front listening", extra={"event": "grpc_started", "port": bound})
        return bound

    def _services(self) -> tuple[grpc.GenericRpcHandler, ...]:
        """PredictionService and ModelService, method by method, as TF Serving names them."""
        prediction, model = contract.PREDICTION_SERVICE, contract.MODEL_SERVICE
        table: tuple[tuple[str, str, type[message.Message], _Work], ...] = (
            (prediction, "Predict", apis.PredictRequest, self.predict),
            (prediction, "GetModelMetadata", apis.GetModelMetadataRequest, self.metadata),
            (prediction, "Classify", tfs.ClassificationRequest, self.classify),
            (prediction, "Regress", tfs.RegressionRequest, self.regress),
            (prediction, "MultiInference", tfs.MultiInferenceRequest, self.multi_inference),
            (model, "GetModelStatus", apis.GetModelStatusRequest, self.status),
            (model, "HandleReloadConfigRequest", tfs.ReloadConfigRequest, self.reload),
        )
        services: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
        for service, method, request_type, work in table:
            services.setdefault(service, {})[method] = _unary(method, request_type, work, self.core)
        return tuple(grpc.method_handlers_generic_handler(s, h) for s, h in services.items())

    async def stop(self, grace: float | None = None) -> None:
        """Health goes NOT_SERVING, then in-flight RPCs get ``grace`` seconds to finish."""
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
            self._health_task = None
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    async def _poll_health(self, health: _HealthServicer) -> None:
        while True:
            await asyncio.sleep(_HEALTH_POLL_S)
            await health.refresh()

    # ------------------------------------------------------------------ PredictionService
    async def predict(
        self, request: apis.PredictRequest, context: grpc.aio.ServicerContext
    ) -> apis.PredictResponse:
        spec = request.model_spec
        remaining = context.time_remaining()
        call = PredictCall(
            model=model_ref(spec),
            signature_name=spec.signature_name,
            decode=lambda _signature: self.codec.from_tensor_protos(request.inputs),
            exact_dtypes=True,  # a TensorProto names its dtype: it must be the signature's
            output_filter=tuple(request.output_filter),
            deadline=None if remaining is None else time.monotonic() + remaining,
            api="grpc",
        )
        result = await self.api.predict(call)
        response = apis.PredictResponse()
        response.model_spec.name = result.model_name
        response.model_spec.version.value = result.version
        response.model_spec.signature_name = result.signature_name
        for name, array in result.outputs.items():
            self.codec.fill_tensor_proto(
                response.outputs[name], array, as_tensor_content=self.tensor_content
            )
        return response

    async def metadata(
        self, request: apis.GetModelMetadataRequest, context: grpc.aio.ServicerContext | None = None
    ) -> apis.GetModelMetadataResponse:
        if not request.HasField("model_spec"):
            raise ServingError(Code.INVALID_ARGUMENT, "Missing ModelSpec")
        return metadata_response(
            self.api.metadata(model_ref(request.model_spec), list(request.metadata_field))
        )

    async def classify(
        self, request: tfs.ClassificationRequest, context: grpc.aio.ServicerContext | None = None
    ) -> tfs.ClassificationResponse:
        spec = request.model_spec
        self.api.example_method(model_ref(spec), spec.signature_name, ExampleMethod.CLASSIFY)

    async def regress(
        self, request: tfs.RegressionRequest, context: grpc.aio.ServicerContext | None = None
    ) -> tfs.RegressionResponse:
        spec = request.model_spec
        self.api.example_method(model_ref(spec), spec.signature_name, ExampleMethod.REGRESS)

    async def multi_inference(
        self, request: tfs.MultiInferenceRequest, context: grpc.aio.ServicerContext | None = None
    ) -> tfs.MultiInferenceResponse:
        self.api.multi_inference(
            [
                (model_ref(task.model_spec), task.model_spec.signature_name, task.method_name)
                for task in request.tasks
            ]
        )

    # ------------------------------------------------------------------ ModelService
    async def status(
        self, request: apis.GetModelStatusRequest, context: grpc.aio.ServicerContext | None = None
    ) -> apis.GetModelStatusResponse:
        if not request.HasField("model_spec"):
            raise ServingError(Code.INVALID_ARGUMENT, "Missing ModelSpec")
        return status_response(self.api.status(model_ref(request.model_spec)))

    async def reload(
        self, request: tfs.ReloadConfigRequest, context: grpc.aio.ServicerContext | None = None
    ) -> tfs.ReloadConfigResponse:
        config = request.config
        # The model list is opaque here (unknown fields survive): the core parses it.
        await self.api.reload(config.WhichOneof("config"), config.SerializeToString())
        return tfs.ReloadConfigResponse()
