"""The pure core shared by all four clients: no I/O happens here.

Request building (numpy -> TensorProto / TF Serving JSON), response parsing, status and
metadata parsing, error mapping, the chunking plan and the retry policy are written once
here; ``GrpcClient``, ``AsyncGrpcClient``, ``RestClient`` and ``AsyncRestClient`` only move
bytes. The protobuf messages are the project's own wire-compatible definitions
(``clients/protos``), so nothing here imports TensorFlow.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
from google.protobuf import json_format

from clients.errors import (
    DeadlineExceededError,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    TextServeError,
    UnavailableError,
)
from clients.protos import serving_apis_pb2 as apis
from clients.protos import tensor_pb2
from clients.retry_policy import MODEL_SERVICE, PREDICTION_SERVICE, RetryPolicy
from clients.tls_config import TlsConfig
from models import contract

# --- gRPC method paths: the real TF Serving services, independent of our proto package. ------
PREDICT_METHOD = f"/{PREDICTION_SERVICE}/Predict"
GET_MODEL_METADATA_METHOD = f"/{PREDICTION_SERVICE}/GetModelMetadata"
GET_MODEL_STATUS_METHOD = f"/{MODEL_SERVICE}/GetModelStatus"
SIGNATURE_DEF_FIELD = "signature_def"  # the one metadata_field TF Serving supports
SIGNATURE_DEF_MAP_TYPE_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"

# Large enough for a chunk of long outputs (sequence_output of 64 x 256 x 768 floats is 50 MB);
# gRPC's 4 MB default receive limit is too small for anything but embeddings.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CHUNK_SIZE = 64
DEFAULT_MAX_CONCURRENCY = 4

# --- Status codes ---------------------------------------------------------------------------
HTTP_TO_CODE: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_CODE_TO_CLASS: Mapping[str, type[TextServeError]] = {
    "INVALID_ARGUMENT": InvalidInputError,
    "FAILED_PRECONDITION": InvalidInputError,
    "OUT_OF_RANGE": InvalidInputError,
    "NOT_FOUND": NotFoundError,
    "RESOURCE_EXHAUSTED": OverloadedError,
    "UNAVAILABLE": UnavailableError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
}
OVERLOAD_CODES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE"})


def error_for(code: str, message: str, *, http_status: int | None = None) -> TextServeError:
    """The exception instance for a canonical status name (``"NOT_FOUND"``...)."""
    cls = _CODE_TO_CLASS.get(code, TextServeError)
    return cls(code, message, http_status=http_status)


def error_from_http(status: int, body: bytes) -> TextServeError:
    """Map a non-2xx REST answer (TF Serving's ``{"error": "..."}`` body) to an exception."""
    code = HTTP_TO_CODE.get(status, "INTERNAL" if status >= 500 else "UNKNOWN")
    message = body.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        if isinstance(parsed.get("error"), str):
            message = parsed["error"]
        elif isinstance(parsed.get("error"), dict):  # OpenAI style {"error": {"message": ...}}
            message = str(parsed["error"].get("message", message))
    return error_for(code, message, http_status=status)


def error_from_transport(exc: httpx.TransportError | OSError) -> TextServeError:
    """httpx's transport failures: timeouts are deadlines (each attempt's httpx timeout is what
    is left of the call's deadline), the rest (refused, reset, TLS) are UNAVAILABLE and so
    retryable. ``OSError`` covers what httpx lets through unwrapped, e.g. the ``ssl.SSLError``
    of a TLS 1.3 server that rejects the client certificate after the handshake."""
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return DeadlineExceededError("DEADLINE_EXCEEDED", message)
    return UnavailableError("UNAVAILABLE", message)


def error_from_grpc(code_name: str, details: str | None) -> TextServeError:
    """A ``grpc.RpcError``'s code name and details as a client exception."""
    return error_for(code_name, details or code_name)


def retry_delay(
    policy: RetryPolicy,
    error: TextServeError,
    *,
    attempt: int,
    remaining_s: float,
    rng: random.Random,
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or None to give up and raise ``error``.

    Gives up on non-retryable codes, after ``policy.max_attempts``, and when the pause would
    eat the rest of the call's deadline.
    """
    if not policy.is_retryable(error) or attempt >= policy.max_attempts:
        return None
    delay = policy.backoff_s(attempt, rng)
    return delay if delay < remaining_s else None


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    """Everything the four clients share; built from their keyword arguments."""

    model_name: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    chunk_size: int = DEFAULT_CHUNK_SIZE
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    retry: RetryPolicy = RetryPolicy()
    tls: TlsConfig | None = None
    bearer_token: str | None = None

    def __post_init__(self) -> None:
        if not self.model_name:
            raise ValueError("model_name is required")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if self.chunk_size < 1 or self.max_concurrency < 1:
            raise ValueError("chunk_size and max_concurrency must be >= 1")

    def auth_metadata(self) -> tuple[tuple[str, str], ...]:
        """gRPC call metadata (keys are lower case in gRPC)."""
        if self.bearer_token is None:
            return ()
        return (("authorization", f"Bearer {self.bearer_token}"),)

    def http_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.bearer_token is not None:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        return headers


def grpc_channel_options(
    settings: ClientSettings, extra: Sequence[tuple[str, Any]] = ()
) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.service_config", grpc_service_config(settings.retry)),
        ("grpc.enable_retries", 1),
        # The config above is the policy; a DNS TXT record must not replace it.
        ("grpc.service_config_disable_resolution", 1),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        # Reconnect on the retry policy's time scale: gRPC's default 1 s first reconnect
        # backoff would make every retry inside it fail at once against a restarting server.
        ("grpc.initial_reconnect_backoff_ms", int(settings.retry.initial_backoff_s * 1000)),
        ("grpc.min_reconnect_backoff_ms", int(settings.retry.initial_backoff_s * 1000)),
        ("grpc.max_reconnect_backoff_ms", int(settings.retry.max_backoff_s * 1000)),
    ]
    if settings.tls is not None and settings.tls.server_name is not None:
        options.append(("grpc.ssl_target_name_override", settings.tls.server_name))
    options.extend(extra)
    return options


def grpc_service_config(policy: RetryPolicy) -> str:
    """The gRPC service config JSON: retries per ``policy`` and round-robin load balancing.

    Round robin spreads calls over every address a ``dns:///`` or ``ipv4:`` target resolves
    to (gRPC's default, pick_first, would pin one replica). Retry throttling stops retries
    when most calls fail, so a client does not multiply the load on a struggling server.
    """
    config: dict[str, Any] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [policy.grpc_method_config()],
    }
    if policy.max_attempts > 1:
        config["retryThrottling"] = {"maxTokens": 10, "tokenRatio": 0.1}
    return json.dumps(config)


def grpc_target(target: str | Sequence[str]) -> str:
    """A gRPC target from ``"host:port"``, a ``dns:///`` / ``ipv4:`` URI, or a list of IP:port.

    >>> grpc_target(["127.0.0.1:8500", "127.0.0.1:8510"])
    'ipv4:127.0.0.1:8500,127.0.0.1:8510'
    """
    if isinstance(target, str):
        return target
    addresses = list(target)
    if not addresses:
        raise ValueError("no address given")
    if len(addresses) == 1:
        return addresses[0]
    hosts = [a.rsplit(":", 1)[0].strip("[]") for a in addresses]
    try:
        versions = {ipaddress.ip_address(h).version for h in hosts}
    except ValueError:
        raise ValueError(
            "a list of addresses must be IP:port literals; for host names use a "
            "'dns:///name:port' target that resolves to every replica"
        ) from None
    if len(versions) != 1:
        raise ValueError("do not mix IPv4 and IPv6 addresses")
    scheme = "ipv4" if versions == {4} else "ipv6"
    return f"{scheme}:{','.join(addresses)}"


# --- Chunking -------------------------------------------------------------------------------
def plan_chunks(n: int, chunk_size: int) -> list[slice]:
    """Contiguous slices of at most ``chunk_size`` rows covering ``range(n)`` in order.

    >>> plan_chunks(5, 2)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    return [slice(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]


def concat_rows(parts: Sequence[npt.NDArray[Any]]) -> npt.NDArray[Any]:
    """Reassemble chunk results in plan order."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)


# --- Texts ------------------------------------------------------------------------------------
def encode_texts(texts: Iterable[str | bytes]) -> npt.NDArray[np.object_]:
    """A 1-D object array of UTF-8 bytes (the form a tf.string tensor takes in numpy)."""
    if isinstance(texts, str | bytes):
        raise TypeError("texts must be a sequence of strings, not a single string")
    out: list[bytes] = []
    for i, text in enumerate(texts):
        if isinstance(text, bytes):
            out.append(text)
        elif isinstance(text, str):
            try:
                out.append(text.encode("utf-8"))
            except UnicodeEncodeError as exc:  # lone surrogates cannot be sent to any server
                raise InvalidInputError(
                    "INVALID_ARGUMENT", f"text {i} is not valid Unicode: {exc.reason}"
                ) from exc
        else:
            raise TypeError(f"text {i} is {type(text).__name__}, expected str or bytes")
    arr = np.empty(len(out), dtype=object)
    arr[:] = out
    return arr


# --- numpy <-> TensorProto ------------------------------------------------------------------
_NUMPY_TO_DT: Mapping[np.dtype[Any], int] = {
    np.dtype(np.float32): tensor_pb2.DT_FLOAT,
    np.dtype(np.float64): tensor_pb2.DT_DOUBLE,
    np.dtype(np.int32): tensor_pb2.DT_INT32,
    np.dtype(np.uint8): tensor_pb2.DT_UINT8,
    np.dtype(np.int16): tensor_pb2.DT_INT16,
    np.dtype(np.int8): tensor_pb2.DT_INT8,
    np.dtype(np.int64): tensor_pb2.DT_INT64,
    np.dtype(np.bool_): tensor_pb2.DT_BOOL,
    np.dtype(np.uint16): tensor_pb2.DT_UINT16,
    np.dtype(np.float16): tensor_pb2.DT_HALF,
    np.dtype(np.uint32): tensor_pb2.DT_UINT32,
    np.dtype(np.uint64): tensor_pb2.DT_UINT64,
    np.dtype(np.complex64): tensor_pb2.DT_COMPLEX64,
    np.dtype(np.complex128): tensor_pb2.DT_COMPLEX128,
}
_DT_TO_NUMPY: Mapping[int, np.dtype[Any]] = {v: k for k, v in _NUMPY_TO_DT.items()}
_DT_TO_NUMPY_BY_NAME: Mapping[str, np.dtype[Any]] = {
    tensor_pb2.DataType.Name(k): v for k, v in _DT_TO_NUMPY.items()
}


def numpy_dtype(dtype_name: str) -> np.dtype[Any]:
    """numpy dtype for a TF dtype name (``"DT_FLOAT"`` -> float32; DT_STRING -> object)."""
    if dtype_name == "DT_STRING":
        return np.dtype(object)
    try:
        return _DT_TO_NUMPY_BY_NAME[dtype_name]
    except KeyError:
        raise ValueError(f"unsupported dtype {dtype_name}") from None


def _first_leaf(value: Any) -> Any:
    while isinstance(value, list | tuple) and value:
        value = value[0]
    return value


def as_input_array(value: Any) -> npt.NDArray[Any]:
    """Coerce a predict input: str/bytes sequences become object arrays of UTF-8 bytes."""
    if isinstance(value, np.ndarray):
        arr = value
    elif isinstance(_first_leaf(value), str | bytes):
        # dtype=object: numpy's fixed-width bytes dtype would drop trailing NUL bytes.
        arr = np.array(value, dtype=object)
    else:
        arr = np.asarray(value)
    if arr.dtype.kind in "US":
        flat = encode_texts([str(v) if arr.dtype.kind == "U" else bytes(v) for v in arr.ravel()])
        return flat.reshape(arr.shape)
    if arr.dtype == object:
        flat = encode_texts(list(arr.ravel()))
        return flat.reshape(arr.shape)
    return arr


def to_tensor_proto(value: Any) -> tensor_pb2.TensorProto:
    """numpy -> TensorProto the way ``tf.make_tensor_proto`` lays it out (strings in
    ``string_val``, numbers as little-endian ``tensor_content``), so requests are byte-identical
    to the ones tensorflow-serving-api users send."""
    arr = as_input_array(value)
    proto = tensor_pb2.TensorProto()
    for size in arr.shape:
        proto.tensor_shape.dim.add(size=int(size))
    if arr.dtype == object:
        proto.dtype = tensor_pb2.DT_STRING
        proto.string_val.extend(arr.ravel().tolist())
        return proto
    dtype = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
    try:
        proto.dtype = _NUMPY_TO_DT[np.dtype(dtype.type)]  # type: ignore[assignment]
    except KeyError:
        raise TypeError(f"unsupported input dtype {arr.dtype}") from None
    # Same split as tf.make_tensor_proto: these go in *_val fields, the rest as raw bytes.
    if arr.dtype == np.bool_:
        proto.bool_val.extend(arr.ravel().tolist())
    elif arr.dtype == np.uint16:
        proto.int_val.extend(arr.ravel().tolist())
    elif arr.dtype.kind == "c":
        interleaved = np.stack([arr.real.ravel(), arr.imag.ravel()], axis=1).ravel().tolist()
        field = proto.scomplex_val if arr.dtype == np.complex64 else proto.dcomplex_val
        field.extend(interleaved)
    else:
        proto.tensor_content = np.ascontiguousarray(arr, dtype=dtype.newbyteorder("<")).tobytes()
    return proto


def _values_field(proto: tensor_pb2.TensorProto) -> Sequence[Any]:
    dt = proto.dtype
    if dt in (tensor_pb2.DT_FLOAT,):
        return proto.float_val
    if dt == tensor_pb2.DT_DOUBLE:
        return proto.double_val
    if dt in (
        tensor_pb2.DT_INT32,
        tensor_pb2.DT_INT16,
        tensor_pb2.DT_INT8,
        tensor_pb2.DT_UINT8,
        tensor_pb2.DT_UINT16,
    ):
        return proto.int_val
    if dt == tensor_pb2.DT_INT64:
        return proto.int64_val
    if dt == tensor_pb2.DT_BOOL:
        return proto.bool_val
    if dt == tensor_pb2.DT_UINT32:
        return proto.uint32_val
    if dt == tensor_pb2.DT_UINT64:
        return proto.uint64_val
    raise ValueError(f"unsupported output dtype {tensor_pb2.DataType.Name(dt)}")


def from_tensor_proto(proto: tensor_pb2.TensorProto) -> npt.NDArray[Any]:
    """TensorProto -> numpy (strings as an object array of bytes), like ``tf.make_ndarray``."""
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    count = int(np.prod(shape, dtype=np.int64))
    if proto.dtype == tensor_pb2.DT_STRING:
        strings = list(proto.string_val)
        if len(strings) not in (count, 1) and count:
            raise ValueError(f"string tensor has {len(strings)} values for shape {shape}")
        arr = np.empty(count, dtype=object)
        arr[:] = strings if len(strings) == count else strings * count
        return arr.reshape(shape)
    dtype = _DT_TO_NUMPY.get(proto.dtype)
    if dtype is None:
        raise ValueError(f"unsupported output dtype {tensor_pb2.DataType.Name(proto.dtype)}")
    if proto.tensor_content:
        return (
            np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<"))
            .astype(dtype, copy=True)
            .reshape(shape)
        )
    if proto.dtype == tensor_pb2.DT_HALF:
        values: npt.NDArray[Any] = np.array(proto.half_val, dtype=np.uint16).view(np.float16)
    elif proto.dtype in (tensor_pb2.DT_COMPLEX64, tensor_pb2.DT_COMPLEX128):
        raw = proto.scomplex_val if proto.dtype == tensor_pb2.DT_COMPLEX64 else proto.dcomplex_val
        pairs = np.array(raw, dtype=np.float64).reshape(-1, 2)
        values = (pairs[:, 0] + 1j * pairs[:, 1]).astype(dtype)
    else:
        values = np.array(_values_field(proto), dtype=dtype)
    if values.size == count:
        return values.reshape(shape)
    if values.size == 0:
        return np.zeros(shape, dtype=dtype)
    # TF's compact form: the last value repeats to fill the shape.
    filled = np.empty(count, dtype=dtype)
    filled[: values.size] = values
    filled[values.size :] = values[-1]
    return filled.reshape(shape)


# --- Model selection ----------------------------------------------------------------------
def check_version_choice(version: int | None, version_label: str | None) -> None:
    if version is not None and version_label is not None:
        raise ValueError("give version or version_label, not both")


def model_spec(
    model_name: str,
    *,
    signature_name: str = "",
    version: int | None = None,
    version_label: str | None = None,
) -> apis.ModelSpec:
    check_version_choice(version, version_label)
    spec = apis.ModelSpec(name=model_name, signature_name=signature_name)
    if version is not None:
        spec.version.value = version
    elif version_label is not None:
        spec.version_label = version_label
    return spec


def rest_model_path(
    model_name: str, *, version: int | None = None, version_label: str | None = None
) -> str:
    """``/v1/models/NAME[/versions/N|/labels/L]``, TF Serving's REST resource for a model."""
    check_version_choice(version, version_label)
    path = f"/v1/models/{model_name}"
    if version is not None:
        path += f"/versions/{int(version)}"
    elif version_label is not None:
        path += f"/labels/{version_label}"
    return path


# --- Predict: gRPC --------------------------------------------------------------------------
def build_predict_request(
    model_name: str,
    inputs: Mapping[str, Any],
    *,
    signature_name: str,
    version: int | None = None,
    version_label: str | None = None,
    output_filter: Sequence[str] = (),
) -> apis.PredictRequest:
    if not inputs:
        raise ValueError("predict needs at least one input")
    request = apis.PredictRequest(
        model_spec=model_spec(
            model_name, signature_name=signature_name, version=version, version_label=version_label
        ),
        output_filter=list(output_filter),
    )
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(to_tensor_proto(value))
    return request


def parse_predict_response(response: apis.PredictResponse) -> dict[str, npt.NDArray[Any]]:
    return {name: from_tensor_proto(tensor) for name, tensor in response.outputs.items()}


# --- Predict: REST (TF Serving JSON) ----------------------------------------------------------
def _json_value(arr: npt.NDArray[Any]) -> Any:
    if arr.dtype == object:
        return _json_strings(arr.tolist())
    if arr.dtype.kind == "c":
        raise TypeError("complex inputs have no TF Serving JSON form")
    return arr.tolist()


def _json_strings(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_strings(v) for v in value]
    assert isinstance(value, bytes)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        # TF Serving's JSON carries binary strings as {"b64": ...}.
        return {"b64": base64.b64encode(value).decode("ascii")}


def build_rest_predict_body(
    inputs: Mapping[str, Any], *, signature_name: str, row_format: bool = False
) -> dict[str, Any]:
    """TF Serving's predict JSON, columnar (``inputs``) by default or row (``instances``)."""
    if not inputs:
        raise ValueError("predict needs at least one input")
    arrays = {name: as_input_array(value) for name, value in inputs.items()}
    body: dict[str, Any] = {"signature_name": signature_name}
    if not row_format:
        body["inputs"] = {name: _json_value(arr) for name, arr in arrays.items()}
        return body
    lengths = {arr.shape[0] if arr.ndim else -1 for arr in arrays.values()}
    if len(lengths) != 1 or -1 in lengths:
        raise ValueError("row format needs every input to share its first (batch) dimension")
    columns = {name: _json_value(arr) for name, arr in arrays.items()}
    n = lengths.pop()
    if len(columns) == 1:
        body["instances"] = next(iter(columns.values()))
    else:
        body["instances"] = [{name: col[i] for name, col in columns.items()} for i in range(n)]
    return body


def _decode_json_strings(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_json_strings(v) for v in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise TextServeError("DATA_LOSS", f"bad base64 in response: {exc}") from exc
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TextServeError("DATA_LOSS", f"expected a string in the response, got {value!r:.80}")


def _json_to_array(value: Any, dtype: np.dtype[Any] | None) -> npt.NDArray[Any]:
    if (dtype is not None and dtype.kind == "O") or isinstance(_first_leaf(value), str | dict):
        return np.array(_decode_json_strings(value), dtype=object)
    return np.asarray(value, dtype=dtype)


def parse_rest_predict_body(
    body: Any,
    *,
    output_dtypes: Mapping[str, np.dtype[Any]] | None = None,
    single_output_name: str | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """Parse TF Serving's predict JSON (``outputs`` or ``predictions``).

    JSON carries no dtypes, so ``output_dtypes`` (from the signature's metadata) restore them.
    When the signature has a single output TF Serving omits its name; ``single_output_name``
    supplies it.
    """
    dtypes = output_dtypes or {}
    if not isinstance(body, dict):
        raise TextServeError("DATA_LOSS", "predict response is not a JSON object")
    if "outputs" in body:
        outputs = body["outputs"]
        columns = outputs if isinstance(outputs, dict) else None
    elif "predictions" in body:
        rows = body["predictions"]
        if not isinstance(rows, list):
            raise TextServeError("DATA_LOSS", "'predictions' is not a list")
        if rows and isinstance(rows[0], dict) and not set(rows[0]) == {"b64"}:
            columns = {name: [row[name] for row in rows] for name in rows[0]}
        else:
            columns, outputs = None, rows
    else:
        raise TextServeError("DATA_LOSS", f"predict response has no outputs: {str(body)[:200]}")
    if columns is None:
        if single_output_name is None:
            raise TextServeError("DATA_LOSS", "response has one unnamed output and no name known")
        columns = {single_output_name: outputs}
    return {name: _json_to_array(value, dtypes.get(name)) for name, value in columns.items()}


# --- OpenAI embeddings (textserve-server's /v1/embeddings) ----------------------------------
def build_openai_embeddings_body(model_name: str, texts: npt.NDArray[np.object_]) -> dict[str, Any]:
    return {"model": model_name, "input": [t.decode("utf-8", errors="strict") for t in texts]}


def parse_openai_embeddings_body(body: Any, n: int) -> npt.NDArray[np.float32]:
    """Rows of ``data`` placed by their ``index`` (the API does not promise order)."""
    try:
        data = body["data"]
        rows: list[Any] = [None] * n
        for item in data:
            rows[int(item["index"])] = item["embedding"]
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise TextServeError("DATA_LOSS", f"malformed embeddings response: {exc!r}") from exc
    if any(r is None for r in rows) or len(data) != n:
        raise TextServeError("DATA_LOSS", f"expected {n} embeddings, got {len(data)}")
    return np.asarray(rows, dtype=np.float32)


# --- Embeddings -------------------------------------------------------------------------------
def embedding_rows(outputs: Mapping[str, npt.NDArray[Any]], n: int) -> npt.NDArray[np.float32]:
    """The ``embedding`` output of serving_default, checked to hold one row per text."""
    try:
        emb = outputs[contract.EMBEDDING]
    except KeyError:
        raise TextServeError(
            "DATA_LOSS", f"response has no {contract.EMBEDDING!r} output: {sorted(outputs)}"
        ) from None
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise TextServeError("DATA_LOSS", f"expected {n} embedding rows, got shape {emb.shape}")
    return emb


# --- Status and metadata ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ModelVersionStatus:
    """One version's state as GetModelStatus / ``GET /v1/models/NAME`` report it."""

    version: int
    state: str  # START | LOADING | AVAILABLE | UNLOADING | END | UNKNOWN
    error_code: str = "OK"
    error_message: str = ""


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """A signature input or output: dtype name (``"DT_FLOAT"``) and shape (-1 = unknown dim,
    ``None`` = unknown rank)."""

    name: str
    dtype: str
    shape: tuple[int, ...] | None

    @property
    def numpy_dtype(self) -> np.dtype[Any]:
        return numpy_dtype(self.dtype)


@dataclasses.dataclass(frozen=True)
class SignatureSpec:
    method_name: str
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]


@dataclasses.dataclass(frozen=True)
class ModelMetadata:
    """GetModelMetadata's answer: the served version and its signatures by name."""

    model_name: str
    version: int
    signatures: Mapping[str, SignatureSpec]


def parse_status_response(response: apis.GetModelStatusResponse) -> list[ModelVersionStatus]:
    return [
        ModelVersionStatus(
            version=int(s.version),
            state=apis.ModelVersionStatus.State.Name(s.state),
            error_code=apis.ErrorCode.Name(s.status.error_code),
            error_message=s.status.error_message,
        )
        for s in response.model_version_status
    ]


def parse_rest_status_body(body: Any) -> list[ModelVersionStatus]:
    response = apis.GetModelStatusResponse()
    try:
        json_format.ParseDict(body, response, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise TextServeError("DATA_LOSS", f"malformed status response: {exc}") from exc
    return parse_status_response(response)


def build_metadata_request(
    model_name: str, *, version: int | None = None, version_label: str | None = None
) -> apis.GetModelMetadataRequest:
    return apis.GetModelMetadataRequest(
        model_spec=model_spec(model_name, version=version, version_label=version_label),
        metadata_field=[SIGNATURE_DEF_FIELD],
    )


def build_status_request(
    model_name: str, *, version: int | None = None, version_label: str | None = None
) -> apis.GetModelStatusRequest:
    return apis.GetModelStatusRequest(
        model_spec=model_spec(model_name, version=version, version_label=version_label)
    )


def _tensor_spec(info: Any) -> TensorSpec:
    shape = info.tensor_shape
    dims = None if shape.unknown_rank else tuple(int(d.size) for d in shape.dim)
    return TensorSpec(name=info.name, dtype=tensor_pb2.DataType.Name(info.dtype), shape=dims)


def _metadata(spec: apis.ModelSpec, sigmap: apis.SignatureDefMap) -> ModelMetadata:
    signatures = {
        key: SignatureSpec(
            method_name=sig.method_name,
            inputs={k: _tensor_spec(v) for k, v in sorted(sig.inputs.items())},
            outputs={k: _tensor_spec(v) for k, v in sorted(sig.outputs.items())},
        )
        for key, sig in sorted(sigmap.signature_def.items())
    }
    return ModelMetadata(
        model_name=spec.name,
        version=int(spec.version.value),
        signatures=signatures,
    )


def parse_metadata_response(response: apis.GetModelMetadataResponse) -> ModelMetadata:
    sigmap = apis.SignatureDefMap()
    if SIGNATURE_DEF_FIELD in response.metadata:
        packed = response.metadata[SIGNATURE_DEF_FIELD]
        # The Any names tensorflow.serving.SignatureDefMap; our SignatureDefMap has the same
        # wire format, so its bytes are unpacked directly (Any.Unpack would check the name).
        if not packed.type_url.endswith("tensorflow.serving.SignatureDefMap"):
            raise TextServeError("DATA_LOSS", f"unexpected metadata type {packed.type_url}")
        sigmap.ParseFromString(packed.value)
    return _metadata(response.model_spec, sigmap)


def parse_rest_metadata_body(body: Any) -> ModelMetadata:
    spec = apis.ModelSpec()
    sigmap = apis.SignatureDefMap()
    try:
        json_format.ParseDict(body.get("model_spec", {}), spec, ignore_unknown_fields=True)
        packed = dict(body.get("metadata", {}).get(SIGNATURE_DEF_FIELD, {}))
        packed.pop("@type", None)
        json_format.ParseDict(packed, sigmap, ignore_unknown_fields=True)
    except (json_format.ParseError, AttributeError, TypeError) as exc:
        raise TextServeError("DATA_LOSS", f"malformed metadata response: {exc}") from exc
    return _metadata(spec, sigmap)


def is_ready(statuses: Sequence[ModelVersionStatus]) -> bool:
    return any(s.state == "AVAILABLE" for s in statuses)


def single_output_name(
    metadata: ModelMetadata | None, signature_name: str, output_filter: Sequence[str]
) -> str | None:
    if len(output_filter) == 1:
        return output_filter[0]
    if metadata is not None and signature_name in metadata.signatures:
        outputs = metadata.signatures[signature_name].outputs
        if len(outputs) == 1:
            return next(iter(outputs))
    return None


def output_dtypes(metadata: ModelMetadata | None, signature_name: str) -> dict[str, np.dtype[Any]]:
    if metadata is None or signature_name not in metadata.signatures:
        return {}
    return {
        name: spec.numpy_dtype for name, spec in metadata.signatures[signature_name].outputs.items()
    }


def filter_outputs(
    outputs: dict[str, npt.NDArray[Any]], output_filter: Sequence[str]
) -> dict[str, npt.NDArray[Any]]:
    """TF Serving's REST API has no output_filter: the REST clients filter on arrival."""
    if not output_filter:
        return outputs
    missing = [name for name in output_filter if name not in outputs]
    if missing:
        raise InvalidInputError("INVALID_ARGUMENT", f"unknown outputs in output_filter: {missing}")
    return {name: outputs[name] for name in output_filter}


def parse_json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError as exc:
        raise TextServeError("DATA_LOSS", f"response is not JSON: {content[:200]!r}") from exc


# --- Predict call (the arguments of predict, shared by the four clients) ---------------------
@dataclasses.dataclass(frozen=True)
class PredictCall:
    """What one ``predict`` asks for; each protocol turns it into its own request."""

    inputs: Mapping[str, Any]
    signature_name: str
    version: int | None = None
    version_label: str | None = None
    output_filter: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_version_choice(self.version, self.version_label)


# --- Embedding plan (chunking shared by the four clients) ---------------------------------
@dataclasses.dataclass(frozen=True)
class EmbedChunk:
    texts: npt.NDArray[np.object_]  # UTF-8 bytes, a contiguous slice of the caller's list


@dataclasses.dataclass(frozen=True)
class EmbedPlan:
    """How one ``embed(texts)`` call is split: contiguous chunks, reassembled in this order."""

    model_name: str
    version: int | None
    version_label: str | None
    chunks: tuple[EmbedChunk, ...]

    @classmethod
    def make(
        cls,
        settings: ClientSettings,
        texts: Sequence[str | bytes],
        *,
        version: int | None = None,
        version_label: str | None = None,
    ) -> EmbedPlan:
        check_version_choice(version, version_label)
        encoded = encode_texts(texts)
        chunks = tuple(
            EmbedChunk(encoded[part]) for part in plan_chunks(len(encoded), settings.chunk_size)
        )
        return cls(settings.model_name, version, version_label, chunks)

    @property
    def rest_path(self) -> str:
        return (
            rest_model_path(self.model_name, version=self.version, version_label=self.version_label)
            + ":predict"
        )

    def grpc_request(self, chunk: EmbedChunk) -> apis.PredictRequest:
        return build_predict_request(
            self.model_name,
            {contract.TEXT: chunk.texts},
            signature_name=contract.SERVING_DEFAULT,
            version=self.version,
            version_label=self.version_label,
            output_filter=(contract.EMBEDDING,),
        )
