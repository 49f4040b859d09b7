"""TF Serving REST API, OpenAI embeddings and Prometheus on one aiohttp port, over the core.

Routes (TF Serving's own regexes, case-insensitive, as tensorflow_model_server matches them):

- ``GET  /v1/models/{name}[/versions/{v}|/labels/{l}]``            model status
- ``GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata``   signature defs
- ``POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict``    row or columnar JSON
- ``POST ...:classify`` / ``...:regress``                          TF Serving's answer for
  models without tf.Example signatures
- ``POST /v1/embeddings``                                          OpenAI embeddings format
- ``GET  /v1/models``                                              OpenAI model list
- ``POST /v1/rerank``                                              TEI/Cohere-style rerank
- ``GET  /v1/health`` (and TEI's ``/health``)                      200 ready / 503 + reason
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

from models import contract
from serving.api_keys import ApiKeys
from serving.connection_limits import ConnectionLimits
from serving.core_api import CheckedInputs, InferenceCore, ModelRef, PredictCall
from serving.embedding_options import EmbeddingOptions
from serving.errors import Code, ServingError
from serving.health import health
from serving.input_checks import InputChecks
from serving.json_log import RejectedHttpFilter
from serving.limits import Limits
from serving.openai_models import OpenAiModels
from serving.predict_json import PredictJson
from serving.request_body import read_body
from serving.rerank import Rerank, RerankRequest
from serving.rest_connection_guard import RestConnectionGuard
from serving.served_signature import ServedSignature
from serving.tf_serving_api import ExampleMethod, TfServingApi
from serving.tf_serving_messages import metadata_response, signature_def_map, status_response

_log = logging.getLogger(__name__)

OPENAPI_FILE = Path(__file__).with_name("openapi.json")
# aiohttp logs malformed HTTP (a parser error naming the client's bytes) with a traceback at
# error level; this logger turns each into one rate-limited JSON line (serving.json_log).
_HTTP_LOG = logging.getLogger("textserve.rest.http")
_HTTP_LOG.addFilter(RejectedHttpFilter())

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
MODELS_PATH = "/v1/models"
RERANK_PATH = "/v1/rerank"
HEALTH_PATHS = ("/v1/health", "/health")
_INT64_MAX = 2**63 - 1
_EXAMPLE_METHODS = {"classify": ExampleMethod.CLASSIFY, "regress": ExampleMethod.REGRESS}


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
        limits: Limits | None = None,
        timeout_ms: int | None = contract.DEFAULT_REST_API_TIMEOUT_MS,
        metrics_path: str | None = None,
        connections: ConnectionLimits | None = None,
        api_keys: ApiKeys | None = None,
        keys_cover_health_and_metrics: bool = False,
        cors: bool = False,
    ) -> None:
        self.core = core
        self.connections = connections or ConnectionLimits()
        self.api_keys = api_keys
        self.keys_cover_health_and_metrics = keys_cover_health_and_metrics
        self.cors = cors
        self._guard: RestConnectionGuard | None = None
        self.api = TfServingApi(core)
        self.port = port
        self.host = host
        self.checks = InputChecks(limits)
        self.json = PredictJson(self.checks)
        self.timeout_s = timeout_ms / 1000 if timeout_ms else None
        self.metrics_path = metrics_path
        self._openapi = OPENAPI_FILE.read_bytes()
        self.models = OpenAiModels(core, created=int(time.time()))
        self.rerank = Rerank(self.api, self.checks)
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
            client_max_size=self.checks.limits.max_request_bytes + 1,
            middlewares=[self._track_in_flight],
        )
        if self.cors:
            app.on_response_prepare.append(_allow_any_origin)
        # One route for every path: TF Serving matches its paths case-insensitively, and a path
        # nothing serves must still answer {"error": ...} JSON, not aiohttp's plain-text 404.
        app.router.add_route("*", "/{tail:.*}", self._route)
        return app

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        folded = path.lower()
        if self.cors and request.method == "OPTIONS":
            # TF Serving's preflight answer (+ Authorization, which API keys need).
            return web.Response(
                status=200,
                headers={
                    "Access-Control-Allow-Methods": "POST, GET",
                    "Access-Control-Allow-Headers": "Content-Type, Authorization",
                },
            )
        if self.api_keys is not None and not self._exempt(request, path):
            if not self.api_keys.check(request.headers.get("Authorization")):
                self.core.record_request(model="", api="rest", code=Code.UNAUTHENTICATED)
                response = _error(
                    ServingError(
                        Code.UNAUTHENTICATED,
                        "missing or invalid API key: send 'Authorization: Bearer <key>'",
                    )
                )
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        if folded == contract.OPENAI_EMBEDDINGS_PATH and request.method == "POST":
            return await self._handle_embeddings(request)
        if folded.rstrip("/") == MODELS_PATH and request.method == "GET":
            return _json_response(orjson.dumps(self.models.model_list()))
        if folded in HEALTH_PATHS and request.method in ("GET", "HEAD"):
            status, body = health(self.core)
            return _json_response(orjson.dumps(body), status)
        if folded == RERANK_PATH and request.method == "POST":
            return await self._handle_rerank(request)
        if folded == contract.OPENAPI_PATH and request.method == "GET":
            return _json_response(self._openapi)
        if self.metrics_path and path == self.metrics_path and request.method == "GET":
            body, content_type = self.core.render_metrics()
            return web.Response(body=body, headers={"Content-Type": content_type})
        if folded.startswith("/v1/"):
            return await self._handle_tf_serving(request)
        return _error(ServingError(Code.NOT_FOUND, f"Not found: {request.method} {path}"))

    def _exempt(self, request: web.Request, path: str) -> bool:
        """Probes and scrapers: metrics, GET model status (TF Serving's readiness check) and
        the health routes."""
        if self.keys_cover_health_and_metrics or request.method != "GET":
            return False
        if self.metrics_path and path == self.metrics_path:
            return True
        if path.lower() in HEALTH_PATHS:  # probes, like the status route
            return True
        match = _MODEL_STATUS_API.fullmatch(path)
        return match is not None and match.group(1) is not None and match.group(4) is None

    async def start(self) -> int:
        # Bodies are decompressed by serving.request_body.read_body, within the byte limit.
        # handler_cancellation: aiohttp (since 3.8) lets a handler run on when its client
        # disconnects; cancelling it instead drops the request's queued work (the batcher
        # forgets a cancelled caller's rows) and counts it as CANCELLED.
        self._runner = web.AppRunner(
            self.app(),
            auto_decompress=False,
            access_log=None,
            handler_cancellation=True,
            logger=_HTTP_LOG,
        )
        await self._runner.setup()
        self._guard = RestConnectionGuard(runner=self._runner, limits=self.connections)
        self._guard.start()
        self._site = web.TCPSite(
            self._runner,
            self.host,
            self.port,
            reuse_port=False,
        )
        await self._site.start()
        self.port = int(self._runner.addresses[0][1])  # the bound port when port=0
        _log.info("REST front listening", extra={"event": "rest_started", "port": self.port})
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Stops accepting connections, lets in-flight requests finish within ``grace`` s."""
        if self._guard is not None:
            await self._guard.stop()
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
                doc = await self._read_json(request)
                if not isinstance(doc, dict):
                    raise ServingError(Code.INVALID_ARGUMENT, "JSON body must be an object")
                signature_name = doc.get("signature_name") or ""
                self.api.example_method(ref, signature_name, _EXAMPLE_METHODS[method.lower()])
            return await self._predict(request, ref)
        if request.method == "GET" and (match := _MODEL_STATUS_API.fullmatch(path)):
            name, version, label, subresource = match.groups()
            if not name:
                raise ServingError(Code.INVALID_ARGUMENT, "Missing model name in request.")
            ref = _model_ref(name, version, label)
            if subresource:
                return _json_response(self._metadata_json(ref))
            message = status_response(self.api.status(ref))
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

    async def _predict(self, request: web.Request, ref: ModelRef) -> web.Response:
        try:
            doc = await self._read_json(request)
            form = self.json.predict_json_form(doc)
        except ServingError as exc:  # the api counts what reaches it; count the rest
            self.core.record_request(model=ref.name, api="rest", code=exc.code)
            raise

        def decode(signature: ServedSignature) -> CheckedInputs:
            dtypes = {name: tensor.dtype_enum for name, tensor in signature.inputs.items()}
            return self.json.decode_predict_json(doc, dtypes)

        call = PredictCall(
            model=ref,
            signature_name=doc.get("signature_name", ""),
            decode=decode,
            exact_dtypes=False,  # JSON numbers carry no dtype: converted where exact
            deadline=self._deadline(),
            api="rest",
        )
        result = await self.api.predict(call)
        return _json_response(self.json.encode_predict_json(result.outputs, form))

    async def _read_json(self, request: web.Request) -> Any:
        declared = request.content_length
        limit = self.checks.limits.max_request_bytes
        if declared is not None and declared > limit:
            raise ServingError(
                Code.RESOURCE_EXHAUSTED,
                f"request body is larger than the limit of {limit} bytes (got {declared} bytes); "
                "split the request",
            )
        body_ms = self.connections.rest_api_body_timeout_in_ms
        try:
            raw = await asyncio.wait_for(request.read(), body_ms / 1000 if body_ms else None)
        except TimeoutError as exc:
            # A body trickled in (slowloris): the connection is not worth keeping either.
            if request.transport is not None:
                request.transport.close()
            raise ServingError(
                Code.DEADLINE_EXCEEDED,
                f"the request body did not arrive within {body_ms} ms "
                "(--rest_api_body_timeout_in_ms)",
            ) from exc
        except web.HTTPRequestEntityTooLarge as exc:
            raise ServingError(
                Code.RESOURCE_EXHAUSTED,
                f"request body is larger than the limit of {limit} bytes; split the request",
            ) from exc
        # Transfer codings before "chunked" (e.g. "gzip, chunked") are the sender's
        # compression of the body: aiohttp removes only the chunking.
        transfer = [
            coding.strip()
            for coding in request.headers.get("Transfer-Encoding", "").split(",")
            if coding.strip().lower() not in ("", "chunked", "identity")
        ]
        for coding in reversed(transfer):
            raw = read_body(raw, coding, limit=limit)
        body = read_body(raw, request.headers.get("Content-Encoding"), limit=limit)
        return self.json.parse_json(body)

    def _metadata_json(self, ref: ModelRef) -> bytes:
        """TF Serving's metadata JSON: model_spec, then the unpacked SignatureDefMap."""
        metadata = self.api.metadata(ref, [contract.SIGNATURE_DEF_FIELD])
        response = metadata_response(metadata)
        options: dict[str, Any] = {
            "preserving_proto_field_name": True,
            "always_print_fields_with_no_presence": True,
        }
        signature_map = json_format.MessageToDict(signature_def_map(metadata), **options)
        doc = {
            "model_spec": json_format.MessageToDict(response.model_spec, **options),
            "metadata": {contract.SIGNATURE_DEF_FIELD: signature_map},
        }
        return orjson.dumps(doc)

    def _deadline(self) -> float | None:
        return None if self.timeout_s is None else time.monotonic() + self.timeout_s

    def _text_inputs(self, texts: list[str]) -> CheckedInputs:
        """JSON strings as the ``text`` input: valid UTF-8 already (orjson), length checked on
        the characters at hand rather than by decoding the bytes again."""
        limit = self.checks.limits.max_text_chars
        for index, text in enumerate(texts):
            if len(text) > limit:
                raise self.checks.too_long(contract.TEXT, index, len(text))
        array = np.empty(len(texts), dtype=object)
        array[:] = [text.encode("utf-8") for text in texts]
        return self.checks.check_inputs({contract.TEXT: array}, texts_checked={contract.TEXT})

    # ------------------------------------------------------------------ rerank
    async def _handle_rerank(self, request: web.Request) -> web.Response:
        doc: Any = None
        try:
            try:
                doc = await self._read_json(request)
                rerank = RerankRequest.from_json(
                    doc, max_documents=self.checks.limits.max_rows_per_request
                )
            except ServingError as exc:  # the api counts what reaches it; count the rest
                model = doc.get("model") if isinstance(doc, dict) else None
                self.core.record_request(
                    model=model if isinstance(model, str) else "", api="rerank", code=exc.code
                )
                raise
            body = await self.rerank.run(rerank, deadline=self._deadline())
            return _json_response(orjson.dumps(body))
        except ServingError as exc:
            return _error(exc)
        except Exception as exc:
            _log.exception("REST /v1/rerank failed")
            return _error(ServingError(Code.INTERNAL, f"rerank failed: {exc!r}"))

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
            ref, texts, encoding, dimensions = _embeddings_request(doc)
            options = EmbeddingOptions.from_json(doc)
            inputs = self._text_inputs(texts)
        except ServingError as exc:  # the api counts what reaches it; count the rest
            model = doc.get("model") if isinstance(doc, dict) else None
            self.core.record_request(
                model=model if isinstance(model, str) else "", api="openai", code=exc.code
            )
            raise
        deadline = self._deadline()

        def decode(signature: ServedSignature) -> CheckedInputs:
            _check_embedding_signature(signature, ref.name, dimensions)
            return inputs

        signature_name = _embedding_signature(
            ref.name, options.prompt_name, self.api.signature_names(ref)
        )
        # Usage tokens are counted in the same worker call, by the model's own tokenizer on
        # the text it embeds (the prompt included); 0 for a model without a preprocess
        # signature.
        result = await self.api.predict(
            PredictCall(
                model=ref,
                signature_name=signature_name,
                decode=decode,
                exact_dtypes=True,
                output_filter=(contract.EMBEDDING,),
                deadline=deadline,
                api="openai",
                count_tokens=True,
            )
        )
        counts = result.token_counts
        tokens = int(counts.sum()) if counts is not None else 0
        vectors = np.asarray(result.outputs[contract.EMBEDDING], dtype=np.float32)
        if options.normalize:
            norms = np.linalg.norm(vectors.astype(np.float64), axis=1, keepdims=True)
            vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
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


def _embeddings_request(doc: Any) -> tuple[ModelRef, list[str], str, Any]:
    """An OpenAI embeddings body: (model, texts, encoding_format, dimensions)."""
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
        raise ServingError(Code.INVALID_ARGUMENT, "'encoding_format' must be 'float' or 'base64'")
    return ModelRef(name=model), texts, encoding, doc.get("dimensions")


def _embedding_signature(model: str, prompt_name: str | None, signatures: Any) -> str:
    """serving_default, or the model's signature for ``prompt_name`` (400 if it has none)."""
    if prompt_name is None:
        return contract.SERVING_DEFAULT
    prefix = contract.SERVING_PROMPT_PREFIX
    prompts = sorted(name.removeprefix(prefix) for name in signatures if name.startswith(prefix))
    if prompt_name not in prompts:
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"'prompt_name' {prompt_name!r}: model '{model}' has no such prompt "
            f"(its prompts: {', '.join(prompts) or 'none'})",
        )
    return prefix + prompt_name


def _check_embedding_signature(signature: ServedSignature, model: str, dimensions: Any) -> None:
    if contract.EMBEDDING not in signature.outputs or set(signature.inputs) != {contract.TEXT}:
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"model '{model}' is not an embedding model (needs a {contract.SERVING_DEFAULT} "
            f"signature mapping '{contract.TEXT}' to '{contract.EMBEDDING}')",
        )
    shape = signature.outputs[contract.EMBEDDING].shape
    width = shape[-1] if shape else None
    if dimensions is not None and (not isinstance(dimensions, int) or dimensions != width):
        raise ServingError(
            Code.INVALID_ARGUMENT,
            f"model '{model}' returns {width}-dimensional embeddings; 'dimensions' cannot "
            "change that",
        )


def _json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type=_JSON)


async def _allow_any_origin(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Access-Control-Allow-Origin"] = "*"


def _error(exc: ServingError) -> web.Response:
    return _json_response(orjson.dumps({"error": exc.message}), exc.code.http_status)


def _openai_error(exc: ServingError) -> web.Response:
    kind = "invalid_request_error" if exc.code.http_status < 500 else "server_error"
    body = {"error": {"message": exc.message, "type": kind, "param": None, "code": exc.code.name}}
    return _json_response(orjson.dumps(body), exc.code.http_status)
