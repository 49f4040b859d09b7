"""TF Serving's gRPC API (PredictionService, ModelService, grpc.health.v1) over ``InferenceCore``.

The servicers only translate: protos -> ``PredictCall`` through ``TensorCodec`` (wire checks),
the core does the work, and a ``ServingError`` becomes the gRPC status with its message.

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
from google.protobuf import text_format
from grpc_health.v1 import _async as health_async
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from models import contract
from serving.core_api import InferenceCore, ModelMetadata, ModelRef, PredictCall
from serving.errors import Code, ServingError
from serving.tensor_codec import TensorCodec, WireLimits

_log = logging.getLogger(__name__)

SIGNATURE_DEF_FIELD = "signature_def"  # the only GetModelMetadata field TF Serving knows
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
# Services a health check may name besides "" (the whole server).
_HEALTH_SERVICES = (
    "",
    "tensorflow.serving.PredictionService",
    "tensorflow.serving.ModelService",
)
_HEALTH_POLL_S = 0.1  # Watch streams see a readiness change within this

_Response = TypeVar("_Response")


def model_ref(spec: model_pb2.ModelSpec) -> ModelRef:
    """A ModelSpec as the core's ``ModelRef`` (version and version_label are a oneof)."""
    choice = spec.WhichOneof("version_choice")
    return ModelRef(
        name=spec.name,
        version=spec.version.value if choice == "version" else None,
        label=spec.version_label if choice == "version_label" else None,
    )


def signature_defs(metadata: ModelMetadata) -> dict[str, meta_graph_pb2.SignatureDef]:
    out = {}
    for name, blob in metadata.signature_defs.items():
        signature = meta_graph_pb2.SignatureDef()
        signature.ParseFromString(blob)
        out[name] = signature
    return out


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


class _PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, front: GrpcFront) -> None:
        self._front = front

    async def Predict(  # noqa: N802 (gRPC method names)
        self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predict_pb2.PredictResponse:
        return await _answer(context, "Predict", lambda: self._front.predict(request, context))

    async def GetModelMetadata(  # noqa: N802
        self,
        request: get_model_metadata_pb2.GetModelMetadataRequest,
        context: grpc.aio.ServicerContext,
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return await _answer(context, "GetModelMetadata", lambda: self._front.metadata(request))

    async def Classify(  # noqa: N802
        self,
        request: classification_pb2.ClassificationRequest,
        context: grpc.aio.ServicerContext,
    ) -> classification_pb2.ClassificationResponse:
        return await _answer(
            context,
            "Classify",
            lambda: self._front.example_api(request.model_spec, CLASSIFY_METHOD),
        )

    async def Regress(  # noqa: N802
        self, request: regression_pb2.RegressionRequest, context: grpc.aio.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        return await _answer(
            context, "Regress", lambda: self._front.example_api(request.model_spec, REGRESS_METHOD)
        )

    async def MultiInference(  # noqa: N802
        self,
        request: inference_pb2.MultiInferenceRequest,
        context: grpc.aio.ServicerContext,
    ) -> inference_pb2.MultiInferenceResponse:
        return await _answer(
            context, "MultiInference", lambda: self._front.multi_inference(request)
        )


class _ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, front: GrpcFront) -> None:
        self._front = front

    async def GetModelStatus(  # noqa: N802
        self,
        request: get_model_status_pb2.GetModelStatusRequest,
        context: grpc.aio.ServicerContext,
    ) -> get_model_status_pb2.GetModelStatusResponse:
        return await _answer(context, "GetModelStatus", lambda: self._front.status(request))

    async def HandleReloadConfigRequest(  # noqa: N802
        self, request: model_management_pb2.ReloadConfigRequest, context: grpc.aio.ServicerContext
    ) -> model_management_pb2.ReloadConfigResponse:
        return await _answer(
            context, "HandleReloadConfigRequest", lambda: self._front.reload(request)
        )


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
        limits: WireLimits | None = None,
        enable_health: bool = False,
        tensor_content: bool = False,
        max_concurrent_rpcs: int | None = None,
    ) -> None:
        self.core = core
        self.port = port
        self.host = host
        self.codec = TensorCodec(limits)
        self.enable_health = enable_health
        self.tensor_content = tensor_content
        self.max_concurrent_rpcs = max_concurrent_rpcs
        self._server: grpc.aio.Server | None = None
        self._health: _HealthServicer | None = None
        self._health_task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        options = [
            # gRPC refuses bigger messages itself, with RESOURCE_EXHAUSTED, before decoding.
            ("grpc.max_receive_message_length", self.codec.limits.max_request_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),
        ]
        server = grpc.aio.server(options=options, maximum_concurrent_rpcs=self.max_concurrent_rpcs)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionServicer(self), server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelServicer(self), server)
        if self.enable_health:
            self._health = _HealthServicer(self.core)
            health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        bound = server.add_insecure_port(f"{self.host}:{self.port}")
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
        self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> predict_pb2.PredictResponse:
        spec = request.model_spec
        signature_name = spec.signature_name or contract.SERVING_DEFAULT
        try:
            inputs = self.codec.from_tensor_protos(request.inputs)
        except ServingError as exc:  # predict() counts what reaches it; count the rest
            self.core.record_request(model=spec.name, api="grpc", code=exc.code)
            raise
        remaining = context.time_remaining()
        call = PredictCall(
            model=model_ref(spec),
            signature_name=signature_name,
            inputs=inputs,
            output_filter=tuple(request.output_filter),
            deadline=None if remaining is None else time.monotonic() + remaining,
            api="grpc",
        )
        result = await self.core.predict(call)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = result.model_name
        response.model_spec.version.value = result.version
        response.model_spec.signature_name = result.signature_name
        for name, array in result.outputs.items():
            self.codec.fill_tensor_proto(
                response.outputs[name], array, as_tensor_content=self.tensor_content
            )
        return response

    async def metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        if not request.HasField("model_spec"):
            raise ServingError(Code.INVALID_ARGUMENT, "Missing ModelSpec")
        if not request.metadata_field:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                "GetModelMetadataRequest must specify at least one metadata_field",
            )
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise ServingError(
                    Code.INVALID_ARGUMENT, f"Metadata field {field} is not supported"
                )
        return metadata_response(self.core.model_metadata(model_ref(request.model_spec)))

    async def example_api(self, spec: model_pb2.ModelSpec, method: str) -> Any:
        """Classify / Regress: TF Serving's answer for a model without tf.Example signatures."""
        signatures = signature_defs(self.core.model_metadata(model_ref(spec)))
        name = spec.signature_name or contract.SERVING_DEFAULT
        if name not in signatures:
            raise ServingError(
                Code.INVALID_ARGUMENT, f"No signature was found with the name: {name}"
            )
        check_example_signature(signatures[name], method)
        raise ServingError(
            Code.UNIMPLEMENTED,
            f"signature '{name}' has the shape of a {method} signature, but this server runs "
            "tf.Example inputs only through Predict",
        )

    async def multi_inference(
        self, request: inference_pb2.MultiInferenceRequest
    ) -> inference_pb2.MultiInferenceResponse:
        first = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        signatures = signature_defs(self.core.model_metadata(model_ref(first)))
        seen: set[str] = set()
        for task in request.tasks:
            if not task.model_spec.name:
                raise ServingError(
                    Code.INVALID_ARGUMENT, "Found ModelSpec with an empty model name."
                )
            if task.model_spec.name != first.name:
                raise ServingError(
                    Code.INVALID_ARGUMENT,
                    "All ModelSpecs in a MultiInferenceRequest must access the same model name.",
                )
            name = task.model_spec.signature_name or contract.SERVING_DEFAULT
            if name in seen:
                raise ServingError(
                    Code.INVALID_ARGUMENT, f"Duplicate evaluation of signature: {name}"
                )
            seen.add(name)
            if name not in signatures:
                raise ServingError(
                    Code.INVALID_ARGUMENT, f"Requested signature not found in model graph: {name}"
                )
            if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
                raise ServingError(
                    Code.UNIMPLEMENTED, f"Unsupported signature method_name: {task.method_name}"
                )
            check_example_signature(signatures[name], task.method_name)
        raise ServingError(
            Code.UNIMPLEMENTED,
            "MultiInference over tf.Example inputs is not served by this server; use Predict",
        )

    # ------------------------------------------------------------------ ModelService
    async def status(
        self, request: get_model_status_pb2.GetModelStatusRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        if not request.HasField("model_spec"):
            raise ServingError(Code.INVALID_ARGUMENT, "Missing ModelSpec")
        return status_response(self.core.model_status(model_ref(request.model_spec)))

    async def reload(
        self, request: model_management_pb2.ReloadConfigRequest
    ) -> model_management_pb2.ReloadConfigResponse:
        config: model_server_config_pb2.ModelServerConfig = request.config
        if config.WhichOneof("config") != "model_config_list":
            raise ServingError(
                Code.INVALID_ARGUMENT,
                "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                "ModelConfigList is currently supported",
            )
        await self.core.reload_config(config.SerializeToString())
        return model_management_pb2.ReloadConfigResponse()


def check_example_signature(signature: meta_graph_pb2.SignatureDef, method: str) -> None:
    """TF Serving's PreProcessClassification / PreProcessRegression checks (method-name check
    off, its default): a predict-only signature fails here with TF Serving's message."""
    kind = "classification" if method == CLASSIFY_METHOD else "regression"
    if len(signature.inputs) != 1:
        raise ServingError(Code.INVALID_ARGUMENT, "Expected one input Tensor.")
    if method == CLASSIFY_METHOD and len(signature.outputs) not in (1, 2):
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"Expected one or two output Tensors, found {len(signature.outputs)}",
        )
    if method == REGRESS_METHOD and len(signature.outputs) != 1:
        raise ServingError(Code.INVALID_ARGUMENT, "Expected one output Tensor.")
    if "inputs" not in signature.inputs:
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"No {kind} inputs found in SignatureDef: {text_format.MessageToString(signature)}",
        )
    wanted = ("classes", "scores") if method == CLASSIFY_METHOD else ("outputs",)
    if not any(key in signature.outputs for key in wanted):
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"No {kind} outputs found in SignatureDef: {text_format.MessageToString(signature)}",
        )


def metadata_response(metadata: ModelMetadata) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadataResponse as TF Serving fills it: name, version, packed SignatureDefMap."""
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in signature_defs(metadata).items():
        signature_map.signature_def[name].CopyFrom(signature)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = metadata.model_name
    response.model_spec.version.value = metadata.version
    response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_map)
    return response


def status_response(statuses: Any) -> get_model_status_pb2.GetModelStatusResponse:
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in statuses:
        entry = response.model_version_status.add()
        entry.version = status.version
        entry.state = get_model_status_pb2.ModelVersionStatus.State.Value(status.state)
        entry.status.error_code = status.error_code
        entry.status.error_message = status.error_message
    return response
