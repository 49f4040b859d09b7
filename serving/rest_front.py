"""TF Serving REST API, OpenAI embeddings and Prometheus on one aiohttp port, over the core.

Routes (TF Serving's own regexes, case-insensitive, as tensorflow_model_server matches them):

- ``GET  /v1/models/{name}[/versions/{v}|/labels/{l}]``            model status
- ``GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata``   signature defs
- ``POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict``    row or columnar JSON
- ``POST ...:classify`` / ``...:regress``                          TF Serving's answer for
  models without tf.Example signatures
- ``POST /v1/embeddings``                                          OpenAI embeddings format
- ``GET  /v1/openapi.json``                                        OpenAPI 3 document
- ``GET  <monitoring path>``                                       Prometheus, when enabled

Errors are ``{"error": "..."}`` with TF Serving's status -> HTTP mapping (OpenAI's error object
on ``/v1/embeddings``). Bodies may be gzip or deflate encoded. A client that disconnects
cancels its request: queued work is dropped, never run, and counted as CANCELLED.

Example::

    front = RestFront(core, port=8501, metrics_path=contract.METRICS_PATH)
    bound_port = await front.start()
    ...
    await front.stop(grace=5.0)
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiohttp import web
from google.protobuf import json_format

from clients.protos import signature_pb2
from models import contract
from serving.core_api import CheckedInputs, InferenceCore, ModelRef, PredictCall, PredictResult
from serving.errors import Code, ServingError
from serving.grpc_front import (
    CLASSIFY_METHOD,
    REGRESS_METHOD,
    check_example_signature,
    metadata_response,
    signature_def_map,
    signature_defs,
    status_response,
)
from serving.tensor_codec import TensorCodec, WireLimits

_log = logging.getLogger(__name__)

OPENAPI_FILE = Path(__file__).with_name("openapi.json")
DEFAULT_TIMEOUT_MS = 30_000  # tensorflow_model_server's --rest_api_timeout_in_ms default

# tensorflow_serving/model_servers/http_rest_api_util.cc
_PREDICTION_API = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE,
)
_MODEL_STATUS_API = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE,
)
_JSON = "application/json"
_INT64_MAX = 2**63 - 1
_SIGNATURE_CACHE_SIZE = 256


class RestFront:
    """tensorflow_model_server's HTTP port, plus ``/v1/embeddings`` and an OpenAPI document.

    ``timeout_ms`` is ``--rest_api_timeout_in_ms`` (None or 0: the core's default deadline).
    ``metrics_path`` serves ``core.render_metrics()``; None disables it (TF Serving exposes
    metrics only when the monitoring config enables Prometheus).
    """

    def __init__(
        self,
        core: InferenceCore,
        *,
        port: int = contract.DEFAULT_REST_PORT,
        host: str = "0.0.0.0",
        limits: WireLimits | None = None,
        timeout_ms: int | None = DEFAULT_TIMEOUT_MS,
        metrics_path: str | None = None,
    ) -> None:
        self.core = core
        self.port = port
        self.host = host
        self.codec = TensorCodec(limits)
        self.timeout_s = timeout_ms / 1000 if timeout_ms else None
        self.metrics_path = metrics_path
        self._openapi = OPENAPI_FILE.read_bytes()
        self._signatures: dict[tuple[str, int, str], signature_pb2.SignatureDef | None] = {}
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # ------------------------------------------------------------------ lifecycle
    def app(self) -> web.Application:
        """The aiohttp application (``start()`` serves it; tests may drive it in-process)."""
        # +1 so that an over-limit body reaches our own check and its error message.
        app = web.Application(
            client_max_size=self.codec.limits.max_request_bytes + 1,
            middlewares=[self._track_in_flight],
        )
        app.router.add_get(contract.OPENAPI_PATH, self._handle_openapi)
        app.router.add_post(contract.OPENAI_EMBEDDINGS_PATH, self._handle_embeddings)
        if self.metrics_path:
            app.router.add_get(self.metrics_path, self._handle_metrics)
        app.router.add_route("*", "/v1/{tail:.*}", self._handle_tf_serving)
        return app

    async def start(self) -> int:
        # Bodies are decompressed by TensorCodec.read_body, within the byte limit.
        # handler_cancellation: aiohttp (since 3.8) lets a handler run on when its client
        # disconnects; cancelling it instead drops the request's queued work (the batcher
        # forgets a cancelled caller's rows) and counts it as CANCELLED.
        self._runner = web.AppRunner(
            self.app(), auto_decompress=False, access_log=None, handler_cancellation=True
        )
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_port=False)
        await self._site.start()
        self.port = int(self._runner.addresses[0][1])  # the bound port when port=0
        _log.info("REST front listening", extra={"event": "rest_started", "port": self.port})
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Stops accepting connections, lets in-flight requests finish within ``grace`` s."""
        if self._site is not None:
            await self._site.stop()
        if grace:
            try:
                await asyncio.wait_for(self._idle.wait(), grace)
            except TimeoutError:
                _log.warning("REST drain timed out", extra={"in_flight": self._in_flight})
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = self._site = None

    @web.middleware
    async def _track_in_flight(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self._in_flight += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()

    # ------------------------------------------------------------------ TF Serving API
    async def _handle_tf_serving(self, request: web.Request) -> web.Response:
        try:
            return await self._dispatch(request)
        except ServingError as exc:
            return _error(exc)
        except Exception as exc:  # a bug: answer it rather than drop the connection
            _log.exception("REST %s %s failed", request.method, request.path)
            return _error(ServingError(Code.INTERNAL, f"{request.method} failed: {exc!r}"))

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = request.raw_path.split("?", 1)[0]
        if request.method == "POST" and (match := _PREDICTION_API.fullmatch(path)):
            name, version, label, method = match.groups()
            ref = _model_ref(name, version, label)
            if method.lower() != "predict":
                return await self._example_api(ref, await self._read_json(request), method.lower())
            try:
                call, form = self._predict_call(ref, await self._read_json(request))
            except ServingError as exc:  # predict() counts what reaches it; count the rest
                self.core.record_request(model=ref.name, api="rest", code=exc.code)
                raise
            result = await self.core.predict(call)
            return _json_response(self.codec.encode_predict_json(result.outputs, form))
        if request.method == "GET" and (match := _MODEL_STATUS_API.fullmatch(path)):
            name, version, label, subresource = match.groups()
            if not name:
                raise ServingError(Code.INVALID_ARGUMENT, "Missing model name in request.")
            ref = _model_ref(name, version, label)
            if subresource:
                return _json_response(self._metadata_json(ref))
            message = status_response(self.core.model_status(ref))
            return _json_response(
                json_format.MessageToJson(
                    message,
                    preserving_proto_field_name=True,
                    always_print_fields_with_no_presence=True,
                ).encode()
            )
        raise ServingError(
            Code.INVALID_ARGUMENT, f"Malformed request: {request.method} {request.raw_path}"
        )

    async def _read_json(self, request: web.Request) -> Any:
        declared = request.content_length
        limit = self.codec.limits.max_request_bytes
        if declared is not None and declared > limit:
            raise ServingError(
                Code.RESOURCE_EXHAUSTED,
                f"request body is larger than the limit of {limit} bytes (got {declared} bytes); "
                "split the request",
            )
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge as exc:
            raise ServingError(
                Code.RESOURCE_EXHAUSTED,
                f"request body is larger than the limit of {limit} bytes; split the request",
            ) from exc
        body = self.codec.read_body(raw, request.headers.get("Content-Encoding"))
        return self.codec.parse_json(body)

    def _predict_call(self, ref: ModelRef, doc: Any) -> tuple[PredictCall, str]:
        signature_name = (doc.get("signature_name") if isinstance(doc, dict) else None) or ""
        if not isinstance(signature_name, str):
            raise ServingError(Code.INVALID_ARGUMENT, "'signature_name' must be a string")
        signature_name = signature_name or contract.SERVING_DEFAULT
        signature = self._signature(ref, signature_name)
        if signature is None:
            # No dtypes to decode the body with; the core answers an unknown signature, with
            # the same status and words on both protocols.
            inputs, form = self.codec.check_inputs({}), "row"
        else:
            dtypes = {name: info.dtype for name, info in signature.inputs.items()}
            inputs, form, _ = self.codec.decode_predict_json(doc, dtypes)
        call = PredictCall(
            model=ref,
            signature_name=signature_name,
            inputs=inputs,
            deadline=self._deadline(),
            api="rest",
        )
        return call, form

    async def _example_api(self, ref: ModelRef, doc: Any, method: str) -> web.Response:
        if not isinstance(doc, dict):
            raise ServingError(Code.INVALID_ARGUMENT, "JSON body must be an object")
        name = doc.get("signature_name") or contract.SERVING_DEFAULT
        signatures = signature_defs(self.core.model_metadata(ref))
        if name not in signatures:
            raise ServingError(
                Code.INVALID_ARGUMENT, f"No signature was found with the name: {name}"
            )
        check_example_signature(
            signatures[name], CLASSIFY_METHOD if method == "classify" else REGRESS_METHOD
        )
        raise ServingError(
            Code.UNIMPLEMENTED,
            f"signature '{name}' has the shape of a {method} signature, but this server runs "
            "tf.Example inputs only through :predict",
        )

    def _metadata_json(self, ref: ModelRef) -> bytes:
        """TF Serving's metadata JSON: model_spec, then the unpacked SignatureDefMap."""
        metadata = self.core.model_metadata(ref)
        response = metadata_response(metadata)
        options: dict[str, Any] = {
            "preserving_proto_field_name": True,
            "always_print_fields_with_no_presence": True,
        }
        signature_map = json_format.MessageToDict(signature_def_map(metadata), **options)
        doc = {
            "model_spec": json_format.MessageToDict(response.model_spec, **options),
            "metadata": {"signature_def": signature_map},
        }
        return orjson.dumps(doc)

    def _signature(self, ref: ModelRef, name: str) -> signature_pb2.SignatureDef | None:
        """The SignatureDef a request will run, cached per (model, version, signature)."""
        metadata = self.core.model_metadata(ref)
        key = (metadata.model_name, metadata.version, name)
        if key not in self._signatures:
            if len(self._signatures) >= _SIGNATURE_CACHE_SIZE:
                self._signatures.clear()
            blob = metadata.signature_defs.get(name)
            signature = None
            if blob is not None:
                signature = signature_pb2.SignatureDef()
                signature.ParseFromString(blob)
            self._signatures[key] = signature
        return self._signatures[key]

    def _deadline(self) -> float | None:
        return None if self.timeout_s is None else time.monotonic() + self.timeout_s

    # ------------------------------------------------------------------ OpenAI embeddings
    async def _handle_embeddings(self, request: web.Request) -> web.Response:
        try:
            return await self._embeddings(request)
        except ServingError as exc:
            return _openai_error(exc)
        except Exception as exc:
            _log.exception("REST /v1/embeddings failed")
            return _openai_error(ServingError(Code.INTERNAL, f"embeddings failed: {exc!r}"))

    async def _embeddings(self, request: web.Request) -> web.Response:
        doc: Any = None
        try:
            doc = await self._read_json(request)
            ref, inputs, encoding, counted = self._embeddings_call(doc)
        except ServingError as exc:  # predict() counts what reaches it; count the rest
            model = doc.get("model") if isinstance(doc, dict) else None
            self.core.record_request(
                model=model if isinstance(model, str) else "", api="openai", code=exc.code
            )
            raise
        deadline = self._deadline()

        def run(signature: str, output: str) -> Awaitable[PredictResult]:
            call = PredictCall(
                model=ref,
                signature_name=signature,
                inputs=inputs,
                output_filter=(output,),
                deadline=deadline,
                api="openai",
            )
            return self.core.predict(call)

        embed = run(contract.SERVING_DEFAULT, contract.EMBEDDING)
        if counted:
            # Token counts come from the model's own tokenizer (its preprocess signature).
            count = run(contract.PREPROCESS, contract.INPUT_MASK)
            result, counts = await asyncio.gather(embed, count)
            tokens = int(np.asarray(counts.outputs[contract.INPUT_MASK]).sum())
        else:
            result, tokens = await embed, 0
        vectors = np.asarray(result.outputs[contract.EMBEDDING], dtype=np.float32)
        data: list[dict[str, Any]] = []
        for index, vector in enumerate(vectors):
            embedding: Any = (
                base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
                if encoding == "base64"
                else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        body = {
            "object": "list",
            "data": data,
            "model": ref.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return _json_response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))

    def _embeddings_call(self, doc: Any) -> tuple[ModelRef, CheckedInputs, str, bool]:
        """Validates an OpenAI embeddings body: (model, inputs, encoding, count tokens?)."""
        if not isinstance(doc, dict):
            raise ServingError(Code.INVALID_ARGUMENT, "JSON body must be an object")
        model = doc.get("model")
        if not isinstance(model, str) or not model:
            raise ServingError(Code.INVALID_ARGUMENT, "'model' must name a served model")
        texts = doc.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts:
            raise ServingError(
                Code.INVALID_ARGUMENT, "'input' must be a string or a non-empty list of strings"
            )
        if not all(isinstance(text, str) for text in texts):
            raise ServingError(
                Code.INVALID_ARGUMENT,
                "'input' must hold strings: token-id arrays are not accepted (the tokenizer runs "
                "inside the model)",
            )
        encoding = doc.get("encoding_format") or "float"
        if encoding not in ("float", "base64"):
            raise ServingError(
                Code.INVALID_ARGUMENT, "'encoding_format' must be 'float' or 'base64'"
            )
        ref = ModelRef(name=model)
        signature = self._signature(ref, contract.SERVING_DEFAULT)
        if (
            signature is None
            or contract.EMBEDDING not in signature.outputs
            or set(signature.inputs) != {contract.TEXT}
        ):
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"model '{model}' is not an embedding model (needs a {contract.SERVING_DEFAULT} "
                f"signature mapping '{contract.TEXT}' to '{contract.EMBEDDING}')",
            )
        dimensions = doc.get("dimensions")
        width = _last_dim(signature.outputs[contract.EMBEDDING])
        if dimensions is not None and dimensions != width:
            raise ServingError(
                Code.INVALID_ARGUMENT,
                f"model '{model}' returns {width}-dimensional embeddings; 'dimensions' cannot "
                "change that",
            )
        array = np.empty(len(texts), dtype=object)
        array[:] = [text.encode("utf-8") for text in texts]
        inputs = self.codec.check_inputs({contract.TEXT: array})
        preprocess = self._signature(ref, contract.PREPROCESS)
        counted = preprocess is not None and contract.INPUT_MASK in preprocess.outputs
        return ref, inputs, encoding, counted

    # ------------------------------------------------------------------ documents
    async def _handle_openapi(self, request: web.Request) -> web.Response:
        return _json_response(self._openapi)

    async def _handle_metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.core.render_metrics()
        return web.Response(body=body, headers={"Content-Type": content_type})


def _model_ref(name: str, version: str | None, label: str | None) -> ModelRef:
    parsed_version = None
    if version:
        parsed_version = int(version)
        if parsed_version > _INT64_MAX:
            raise ServingError(
                Code.INVALID_ARGUMENT, f"Failed to convert version: {version} to numeric."
            )
    return ModelRef(
        name=urllib.parse.unquote(name),
        version=parsed_version,
        label=urllib.parse.unquote(label) if label else None,
    )


def _last_dim(info: signature_pb2.TensorInfo) -> int | None:
    dims = info.tensor_shape.dim
    return dims[-1].size if dims and dims[-1].size >= 0 else None


def _json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=_JSON)


def _error(exc: ServingError) -> web.Response:
    return _json_response(orjson.dumps({"error": exc.message}), exc.code.http_status)


def _openai_error(exc: ServingError) -> web.Response:
    kind = "invalid_request_error" if exc.code.http_status < 500 else "server_error"
    body = {"error": {"message": exc.message, "type": kind, "param": None, "code": exc.code.name}}
    return _json_response(orjson.dumps(body), exc.code.http_status)
